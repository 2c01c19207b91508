//! Message framing from header fields (RFC 9112 section 6), and start-line plausibility checks
//! used to resynchronise a stream after a gap or a parse error.

use crate::decode::{trim, Coding};
use crate::exchange::Content;
use crate::stats::ParseError;

/// What the header fields say about framing and connection handling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeadInfo {
    /// Content-Length (all values agreed).
    pub content_length: Option<u64>,
    /// A Content-Length field was present (valid or not).
    pub cl_present: bool,
    /// A Transfer-Encoding field was present.
    pub te_present: bool,
    /// The final transfer coding is chunked (and chunked appears once).
    pub te_chunked: bool,
    /// Something about the framing fields is ambiguous or obfuscated.
    pub suspect: bool,
    /// Framing the strict recipient rejects outright.
    pub error: Option<ParseError>,
    /// Content-Encoding we can decode.
    pub coding: Option<Coding>,
    /// What Content-Encoding says of the body bytes as sent.
    pub content: Content,
    /// An Upgrade field is present.
    pub upgrade: bool,
}

const KNOWN_CODINGS: [&[u8]; 9] = [
    b"chunked",
    b"gzip",
    b"x-gzip",
    b"deflate",
    b"compress",
    b"x-compress",
    b"identity",
    b"br",
    b"zstd",
];

/// What one coding token says of the bytes: none (`identity`, empty), one we can undo, or
/// one we cannot.
fn coding_of(tok: &[u8]) -> Content {
    let tok = trim(tok);
    if tok.is_empty() || tok.eq_ignore_ascii_case(b"identity") {
        Content::Plain
    } else {
        Coding::from_header(tok).map_or(Content::Opaque, Content::Encoded)
    }
}

/// Two codings applied in turn: nothing here undoes two layers, and undoing only one would
/// be wrong, so stacked codings make the body opaque.
fn stack(a: Content, b: Content) -> Content {
    match (a, b) {
        (Content::Plain, c) | (c, Content::Plain) => c,
        _ => Content::Opaque,
    }
}

/// Reads framing-relevant fields; `is_request` selects the request rules for a bad TE.
pub(crate) fn analyze(headers: &[httparse::Header<'_>], is_request: bool) -> HeadInfo {
    let mut info = HeadInfo::default();
    let mut te_tokens = 0u32;
    let mut chunked_count = 0u32;
    let mut last_chunked = false;
    // What the codings named by each field say of the body bytes (see `stack`).
    let mut ce = Content::Plain;
    let mut te = Content::Plain;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            info.cl_present = true;
            for part in h.value.split(|b| *b == b',') {
                let part = trim(part);
                match parse_decimal(part) {
                    Some(n) => match info.content_length {
                        Some(prev) if prev != n => {
                            info.error
                                .get_or_insert(ParseError::ConflictingContentLength);
                            info.suspect = true;
                        }
                        _ => info.content_length = Some(n),
                    },
                    None => {
                        info.error.get_or_insert(ParseError::BadContentLength);
                        info.suspect = true;
                    }
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            info.te_present = true;
            for part in h.value.split(|b| *b == b',') {
                let tok = trim(part);
                if tok.is_empty() {
                    continue;
                }
                // Coding parameters (";q=...") are not allowed on transfer codings we know.
                te_tokens += 1;
                let is_chunked = tok.eq_ignore_ascii_case(b"chunked");
                if is_chunked {
                    chunked_count += 1;
                } else if !KNOWN_CODINGS.iter().any(|k| tok.eq_ignore_ascii_case(k)) {
                    info.suspect = true;
                }
                // `Transfer-Encoding: gzip, chunked` leaves gzip bytes once the chunking is
                // undone: the body is coded as surely as with Content-Encoding.
                if !is_chunked {
                    te = stack(te, coding_of(tok));
                }
                last_chunked = is_chunked;
            }
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            for part in h.value.split(|b| *b == b',') {
                ce = stack(ce, coding_of(part));
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            info.upgrade = true;
        }
    }
    info.content = stack(ce, te);
    info.coding = match info.content {
        Content::Encoded(c) => Some(c),
        _ => None,
    };
    if info.te_present {
        info.te_chunked = last_chunked && chunked_count == 1;
        if chunked_count > 1 || (chunked_count == 1 && !last_chunked) || te_tokens == 0 {
            info.suspect = true;
        }
        if info.cl_present {
            // RFC 9112 6.1: TE overrides CL, but the pair is the classic smuggling vector.
            info.suspect = true;
            if info.te_chunked {
                info.error = None;
            }
        }
        if is_request && !info.te_chunked {
            info.suspect = true;
            info.error = Some(ParseError::BadTransferEncoding);
        }
    }
    info
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Finds the end of a head (just past the empty line), scanning LFs at or after `from`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.min(buf.len());
    for p in memchr::memchr_iter(b'\n', &buf[from..]) {
        let p = p + from;
        if p >= 1 && buf[p - 1] == b'\n' {
            return Some(p + 1);
        }
        if p >= 2 && buf[p - 1] == b'\r' && buf[p - 2] == b'\n' {
            return Some(p + 1);
        }
    }
    None
}

/// True when some line of the head ends with LF alone.
pub(crate) fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|p| p == 0 || head[p - 1] != b'\r')
}

