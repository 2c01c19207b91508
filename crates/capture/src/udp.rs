//! The UDP listener (`vxtap listen`) and sender (`vxtap send`): batched `recvmmsg`/`sendmmsg`.
//!
//! All buffers live in a [`RecvBatch`] made once per receive thread; a receive call only fills
//! them. The `mmsghdr`/`iovec` arrays are rebuilt on the stack for each call (a few hundred
//! stores, nothing next to a syscall) so that `RecvBatch` holds no raw pointers and stays
//! `Send` without an `unsafe impl`.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::CaptureError;

/// Most datagrams moved per `recvmmsg`/`sendmmsg` call (bounds the per-call stack arrays).
pub const MAX_BATCH: usize = 256;
/// Default receive buffer per datagram: AWS mirrors frames of up to 8500 bytes, a 9001-byte
/// jumbo MTU is common, and VXLAN adds 50 bytes; 9216 leaves room for all of it.
pub const DATAGRAM_BUF: usize = 9216;
/// The sysctl that caps `SO_RCVBUF` for unprivileged processes.
pub const RMEM_SYSCTL: &str = "net.core.rmem_max";

/// Room for a `sockaddr_storage`.
const NAME_LEN: usize = 128;
/// Room for SCM_TIMESTAMPNS (16 + 16) and SO_RXQ_OVFL (16 + 4, aligned 24) with slack.
const CTRL_LEN: usize = 128;

fn sock_err(op: &'static str) -> impl FnOnce(io::Error) -> CaptureError {
    move |source| CaptureError::Socket { op, source }
}

/// How to open a receiving socket.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    /// Address and port to bind (IPv4 or IPv6; port 0 picks an ephemeral one).
    pub bind: SocketAddr,
    /// Requested kernel receive buffer in bytes.
    pub recv_buffer: usize,
    /// Longest a receive call blocks, so the thread can check its stop flag and report liveness.
    pub read_timeout: Duration,
    /// Set SO_REUSEPORT so several threads can each bind a socket to the same port.
    pub reuse_port: bool,
    /// Ask the kernel for receive timestamps (SO_TIMESTAMPNS) instead of reading the clock.
    pub kernel_timestamps: bool,
}

impl UdpConfig {
    /// Defaults for `bind`: 256 MiB buffer, 100 ms timeout, SO_REUSEPORT, kernel timestamps.
    pub fn new(bind: SocketAddr) -> Self {
        UdpConfig {
            bind,
            recv_buffer: 256 << 20,
            read_timeout: Duration::from_millis(100),
            reuse_port: true,
            kernel_timestamps: true,
        }
    }
}

/// The receive buffer asked for and what the kernel granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvBufferInfo {
    /// Bytes requested.
    pub requested: usize,
    /// Bytes the kernel reports (it doubles the request for bookkeeping overhead).
    pub effective: usize,
    /// SO_RCVBUFFORCE succeeded (CAP_NET_ADMIN), bypassing `net.core.rmem_max`.
    pub forced: bool,
}

impl RecvBufferInfo {
    /// True when the kernel granted less than requested (raise `net.core.rmem_max`).
    pub fn is_capped(&self) -> bool {
        self.effective < self.requested
    }

    /// A warning naming the sysctl to raise, when the buffer was capped.
    pub fn warning(&self) -> Option<String> {
        self.is_capped().then(|| {
            format!(
                "UDP receive buffer is {} bytes, not the {} requested; raise it with \
                 `sysctl -w {RMEM_SYSCTL}={}` or run with CAP_NET_ADMIN",
                self.effective, self.requested, self.requested
            )
        })
    }
}

/// Counters of one receiving socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvStats {
    /// Datagrams received.
    pub datagrams: u64,
    /// Bytes received (full datagram lengths).
    pub bytes: u64,
    /// Datagrams larger than the batch's buffers (their tails were lost).
    pub truncated: u64,
    /// Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).
    pub kernel_drops: u64,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    len: usize,
    truncated: bool,
    ts_ns: u64,
    source: SocketAddr,
}

const NO_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Preallocated buffers for one batch of received datagrams.
pub struct RecvBatch {
    data: Vec<u8>,
    size: usize,
    names: Vec<u8>,
    ctrl: Vec<u8>,
    meta: Vec<Meta>,
    filled: usize,
}

/// One received datagram, borrowed from its [`RecvBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Sender's address.
    pub source: SocketAddr,
    /// The received bytes (all of them unless `truncated`).
    pub data: &'a [u8],
    /// The datagram's full length, larger than `data.len()` when truncated.
    pub len: usize,
    /// The datagram did not fit the buffer.
    pub truncated: bool,
    /// Receive time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
}

