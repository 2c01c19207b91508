//! `vxtap listen -o kafka://...` as a child process against librdkafka's in-process mock
//! cluster (loopback): every exchange arrives once, in order per connection, with SIGTERM
//! flushing within the drain deadline; with the broker gone, SIGTERM spools what is left and
//! the next run delivers it; `/readyz` and the metrics say what happens meanwhile.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message};

fn vxtap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vxtap"))
}

fn pcap() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps/vxlan/mixed-vni101.pcap")
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf.split_once("\r\n\r\n")?.1.to_string()))
}

fn metric(admin: u16, name: &str) -> u64 {
    let (_, body) = http_get(admin, "/metrics").expect("metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The exchanges of the capture as `replay` writes them: the expected records.
fn expected() -> Vec<String> {
    let out = vxtap()
        .arg("replay")
        .arg(pcap())
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

struct Listener {
    child: Child,
    udp: u16,
    admin: u16,
}

impl Listener {
    fn start(brokers: &str, topic: &str, config: &Path, extra: &[&str]) -> Listener {
        let (udp, admin) = (free_port(true), free_port(false));
        let child = vxtap()
            .args(["listen", "--bind", &format!("127.0.0.1:{udp}")])
            .args(["--admin-bind", &format!("127.0.0.1:{admin}")])
            .args(["--recv-buffer", "16MiB", "--threads", "2", "-c"])
            .arg(config)
            .args(["-o", &format!("kafka://{brokers}/{topic}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while http_get(admin, "/healthz").is_none() {
            assert!(Instant::now() < end, "listener did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Listener { child, udp, admin }
    }

    fn send(&self) {
        let st = vxtap()
            .arg("send")
            .arg(pcap())
            .args(["--to", &format!("127.0.0.1:{}", self.udp), "--pps", "20000"])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM; the exit status and stderr.
    fn stop(mut self, limit: Duration) -> (bool, String) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (st.success(), err);
            }
            assert!(
                Instant::now() < end,
                "listener did not stop within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Every record of `topic` (key, value), partition by partition.
fn read_topic(brokers: &str, topic: &str, want: usize) -> Vec<(String, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "check")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    let mut quiet_until = None;
    while Instant::now() < end {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            _ if out.len() >= want => {
                // Half a second more: anything beyond `want` is a duplicate.
                let q = *quiet_until.get_or_insert(Instant::now() + Duration::from_millis(500));
                if Instant::now() >= q {
                    break;
                }
            }
            _ => {}
        }
    }
    out
}

/// All expected records, once each; each connection's in capture order (by `ts`).
fn check(got: &[(String, String)], want: &[String]) {
    let strip_ts = |l: &str| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let mut v = v.as_object().unwrap().clone();
        // Receive-time timestamps and the datagram's source (here the local sender, in the
        // file the original mirror source) are the only differences (as in tests/e2e.rs).
        for k in ["ts", "timing", "mirror_source"] {
            v.remove(k);
        }
        for side in ["request", "response"] {
            if let Some(m) = v.get_mut(side).and_then(|m| m.as_object_mut()) {
                m.remove("ts");
            }
        }
        serde_json::to_string(&v).unwrap()
    };
    let mut a: Vec<String> = got.iter().map(|(_, v)| strip_ts(v)).collect();
    let mut b: Vec<String> = want.iter().map(|l| strip_ts(l)).collect();
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len(), "record count");
    assert_eq!(a, b, "the same records as replay, once each");
    let mut last: HashMap<&str, String> = HashMap::new();
    for (k, v) in got {
        let ts = serde_json::from_str::<serde_json::Value>(v).unwrap()["ts"]
            .as_str()
            .unwrap()
            .to_string();
        if let Some(prev) = last.get(k.as_str()) {
            assert!(*prev <= ts, "connection {k}: {prev} then {ts}");
        }
        last.insert(k, ts);
    }
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("vxtap.toml");
    std::fs::write(
        &p,
        "[output.kafka]\nlinger = \"5ms\"\nstatistics_interval = \"200ms\"\n\
         unreachable_after = \"1s\"\n",
    )
    .unwrap();
    p
}

#[test]
fn listen_to_kafka_delivers_every_exchange_and_sigterm_flushes() {
    let want = expected();
    let cluster = MockCluster::new(2).unwrap();
    cluster.create_topic("ex", 4, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let l = Listener::start(&brokers, "ex", &config(dir.path()), &[]);
    let end = Instant::now() + Duration::from_secs(10);
    while http_get(l.admin, "/readyz").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < end, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    l.send();
    // A short idle timeout is not set: the exchanges of connections still open come out at
    // SIGTERM, and must still be delivered within the drain deadline.
    std::thread::sleep(Duration::from_millis(500));
    // The metrics follow the output thread's snapshot (every half second).
    let end = Instant::now() + Duration::from_secs(10);
    while metric(l.admin, "vxtap_kafka_reachable") != 1 {
        assert!(
            Instant::now() < end,
            "{}",
            http_get(l.admin, "/metrics").unwrap().1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, err) = l.stop(Duration::from_secs(20));
    assert!(ok, "{err}");
    assert!(err.contains(&format!("delivered={}", want.len())), "{err}");
    check(&read_topic(&brokers, "ex", want.len()), &want);
}

#[test]
fn broker_gone_at_sigterm_spools_and_the_next_run_delivers_it() {
    let want = expected();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("ex", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let spool = dir.path().join("spool");
    let spool_arg = spool.to_str().unwrap();
    let l = Listener::start(
        &brokers,
        "ex",
        &cfg,
        &["--spool", spool_arg, "--drain-timeout", "2s"],
    );
    cluster.broker_down(1).unwrap();
    // Not ready once the broker was unreachable for longer than `unreachable_after`.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let r = http_get(l.admin, "/readyz").unwrap();
        if r.0 == 503 {
            assert!(r.1.contains("output"), "{}", r.1);
            break;
        }
        assert!(Instant::now() < end, "still ready with the broker down");
        std::thread::sleep(Duration::from_millis(100));
    }
    l.send();
    let t = Instant::now();
    let (ok, err) = l.stop(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5), "drain deadline kept");
    assert!(ok, "spooled records are kept, not lost: {err}");
    assert!(
        err.contains(&format!("spool_waiting={}", want.len())),
        "{err}"
    );
    cluster.broker_up(1).unwrap();
    // The next run replays the spool.
    let l = Listener::start(&brokers, "ex", &cfg, &["--spool", spool_arg]);
    let end = Instant::now() + Duration::from_secs(20);
    while metric(l.admin, "vxtap_kafka_delivered_total") < want.len() as u64 {
        assert!(Instant::now() < end, "spool not replayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(l.admin, "vxtap_kafka_spool_records"), 0);
    let (ok, err) = l.stop(Duration::from_secs(20));
    assert!(ok, "{err}");
    check(&read_topic(&brokers, "ex", want.len()), &want);
}
