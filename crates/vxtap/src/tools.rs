//! The capture tools: `encap`, `decap` and `stats`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use vxtap_capture::{CaptureError, CaptureReader, PcapWriter, PcapngWriter, TsResolution};
use vxtap_wire::encap::to_ethernet;
use vxtap_wire::{
    wrap_vxlan, DecapConfig, DecapStats, Decapsulator, Decoded, LinkType, OuterParams,
};

use crate::cli::DecodeOpts;

/// The decapsulation settings of the tools' `DecodeOpts`.
pub fn decap_config(d: &DecodeOpts) -> DecapConfig {
    DecapConfig {
        vxlan_ports: d.vxlan_ports.clone(),
        vxlan_gpe_ports: d.vxlan_gpe_ports.clone(),
        geneve_ports: d.geneve_ports.clone(),
        gre_udp_ports: d.gre_udp_ports.clone(),
        max_depth: d.max_tunnel_depth,
        validate_checksums: d.validate_checksums,
        ..DecapConfig::default()
    }
}

/// Errors of the tools: capture damage is reported with what was done before it.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Reading or writing a capture failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Creating an output file failed.
    #[error("{path}: {source}")]
    Create {
        /// The output.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A frame could not be wrapped.
    #[error("packet {index}: {message}")]
    Encap {
        /// 1-based packet number.
        index: u64,
        /// What went wrong.
        message: String,
    },
}

fn create(path: &Path) -> Result<BufWriter<File>, ToolError> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|source| ToolError::Create {
            path: path.to_path_buf(),
            source,
        })
}

/// `vxtap encap`: wraps every frame of `input` in VXLAN as AWS mirroring would. Returns the
/// number of packets written.
pub fn encap(
    input: &Path,
    output: &Path,
    vni: u32,
    truncate: Option<usize>,
    outer: &OuterParams,
) -> Result<u64, ToolError> {
    let mut reader = CaptureReader::open(input)?;
    let mut writer = PcapWriter::new(create(output)?, 1, TsResolution::Nano)?;
    let (mut eth, mut wrapped) = (Vec::with_capacity(9000), Vec::with_capacity(9100));
    let mut n = 0u64;
    while let Some(p) = reader.next_packet()? {
        n += 1;
        let link = LinkType::from_pcap(p.linktype).ok_or_else(|| ToolError::Encap {
            index: n,
            message: format!("link type {} cannot be wrapped", p.linktype),
        })?;
        let frame = if link == LinkType::Ethernet {
            p.data
        } else {
            to_ethernet(link, p.data, &mut eth).map_err(|e| ToolError::Encap {
                index: n,
                message: e.to_string(),
            })?;
            &eth[..]
        };
        wrap_vxlan(frame, vni, outer, truncate, &mut wrapped).map_err(|e| ToolError::Encap {
            index: n,
            message: e.to_string(),
        })?;
        // A mirror session sends the cut frame whole, so only bytes the input capture itself
        // lacked are missing from the outer frame too.
        let missing = if truncate.is_some() {
            0
        } else {
            (p.orig_len as usize).saturating_sub(p.data.len())
        };
        let orig = wrapped.len().saturating_add(missing);
        writer.write_packet(p.ts_ns, &wrapped, orig.min(u32::MAX as usize) as u32)?;
    }
    writer.flush()?;
    Ok(n)
}

/// What `vxtap decap` did.
#[derive(Debug)]
pub struct DecapOutcome {
    /// Inner frames written.
    pub written: u64,
    /// Decapsulation counters.
    pub stats: DecapStats,
    /// The damage that ended the input early, if any: the frames before it were written.
    pub damage: Option<CaptureError>,
}

