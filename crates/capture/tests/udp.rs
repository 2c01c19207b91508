//! Loopback-only tests of the batched UDP receiver and sender.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vxtap_capture::{RecvBatch, UdpConfig, UdpReceiver, UdpSender, DATAGRAM_BUF};

fn receiver(bind: &str) -> UdpReceiver {
    let mut cfg = UdpConfig::new(bind.parse().unwrap());
    cfg.recv_buffer = 16 << 20;
    UdpReceiver::bind(&cfg).expect("bind")
}

/// Payloads of assorted sizes, each tagged with its index in the first 4 bytes.
fn payloads(n: usize) -> Vec<Vec<u8>> {
    let sizes = [4usize, 64, 1400, 1500, 8550, 9001, 9216, 100];
    (0..n)
        .map(|i| {
            let mut v = vec![(i % 251) as u8; sizes[i % sizes.len()]];
            v[..4].copy_from_slice(&(i as u32).to_be_bytes());
            v
        })
        .collect()
}

/// Receives until `want` datagrams arrived or a second passes with nothing new.
fn drain(
    rx: &mut UdpReceiver,
    batch: &mut RecvBatch,
    want: usize,
) -> Vec<(SocketAddr, Vec<u8>, u64)> {
    let mut got = Vec::new();
    let mut idle = Instant::now();
    while got.len() < want && idle.elapsed() < Duration::from_secs(1) {
        if rx.recv(batch).unwrap() > 0 {
            idle = Instant::now();
        }
        for d in batch.iter() {
            assert!(!d.truncated);
            assert_eq!(d.len, d.data.len());
            got.push((d.source, d.data.to_vec(), d.ts_ns));
        }
    }
    got
}

fn round_trip(bind: &str) {
    let mut rx = receiver(bind);
    let addr = rx.local_addr().unwrap();
    let mut tx = UdpSender::connect(addr).unwrap();
    let src = tx.local_addr().unwrap();
    let sent = payloads(400);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // Interleave sending and receiving so the test passes even where the kernel caps the
    // buffer below what 400 jumbo datagrams need.
    let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
    let mut got = Vec::new();
    for chunk in sent.chunks(50) {
        assert_eq!(tx.send_batch(chunk).unwrap(), chunk.len());
        got.extend(drain(&mut rx, &mut batch, chunk.len()));
    }
    assert_eq!(tx.stats().sent, 400);
    assert_eq!(got.len(), sent.len(), "kernel drops: {}", rx.kernel_drops());
    for ((from, data, ts), want) in got.iter().zip(&sent) {
        assert_eq!(*from, src);
        assert_eq!(data, want);
        assert!(
            *ts >= before - 1_000_000_000,
            "timestamp {ts} before {before}"
        );
    }
    let st = rx.stats();
    assert_eq!((st.datagrams, st.truncated, st.kernel_drops), (400, 0, 0));
    assert_eq!(st.bytes, sent.iter().map(|d| d.len() as u64).sum::<u64>());
}

#[test]
fn ipv4_round_trip_with_jumbo_datagrams() {
    round_trip("127.0.0.1:0");
}

#[test]
fn ipv6_round_trip_with_jumbo_datagrams() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return; // no IPv6 loopback on this machine
    }
    round_trip("[::1]:0");
}

#[test]
fn receive_times_out_so_the_thread_can_check_its_stop_flag() {
    let mut cfg = UdpConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.read_timeout = Duration::from_millis(50);
    let mut rx = UdpReceiver::bind(&cfg).unwrap();
    let mut batch = RecvBatch::new(8, 2048);
    let t = Instant::now();
    assert_eq!(rx.recv(&mut batch).unwrap(), 0);
    assert!(batch.is_empty());
    let dt = t.elapsed();
    assert!(
        dt >= Duration::from_millis(40) && dt < Duration::from_secs(2),
        "{dt:?}"
    );
}

#[test]
fn reuseport_receivers_share_one_port() {
    let mut a = receiver("127.0.0.1:0");
    let addr = a.local_addr().unwrap();
    let mut b = receiver(&addr.to_string());
    assert_eq!(b.local_addr().unwrap(), addr);
    // The kernel spreads flows over the group by source port: use many senders.
    let mut senders: Vec<UdpSender> = (0..32).map(|_| UdpSender::connect(addr).unwrap()).collect();
    for (i, s) in senders.iter_mut().enumerate() {
        s.send_batch(&[vec![i as u8; 100], vec![i as u8; 200]])
            .unwrap();
    }
    let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
    let (mut na, mut nb) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while na + nb < 64 && Instant::now() < deadline {
        na += a.recv(&mut batch).unwrap();
        nb += b.recv(&mut batch).unwrap();
    }
    assert_eq!(na + nb, 64);
    assert!(na > 0 && nb > 0, "one socket got everything: {na} / {nb}");
}

