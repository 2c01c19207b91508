//! Round trips through the writers and readers, damaged files, and the shared public captures.

use std::io::Write;
use std::path::{Path, PathBuf};

use vxtap_capture::{
    CaptureError, CaptureReader, Damage, FileFormat, PcapWriter, PcapngWriter, TsResolution,
};

/// (ts_ns, data, orig_len, interface) of every packet, or the error that ended the file.
type Owned = (u64, u32, Vec<u8>, u32, u32);

fn read_all(r: &mut CaptureReader) -> (Vec<Owned>, Option<CaptureError>) {
    let mut out = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => out.push((
                p.ts_ns,
                p.linktype,
                p.data.to_vec(),
                p.orig_len,
                p.interface,
            )),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn sample_packets(n: usize) -> Vec<(u64, Vec<u8>, u32)> {
    (0..n)
        .map(|i| {
            let len = [0, 1, 3, 60, 1514, 9001][i % 6];
            let data: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            let ts = 1_700_000_000_123_456_789 + i as u64 * 1_000_001_001;
            (ts, data, len as u32 + (i % 2) as u32 * 10)
        })
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vxtap-capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn pcap_round_trip_micro_and_nano() {
    for res in [TsResolution::Micro, TsResolution::Nano] {
        let pkts = sample_packets(50);
        let mut w = PcapWriter::new(Vec::new(), 1, res).unwrap();
        for (ts, d, o) in &pkts {
            w.write_packet(*ts, d, *o).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let mut r = CaptureReader::from_bytes("mem.pcap", bytes).unwrap();
        assert_eq!(
            r.format(),
            FileFormat::Pcap {
                nanos: res == TsResolution::Nano,
                big_endian: false
            }
        );
        let (got, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), pkts.len());
        for ((ts, lt, d, o, i), (ets, ed, eo)) in got.iter().zip(&pkts) {
            let ets = if res == TsResolution::Micro {
                ets / 1000 * 1000
            } else {
                *ets
            };
            assert_eq!((*ts, *lt, d, *o, *i), (ets, 1, ed, *eo, 0));
        }
        assert_eq!(r.progress().done, r.progress().total.unwrap());
    }
}

/// Builds a big-endian classic pcap by hand, as a SPARC or old Mac would have written it.
fn big_endian_pcap(nanos: bool, linktype: u32, pkts: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(if nanos { 0xA1B2_3C4Du32 } else { 0xA1B2_C3D4 }).to_be_bytes());
    b.extend_from_slice(&2u16.to_be_bytes());
    b.extend_from_slice(&4u16.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_be_bytes());
    b.extend_from_slice(&linktype.to_be_bytes());
    for (sec, frac, data) in pkts {
        b.extend_from_slice(&sec.to_be_bytes());
        b.extend_from_slice(&frac.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(&(data.len() as u32 + 4).to_be_bytes());
        b.extend_from_slice(data);
    }
    b
}

#[test]
fn pcap_big_endian_micro_and_nano() {
    let pkts: [(u32, u32, &[u8]); 3] = [
        (1, 2, b"abc"),
        (1_700_000_000, 999_999, b""),
        (5, 7, &[0xEE; 100]),
    ];
    for nanos in [false, true] {
        let bytes = big_endian_pcap(nanos, 101, &pkts);
        let mut r = CaptureReader::from_bytes("be.pcap", bytes).unwrap();
        assert_eq!(
            r.format(),
            FileFormat::Pcap {
                nanos,
                big_endian: true
            }
        );
        let (got, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(got.len(), 3);
        for (g, (sec, frac, data)) in got.iter().zip(&pkts) {
            let frac_ns = if nanos {
                *frac as u64
            } else {
                *frac as u64 * 1000
            };
            assert_eq!(g.0, *sec as u64 * 1_000_000_000 + frac_ns);
            assert_eq!(g.1, 101);
            assert_eq!(&g.2[..], *data);
            assert_eq!(g.3, data.len() as u32 + 4);
        }
    }
}

#[test]
fn pcapng_two_interfaces_with_comments() {
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    let eth = w.add_interface(1, TsResolution::Micro).unwrap();
    let raw = w.add_interface(101, TsResolution::Nano).unwrap();
    assert_eq!((eth, raw), (0, 1));
    let pkts = sample_packets(30);
    for (i, (ts, d, o)) in pkts.iter().enumerate() {
        let comment = format!("vni={i}");
        let c = (i % 3 != 0).then_some(comment.as_str());
        w.write_packet((i % 2) as u32, *ts, d, *o, c).unwrap();
    }
    assert!(w.write_packet(7, 0, b"x", 1, None).is_err());
    let bytes = w.into_inner().unwrap();
    let mut r = CaptureReader::from_bytes("mem.pcapng", bytes.clone()).unwrap();
    for i in 0..30 {
        let p = r.next_packet().unwrap().unwrap();
        let want = format!("vni={i}");
        assert_eq!(p.comment, (i % 3 != 0).then_some(want.as_bytes()));
    }
    let mut r = CaptureReader::from_bytes("mem.pcapng", bytes).unwrap();
    assert_eq!(r.format(), FileFormat::Pcapng);
    let (got, err) = read_all(&mut r);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 30);
    for (i, ((ts, lt, d, o, ifc), (ets, ed, eo))) in got.iter().zip(&pkts).enumerate() {
        let (elt, ets) = if i % 2 == 0 {
            (1, ets / 1000 * 1000)
        } else {
            (101, *ets)
        };
        assert_eq!((*ts, *lt, d, *o, *ifc), (ets, elt, ed, *eo, (i % 2) as u32));
    }
}

#[test]
fn gzip_is_streamed_and_progress_reaches_total() {
    let pkts = sample_packets(3000);
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Nano).unwrap();
    for (ts, d, o) in &pkts {
        w.write_packet(*ts, d, *o).unwrap();
    }
    let plain = w.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let path = tmp("round.pcap.gz");
    std::fs::write(&path, &gz).unwrap();
    let mut r = CaptureReader::open(&path).unwrap();
    let (got, err) = read_all(&mut r);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 3000);
    assert_eq!(got[2999].2, pkts[2999].1);
    assert_eq!(r.progress().total, Some(gz.len() as u64));
    assert_eq!(r.progress().done, gz.len() as u64);
    assert_eq!(r.position(), plain.len() as u64);

    // A truncated gzip stream yields the packets before the cut, then an error.
    let mut r = CaptureReader::from_reader(
        "cut.pcap.gz",
        std::io::Cursor::new(gz[..gz.len() / 2].to_vec()),
    )
    .unwrap();
    let (got, err) = read_all(&mut r);
    assert!(!got.is_empty() && got.len() < 3000);
    assert!(err.is_some());
    let _ = std::fs::remove_file(path);
}

