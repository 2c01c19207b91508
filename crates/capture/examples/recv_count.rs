//! A raw recvmmsg receiver that only counts: the baseline `bench/listen.sh` compares
//! `vxtap listen` with. Usage: `recv_count ADDR SECONDS` (prints `received N kernel_drops M`).

use std::time::{Duration, Instant};

use vxtap_capture::{RecvBatch, UdpConfig, UdpReceiver, DATAGRAM_BUF};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: recv_count ADDR SECONDS");
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut sock = UdpReceiver::bind(&UdpConfig::new(addr)).expect("bind");
    if let Some(w) = sock.recv_buffer().warning() {
        eprintln!("{w}");
    }
    let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let _ = sock.recv(&mut batch);
    }
    let _ = sock.refresh_kernel_drops();
    let st = sock.stats();
    println!("received {} kernel_drops {}", st.datagrams, st.kernel_drops);
}
