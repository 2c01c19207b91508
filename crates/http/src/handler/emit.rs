//! Turning finished messages into records: a message that ends is stored with its request (or
//! held, or emitted unpaired), and an exchange leaves as an [`Exchange`] with its body captured
//! (and decoded), its flags and timings, and a stable id.

use super::budget::build_bytes;
use super::{
    Conn, Entry, HttpHandler, Kind, MsgBuild, Role, State, MAX_EARLY, MAX_EARLY_ACKED, MAX_INTERIM,
    NO_REQUEST,
};
use crate::decode::DecodeEnd;
use crate::exchange::{Body as CapturedBody, Content, Cut, Exchange, Message, Peer, Timing};
use crate::flags::{Flag, FlagSet};
use crate::stats::Outcome;

impl HttpHandler {
    // ----- message completion ----------------------------------------------------------------

    /// The current message of `r` ended (`cut`: before its framing said so).
    pub(super) fn finish_msg(&mut self, c: &mut Conn, r: Role, ts: u64, flags: FlagSet, cut: bool) {
        let h = &mut c.halves[r];
        if matches!(h.state, State::Body(_)) {
            h.state = State::Start;
        }
        let Some(m) = h.cur.take() else { return };
        h.mark = h.off;
        let mut m = *m;
        let target = h.target.take();
        m.flags.merge(flags);
        m.cut |= cut;
        if m.end_ts < m.start_ts {
            m.end_ts = m.start_ts;
        }
        let _ = ts;
        if h.is_request {
            let n = build_bytes(&m);
            let placeholder = target.is_some_and(|s| c.in_overflow(s));
            match target.and_then(|s| c.entry_mut(s)) {
                Some(Entry {
                    kind: Kind::Real(p),
                    seq,
                    ..
                }) => {
                    let seq = *seq;
                    p.req = Some(m);
                    self.q_add(c, seq, n);
                    self.try_emit(c);
                }
                // Kept as a placeholder: the record is what the budget gave up.
                _ if placeholder => {}
                _ => self.emit(c, Some(m), None, Vec::new(), FlagSet::EMPTY),
            }
            // The client stream is known further: held responses may be decidable now.
            self.resolve_held(c, None);
        } else if std::mem::take(&mut h.interim) {
            match target.and_then(|s| c.entry_mut(s)) {
                Some(Entry {
                    kind: Kind::Real(p),
                    ..
                }) if p.interim.len() < MAX_INTERIM => {
                    p.interim.push(self.finish_message(m).0);
                    if let Some(seq) = target {
                        self.q_add(c, seq, 256);
                    }
                }
                _ => self.stats.interim_dropped += 1,
            }
        } else {
            let uf = std::mem::take(&mut h.unpaired_flags);
            let held = std::mem::take(&mut h.held);
            let in_sync = !c.uncertain && !c.midstream_unsynced;
            match target.and_then(|s| c.entry_mut(s)) {
                Some(Entry {
                    kind: Kind::Real(p),
                    ..
                }) => {
                    let n = build_bytes(&m);
                    p.resp = Some(m);
                    if let Some(seq) = target {
                        self.q_add(c, seq, n);
                    }
                    // The next request was sent before the client had all of this response:
                    // it pipelines (proven by its ack, unlike a request that merely waits).
                    let end = c.halves[Role::Resp].off;
                    if let Some(n) = target.and_then(|s| c.entry(s + 1)) {
                        if n.sent_ack.get().is_some_and(|sent| sent < end) {
                            c.pipelined = true;
                            c.pipelined_by = NO_REQUEST;
                        }
                    }
                    self.try_emit(c);
                }
                _ if held || (uf.is_empty() && in_sync) => {
                    let cap = if m.ack.is_some() && !c.pipelined {
                        MAX_EARLY_ACKED
                    } else {
                        MAX_EARLY
                    };
                    if c.early.len() >= cap {
                        self.flush_early(c, 1);
                    }
                    c.early.push_back(Box::new(m));
                }
                _ => {
                    let mut f = uf;
                    f.insert(Flag::NoRequest);
                    self.emit(c, None, Some(m), Vec::new(), f);
                }
            }
        }
    }