impl RecvBatch {
    /// Allocates `count` buffers (at most [`MAX_BATCH`]) of `buf_size` bytes each.
    pub fn new(count: usize, buf_size: usize) -> Self {
        let count = count.clamp(1, MAX_BATCH);
        let buf_size = buf_size.max(1);
        let meta = Meta {
            len: 0,
            truncated: false,
            ts_ns: 0,
            source: NO_ADDR,
        };
        RecvBatch {
            data: vec![0; count * buf_size],
            size: buf_size,
            names: vec![0; count * NAME_LEN],
            ctrl: vec![0; count * CTRL_LEN],
            meta: vec![meta; count],
            filled: 0,
        }
    }

    /// Number of buffers.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// Datagrams held from the last receive call.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// True when the last receive call got nothing.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The `i`th datagram of the last receive call.
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.filled {
            return None;
        }
        let m = self.meta.get(i)?;
        let start = i * self.size;
        let data = self.data.get(start..start + m.len.min(self.size))?;
        Some(Datagram {
            source: m.source,
            data,
            len: m.len,
            truncated: m.truncated,
            ts_ns: m.ts_ns,
        })
    }

    /// The datagrams of the last receive call, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        (0..self.filled).filter_map(move |i| self.get(i))
    }
}

/// A UDP socket receiving in `recvmmsg` batches.
pub struct UdpReceiver {
    sock: Socket,
    buffer: RecvBufferInfo,
    kernel_ts: bool,
    stats: RecvStats,
    /// Last drop-counter value seen: the kernel's counter is a wrapping u32.
    last_ovfl: u32,
}