/// `vxtap decap`: writes the innermost frames, one pcapng with the VNI as each packet's comment
/// (to stdout when `output` is `-`), or one pcap per VNI. A damaged input ends the output at
/// the damage, like `replay` and `stats`; failing to open the input or to write is an error.
pub fn decap(
    input: &Path,
    output: &Path,
    per_vni: bool,
    cfg: DecapConfig,
) -> Result<DecapOutcome, ToolError> {
    let mut reader = CaptureReader::open(input)?;
    let mut decap = Decapsulator::new(cfg);
    let mut eth = Vec::with_capacity(9000);
    let mut written = 0u64;
    let mut ng = if per_vni {
        None
    } else {
        let out: Box<dyn Write> = if output.as_os_str() == "-" {
            Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
        } else {
            Box::new(create(output)?)
        };
        let mut w = PcapngWriter::new(out)?;
        w.add_interface(1, TsResolution::Nano)?;
        Some(w)
    };
    let mut per: BTreeMap<Option<u32>, PcapWriter<BufWriter<File>>> = BTreeMap::new();
    let mut comment = String::new();
    let mut damage = None;
    loop {
        let p = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                damage = Some(e);
                break;
            }
        };
        let Some(link) = LinkType::from_pcap(p.linktype) else {
            continue;
        };
        let (vni, inner) = match decap.decode(link, p.ts_ns, p.data) {
            Decoded::Segment { segment, inner } => (segment.vni, inner),
            Decoded::Other { vni, inner, .. } => (vni, inner),
            Decoded::Rejected(_) | Decoded::FragmentHeld => continue,
        };
        // Inner frames are written as Ethernet so that one output link type fits every tunnel.
        let frame: &[u8] = if inner.link == LinkType::Ethernet {
            inner.frame
        } else {
            match to_ethernet(inner.link, inner.frame, &mut eth) {
                Ok(()) => &eth,
                Err(_) => continue,
            }
        };
        let orig = frame.len() as u32;
        if let Some(w) = ng.as_mut() {
            comment.clear();
            if let Some(v) = vni {
                use std::fmt::Write;
                let _ = write!(comment, "vni={v}");
            }
            let c = (!comment.is_empty()).then_some(comment.as_str());
            w.write_packet(0, p.ts_ns, frame, orig, c)?;
        } else {
            let w = match per.entry(vni) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let name = match vni {
                        Some(v) => format!("{}.vni-{v}.pcap", output.display()),
                        None => format!("{}.plain.pcap", output.display()),
                    };
                    e.insert(PcapWriter::new(
                        create(Path::new(&name))?,
                        1,
                        TsResolution::Nano,
                    )?)
                }
            };
            w.write_packet(p.ts_ns, frame, orig)?;
        }
        written += 1;
    }
    if let Some(w) = ng.as_mut() {
        w.flush()?;
    }
    for w in per.values_mut() {
        w.flush()?;
    }
    Ok(DecapOutcome {
        written,
        stats: decap.take_stats(),
        damage,
    })
}

/// Per-VNI counts in `vxtap stats`.
#[derive(Debug, Default, Serialize, Clone)]
pub struct VniCount {
    /// Frames.
    pub packets: u64,
    /// Captured bytes of those frames.
    pub bytes: u64,
}

/// The report of `vxtap stats`.
#[derive(Debug, Default, Serialize)]
pub struct StatsReport {
    /// Files read.
    pub files: Vec<String>,
    /// Frames read.
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// Frames by VNI ("none" for plain frames).
    pub per_vni: BTreeMap<String, VniCount>,
    /// TCP segments by innermost tunnel kind.
    pub per_tunnel: BTreeMap<String, u64>,
    /// Inner packets by protocol.
    pub per_inner_protocol: BTreeMap<String, u64>,
    /// Rejections by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Frames cut by the mirror or the snaplen.
    pub truncated_frames: u64,
    /// Bytes those frames miss.
    pub truncated_bytes: u64,
    /// Outer fragments held / reassembled.
    pub fragments_reassembled: u64,
    /// VXLAN headers with reserved bits set (decoded all the same, RFC 7348 section 5).
    pub vxlan_reserved_bits: u64,
    /// Frames with a link type vxtap does not decode.
    pub unsupported_link: u64,
    /// Damage found in the inputs (the frames before it are counted).
    pub errors: Vec<String>,
}