#[test]
fn kernel_drops_are_counted() {
    let mut cfg = UdpConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.recv_buffer = 4096; // the kernel's floor: a handful of datagrams fit
    let mut rx = UdpReceiver::bind(&cfg).unwrap();
    assert!(rx.recv_buffer().effective < 64 * 1024);
    let mut tx = UdpSender::connect(rx.local_addr().unwrap()).unwrap();
    let sent = 200;
    for _ in 0..sent {
        tx.send(&[7u8; 1000]).unwrap();
    }
    let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
    let mut received = 0;
    while rx.recv(&mut batch).unwrap() > 0 {
        received += batch.len() as u64;
    }
    // The queued datagrams predate the drops, so SO_RXQ_OVFL has not told us yet...
    let drops = rx.refresh_kernel_drops().unwrap();
    assert!(drops > 0, "no drops reported ({received} received)");
    assert_eq!(
        received + drops,
        sent,
        "every datagram is either received or counted"
    );
    // ...and the next datagram carries the same cumulative count, not counted twice.
    tx.send(&[8u8; 10]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while rx.recv(&mut batch).unwrap() == 0 && Instant::now() < deadline {}
    assert_eq!(batch.len(), 1);
    assert_eq!(rx.kernel_drops(), drops);
    assert_eq!(rx.stats().kernel_drops, drops);

    // Drops seen only through SO_RXQ_OVFL, on a fresh socket.
    let mut rx2 = UdpReceiver::bind(&cfg).unwrap();
    let mut tx2 = UdpSender::connect(rx2.local_addr().unwrap()).unwrap();
    for _ in 0..sent {
        tx2.send(&[7u8; 1000]).unwrap();
    }
    let mut received = 0;
    while rx2.recv(&mut batch).unwrap() > 0 {
        received += batch.len() as u64;
    }
    tx2.send(&[8u8; 10]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while rx2.recv(&mut batch).unwrap() == 0 && Instant::now() < deadline {}
    assert_eq!(received + rx2.kernel_drops(), sent);
}

#[test]
fn oversize_datagram_is_detected_as_truncated() {
    let mut rx = receiver("127.0.0.1:0");
    let mut tx = UdpSender::connect(rx.local_addr().unwrap()).unwrap();
    tx.send(&vec![1u8; 20_000]).unwrap();
    tx.send(&[2u8; 9216]).unwrap(); // exactly fits: not truncated
    let mut batch = RecvBatch::new(4, DATAGRAM_BUF);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.len() < 2 && Instant::now() < deadline {
        rx.recv(&mut batch).unwrap();
        seen.extend(batch.iter().map(|d| (d.len, d.data.len(), d.truncated)));
    }
    assert_eq!(
        seen,
        vec![(20_000, DATAGRAM_BUF, true), (9216, 9216, false)]
    );
    assert_eq!(rx.stats().truncated, 1);
}

#[test]
fn receive_buffer_report_is_consistent() {
    let rx = receiver("127.0.0.1:0");
    let info = rx.recv_buffer();
    assert_eq!(info.requested, 16 << 20);
    assert!(info.effective > 0);
    assert_eq!(info.is_capped(), info.warning().is_some());
    if let Some(w) = info.warning() {
        assert!(w.contains("net.core.rmem_max"));
    }
}

#[test]
fn dual_stack_socket_reports_ipv4_senders_as_ipv4() {
    let Ok(mut rx) = UdpReceiver::bind(&UdpConfig::new("[::]:0".parse().unwrap())) else {
        return; // no IPv6 on this machine
    };
    let port = rx.local_addr().unwrap().port();
    let mut tx = UdpSender::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    tx.send(b"hello").unwrap();
    let mut batch = RecvBatch::new(4, 2048);
    let deadline = Instant::now() + Duration::from_secs(2);
    while rx.recv(&mut batch).unwrap() == 0 && Instant::now() < deadline {}
    let d = batch.get(0).expect("datagram");
    assert_eq!(d.source, tx.local_addr().unwrap());
    assert_eq!(d.data, b"hello");
}