fn setsockopt_int(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` outlives the call and its exact size is passed; the fd is open (owned by
    // `sock`), and a bad option only makes the kernel return an error.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[inline]
fn ne_usize(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from_ne_bytes(
        b.get(at..at + size_of::<usize>())?.try_into().ok()?,
    ))
}

#[inline]
fn ne_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[inline]
fn ne_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes a `sockaddr_in`/`sockaddr_in6` the kernel wrote into `b`.
fn parse_sockaddr(b: &[u8]) -> SocketAddr {
    let family = b
        .get(0..2)
        .map(|f| u16::from_ne_bytes([f[0], f[1]]) as libc::c_int);
    let port = b
        .get(2..4)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .unwrap_or(0);
    match family {
        Some(libc::AF_INET) => match b.get(4..8) {
            Some(a) => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), port),
            None => NO_ADDR,
        },
        Some(libc::AF_INET6) => {
            let ip = b.get(8..24).and_then(|a| <[u8; 16]>::try_from(a).ok());
            let flow = b
                .get(4..8)
                .map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
            let scope = b
                .get(24..28)
                .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
            // A dual-stack [::] socket sees IPv4 senders as ::ffff:a.b.c.d; report them as
            // the IPv4 addresses they are so source allow-lists match either way.
            let Some(ip) = ip.map(Ipv6Addr::from) else {
                return NO_ADDR;
            };
            match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
                None => {
                    let (flow, scope) = (flow.unwrap_or(0), scope.unwrap_or(0));
                    SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope))
                }
            }
        }
        _ => NO_ADDR,
    }
}

/// Ancillary data of one datagram: (kernel timestamp, SO_RXQ_OVFL counter).
fn parse_cmsgs(c: &[u8]) -> (Option<u64>, Option<u32>) {
    let word = size_of::<usize>();
    let align = |n: usize| (n + word - 1) & !(word - 1);
    // cmsghdr is { size_t len; int level; int type; } followed by aligned data (kernel ABI).
    let hdr = align(word + 8);
    let (mut ts, mut ovfl) = (None, None);
    let mut off = 0;
    while let (Some(len), Some(level), Some(kind)) = (
        ne_usize(c, off),
        ne_i32(c, off + word),
        ne_i32(c, off + word + 4),
    ) {
        if len < hdr || off + len > c.len() {
            break;
        }
        let data = &c[off + hdr..off + len];
        if level == libc::SOL_SOCKET {
            if kind == libc::SCM_TIMESTAMPNS {
                if let (Some(s), Some(ns)) = (ne_i64(data, 0), ne_i64(data, 8)) {
                    ts = Some((s.max(0) as u64).saturating_mul(1_000_000_000) + ns.max(0) as u64);
                }
            } else if kind == libc::SO_RXQ_OVFL {
                ovfl = data
                    .get(..4)
                    .map(|v| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]));
            }
        }
        off += align(len);
    }
    (ts, ovfl)
}

impl UdpReceiver {
    /// Opens, configures and binds a socket as `cfg` says.
    pub fn bind(cfg: &UdpConfig) -> Result<Self, CaptureError> {
        let domain = Domain::for_address(cfg.bind);
        let sock =
            Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(sock_err("socket"))?;
        if cfg.reuse_port {
            sock.set_reuse_port(true)
                .map_err(sock_err("SO_REUSEPORT"))?;
        }
        // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; fall back quietly.
        let want = cfg.recv_buffer.min(i32::MAX as usize / 2) as libc::c_int;
        let forced = setsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want).is_ok();
        if !forced {
            sock.set_recv_buffer_size(want as usize)
                .map_err(sock_err("SO_RCVBUF"))?;
        }
        let effective = sock.recv_buffer_size().map_err(sock_err("SO_RCVBUF"))?;
        // Kernel drop counts ride on every datagram as SO_RXQ_OVFL ancillary data.
        setsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
            .map_err(sock_err("SO_RXQ_OVFL"))?;
        let kernel_ts = cfg.kernel_timestamps
            && setsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).is_ok();
        sock.set_read_timeout(Some(cfg.read_timeout.max(Duration::from_millis(1))))
            .map_err(sock_err("SO_RCVTIMEO"))?;
        sock.bind(&SockAddr::from(cfg.bind))
            .map_err(sock_err("bind"))?;
        Ok(UdpReceiver {
            sock,
            buffer: RecvBufferInfo {
                requested: cfg.recv_buffer,
                effective,
                forced,
            },
            kernel_ts,
            stats: RecvStats::default(),
            last_ovfl: 0,
        })
    }

    /// The bound address (with the actual port when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, CaptureError> {
        let a = self.sock.local_addr().map_err(sock_err("getsockname"))?;
        a.as_socket().ok_or(CaptureError::Socket {
            op: "getsockname",
            source: io::Error::other("not an IP address"),
        })
    }

    /// The receive buffer requested and granted.
    pub fn recv_buffer(&self) -> RecvBufferInfo {
        self.buffer
    }

    /// Whether timestamps come from the kernel (SO_TIMESTAMPNS) rather than the clock.
    pub fn kernel_timestamps(&self) -> bool {
        self.kernel_ts
    }

    /// Cumulative counters, including kernel drops as last reported by SO_RXQ_OVFL.
    pub fn stats(&self) -> RecvStats {
        self.stats
    }

    /// Datagrams the kernel dropped on this socket so far, as of the last datagram received
    /// (the kernel reports drops on the next datagram queued after them) or the last
    /// [`refresh_kernel_drops`](Self::refresh_kernel_drops).
    pub fn kernel_drops(&self) -> u64 {
        self.stats.kernel_drops
    }

    /// Folds in a reading of the kernel's wrapping u32 drop counter. SO_RXQ_OVFL values are
    /// stamped at enqueue time, so one can be older than a SO_MEMINFO reading: a value
    /// "behind" the last one is ignored rather than taken as a wrap.
    fn note_drops(&mut self, v: u32) {
        let diff = v.wrapping_sub(self.last_ovfl);
        if diff < 1 << 31 {
            self.stats.kernel_drops += u64::from(diff);
            self.last_ovfl = v;
        }
    }

    /// Reads the socket's drop counter now (SO_MEMINFO), for when no datagram has arrived
    /// since the drops to carry SO_RXQ_OVFL; returns the cumulative count.
    pub fn refresh_kernel_drops(&mut self) -> Result<u64, CaptureError> {
        // SK_MEMINFO_VARS is 9 today; room for growth keeps older kernels and newer ones happy.
        let mut info = [0u32; 16];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: `info` and `len` are live for the call and `len` is `info`'s size in bytes;
        // the kernel writes at most `len` bytes and updates `len`.
        let r = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(CaptureError::Socket {
                op: "SO_MEMINFO",
                source: io::Error::last_os_error(),
            });
        }
        let idx = libc::SK_MEMINFO_DROPS as usize;
        if (len as usize) >= (idx + 1) * 4 {
            self.note_drops(info[idx]);
        }
        Ok(self.stats.kernel_drops)
    }

    /// Fills `batch`; waits at most the read timeout for the first datagram, then takes what
    /// is queued. Returns the count (0 on timeout or signal).
    pub fn recv(&mut self, batch: &mut RecvBatch) -> Result<usize, CaptureError> {
        batch.filled = 0;
        let n = batch.capacity();
        // SAFETY: iovec and mmsghdr are plain C structs of integers and raw pointers, for
        // which all-zero bytes are a valid (empty) value.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let size = batch.size;
        let bufs = batch.data.chunks_exact_mut(size);
        for (v, buf) in iov.iter_mut().zip(bufs) {
            v.iov_base = buf.as_mut_ptr().cast();
            v.iov_len = buf.len();
        }
        let iov_ptr = iov.as_mut_ptr();
        let names = batch.names.chunks_exact_mut(NAME_LEN);
        let ctrls = batch.ctrl.chunks_exact_mut(CTRL_LEN);
        for (i, ((h, name), ctrl)) in hdrs.iter_mut().zip(names).zip(ctrls).enumerate() {
            h.msg_hdr.msg_name = name.as_mut_ptr().cast();
            h.msg_hdr.msg_namelen = NAME_LEN as libc::socklen_t;
            h.msg_hdr.msg_iov = iov_ptr.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ctrl.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = CTRL_LEN as _;
        }
        // MSG_TRUNC makes the kernel report each datagram's full length, so an oversize one is
        // detected and counted rather than silently cut; MSG_WAITFORONE blocks (up to
        // SO_RCVTIMEO) only for the first datagram.
        let flags = libc::MSG_WAITFORONE | libc::MSG_TRUNC;
        // SAFETY: the first `n` headers point at buffers of `batch` (data, names, control)
        // and at `iov`, all mutably borrowed and alive for the whole call, with their true
        // lengths; `n` <= MAX_BATCH = the arrays' length; a null timeout is allowed.
        let r = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as _,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(CaptureError::Socket {
                    op: "recvmmsg",
                    source: e,
                }),
            };
        }
        let got = (r as usize).min(n);
        let clock = if self.kernel_ts { 0 } else { now_ns() };
        for (i, h) in hdrs.iter().enumerate().take(got) {
            let len = h.msg_len as usize;
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > size;
            // size_t on glibc but socklen_t on musl, hence the cast.
            #[allow(clippy::unnecessary_cast)]
            let clen = (h.msg_hdr.msg_controllen as usize).min(CTRL_LEN);
            let nlen = (h.msg_hdr.msg_namelen as usize).min(NAME_LEN);
            let (ts, ovfl) = parse_cmsgs(&batch.ctrl[i * CTRL_LEN..i * CTRL_LEN + clen]);
            if let Some(v) = ovfl {
                self.note_drops(v);
            }
            let ts_ns = match ts {
                Some(t) => t,
                None if clock != 0 => clock,
                None => now_ns(),
            };
            self.stats.datagrams += 1;
            self.stats.bytes += len as u64;
            self.stats.truncated += u64::from(truncated);
            batch.meta[i] = Meta {
                len,
                truncated,
                ts_ns,
                source: parse_sockaddr(&batch.names[i * NAME_LEN..i * NAME_LEN + nlen]),
            };
        }
        batch.filled = got;
        Ok(got)
    }
}

/// Counters of a sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Bytes handed to the kernel.
    pub bytes: u64,
    /// Times the kernel pushed back (ENOBUFS, EAGAIN, a reported ICMP error) and we waited.
    pub backoffs: u64,
}

/// Sends datagrams to one destination in `sendmmsg` batches.
pub struct UdpSender {
    sock: Socket,
    dest: SocketAddr,
    stats: SendStats,
    /// Give up when the kernel accepts nothing for this long.
    stall_limit: Duration,
}

impl UdpSender {
    /// A socket of `dest`'s family, bound to an ephemeral port and connected to `dest`.
    pub fn connect(dest: SocketAddr) -> Result<Self, CaptureError> {
        let sock = Socket::new(Domain::for_address(dest), Type::DGRAM, Some(Protocol::UDP))
            .map_err(sock_err("socket"))?;
        // A deep send queue absorbs bursts; failure only means the default size.
        let _ = sock.set_send_buffer_size(8 << 20);
        sock.connect(&SockAddr::from(dest))
            .map_err(sock_err("connect"))?;
        Ok(UdpSender {
            sock,
            dest,
            stats: SendStats::default(),
            stall_limit: Duration::from_secs(5),
        })
    }

    /// The destination.
    pub fn dest(&self) -> SocketAddr {
        self.dest
    }

    /// The local (source) address.
    pub fn local_addr(&self) -> Result<SocketAddr, CaptureError> {
        let a = self.sock.local_addr().map_err(sock_err("getsockname"))?;
        a.as_socket().ok_or(CaptureError::Socket {
            op: "getsockname",
            source: io::Error::other("not an IP address"),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// Sends every datagram, in order; on kernel back-pressure waits (20 µs doubling to 1 ms)
    /// and resumes where the partial send stopped. Returns how many were sent.
    pub fn send_batch<B: AsRef<[u8]>>(&mut self, datagrams: &[B]) -> Result<usize, CaptureError> {
        let mut total = 0;
        for chunk in datagrams.chunks(MAX_BATCH) {
            total += self.send_chunk(chunk)?;
        }
        Ok(total)
    }

    /// Sends one datagram.
    pub fn send(&mut self, datagram: &[u8]) -> Result<(), CaptureError> {
        self.send_batch(&[datagram]).map(|_| ())
    }

    fn send_chunk<B: AsRef<[u8]>>(&mut self, chunk: &[B]) -> Result<usize, CaptureError> {
        // SAFETY: all-zero iovec/mmsghdr values are valid (integers and null pointers).
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for (v, d) in iov.iter_mut().zip(chunk) {
            let d = d.as_ref();
            // sendmmsg only reads through iov_base; the field is `*mut` for recvmmsg's sake.
            v.iov_base = d.as_ptr() as *mut libc::c_void;
            v.iov_len = d.len();
        }
        let iov_ptr = iov.as_mut_ptr();
        for (i, h) in hdrs.iter_mut().take(chunk.len()).enumerate() {
            h.msg_hdr.msg_iov = iov_ptr.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
        }
        let n = chunk.len().min(MAX_BATCH);
        let mut done = 0;
        let mut backoff = Duration::from_micros(20);
        let mut last_progress = Instant::now();
        while done < n {
            // SAFETY: headers done..n point at `iov` entries, which point at the caller's
            // datagrams, all borrowed for the duration of the call; the socket is connected so
            // msg_name is null; the count never exceeds the array.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    hdrs.as_mut_ptr().wrapping_add(done),
                    (n - done) as _,
                    0,
                )
            };
            if r > 0 {
                for d in &chunk[done..done + r as usize] {
                    self.stats.bytes += d.as_ref().len() as u64;
                }
                done += r as usize;
                self.stats.sent += r as u64;
                backoff = Duration::from_micros(20);
                last_progress = Instant::now();
                continue;
            }
            let e = if r == 0 {
                io::Error::from(io::ErrorKind::WouldBlock)
            } else {
                io::Error::last_os_error()
            };
            let transient = matches!(
                e.raw_os_error(),
                Some(libc::ENOBUFS)
                    | Some(libc::EAGAIN)
                    | Some(libc::EINTR)
                    | Some(libc::ECONNREFUSED)
            ) || e.kind() == io::ErrorKind::WouldBlock;
            if !transient || last_progress.elapsed() > self.stall_limit {
                return Err(CaptureError::Socket {
                    op: "sendmmsg",
                    source: e,
                });
            }
            // ECONNREFUSED reports an earlier datagram's ICMP error; this one was not sent.
            self.stats.backoffs += 1;
            if e.raw_os_error() != Some(libc::EINTR) {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(1));
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn handles_move_to_receive_threads() {
        fn send<T: Send>() {}
        send::<UdpReceiver>();
        send::<RecvBatch>();
        send::<UdpSender>();
        send::<crate::CaptureReader>();
    }

    #[test]
    fn cmsgs_are_decoded() {
        let word = size_of::<usize>();
        let mut c = Vec::new();
        // SCM_TIMESTAMPNS: 5 s + 7 ns.
        c.extend_from_slice(&(word + 8 + 16).to_ne_bytes());
        c.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c.extend_from_slice(&libc::SCM_TIMESTAMPNS.to_ne_bytes());
        c.extend_from_slice(&5i64.to_ne_bytes());
        c.extend_from_slice(&7i64.to_ne_bytes());
        // SO_RXQ_OVFL: 42, padded to the word size.
        c.extend_from_slice(&(word + 8 + 4).to_ne_bytes());
        c.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c.extend_from_slice(&libc::SO_RXQ_OVFL.to_ne_bytes());
        c.extend_from_slice(&42u32.to_ne_bytes());
        c.extend_from_slice(&[0; 4]);
        assert_eq!(parse_cmsgs(&c), (Some(5_000_000_007), Some(42)));
        assert_eq!(parse_cmsgs(&c[..10]), (None, None));
    }

    proptest! {
        #[test]
        fn ancillary_and_address_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_cmsgs(&b);
            let _ = parse_sockaddr(&b);
        }
    }
}
