#!/usr/bin/env bash
# Regenerates the vxtap fixtures from REAL traffic (see pcaps/README.md).
#
#   sudo pcaps/make-fixtures.sh capture  # plain pcaps -> pcaps/plain/, pcaps/expected.tsv
#   sudo pcaps/make-fixtures.sh wrap     # plain -> AWS-style VXLAN -> pcaps/vxlan/
#   sudo pcaps/make-fixtures.sh          # both
#
# capture: creates two network namespaces joined by a veth pair (10.99.0.1 client,
# 10.99.0.2 server, fd00:99::1 / fd00:99::2), runs nginx and pcaps/tools/httpserver.py
# in the server namespace, curl and pcaps/tools/client.py in the client namespace, and
# records each case with tcpdump on the server's veth. Loss is made with iptables
# (statistic match) inside the namespaces, so the kernels' own retransmissions are in
# the captures. Nothing is sent to any address outside the two namespaces; the
# namespaces (and with them every iptables rule) are removed on exit.
#
# wrap: needs `vxtap encap` (${VXTAP:-target/release/vxtap}); exits non-zero without it.
#
# Runs as root on Debian bookworm; installs tcpdump, nginx, curl, iptables, ethtool.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PLAIN=$HERE/plain
VXDIR=$HERE/vxlan
TOOLS=$HERE/tools

CLI_NS=vxfx-cli-$$
NET_NS=vxfx-net-$$
SRV_NS=vxfx-srv-$$
CLI_IF=vxfc$$
NC_IF=vxfnc$$
NS_IF=vxfns$$
SRV_IF=vxfs$$
CLI_IP=10.99.0.1
SRV_IP=10.99.0.2
CLI_IP6=fd00:99::1
SRV_IP6=fd00:99::2
NGINX=http://$SRV_IP
PY=http://$SRV_IP:8000
WORK=
CAP_PID=
PY_PID=
STAGE=${1:-all}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make-fixtures: %s\n' "$*" >&2; exit 1; }

in_cli() { ip netns exec "$CLI_NS" "$@"; }
in_srv() { ip netns exec "$SRV_NS" "$@"; }
in_net() { ip netns exec "$NET_NS" "$@"; }

# curl in the client namespace: quiet, never through a proxy, bodies discarded.
ccurl() { in_cli curl -sS --noproxy '*' --max-time 20 "$@" >/dev/null; }

cleanup() {
    set +e
    if [ -n "$CAP_PID" ]; then kill -TERM "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null; fi
    if [ -n "$PY_PID" ]; then kill "$PY_PID" 2>/dev/null; wait "$PY_PID" 2>/dev/null; fi
    if [ -n "$WORK" ] && [ -s "$WORK/nginx.pid" ]; then
        kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
        sleep 0.3
    fi
    # Deleting a namespace removes its veth end and all its iptables rules.
    ip netns pids "$SRV_NS" 2>/dev/null | while read -r p; do kill "$p" 2>/dev/null; done
    ip netns pids "$CLI_NS" 2>/dev/null | while read -r p; do kill "$p" 2>/dev/null; done
    ip netns del "$CLI_NS" 2>/dev/null
    ip netns del "$NET_NS" 2>/dev/null
    ip netns del "$SRV_NS" 2>/dev/null
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}

