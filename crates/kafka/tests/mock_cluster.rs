//! The Kafka sink against librdkafka's in-process mock cluster: keys, order per connection,
//! headers, compression, queue-full drops, broker loss then recovery through the spool, and
//! the shutdown purge into the spool.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message};
use vxtap_http::exchange::{Peer, Timing};
use vxtap_http::{Exchange, FlagSet};
use vxtap_kafka::{KafkaOptions, KafkaSink, KafkaTarget, ProducerSettings};
use vxtap_sink::{Encode, EncodedSink, LineEncoder, Sink};

fn exchange(conn: u16, i: u64) -> Exchange {
    Exchange {
        ts_ns: 1_767_225_600_000_000_000 + i,
        id: (u64::from(conn) << 32) | i,
        vni: Some(101),
        tunnel: Some("vxlan"),
        mirror_source: Some("10.9.9.9".parse().unwrap()),
        client: Peer {
            ip: "10.0.0.1".parse().unwrap(),
            port: 40000 + conn,
        },
        server: Peer {
            ip: "10.0.0.2".parse().unwrap(),
            port: 80,
        },
        request: None,
        response: None,
        interim: Vec::new(),
        timing: Timing::default(),
        flags: FlagSet::EMPTY,
        stream_id: None,
        rst_error: None,
        grpc: None,
    }
}

fn settings(
    brokers: &str,
    topic: &str,
    opts: KafkaOptions,
    spool: Option<std::path::PathBuf>,
) -> ProducerSettings {
    ProducerSettings::new(
        KafkaTarget::parse(&format!("kafka://{brokers}/{topic}")).unwrap(),
        opts,
        spool,
    )
    .unwrap()
}

fn fast() -> KafkaOptions {
    KafkaOptions {
        linger: Some(vxtap_kafka::config::Millis::Ms(1)),
        statistics_interval: Some(vxtap_kafka::config::Millis::Ms(100)),
        ..KafkaOptions::default()
    }
}

/// A record as read back: (key, value, vni header, mirror_source header, partition).
type Got = (String, String, Option<String>, Option<String>, i32);

/// Every record of `topic`.
fn consume_all(brokers: &str, topic: &str, want: usize) -> Vec<Got> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test")
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
    let end = Instant::now() + Duration::from_secs(30);
    while out.len() < want && Instant::now() < end {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let mut vni = None;
            let mut src = None;
            if let Some(h) = m.headers() {
                for hd in h.iter() {
                    let v = hd.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    match hd.key {
                        "vni" => vni = v,
                        "mirror_source" => src = v,
                        _ => {}
                    }
                }
            }
            out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                vni,
                src,
                m.partition(),
            ));
        }
    }
    // Nothing more than expected arrives.
    let extra_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < extra_until {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push((
                String::new(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                None,
                None,
                m.partition(),
            ));
        }
    }
    out
}

/// Checks that the records are exactly `conns x per` exchanges, once each, in order per
/// connection, each connection on one partition, values as the file output writes them.
fn check(got: &[Got], conns: u16, per: u64) {
    let enc = LineEncoder::new(None).unwrap();
    assert_eq!(got.len() as u64, u64::from(conns) * per, "records");
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut part: HashMap<String, i32> = HashMap::new();
    for (key, value, vni, src, p) in got {
        let i = next.entry(key.clone()).or_insert(0);
        let conn: u16 = key
            .split(['-', ':'])
            .nth(1)
            .unwrap()
            .parse::<u16>()
            .unwrap()
            - 40000;
        let mut line = Vec::new();
        enc.encode_exchange(&exchange(conn, *i), &mut line).unwrap();
        line.pop();
        assert_eq!(value.as_bytes(), &line[..], "key {key} record {i}");
        assert_eq!(vni.as_deref(), Some("101"));
        assert_eq!(src.as_deref(), Some("10.9.9.9"));
        assert_eq!(
            *part.entry(key.clone()).or_insert(*p),
            *p,
            "one partition per key"
        );
        *i += 1;
    }
    assert_eq!(next.len(), conns as usize);
    assert!(next.values().all(|&n| n == per));
}