/// What a candidate line looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// `METHOD SP target SP HTTP/1.x` line end.
    Request,
    /// `HTTP/1.x SP NNN`.
    Response,
    /// Neither.
    No,
    /// Not enough bytes to tell.
    More,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

const VERSION_PREFIX: &[u8] = b"HTTP/1.";

/// Classifies bytes that start at a line start; `max_line` bounds how far a request line may go.
pub(crate) fn classify(b: &[u8], max_line: usize) -> Class {
    let n = b.len().min(VERSION_PREFIX.len());
    if b[..n] == VERSION_PREFIX[..n] {
        if b.len() < 13 {
            return Class::More;
        }
        let ok = b[7].is_ascii_digit()
            && b[8] == b' '
            && b[9..12].iter().all(u8::is_ascii_digit)
            && matches!(b[12], b' ' | b'\r' | b'\n');
        return if ok { Class::Response } else { Class::No };
    }
    classify_request(b, max_line)
}

fn classify_request(b: &[u8], max_line: usize) -> Class {
    let lim = b.len().min(max_line);
    let mut i = 0;
    while i < lim && is_tchar(b[i]) {
        i += 1;
        if i > 32 {
            return Class::No;
        }
    }
    if i == lim {
        return if lim == b.len() {
            Class::More
        } else {
            Class::No
        };
    }
    if i == 0 || b[i] != b' ' {
        return Class::No;
    }
    i += 1;
    let t0 = i;
    match memchr::memchr(b' ', &b[i..lim]) {
        Some(p) => {
            if p == 0 || b[i..i + p].iter().any(|c| *c < 0x21 || *c == 0x7f) {
                return Class::No;
            }
            i += p + 1;
        }
        None => {
            if b[t0..lim].iter().any(|c| *c < 0x21 || *c == 0x7f) {
                return Class::No;
            }
            return if lim == b.len() {
                Class::More
            } else {
                Class::No
            };
        }
    }
    let tail = &b[i..];
    let want: &[u8] = b"HTTP/1.";
    let k = tail.len().min(want.len());
    if tail[..k] != want[..k] {
        return Class::No;
    }
    if tail.len() < 8 {
        return Class::More;
    }
    if !tail[7].is_ascii_digit() {
        return Class::No;
    }
    match tail.get(8) {
        None => Class::More,
        Some(b'\n') => Class::Request,
        Some(b'\r') => match tail.get(9) {
            None => Class::More,
            Some(b'\n') => Class::Request,
            Some(_) => Class::No,
        },
        Some(_) => Class::No,
    }
}