install_tools() {
    local need=()
    command -v tcpdump >/dev/null || need+=(tcpdump)
    command -v nginx >/dev/null || need+=(nginx)
    command -v curl >/dev/null || need+=(curl)
    command -v iptables >/dev/null || need+=(iptables)
    command -v ethtool >/dev/null || need+=(ethtool)
    command -v ping >/dev/null || need+=(iputils-ping)
    command -v python3 >/dev/null || need+=(python3)
    if [ "${#need[@]}" -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq
        # Packages must not start their own services (nginx would bind port 80 outside
        # our namespaces); the script runs its servers itself.
        local policy=/usr/sbin/policy-rc.d ours=0 rc=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null || rc=$?
        if [ "$ours" = 1 ]; then rm -f "$policy"; fi
        [ "$rc" = 0 ] || die "apt-get install ${need[*]} failed"
    fi
}

setup_netns() {
    # client ns --veth-- net ns (a router: proxy ARP/NDP, forwarding) --veth-- server ns.
    # Client and server both believe they share 10.99.0.0/24 and fd00:99::/64; the
    # router in between is where "the network" loses packets (iptables FORWARD), out
    # of the senders' sight, so their kernels recover with real retransmissions.
    log "namespaces $CLI_NS / $NET_NS / $SRV_NS"
    ip netns add "$CLI_NS"
    ip netns add "$NET_NS"
    ip netns add "$SRV_NS"
    ip link add "$CLI_IF" type veth peer name "$NC_IF"
    ip link add "$SRV_IF" type veth peer name "$NS_IF"
    ip link set "$CLI_IF" netns "$CLI_NS"
    ip link set "$SRV_IF" netns "$SRV_NS"
    ip link set "$NC_IF" netns "$NET_NS"
    ip link set "$NS_IF" netns "$NET_NS"
    local ns ifc ip4 ip6
    for ns in "$CLI_NS" "$SRV_NS" "$NET_NS" "$NET_NS"; do
        case $ns in
            "$CLI_NS") ifc=$CLI_IF ip4=$CLI_IP ip6=$CLI_IP6 ;;
            "$SRV_NS") ifc=$SRV_IF ip4=$SRV_IP ip6=$SRV_IP6 ;;
            *) if [ "$ifc" = "$NC_IF" ]; then ifc=$NS_IF; else ifc=$NC_IF; fi; ip4='' ip6='' ;;
        esac
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.router_solicitations=0" || true
        ip netns exec "$ns" ip link set lo up
        if [ -n "$ip4" ]; then
            ip netns exec "$ns" ip addr add "$ip4/24" dev "$ifc"
            ip netns exec "$ns" ip -6 addr add "$ip6/64" dev "$ifc" nodad
        fi
        # No segmentation/receive offloads and software checksums: the capture holds
        # wire-sized segments with correct checksums, as a mirror session would.
        ip netns exec "$ns" ethtool -K "$ifc" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
        # Without offloads TCP still builds multi-segment (GSO) packets that are split
        # only at transmit. One segment per packet:
        ip netns exec "$ns" ip link set "$ifc" gso_max_segs 1
        ip netns exec "$ns" ip link set "$ifc" up
    done
    local r=(ip netns exec "$NET_NS")
    "${r[@]}" sysctl -qw net.ipv4.ip_forward=1
    "${r[@]}" sysctl -qw net.ipv6.conf.all.forwarding=1
    "${r[@]}" sysctl -qw net.ipv6.conf.all.proxy_ndp=1
    "${r[@]}" sysctl -qw "net.ipv4.conf.$NC_IF.proxy_arp=1"
    "${r[@]}" sysctl -qw "net.ipv4.conf.$NS_IF.proxy_arp=1"
    "${r[@]}" ip addr add 10.99.0.254/32 dev lo
    "${r[@]}" ip route add "$CLI_IP/32" dev "$NC_IF"
    "${r[@]}" ip route add "$SRV_IP/32" dev "$NS_IF"
    "${r[@]}" ip -6 route add "$CLI_IP6/128" dev "$NC_IF"
    "${r[@]}" ip -6 route add "$SRV_IP6/128" dev "$NS_IF"
    "${r[@]}" ip -6 neigh add proxy "$SRV_IP6" dev "$NC_IF"
    "${r[@]}" ip -6 neigh add proxy "$CLI_IP6" dev "$NS_IF"
    # Forwarding works before anything is captured (IPv6 waits for the router's
    # link-local addresses, needed for proxy NDP).
    local ok4=0 ok6=0
    for _ in $(seq 30); do
        [ "$ok4" = 1 ] || { in_cli ping -c 1 -W 1 "$SRV_IP" >/dev/null 2>&1 && ok4=1; }
        [ "$ok6" = 1 ] || { in_cli ping -6 -c 1 -W 1 "$SRV_IP6" >/dev/null 2>&1 && ok6=1; }
        [ "$ok4$ok6" = 11 ] && return 0
        sleep 0.2
    done
    die "no path client -> server (IPv4 ok=$ok4, IPv6 ok=$ok6)"
}