/// `vxtap stats`: counts without reassembly.
pub fn stats(files: &[PathBuf], cfg: DecapConfig) -> StatsReport {
    let mut decap = Decapsulator::new(cfg);
    let mut report = StatsReport::default();
    // Per-VNI counts: a mirror target sees a handful of sessions, so a short list searched
    // from the last hit beats a map lookup per frame (this loop is the read+decap benchmark).
    let mut per_vni: Vec<(Option<u32>, VniCount)> = Vec::new();
    let mut last = 0usize;
    for path in files {
        report.files.push(path.display().to_string());
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                report.errors.push(e.to_string());
                continue;
            }
        };
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    report.packets += 1;
                    report.bytes += p.data.len() as u64;
                    let Some(link) = LinkType::from_pcap(p.linktype) else {
                        report.unsupported_link += 1;
                        continue;
                    };
                    let vni = match decap.decode(link, p.ts_ns, p.data) {
                        Decoded::Segment { segment, .. } => Some(segment.vni),
                        Decoded::Other { vni, .. } => Some(vni),
                        _ => None,
                    };
                    if let Some(vni) = vni {
                        if per_vni.get(last).is_none_or(|(v, _)| *v != vni) {
                            last = match per_vni.iter().position(|(v, _)| *v == vni) {
                                Some(i) => i,
                                None => {
                                    per_vni.push((vni, VniCount::default()));
                                    per_vni.len() - 1
                                }
                            };
                        }
                        if let Some((_, c)) = per_vni.get_mut(last) {
                            c.packets += 1;
                            c.bytes += p.data.len() as u64;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    report.errors.push(e.to_string());
                    break;
                }
            }
        }
    }
    let s = decap.take_stats();
    per_vni.sort_by_key(|(vni, _)| *vni);
    for (vni, c) in per_vni {
        let key = vni.map_or_else(|| "none".to_string(), |v| v.to_string());
        report.per_vni.insert(key, c);
    }
    for c in s.counters() {
        let Some((_, label)) = c.label else { continue };
        let map = match c.name {
            "vxtap_decap_segments_total" => &mut report.per_tunnel,
            "vxtap_decap_inner_packets_total" => &mut report.per_inner_protocol,
            "vxtap_decap_rejected_total" => &mut report.rejected,
            _ => continue,
        };
        if c.value > 0 {
            map.insert(label.to_string(), c.value);
        }
    }
    report.truncated_frames = s.truncated;
    report.truncated_bytes = s.truncated_bytes;
    report.fragments_reassembled = s.fragments.reassembled;
    report.vxlan_reserved_bits = s.vxlan_reserved_bits;
    report
}

impl StatsReport {
    /// A human-readable table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "packets {}  bytes {}", self.packets, self.bytes);
        let _ = writeln!(s, "{:<12} {:>12} {:>14}", "vni", "packets", "bytes");
        for (vni, c) in &self.per_vni {
            let _ = writeln!(s, "{:<12} {:>12} {:>14}", vni, c.packets, c.bytes);
        }
        for (title, map) in [
            ("tcp segments by tunnel", &self.per_tunnel),
            ("inner packets by protocol", &self.per_inner_protocol),
            ("rejected by reason", &self.rejected),
        ] {
            if map.is_empty() {
                continue;
            }
            let _ = writeln!(s, "{title}:");
            for (k, v) in map {
                let _ = writeln!(s, "  {k:<28} {v:>12}");
            }
        }
        let _ = writeln!(
            s,
            "truncated frames {} (missing {} bytes); fragments reassembled {}; \
             vxlan reserved bits {}; unsupported link {}",
            self.truncated_frames,
            self.truncated_bytes,
            self.fragments_reassembled,
            self.vxlan_reserved_bits,
            self.unsupported_link
        );
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }
}