/// Result of looking for a start line anywhere in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A complete plausible start line begins at this offset.
    Found(usize, Class),
    /// A start line may begin at this offset but its end has not arrived.
    Partial(usize),
    /// Nothing plausible.
    Nothing,
}

/// Methods a resync accepts. After a gap the bytes right behind it may be the tail of a request
/// line whose start was lost ("ET /x HTTP/1.1"), which must not pass for a request; a custom
/// method is therefore only recognised when the stream is in sync.
const KNOWN_METHODS: [&[u8]; 27] = [
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"PURGE",
    b"MKCALENDAR",
    b"ACL",
    b"BIND",
    b"M-SEARCH",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"BAN",
];

/// Finds the earliest plausible request line (`requests`) or status line (`responses`) in
/// `buf`. Messages follow bodies without a line break, so any offset may start one: the scan is
/// anchored on the version string (memmem) and walks back to the method.
pub(crate) fn find_start_line(
    buf: &[u8],
    requests: bool,
    responses: bool,
    max_line: usize,
) -> Scan {
    let mut best: Option<(usize, Class)> = None;
    let mut partial: Option<usize> = None;
    if responses {
        for s in memchr::memmem::find_iter(buf, VERSION_PREFIX) {
            match classify(&buf[s..], max_line) {
                Class::Response => {
                    best = Some((s, Class::Response));
                    break;
                }
                Class::More => {
                    partial = Some(s);
                    break;
                }
                _ => {}
            }
        }
    }
    if requests {
        for sp2 in memchr::memmem::find_iter(buf, b" HTTP/1.") {
            if best.is_some_and(|(b, _)| b < sp2) {
                break;
            }
            let Some(m) = request_line_start(buf, sp2, max_line) else {
                continue;
            };
            match classify(&buf[m..], max_line) {
                Class::Request => {
                    if best.is_none_or(|(b, _)| m < b) {
                        best = Some((m, Class::Request));
                    }
                    break;
                }
                Class::More => {
                    partial = Some(partial.map_or(m, |p| p.min(m)));
                    break;
                }
                _ => {}
            }
        }
    }
    match (best, partial) {
        (Some((b, _)), Some(p)) if p < b => Scan::Partial(p),
        (Some((b, k)), _) => Scan::Found(b, k),
        (None, Some(p)) => Scan::Partial(p),
        (None, None) => Scan::Nothing,
    }
}

/// A request line that does not parse, read as far as it can be (see [`loose_request_line`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LooseLine<'a> {
    /// The line as sent, without its line end.
    pub raw: &'a [u8],
    /// The leading token, when there is one.
    pub method: Option<&'a [u8]>,
    /// The method is followed by a space: a server splits the line the same way, so its
    /// meaning for framing (HEAD, CONNECT) holds.
    pub method_delimited: bool,
    /// What stands where the target would.
    pub target: Option<&'a [u8]>,
    /// The line ends in `HTTP/1.0`.
    pub http10: bool,
}