make_content() {
    log "content"
    mkdir -p "$WORK/www" "$WORK/body" "$WORK/nginx-tmp"
    python3 - "$WORK" <<'PY'
import hashlib, json, os, sys
work = sys.argv[1]
www = os.path.join(work, "www")
def text(n, tag):
    line = "%s line %%05d: the quick brown fox jumps over the lazy dog\n" % tag
    s = "".join(line % i for i in range(n // len(line % 0) + 2))
    return s[:n].encode()
def noise(n, seed):
    out, block = b"", seed.encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:n]
files = {
    "index.html": b"<!doctype html>\n<html><head><title>vxtap fixture</title>"
                  b"<link rel=stylesheet href=/style.css><script src=/app.js></script></head>\n"
                  b"<body><h1>vxtap fixture page</h1>\n" + text(600, "<p>index") + b"</body></html>\n",
    "style.css": text(2000, "/* css */ body{margin:0}"),
    "app.js": text(8000, "// js console.log"),
    "small.txt": b"hello vxtap\n",
    "medium.json": json.dumps({"items": [{"id": i, "name": "item-%d" % i, "ok": i % 3 == 0}
                                         for i in range(100)]}).encode() + b"\n",
    "text-20k.txt": text(20000, "text"),
    "large.bin": noise(40000, "vxtap-large"),
}
for name, data in files.items():
    with open(os.path.join(www, name), "wb") as f:
        f.write(data)
for name, n in (("upload-4k.bin", 4096), ("upload-40k.bin", 40000), ("upload-200k.bin", 204800)):
    with open(os.path.join(work, "body", name), "wb") as f:
        f.write(noise(n, name))
PY
    # Fixed mtimes: Last-Modified and ETag (and so the 304 cases) do not change run to run.
    touch -d '2024-01-02 03:04:05 UTC' "$WORK"/www/*
}

start_servers() {
    log "nginx and httpserver.py in $SRV_NS"
    cat >"$WORK/nginx.conf" <<NGX
worker_processes 1;
user root;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $WORK/nginx-access.log;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    sendfile on;
    server_tokens off;
    keepalive_timeout 30;
    gzip on;
    gzip_min_length 256;
    gzip_types text/plain text/css application/javascript application/json;
    gzip_vary on;
    server {
        listen $SRV_IP:80;
        listen [$SRV_IP6]:80;
        root $WORK/www;
        location = /empty { return 204; }
        # nginx answers HTTP/1.1 clients with chunked framing for this streamed,
        # length-less upstream response (httpserver.py /gen over loopback, not captured).
        location = /stream {
            proxy_pass http://127.0.0.1:8000/gen?size=30000;
            proxy_buffering off;
        }
    }
}
NGX
    in_srv nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf"
    # Started with ip netns exec directly (not through a function) so that $! is the
    # server's own pid.
    ip netns exec "$SRV_NS" python3 "$TOOLS/httpserver.py" 0.0.0.0 8000 &
    PY_PID=$!
    for _ in $(seq 50); do
        if in_srv curl -s --noproxy '*' -o /dev/null http://127.0.0.1:8000/echo &&
           in_srv curl -s --noproxy '*' -o /dev/null "http://$SRV_IP/small.txt"; then
            return 0
        fi
        sleep 0.1
    done
    die "servers did not start"
}

cap_start() {
    local name=$1
    log "capture $name"
    : >"$WORK/tcpdump.log"
    ip netns exec "$SRV_NS" tcpdump -Z root --immediate-mode -i "$SRV_IF" -s 0 -U -n -w "$WORK/$name.pcap" \
        2>"$WORK/tcpdump.log" &
    CAP_PID=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$WORK/tcpdump.log" && { sleep 0.2; return 0; }
        sleep 0.05
    done
    die "tcpdump did not start: $(cat "$WORK/tcpdump.log")"
}

cap_stop() {
    local name=$1
    sleep 0.5
    kill -TERM "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=
    cp "$WORK/$name.pcap" "$PLAIN/$name.pcap"
    log "  $(grep -h 'packets captured' "$WORK/tcpdump.log" || true)"
}

# ---------------------------------------------------------------- the cases
# Client ports are fixed (--local-port) so the fixtures are as repeatable as
# real captures can be: only timestamps and initial sequence numbers change.

case_keepalive() {
    cap_start http-keepalive
    ccurl --local-port 41001 "$NGINX/index.html" "$NGINX/style.css" "$NGINX/app.js" \
        "$NGINX/small.txt" "$NGINX/medium.json" "$NGINX/missing.html"
    cap_stop http-keepalive
}

case_chunked() {
    cap_start http-chunked
    # httpserver.py: a 100000-byte chunked body (chunk sizes 1..16384, an extension,
    # a trailer), then a slow chunked response, on one connection.
    ccurl --local-port 41011 "$PY/chunked?size=100000" "$PY/slow"
    # nginx re-chunks a streamed upstream response.
    ccurl --local-port 41012 "$NGINX/stream"
    cap_stop http-chunked
}

case_gzip() {
    cap_start http-gzip
    # gzip makes nginx drop Content-Length: chunked + Content-Encoding: gzip;
    # small.txt is under gzip_min_length and stays identity with Content-Length.
    ccurl --local-port 41021 -H 'Accept-Encoding: gzip' "$NGINX/text-20k.txt" \
        "$NGINX/app.js" "$NGINX/medium.json" "$NGINX/small.txt"
    cap_stop http-gzip
}

case_post_100_continue() {
    cap_start http-post-100-continue
    ccurl --local-port 41031 -H 'Expect: 100-continue' -H 'Content-Type: application/octet-stream' \
        --data-binary "@$WORK/body/upload-4k.bin" "$PY/upload" \
        --next "$PY/echo?after=upload"
    cap_stop http-post-100-continue
}

case_post_large() {
    cap_start http-post-large
    # -H 'Expect:' stops curl 7.88 from adding Expect: 100-continue by itself.
    ccurl --local-port 41041 -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        --data-binary "@$WORK/body/upload-200k.bin" "$PY/upload"
    cap_stop http-post-large
}

case_head_204_304() {
    local etag
    etag=$(in_cli curl -sS --noproxy '*' -I "$NGINX/style.css" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p')
    [ -n "$etag" ] || die "no ETag from nginx"
    cap_start http-head-204-304
    ccurl --local-port 41051 -I "$NGINX/index.html" \
        --next -I "$NGINX/large.bin" \
        --next "$NGINX/empty" \
        --next -H 'If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT' "$NGINX/index.html" \
        --next -H "If-None-Match: $etag" "$NGINX/style.css" \
        --next "$NGINX/small.txt"
    cap_stop http-head-204-304
}

case_10_close() {
    cap_start http-10-close
    # httpserver.py answers HTTP/1.0 without Content-Length: the body ends at FIN.
    ccurl --local-port 41061 --http1.0 "$PY/close10"
    # nginx answers an HTTP/1.0 request with Content-Length and Connection: close.
    ccurl --local-port 41062 --http1.0 "$NGINX/index.html"
    cap_stop http-10-close
}

case_pipelined() {
    cap_start http-pipelined
    in_cli python3 "$TOOLS/client.py" pipeline "$SRV_IP" 80 41071 >/dev/null
    cap_stop http-pipelined
}

case_websocket() {
    cap_start http-websocket-upgrade
    in_cli python3 "$TOOLS/client.py" ws "$SRV_IP" 8000 41081 >/dev/null
    cap_stop http-websocket-upgrade
}

case_ipv6() {
    cap_start http-ipv6
    ccurl -g --local-port 41091 -H 'Accept-Encoding: gzip' "http://[$SRV_IP6]/index.html" \
        "http://[$SRV_IP6]/small.txt" "http://[$SRV_IP6]/large.bin"
    cap_stop http-ipv6
}

case_mixed() {
    cap_start http-mixed
    local pids=() p
    ccurl --local-port 42001 "$NGINX/index.html" "$NGINX/style.css" "$NGINX/app.js" "$NGINX/small.txt" \
        "$NGINX/medium.json" "$NGINX/nope-404" "$NGINX/empty" "$NGINX/index.html?v=2" & pids+=($!)
    ccurl --local-port 42002 -H 'Accept-Encoding: gzip' "$NGINX/text-20k.txt" "$NGINX/app.js" \
        "$NGINX/style.css" "$NGINX/medium.json" "$NGINX/small.txt" & pids+=($!)
    ccurl --local-port 42003 -I "$NGINX/index.html" "$NGINX/large.bin" "$NGINX/text-20k.txt" \
        "$NGINX/nope-404" & pids+=($!)
    for p in "${pids[@]}"; do wait "$p"; done; pids=()
    ccurl --local-port 42004 -H 'If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT' \
        "$NGINX/index.html" "$NGINX/style.css" "$NGINX/app.js" & pids+=($!)
    ccurl --local-port 42005 --http1.0 "$PY/close10" & pids+=($!)
    ccurl --local-port 42006 -H 'Expect: 100-continue' --data-binary "@$WORK/body/upload-4k.bin" \
        "$PY/upload" --next "$PY/chunked?size=6000" --next "$PY/slow" & pids+=($!)
    in_cli python3 "$TOOLS/client.py" pipeline "$SRV_IP" 80 42007 >/dev/null & pids+=($!)
    for p in "${pids[@]}"; do wait "$p"; done; pids=()
    in_cli python3 "$TOOLS/client.py" ws "$SRV_IP" 8000 42008 >/dev/null & pids+=($!)
    ccurl --local-port 42009 -X PUT --data-binary 'name=vxtap' "$PY/echo?m=put" \
        --next -X DELETE "$PY/echo?m=delete" --next -X OPTIONS "$PY/echo?m=options" \
        --next -I "$PY/echo?m=head" --next -d 'a=1&b=2' "$PY/echo?m=post" \
        --next "$PY/nope-404" & pids+=($!)
    ccurl --local-port 42010 "$NGINX/small.txt?q=1" "$NGINX/small.txt?q=2" "$NGINX/small.txt?q=3" \
        "$NGINX/small.txt?q=4" "$NGINX/small.txt?q=5" "$NGINX/medium.json?page=1" \
        "$NGINX/medium.json?page=2" "$NGINX/index.html?utm=%20x" "$NGINX/style.css?ver=1.2.3" \
        "$NGINX/app.js?cb=1700000000" & pids+=($!)
    ccurl --local-port 42011 "$NGINX/stream" "$NGINX/small.txt?after=stream" & pids+=($!)
    for p in "${pids[@]}"; do wait "$p"; done
    cap_stop http-mixed
}

case_port_reuse() {
    cap_start http-port-reuse
    # The server closes first (HTTP/1.0, close-delimited), so the client's port is free
    # at once and the second connection reuses the same 4-tuple (the server's
    # TIME_WAIT accepts the new SYN).
    ccurl --local-port 44001 --http1.0 "$PY/close10"
    ccurl --local-port 44001 --http1.0 "$PY/close10?again=1"
    cap_stop http-port-reuse
}

case_midstream() {
    # The capture starts while the first request waits for its (1 s delayed) answer:
    # no handshake and no request line for it in the file, only its response.
    ccurl --local-port 44011-44012 "$PY/delay?ms=1000" "$PY/echo?after=delay" "$NGINX/small.txt" &
    local pid=$!
    sleep 0.1
    cap_start http-midstream
    wait "$pid"
    cap_stop http-midstream
}

# The loss workload: two 40000-byte GETs from nginx on one connection (the second
# request is the one dropped below), one 40000-byte POST to httpserver.py.
loss_workload() {
    ccurl --local-port "$1" "$NGINX/large.bin" "$NGINX/large.bin?copy=2"
    ccurl --local-port "$2" -H 'Expect:' --data-binary "@$WORK/body/upload-40k.bin" "$PY/upload"
}

case_loss_retransmit() {
    # "The network lost it": the router namespace drops packets (FORWARD), and the
    # senders' kernels recover by themselves. Seen from the tap on the server's veth:
    #  - client -> server losses happen BEFORE the tap: a hole (later segments arrive
    #    first), filled later by the client's retransmission (one GET request is lost
    #    whole and retransmitted after the RTO; POST body segments are lost mid-stream);
    #  - server -> client losses happen AFTER the tap: the original is in the capture,
    #    then the client's duplicate ACKs/SACKs, then the server's retransmission.
    in_net iptables -A FORWARD -i "$NC_IF" -p tcp --dport 80 -m length --length 100:999 \
        -m statistic --mode nth --every 2 --packet 1 -j DROP
    in_net iptables -A FORWARD -i "$NC_IF" -p tcp --dport 8000 -m length --length 1000:65535 \
        -m statistic --mode nth --every 9 --packet 4 -j DROP
    in_net iptables -A FORWARD -i "$NS_IF" -p tcp --sport 80 -m length --length 1000:65535 \
        -m statistic --mode nth --every 9 --packet 4 -j DROP
    cap_start http-loss-retransmit
    loss_workload 43001 43002
    cap_stop http-loss-retransmit
    log "  router drops: $(in_net iptables -L FORWARD -v -n -x | awk '$3 == "DROP" {n += $1} END {print n}')"
    in_net iptables -F FORWARD
}

case_loss_duplicate() {
    # Dropped by the receiving kernel (INPUT) AFTER the tap saw it: the capture holds
    # the original and, later, the sender's retransmission of the same bytes - for the
    # POST body (server INPUT) and for the GET responses (client INPUT).
    in_srv iptables -A INPUT -p tcp --dport 8000 -m length --length 1000:65535 \
        -m statistic --mode nth --every 9 --packet 4 -j DROP
    in_cli iptables -A INPUT -p tcp --sport 80 -m length --length 1000:65535 \
        -m statistic --mode nth --every 9 --packet 4 -j DROP
    cap_start http-loss-duplicate
    loss_workload 43011 43012
    cap_stop http-loss-duplicate
    log "  receiver drops: $( { in_srv iptables -L INPUT -v -n -x; in_cli iptables -L INPUT -v -n -x; } | awk '$3 == "DROP" {n += $1} END {print n}')"
    in_srv iptables -F INPUT
    in_cli iptables -F INPUT
}

case_mirror_hole() {
    # "The mirror lost it": the endpoints got every packet (no loss, no
    # retransmission), but the tap missed some. A clean capture is passed through a
    # BPF filter (tcpdump -r ... -w ...) that removes server data segments of >= 1000
    # payload bytes that do not start a response and whose IPv4 ID is 5 mod 8. The
    # holes are never filled: each lies inside a Content-Length body.
    cap_start mirror-hole-clean
    ccurl --local-port 43021 "$NGINX/large.bin" "$NGINX/large.bin?copy=2" "$NGINX/index.html"
    cap_stop mirror-hole-clean
    local payload='(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2))'
    local starts_http="tcp[((tcp[12] & 0xf0) >> 2):4] = 0x48545450"
    tcpdump -Z root -r "$PLAIN/mirror-hole-clean.pcap" -w "$PLAIN/http-loss-mirror-hole.pcap" \
        "not (ip and tcp src port 80 and $payload >= 1000 and not $starts_http and ip[4:2] & 7 = 5)" \
        2>/dev/null
    rm -f "$PLAIN/mirror-hole-clean.pcap"
}

do_capture() {
    [ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, tcpdump, iptables)"
    install_tools
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
    WORK=$(mktemp -d /tmp/vxtap-fixtures.XXXXXX)
    chmod 755 "$WORK"
    mkdir -p "$PLAIN"
    if compgen -G "$VXDIR/*.pcap" >/dev/null; then
        log "removing $VXDIR/*.pcap: they wrap the previous captures (run 'wrap' again)"
        rm -f "$VXDIR"/*.pcap
    fi
    setup_netns
    make_content
    start_servers
    case_keepalive
    case_chunked
    case_gzip
    case_post_100_continue
    case_post_large
    case_head_204_304
    case_10_close
    case_pipelined
    case_websocket
    case_ipv6
    case_mixed
    case_port_reuse
    case_midstream
    case_loss_retransmit
    case_loss_duplicate
    case_mirror_hole
    log "expected exchanges -> $HERE/expected.tsv"
    (cd "$HERE" && python3 "$TOOLS/expected.py" plain/*.pcap >"$WORK/expected.tsv")
    cp "$WORK/expected.tsv" "$HERE/expected.tsv"
    ls -l "$PLAIN" >&2
}

# ---------------------------------------------------------------- wrap stage
do_wrap() {
    local vx=${VXTAP:-target/release/vxtap}
    case $vx in /*) ;; *) vx=$ROOT/$vx ;; esac
    if [ ! -x "$vx" ] || ! "$vx" encap --help >/dev/null 2>&1; then
        die "wrap needs '$vx encap' (build it: cargo build --release, or set VXTAP=/path/to/vxtap)"
    fi
    local f
    for f in http-mixed http-keepalive http-loss-retransmit; do
        [ -s "$PLAIN/$f.pcap" ] || die "missing $PLAIN/$f.pcap: run '$0 capture' first"
    done
    mkdir -p "$VXDIR"
    local tmp
    tmp=$(mktemp -d /tmp/vxtap-wrap.XXXXXX)
    # shellcheck disable=SC2064  # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    # Outer addresses: 10.99.1.11 = client ENI, 10.99.1.12 = server ENI,
    # 10.99.1.100 = mirror target. They only appear inside the files.
    log "wrap: mixed as VNI 101 (server ENI mirrored)"
    "$vx" encap "$PLAIN/http-mixed.pcap" "$VXDIR/mixed-vni101.pcap" --vni 101 \
        --outer-src 10.99.1.12 --outer-dst 10.99.1.100
    log "wrap: keepalive as VNI 5569041"
    "$vx" encap "$PLAIN/http-keepalive.pcap" "$VXDIR/keepalive-vni5569041.pcap" --vni 5569041 \
        --outer-src 10.99.1.12 --outer-dst 10.99.1.100
    log "wrap: mixed truncated to 256 bytes, VNI 102"
    "$vx" encap "$PLAIN/http-mixed.pcap" "$VXDIR/mixed-trunc256-vni102.pcap" --vni 102 --truncate 256 \
        --outer-src 10.99.1.12 --outer-dst 10.99.1.100
    log "wrap: loss-retransmit as VNI 103"
    "$vx" encap "$PLAIN/http-loss-retransmit.pcap" "$VXDIR/loss-retransmit-vni103.pcap" --vni 103 \
        --outer-src 10.99.1.12 --outer-dst 10.99.1.100
    log "wrap: mixed mirrored on both ENIs (VNI 201 from 10.99.1.11, VNI 202 from 10.99.1.12)"
    "$vx" encap "$PLAIN/http-mixed.pcap" "$tmp/a.pcap" --vni 201 \
        --outer-src 10.99.1.11 --outer-dst 10.99.1.100
    "$vx" encap "$PLAIN/http-mixed.pcap" "$tmp/b.pcap" --vni 202 \
        --outer-src 10.99.1.12 --outer-dst 10.99.1.100
    # The second session's copies arrive 40 us after the first's.
    python3 "$TOOLS/pcapmerge.py" --delay-us 40 "$VXDIR/mixed-both-enis-vni201-202.pcap" \
        "$tmp/a.pcap" "$tmp/b.pcap"
    log "expected exchanges (vxlan) -> $HERE/expected.tsv"
    (cd "$HERE" && python3 "$TOOLS/expected.py" plain/*.pcap vxlan/mixed-vni101.pcap \
        vxlan/keepalive-vni5569041.pcap vxlan/loss-retransmit-vni103.pcap \
        vxlan/mixed-both-enis-vni201-202.pcap >"$tmp/expected.tsv")
    cp "$tmp/expected.tsv" "$HERE/expected.tsv"
    ls -l "$VXDIR" >&2
}

case $STAGE in
    capture) do_capture ;;
    wrap) do_wrap ;;
    all) do_capture; trap - EXIT; cleanup; set -e; WORK=; do_wrap ;;
    *) die "usage: $0 [capture|wrap|all]" ;;
esac
