//! Debug aid: feeds the output of `tshark -q -z follow,tcp,raw,N` (stdin) through the HTTP
//! handler and prints the typed exchanges (Debug form; the JSON form is the writers' job, in
//! vxtap-sink). Lines starting with a tab are the server's.
//!
//! `tshark -r F.pcap -q -z follow,tcp,raw,0 | cargo run -p vxtap-http --example follow [--decode]`

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};
use vxtap_flow::{CloseReason, ConnMeta, Direction, Endpoint, StreamHandler, Verdict};
use vxtap_http::{HttpConfig, HttpHandler};

fn main() {
    let decode = std::env::args().any(|a| a == "--decode");
    let midstream = std::env::args().any(|a| a == "--midstream");
    let mut h = HttpHandler::new(HttpConfig {
        decode_content: decode,
        ..HttpConfig::default()
    });
    let ep = |port| Endpoint {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
    };
    let mut meta = ConnMeta {
        conn_id: 0,
        stable_id: 1,
        client: ep(1),
        server: ep(2),
        vni: None,
        tunnel: vxtap_wire::TunnelKind::None,
        mirror_source: None,
        midstream,
        first_ts_ns: 0,
    };
    let mut conn = h.on_open(&meta);
    let mut ts = 0;
    let mut swapped = false;
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let (dir, hex) = match line.strip_prefix('\t') {
            Some(rest) => (Direction::ServerToClient, rest),
            None => (Direction::ClientToServer, line.as_str()),
        };
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() % 2 == 1 {
            continue;
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect();
        ts += 1_000;
        let dir = if swapped { dir.flip() } else { dir };
        // Behave like the reassembler: after SwapRoles, later callbacks carry swapped roles.
        if h.on_data(&mut conn, &meta, dir, ts, &bytes) == Verdict::SwapRoles {
            swapped = !swapped;
            std::mem::swap(&mut meta.client, &mut meta.server);
        }
    }
    h.on_close(conn, &meta, ts + 1, CloseReason::EndOfInput);
    let mut out = Vec::new();
    h.drain_into(&mut out);
    for e in &out {
        println!("{e:?}");
    }
    eprintln!("{:?}", h.stats());
}