/// Reads a request start line that the strict parser refused (`OPTIONS HTTP/1.1`,
/// `GET/HTTP/1.1`, `GET / HTTP/1.`, bytes outside the token set in the method), best effort:
/// the raw line, the leading token as the method, the word after it (or what follows a token
/// glued to a `/`) as the target. `None` when the line cannot be a request line at all (empty,
/// longer than `max_line`, or holding control bytes), in which case the stream must be
/// resynchronised rather than trusted.
pub(crate) fn loose_request_line(head: &[u8], max_line: usize) -> Option<LooseLine<'_>> {
    let end = memchr::memchr(b'\n', head)?;
    let mut raw = &head[..end];
    if let Some(r) = raw.strip_suffix(b"\r") {
        raw = r;
    }
    // The HTTP/2 connection preface ("PRI * HTTP/2.0", then "SM") is no HTTP/1 request: the
    // binary frames behind it are skipped by the resync as before.
    if raw.is_empty()
        || raw == b"PRI * HTTP/2.0"
        || raw.len() > max_line
        || raw.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return None;
    }
    // A trailing version (complete or not) is not part of the target.
    let (mut rest, http10) = match memchr::memmem::rfind(raw, b"HTTP/") {
        Some(v)
            if raw[v + 5..]
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b'.') =>
        {
            (&raw[..v], &raw[v + 5..] == b"1.0")
        }
        _ => (raw, false),
    };
    while let Some(r) = rest.strip_suffix(b" ") {
        rest = r;
    }
    let word_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let first = &rest[..word_end];
    let after = rest[word_end..].trim_ascii_start();
    let tok = first.iter().take_while(|b| is_tchar(**b)).count();
    let method = (tok > 0).then(|| &first[..tok]);
    let method_delimited = tok > 0 && tok == first.len() && raw.get(tok) == Some(&b' ');
    let target = if tok == first.len() {
        first_word(after)
    } else if tok > 0 {
        // "GET/ HTTP/1.1", "GET/x": the token ends at the target.
        Some(&first[tok..])
    } else {
        // No token at all: the method is unreadable, the next word may still be a target.
        first_word(after)
    };
    Some(LooseLine {
        raw,
        method,
        method_delimited,
        target,
        http10,
    })
}

fn first_word(b: &[u8]) -> Option<&[u8]> {
    let w = &b[..memchr::memchr(b' ', b).unwrap_or(b.len())];
    (!w.is_empty()).then_some(w)
}