    /// Turns a finished build into the record's message, with body capture and decoding.
    pub(super) fn finish_message(&mut self, m: MsgBuild) -> (Message, FlagSet) {
        let mut flags = m.flags;
        let mut msg = m.msg;
        let gapped = msg.gap_bytes > 0;
        let cut = m.cut || gapped;
        let mut bytes = m.raw;
        // The replay's copy first, then the record's bytes exactly as `max_body_bytes` alone
        // would have captured them.
        if self.cfg.replay_body_bytes > 0 {
            let n = bytes.len().min(self.cfg.replay_body_bytes);
            msg.replay_body = Some(bytes[..n].to_vec());
            bytes.truncate(self.cfg.max_body_bytes);
        }
        let mut content = m.content;
        let mut truncated = (bytes.len() as u64) < msg.body_len;
        let mut bound_hit = false;
        if let Some(d) = m.decoder {
            self.stats.decodes += 1;
            let (out, end) = d.finish(!cut);
            match end {
                DecodeEnd::Ok => {
                    bytes = out;
                    content = Content::Plain;
                    truncated = false;
                }
                DecodeEnd::Truncated => {
                    bytes = out;
                    content = Content::Plain;
                    truncated = true;
                    bound_hit = true;
                    flags.insert(Flag::DecodeTruncated);
                }
                DecodeEnd::InputCut => {
                    if !out.is_empty() {
                        bytes = out;
                        content = Content::Plain;
                    }
                    // Everything that arrived was decoded; only a gap leaves a hole in it.
                    truncated = gapped;
                }
                DecodeEnd::Error => flags.insert(Flag::DecodeError),
            }
        }
        // `body_truncated` means "shorter than what arrived" (README): a message cut by the
        // end of the connection is `incomplete`, and its body is truncated only if bytes that
        // did arrive are missing from it (cap, gap, decode bound).
        if gapped {
            truncated = true;
        }
        if self.cfg.max_body_bytes == 0 || (bytes.is_empty() && msg.body_len == 0) {
            msg.body = None;
            msg.body_truncated = msg.body_len > 0;
        } else {
            let why = if bound_hit {
                Some(Cut::DecodeBound)
            } else if gapped {
                Some(Cut::Gap)
            } else if cut {
                Some(Cut::Incomplete)
            } else if truncated {
                Some(Cut::Cap)
            } else {
                None
            };
            msg.body = Some(CapturedBody {
                bytes,
                content,
                cut: why,
            });
            msg.body_truncated = truncated;
        }
        if msg.body_truncated {
            flags.insert(Flag::BodyTruncated);
        }
        (msg, flags)
    }

    pub(super) fn emit(
        &mut self,
        c: &mut Conn,
        req: Option<MsgBuild>,
        resp: Option<MsgBuild>,
        interim: Vec<Message>,
        mut flags: FlagSet,
    ) {
        let (req_times, resp_times) = (
            req.as_ref().map(|m| (m.start_ts, m.end_ts)),
            resp.as_ref().map(|m| (m.start_ts, m.end_ts)),
        );
        let timing = Timing {
            request_start_ns: req_times.map(|t| t.0),
            request_end_ns: req_times.map(|t| t.1),
            response_start_ns: resp_times.map(|t| t.0),
            response_end_ns: resp_times.map(|t| t.1),
        };
        let ts_ns = req_times.or(resp_times).map_or(c.meta.first_ts_ns, |t| t.0);
        let request = req.map(|m| {
            let (msg, f) = self.finish_message(m);
            flags.merge(f);
            msg
        });
        let response = resp.map(|m| {
            let (msg, f) = self.finish_message(m);
            flags.merge(f);
            msg
        });
        if request.is_none() {
            flags.insert(Flag::NoRequest);
        }
        if response.is_none() {
            flags.insert(Flag::NoResponse);
        }
        if request
            .iter()
            .chain(response.iter())
            .any(|m| m.gap_bytes > 0)
        {
            flags.insert(Flag::Gap);
        }
        if c.midstream_unsynced {
            if request.is_some() && response.is_some() && !flags.contains(Flag::Gap) {
                c.midstream_unsynced = false;
            } else {
                flags.insert(Flag::Midstream);
            }
        }
        let outcome = match (&request, &response) {
            (Some(_), Some(_)) => Outcome::Complete,
            (Some(_), None) => Outcome::NoResponse,
            _ => Outcome::NoRequest,
        };
        self.stats.exchanges[outcome as usize] += 1;
        for f in flags.iter() {
            self.stats.flags[f as usize] += 1;
        }
        let index = c.next_index;
        c.next_index += 1;
        let meta = &c.meta;
        self.out.push(Exchange {
            ts_ns,
            id: exchange_id(meta.stable_id, index),
            vni: meta.vni,
            tunnel: match meta.tunnel {
                vxtap_wire::TunnelKind::None => None,
                t => Some(t.as_str()),
            },
            mirror_source: meta.mirror_source,
            client: Peer {
                ip: meta.client.ip,
                port: meta.client.port,
            },
            server: Peer {
                ip: meta.server.ip,
                port: meta.server.port,
            },
            request,
            response,
            interim,
            timing,
            flags,
            stream_id: None,
            rst_error: None,
            grpc: None,
        });
    }
}

/// Stable exchange id: a 64-bit mix (splitmix64 finaliser) of the connection's stable id and
/// the exchange index, so that the same exchange seen twice gets the same id.
pub fn exchange_id(stable_id: u64, index: u64) -> u64 {
    let mut z = stable_id ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