#[test]
fn keys_order_headers_and_compression() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("ex", 4, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    for codec in ["zstd", "gzip", "lz4"] {
        let topic = format!("ex-{codec}");
        cluster.create_topic(&topic, 4, 1).unwrap();
        let mut opts = fast();
        opts.compression = Some(toml::Value::String(codec.into()).try_into().unwrap());
        let mut sink = KafkaSink::new(settings(&brokers, &topic, opts, None), None).unwrap();
        // Both ways in: whole exchanges, and frames encoded elsewhere.
        let enc = sink.encoder();
        for i in 0..50 {
            for c in 0..8u16 {
                if c % 2 == 0 {
                    sink.write(&exchange(c, i)).unwrap();
                } else {
                    let mut f = Vec::new();
                    enc.encode(&exchange(c, i), &mut f).unwrap();
                    sink.write_encoded(&f, std::time::SystemTime::now())
                        .unwrap();
                }
            }
        }
        let r = sink.finish(Instant::now() + Duration::from_secs(20));
        assert_eq!(r.undelivered, 0, "{codec}");
        let st = sink.stats();
        assert_eq!(st.delivered, 400, "{codec}: {st:?}");
        assert_eq!(st.dropped_total(), 0);
        check(&consume_all(&brokers, &topic, 400), 8, 50);
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("full", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // The broker never answers in time: everything stays queued.
    cluster.broker_down(1).unwrap();
    let mut opts = fast();
    opts.queue_records = Some(100);
    let mut sink = KafkaSink::new(settings(&brokers, "full", opts, None), None).unwrap();
    let t = Instant::now();
    for i in 0..1000 {
        sink.write(&exchange(1, i)).unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "writes must not block"
    );
    let st = sink.stats();
    assert_eq!(st.produced, 100);
    assert_eq!(
        st.dropped_by(vxtap_kafka::stats::DropReason::QueueFull),
        900
    );
    // Shutdown with the broker still down: the rest is reported as not delivered.
    let r = sink.finish(Instant::now() + Duration::from_millis(500));
    assert_eq!(r.undelivered, 100);
    assert_eq!(r.spooled, 0);
    let st = sink.stats();
    assert_eq!(st.dropped_by(vxtap_kafka::stats::DropReason::Shutdown), 100);
    assert_eq!(st.delivered, 0);
}

#[test]
fn broker_loss_then_recovery_through_the_spool_keeps_everything_in_order() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("sp", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = fast();
    opts.queue_records = Some(50);
    opts.unreachable_after = Some(vxtap_kafka::config::Millis::Ms(200));
    let mut sink = KafkaSink::new(
        settings(&brokers, "sp", opts, Some(dir.path().join("spool"))),
        None,
    )
    .unwrap();
    let mut i = 0;
    let write = |sink: &mut KafkaSink, i: &mut u64, n: u64| {
        for _ in 0..n {
            for c in 0..4 {
                sink.write(&exchange(c, *i)).unwrap();
            }
            *i += 1;
        }
    };
    write(&mut sink, &mut i, 20);
    let end = Instant::now() + Duration::from_secs(10);
    while sink.stats().delivered < 80 && Instant::now() < end {
        sink.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sink.stats().delivered, 80);
    cluster.broker_down(1).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !sink.unreachable() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sink.unreachable(), "readiness sees the broker gone");
    // The queue fills (50), the rest goes to the spool, in order behind it.
    write(&mut sink, &mut i, 100);
    let st = sink.stats();
    let sp = st.spool.unwrap();
    assert!(sp.records >= 350, "{st:?}");
    assert_eq!(st.dropped_total(), 0);
    cluster.broker_up(1).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while sink.stats().delivered < 480 && Instant::now() < end {
        sink.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sink.unreachable());
    write(&mut sink, &mut i, 10);
    let r = sink.finish(Instant::now() + Duration::from_secs(20));
    assert_eq!(r.undelivered, 0);
    assert_eq!(r.spool_waiting, 0);
    assert_eq!(sink.stats().delivered, 520);
    check(&consume_all(&brokers, "sp", 520), 4, 130);
}

#[test]
fn shutdown_with_the_broker_gone_spools_and_the_next_run_delivers_in_order() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("sd", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    cluster.broker_down(1).unwrap();
    {
        let mut opts = fast();
        opts.queue_records = Some(30);
        let mut sink =
            KafkaSink::new(settings(&brokers, "sd", opts, Some(spool.clone())), None).unwrap();
        for i in 0..25 {
            for c in 0..2 {
                sink.write(&exchange(c, i)).unwrap();
            }
        }
        // 30 queued in memory, 20 spooled; the queue is purged to the spool's front.
        let r = sink.finish(Instant::now() + Duration::from_millis(300));
        assert_eq!(r.undelivered, 30);
        assert_eq!(r.spooled, 30);
        assert_eq!(r.spool_waiting, 50);
        assert_eq!(sink.stats().dropped_total(), 0);
    }
    cluster.broker_up(1).unwrap();
    let mut sink = KafkaSink::new(settings(&brokers, "sd", fast(), Some(spool)), None).unwrap();
    for i in 25..30 {
        for c in 0..2 {
            sink.write(&exchange(c, i)).unwrap();
        }
    }
    let r = sink.finish(Instant::now() + Duration::from_secs(20));
    assert_eq!((r.undelivered, r.spool_waiting), (0, 0));
    check(&consume_all(&brokers, "sd", 60), 2, 30);
}

#[test]
fn statistics_report_the_brokers_and_reachability() {
    let cluster = MockCluster::new(2).unwrap();
    cluster.create_topic("st", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let sink = KafkaSink::new(settings(&brokers, "st", fast(), None), None).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !sink.stats().reachable && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = sink.stats();
    assert!(st.reachable, "{st:?}");
    assert!(st.client.any_up(), "{st:?}");
    assert!(st.client.queue_max_records > 0, "{st:?}");
}

#[test]
fn inputs_that_can_wait_lose_nothing_to_a_small_queue() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("bl", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut opts = fast();
    opts.queue_records = Some(10);
    let mut sink = KafkaSink::new(settings(&brokers, "bl", opts, None), None).unwrap();
    sink.block_when_full();
    for i in 0..100 {
        for c in 0..3 {
            sink.write(&exchange(c, i)).unwrap();
        }
    }
    let r = sink.finish(Instant::now() + Duration::from_secs(20));
    assert_eq!(r.undelivered, 0);
    let st = sink.stats();
    assert_eq!((st.delivered, st.dropped_total()), (300, 0), "{st:?}");
    check(&consume_all(&brokers, "bl", 300), 3, 100);
}