/// Walks back from the SP before `HTTP/1.` over the target and the method.
fn request_line_start(buf: &[u8], sp2: usize, max_line: usize) -> Option<usize> {
    let floor = sp2.saturating_sub(max_line);
    let mut t = sp2;
    while t > floor && buf[t - 1] > 0x20 && buf[t - 1] != 0x7f {
        t -= 1;
    }
    if t == sp2 || t == 0 || buf[t - 1] != b' ' {
        return None;
    }
    let sp1 = t - 1;
    let mut m = sp1;
    while m > 0 && sp1 - m < 32 && is_tchar(buf[m - 1]) {
        m -= 1;
    }
    if m == sp1 {
        return None;
    }
    let token = &buf[m..sp1];
    // The exact method, or a known method glued to the end of a body ("...okGET").
    KNOWN_METHODS
        .iter()
        .filter(|k| token.ends_with(k))
        .max_by_key(|k| k.len())
        .map(|k| sp1 - k.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs<'a>(list: &[(&'a str, &'a [u8])]) -> Vec<httparse::Header<'a>> {
        list.iter()
            .map(|(n, v)| httparse::Header { name: n, value: v })
            .collect()
    }

    #[test]
    fn framing_rules() {
        let i = analyze(&hdrs(&[("Content-Length", b"12")]), true);
        assert_eq!(i.content_length, Some(12));
        assert!(!i.suspect && i.error.is_none());
        let i = analyze(&hdrs(&[("content-length", b"5, 5")]), true);
        assert_eq!((i.content_length, i.error), (Some(5), None));
        let i = analyze(
            &hdrs(&[("Content-Length", b"5"), ("Content-Length", b"6")]),
            true,
        );
        assert_eq!(i.error, Some(ParseError::ConflictingContentLength));
        let i = analyze(&hdrs(&[("Content-Length", b"+5")]), true);
        assert_eq!(i.error, Some(ParseError::BadContentLength));
        let i = analyze(
            &hdrs(&[("Transfer-Encoding", b"chunked"), ("Content-Length", b"5")]),
            true,
        );
        assert!(i.te_chunked && i.suspect && i.error.is_none());
        let i = analyze(&hdrs(&[("Transfer-Encoding", b"gzip, chunked")]), false);
        assert_eq!(i.content, Content::Encoded(Coding::Gzip));
        assert_eq!(i.coding, Some(Coding::Gzip));
        let i = analyze(
            &hdrs(&[
                ("Transfer-Encoding", b"gzip, chunked"),
                ("Content-Encoding", b"br"),
            ]),
            false,
        );
        assert_eq!(i.content, Content::Opaque);
        assert_eq!(i.coding, None);
        let i = analyze(&hdrs(&[("Content-Encoding", b"gzip, br")]), false);
        assert_eq!(i.content, Content::Opaque);
        let i = analyze(
            &hdrs(&[
                ("Content-Encoding", b"identity"),
                ("Content-Encoding", b"zstd"),
            ]),
            false,
        );
        assert_eq!(i.content, Content::Encoded(Coding::Zstd));
        let i = analyze(&hdrs(&[("Content-Encoding", b"compress")]), false);
        assert_eq!(i.content, Content::Opaque);
        let i = analyze(&hdrs(&[("Transfer-Encoding", b"chunked, identity")]), true);
        assert_eq!(i.error, Some(ParseError::BadTransferEncoding));
        let i = analyze(&hdrs(&[("Transfer-Encoding", b"xchunked")]), true);
        assert!(i.suspect && i.error.is_some());
        let i = analyze(&hdrs(&[("Transfer-Encoding", b"gzip, chunked")]), true);
        assert!(i.te_chunked && !i.suspect);
        let i = analyze(&hdrs(&[("Transfer-Encoding", b"gzip")]), false);
        assert!(!i.te_chunked && i.error.is_none());
        let i = analyze(&hdrs(&[("Transfer-Encoding", b"chunked\x0b")]), false);
        assert!(i.suspect);
    }

    #[test]
    fn head_end_and_bare_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nX", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nX", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert!(has_bare_lf(b"GET / HTTP/1.1\nA: b\r\n\r\n"));
        assert!(!has_bare_lf(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"));
    }

    #[test]
    fn find_start_lines_anywhere() {
        let f = |b: &[u8]| find_start_line(b, true, true, 8192);
        assert_eq!(
            f(b"tail of bodyHTTP/1.1 200 OK\r\n"),
            Scan::Found(12, Class::Response)
        );
        assert_eq!(f(b"{}GET /x HTTP/1.1\r\n"), Scan::Found(2, Class::Request));
        assert_eq!(f(b"okGET /x HTTP/1.1\r\n"), Scan::Found(2, Class::Request));
        assert_eq!(
            f(b"\nPROPPATCH /x HTTP/1.1\r\n"),
            Scan::Found(1, Class::Request)
        );
        assert_eq!(f(b"zz GET /x HTTP/1."), Scan::Partial(3));
        assert_eq!(f(b"no start line here HTTP/2 x"), Scan::Nothing);
        assert_eq!(
            find_start_line(b"GET / HTTP/1.1\r\nHTTP/1.1 200 OK\r\n", false, true, 8192),
            Scan::Found(16, Class::Response)
        );
    }

    #[test]
    fn classify_lines() {
        assert_eq!(classify(b"GET /x HTTP/1.1\r\n", 8192), Class::Request);
        assert_eq!(classify(b"M-SEARCH * HTTP/1.1\n", 8192), Class::Request);
        assert_eq!(classify(b"GET /x HTTP/1.", 8192), Class::More);
        assert_eq!(classify(b"GET", 8192), Class::More);
        assert_eq!(classify(b"GET /x HTTP/2.0\r\n", 8192), Class::No);
        assert_eq!(classify(b"hello world\r\n", 8192), Class::No);
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n", 8192), Class::Response);
        assert_eq!(classify(b"HTTP/1.1 20", 8192), Class::More);
        assert_eq!(classify(b"HTTP/1.1 2x0 OK", 8192), Class::No);
        assert_eq!(classify(b"{\"a\": 1}", 8192), Class::No);
        assert_eq!(classify(b"GET /aaaaaaaaaaaaaaaa", 10), Class::No);
    }
}
