//! Real captures from ../shared/pcaps/public (skipped when absent): wire decap -> flow table.

use std::collections::HashMap;
use std::path::PathBuf;

use vxtap_flow::*;
use vxtap_wire::{DecapConfig, Decapsulator, Decoded, LinkType};

/// Records both streams of every connection (gaps as `None` bytes) and the metadata.
#[derive(Default)]
struct Rec {
    metas: Vec<ConnMeta>,
    streams: HashMap<(u64, bool), Vec<Option<u8>>>,
    closes: Vec<CloseReason>,
}

impl StreamHandler for Rec {
    type Conn = u64;
    fn on_open(&mut self, m: &ConnMeta) -> u64 {
        self.metas.push(*m);
        m.conn_id
    }
    fn on_data(&mut self, c: &mut u64, _: &ConnMeta, d: Direction, _: u64, data: &[u8]) -> Verdict {
        let s = self
            .streams
            .entry((*c, d == Direction::ClientToServer))
            .or_default();
        s.extend(data.iter().map(|b| Some(*b)));
        Verdict::Continue
    }
    fn on_gap(
        &mut self,
        c: &mut u64,
        _: &ConnMeta,
        d: Direction,
        _: u64,
        len: u64,
        _: GapReason,
    ) -> Verdict {
        let s = self
            .streams
            .entry((*c, d == Direction::ClientToServer))
            .or_default();
        s.extend(std::iter::repeat_n(None, len as usize));
        Verdict::Continue
    }
    fn on_fin(&mut self, _: &mut u64, _: &ConnMeta, _: Direction, _: u64) {}
    fn on_close(&mut self, _: u64, _: &ConnMeta, _: u64, r: CloseReason) {
        self.closes.push(r);
    }
}

impl Rec {
    fn text(&self, id: u64, c2s: bool) -> String {
        self.streams
            .get(&(id, c2s))
            .map(|v| v.iter().map(|b| b.map_or('?', |b| b as char)).collect())
            .unwrap_or_default()
    }
}

fn pcap_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/public");
    d.is_dir().then_some(d)
}

/// Replays a capture through decap and a flow table; `None` when the file is missing.
fn replay(name: &str, mode: FlowKeyMode) -> Option<(Rec, FlowStats)> {
    let mut reader = vxtap_capture::CaptureReader::open(pcap_dir()?.join(name)).ok()?;
    let mut d = Decapsulator::new(DecapConfig::default());
    let cfg = FlowConfig {
        key_mode: mode,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg).ok()?;
    let mut h = Rec::default();
    while let Ok(Some(p)) = reader.next_packet() {
        let Some(link) = LinkType::from_pcap(p.linktype) else {
            continue;
        };
        let ts = p.ts_ns;
        if let Decoded::Segment { segment, .. } = d.decode(link, ts, p.data) {
            t.process(&segment, &mut h);
        }
        t.advance_time(ts, &mut h);
    }
    t.finish(&mut h);
    let st = *t.stats();
    Some((h, st))
}

#[test]
fn vxlan_overlapping_get_once_by_default_three_times_in_session_mode() {
    let name = "zeek__vxlan-overlapping-http-get.pcap";
    let Some((h, st)) = replay(name, FlowKeyMode::FiveTuple) else {
        eprintln!("{name} not present, skipped");
        return;
    };
    assert_eq!(h.metas.len(), 1, "{st:?}");
    assert!(h.text(0, true).starts_with("GET "), "{}", h.text(0, true));
    assert!(st.retransmitted_segments > 0, "second copies absorbed");
    let (h, _) = replay(name, FlowKeyMode::Session).unwrap();
    assert_eq!(h.metas.len(), 3);
    let ids: Vec<u64> = h.metas.iter().map(|m| m.stable_id).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "same connection, same stable id"
    );
    for m in &h.metas {
        assert!(h.text(m.conn_id, true).starts_with("GET "));
    }
}

#[test]
fn start_from_response_is_midstream() {
    let name = "suricata-verify__http-start-from-response.pcap";
    let Some((h, st)) = replay(name, FlowKeyMode::FiveTuple) else {
        eprintln!("{name} not present, skipped");
        return;
    };
    assert!(st.flows_midstream >= 1, "{st:?}");
    let m = h.metas.iter().find(|m| m.midstream).unwrap();
    assert!(
        h.text(m.conn_id, false).starts_with("HTTP/"),
        "{}",
        h.text(m.conn_id, false)
    );
}

#[test]
fn retransmissions_are_absorbed() {
    let name = "arkime__wireshark-retrans.pcap";
    let Some((h, st)) = replay(name, FlowKeyMode::FiveTuple) else {
        eprintln!("{name} not present, skipped");
        return;
    };
    assert!(st.retransmitted_segments > 0, "{st:?}");
    assert_eq!(st.gap_bytes_total(), 0, "{st:?}");
    assert!(h.text(0, true).starts_with("POST /exhmedmx HTTP/1.1\r\n"));
    assert!(!h.text(0, true).contains('?'));
}

#[test]
fn gap_capture_reports_exact_gap() {
    let name = "suricata-verify__http-gap-simple_input.pcap";
    let Some((h, st)) = replay(name, FlowKeyMode::FiveTuple) else {
        eprintln!("{name} not present, skipped");
        return;
    };
    // One 14-byte segment of the second response body is missing from the capture.
    assert_eq!((st.gaps_lost, st.gap_bytes_lost), (1, 14), "{st:?}");
    let resp = h.text(0, false);
    assert!(
        resp.contains("Content-Length: 70\r\n\r\nAAAAAAAAAAAAAA??????????????AAAA"),
        "{resp}"
    );
    assert!(h.text(0, true).contains("GET /3 HTTP/1.0"));
}