#[test]
fn truncated_file_yields_good_packets_then_offset() {
    let pkts = sample_packets(6);
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro).unwrap();
    for (ts, d, o) in &pkts {
        w.write_packet(*ts, d, *o).unwrap();
    }
    let full = w.into_inner().unwrap();
    // Offset of the last record: header + 5 records.
    let last = 24 + pkts[..5].iter().map(|p| 16 + p.1.len()).sum::<usize>();
    for cut in [last + 3, last + 16, full.len() - 1] {
        let bytes = full[..cut].to_vec();
        // Through the memory path and through the streaming path: same result.
        let readers = [
            CaptureReader::from_bytes("cut.pcap", bytes.clone()).unwrap(),
            CaptureReader::from_reader("cut.pcap", std::io::Cursor::new(bytes)).unwrap(),
        ];
        for mut r in readers {
            let (got, err) = read_all(&mut r);
            assert_eq!(got.len(), 5);
            let err = err.expect("truncation is an error");
            assert!(matches!(err, CaptureError::Truncated { .. }), "{err}");
            assert_eq!(err.offset(), Some(last as u64), "{err}");
            assert!(err.to_string().contains("cut.pcap"), "{err}");
            assert!(r.next_packet().unwrap().is_none(), "fused after an error");
        }
    }
}

#[test]
fn absurd_record_length_is_damage() {
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro).unwrap();
    w.write_packet(1, b"good", 4).unwrap();
    let mut bytes = w.into_inner().unwrap();
    let at = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&4_325_376u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let mut r = CaptureReader::from_reader("bad.pcap", std::io::Cursor::new(bytes)).unwrap();
    let (got, err) = read_all(&mut r);
    assert_eq!(got.len(), 1);
    match err {
        Some(CaptureError::Corrupt {
            offset,
            damage: Damage::RecordTooLong { len, .. },
            ..
        }) => {
            assert_eq!((offset, len), (at as u64, 4_325_376));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_a_capture() {
    for bytes in [&b""[..], b"ab", b"GET / HTTP/1.1\r\n"] {
        let err = CaptureReader::from_bytes("x", bytes.to_vec())
            .err()
            .unwrap();
        assert!(matches!(err, CaptureError::UnknownFormat { .. }), "{err}");
    }
    let err = CaptureReader::open("/nonexistent/x.pcap").err().unwrap();
    assert!(matches!(err, CaptureError::Open { .. }));
}

const PUBLIC: &str = "/work/shared/pcaps/public";

/// Every shared public capture reads with the packet count its manifest states; the corrupt
/// one yields its 6 packets and then an error at a byte offset.
#[test]
fn public_captures_match_manifest() {
    let dir = Path::new(PUBLIC);
    let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        return;
    };
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file_col, packets_col) = (col("file"), col("packets"));
    let mut checked = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let path = dir.join(cols[file_col]);
        let expect = cols[packets_col];
        let mut r = CaptureReader::open(&path).unwrap();
        let (mut n, mut end) = (0u64, 0u64);
        let pcap = matches!(r.format(), FileFormat::Pcap { .. });
        let res = r.for_each(|p| {
            assert!(p.data.len() <= p.orig_len as usize || p.orig_len == 0);
            n += 1;
            end += 16 + p.data.len() as u64;
        });
        match expect.parse::<u64>() {
            Ok(count) => {
                assert!(res.is_ok(), "{}: {:?}", path.display(), res);
                assert_eq!(n, count, "{}", path.display());
            }
            Err(_) => {
                // "6 readable, then corrupt record"
                let good: u64 = expect.split(' ').next().unwrap().parse().unwrap();
                assert_eq!(n, good, "{}", path.display());
                let err = res.expect_err("damaged file must end in an error");
                if pcap {
                    // The damage is the record right after the last good one.
                    assert_eq!(err.offset(), Some(24 + end), "{err}");
                }
                assert!(err.offset().is_some(), "{err}");
                assert!(err.to_string().contains(cols[file_col]), "{err}");
            }
        }
        checked += 1;
    }
    // Every file in the folder (besides the manifest) is listed and was read.
    let files = std::fs::read_dir(dir).unwrap().filter(|e| {
        e.as_ref()
            .map(|e| e.file_name() != "MANIFEST.tsv")
            .unwrap_or(false)
    });
    assert_eq!(files.count(), checked);
}
