//! Loopback throughput of the batched sender and receiver: one sender thread blasts 1400-byte
//! datagrams in `sendmmsg` batches, the main thread receives with `recvmmsg`; reports the
//! offered and received rates and what the kernel dropped.
//!
//! Run with `cargo bench -p vxtap-capture --bench udp`.

use std::time::{Duration, Instant};

use vxtap_capture::{RecvBatch, UdpConfig, UdpReceiver, UdpSender, DATAGRAM_BUF};

const DATAGRAMS: u64 = 500_000;

fn main() {
    let mut cfg = UdpConfig::new("127.0.0.1:0".parse().expect("addr"));
    cfg.read_timeout = Duration::from_millis(200);
    let mut rx = UdpReceiver::bind(&cfg).expect("bind");
    println!("receive buffer: {:?}", rx.recv_buffer());
    let dest = rx.local_addr().expect("addr");
    let sender = std::thread::spawn(move || {
        let mut tx = UdpSender::connect(dest).expect("connect");
        let batch = vec![vec![0x5Au8; 1400]; 64];
        let t = Instant::now();
        let mut sent = 0;
        while sent < DATAGRAMS {
            sent += tx.send_batch(&batch).expect("send") as u64;
        }
        (sent, t.elapsed(), tx.stats())
    });
    let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
    let mut received = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        let n = rx.recv(&mut batch).expect("recv");
        if n == 0 {
            if sender.is_finished() {
                break;
            }
            continue;
        }
        first.get_or_insert_with(Instant::now);
        last = Instant::now();
        received += n as u64;
    }
    let (sent, send_time, stats) = sender.join().expect("sender");
    let drops = rx.refresh_kernel_drops().expect("drops");
    let recv_time = first
        .map(|f| last - f)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-9);
    println!(
        "sent {sent} in {:.3} s ({:.0} kpps, {} backoffs); received {received} ({:.0} kpps); \
         kernel drops {drops}",
        send_time.as_secs_f64(),
        sent as f64 / send_time.as_secs_f64() / 1e3,
        stats.backoffs,
        received as f64 / recv_time / 1e3,
    );
}
