//! Test driver: one connection fed through the StreamHandler methods with a fake ConnMeta.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use vxtap_flow::{CloseReason, ConnMeta, Direction, Endpoint, GapReason, StreamHandler, Verdict};
use vxtap_http::{Conn, Exchange, HttpConfig, HttpHandler};

pub const C2S: Direction = Direction::ClientToServer;
pub const S2C: Direction = Direction::ServerToClient;

pub fn meta(midstream: bool) -> ConnMeta {
    ConnMeta {
        conn_id: 7,
        stable_id: 0xdead_beef,
        client: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 40000,
        },
        server: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: 80,
        },
        vni: Some(42),
        tunnel: vxtap_wire::TunnelKind::Vxlan,
        mirror_source: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        midstream,
        first_ts_ns: 1_704_164_645_000_000_000,
    }
}

pub struct T {
    pub h: HttpHandler,
    pub conn: Option<Conn>,
    pub meta: ConnMeta,
    pub ts: u64,
    pub verdicts: Vec<Verdict>,
}

impl T {
    pub fn new(cfg: HttpConfig) -> T {
        Self::with_meta(cfg, meta(false))
    }

    pub fn midstream(cfg: HttpConfig) -> T {
        Self::with_meta(cfg, meta(true))
    }

    pub fn with_meta(cfg: HttpConfig, m: ConnMeta) -> T {
        let mut h = HttpHandler::new(cfg);
        let conn = h.on_open(&m);
        T {
            h,
            conn: Some(conn),
            meta: m,
            ts: m.first_ts_ns,
            verdicts: Vec::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.ts += 1_000_000;
        self.ts
    }

    pub fn data(&mut self, dir: Direction, d: &[u8]) -> Verdict {
        let ts = self.tick();
        let v = self
            .h
            .on_data(self.conn.as_mut().unwrap(), &self.meta, dir, ts, d);
        if v == Verdict::SwapRoles {
            std::mem::swap(&mut self.meta.client, &mut self.meta.server);
        }
        self.verdicts.push(v);
        v
    }

    /// Feeds at a fixed timestamp (so that different splits give identical timings).
    pub fn data_at(&mut self, dir: Direction, ts: u64, d: &[u8]) -> Verdict {
        self.h
            .on_data(self.conn.as_mut().unwrap(), &self.meta, dir, ts, d)
    }

    pub fn c(&mut self, d: &[u8]) -> Verdict {
        self.data(C2S, d)
    }

    pub fn s(&mut self, d: &[u8]) -> Verdict {
        self.data(S2C, d)
    }

    /// The bytes fed next in `dir` acknowledge `acked` bytes of the other direction.
    pub fn ack(&mut self, dir: Direction, acked: Option<u64>) {
        self.h
            .on_ack(self.conn.as_mut().unwrap(), &self.meta, dir, acked);
    }

    /// Client bytes sent after the client had `acked` bytes of the server stream.
    pub fn ca(&mut self, acked: u64, d: &[u8]) -> Verdict {
        self.ack(C2S, Some(acked));
        self.c(d)
    }

    /// Server bytes sent after the server had `acked` bytes of the client stream.
    pub fn sa(&mut self, acked: u64, d: &[u8]) -> Verdict {
        self.ack(S2C, Some(acked));
        self.s(d)
    }

    pub fn gap(&mut self, dir: Direction, len: u64, reason: GapReason) -> Verdict {
        let ts = self.tick();
        self.h.on_gap(
            self.conn.as_mut().unwrap(),
            &self.meta,
            dir,
            ts,
            len,
            reason,
        )
    }

    pub fn fin(&mut self, dir: Direction) {
        let ts = self.tick();
        self.h
            .on_fin(self.conn.as_mut().unwrap(), &self.meta, dir, ts);
    }

    pub fn close(&mut self, reason: CloseReason) -> Vec<Exchange> {
        let ts = self.tick();
        if let Some(c) = self.conn.take() {
            self.h.on_close(c, &self.meta, ts, reason);
        }
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<Exchange> {
        let mut v = Vec::new();
        self.h.drain_into(&mut v);
        v
    }

    pub fn conn(&self) -> &Conn {
        self.conn.as_ref().unwrap()
    }
}

pub fn flags(e: &Exchange) -> Vec<&'static str> {
    e.flags.labels()
}

/// The captured body as text (lossily: the tests' bodies are text unless they say otherwise).
pub fn body(m: &vxtap_http::Message) -> String {
    let bytes = m.body.as_ref().map_or(&[][..], |b| &b.bytes[..]);
    String::from_utf8_lossy(bytes).into_owned()
}
