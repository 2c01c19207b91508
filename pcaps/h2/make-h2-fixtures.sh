#!/usr/bin/env bash
# Regenerates the HTTP/2 and gRPC fixtures from REAL traffic (see pcaps/h2/README.md).
#
#   sudo pcaps/h2/make-h2-fixtures.sh capture  # real captures -> pcaps/h2/plain/, client/server logs
#   sudo pcaps/h2/make-h2-fixtures.sh derive   # fault variants (tools/h2fault.py), VXLAN variants,
#                                              # truth files (tools/h2truth.py), tshark cross-check
#   sudo pcaps/h2/make-h2-fixtures.sh          # both
#
# capture: the namespaces of pcaps/make-fixtures.sh (client 10.99.0.1 -- router -- server
# 10.99.0.2, offloads off, tcpdump on the server's veth), with nghttpd (nghttp2) and the
# grpcio server of pcaps/tools/grpc in the server namespace, and nghttp, curl and the grpcio
# client in the client namespace. Network loss is made with iptables in the router namespace
# so the kernels retransmit for real. Nothing is sent to any address outside the namespaces;
# they (and their iptables rules) are removed on exit.
#
# Needs root, nghttp2-server, nghttp2-client, tcpdump, tshark, curl, iptables, ethtool (installed
# with apt when missing) and python3 with grpcio (pip install grpcio).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PLAIN=$HERE/plain
TOOLS=$ROOT/pcaps/tools
GRPC=$TOOLS/grpc

CLI_NS=vxh2-cli-$$
NET_NS=vxh2-net-$$
SRV_NS=vxh2-srv-$$
CLI_IF=vxhc$$
NC_IF=vxhnc$$
NS_IF=vxhns$$
SRV_IF=vxhs$$
CLI_IP=10.99.0.1
SRV_IP=10.99.0.2
CLI_IP6=fd00:99::1
SRV_IP6=fd00:99::2
# nghttpd A: push configured. nghttpd B: trailers and padding. nghttpx in front of B:
# HTTP/1.1 Upgrade to h2c (nghttpd does not implement it). gRPC: grpcio.
H2A=http://$SRV_IP:8080
H2B=http://$SRV_IP:8081
H2U=http://$SRV_IP:8082
GRPC_ADDR=$SRV_IP:50051
WORK=
CAP_PID=
SRV_PIDS=
STAGE=${1:-all}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make-h2-fixtures: %s\n' "$*" >&2; exit 1; }

in_cli() { ip netns exec "$CLI_NS" "$@"; }
in_srv() { ip netns exec "$SRV_NS" "$@"; }
in_net() { ip netns exec "$NET_NS" "$@"; }

# curl in the client namespace: quiet, never through a proxy, bodies discarded.
ccurl() { in_cli curl -sS --noproxy '*' --max-time 20 "$@" >/dev/null; }

cleanup() {
    set +e
    if [ -n "$CAP_PID" ]; then kill -TERM "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null; fi
    local p
    for p in $SRV_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
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
    command -v nghttpd >/dev/null || need+=(nghttp2-server)
    command -v nghttp >/dev/null || need+=(nghttp2-client)
    command -v nghttpx >/dev/null || need+=(nghttp2-proxy)
    command -v tshark >/dev/null || need+=(tshark)
    command -v curl >/dev/null || need+=(curl)
    command -v iptables >/dev/null || need+=(iptables)
    command -v ethtool >/dev/null || need+=(ethtool)
    command -v ping >/dev/null || need+=(iputils-ping)
    command -v python3 >/dev/null || need+=(python3)
    if [ "${#need[@]}" -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq
        # Packages must not start their own services (a server would bind outside our
        # namespaces); the script runs its servers itself.
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
    mkdir -p "$WORK/www" "$WORK/body" "$LOGS"
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
    "index.html": b"<!doctype html>\n<html><head><title>vxtap h2 fixture</title>"
                  b"<link rel=stylesheet href=/style.css><script src=/app.js></script></head>\n"
                  b"<body><h1>vxtap h2 fixture page</h1>\n" + text(600, "<p>index") + b"</body></html>\n",
    "style.css": text(2000, "/* css */ body{margin:0}"),
    "app.js": text(8000, "// js console.log"),
    "small.txt": b"hello vxtap\n",
    "medium.json": json.dumps({"items": [{"id": i, "name": "item-%d" % i, "ok": i % 3 == 0}
                                         for i in range(100)]}).encode() + b"\n",
    "text-20k.txt": text(20000, "text"),
    "large.bin": noise(40000, "vxtap-large"),
    "huge.bin": noise(70000, "vxtap-huge"),
}
for name, data in files.items():
    with open(os.path.join(www, name), "wb") as f:
        f.write(data)
for name, n in (("upload-4k.bin", 4096), ("upload-20k.bin", 20000)):
    with open(os.path.join(work, "body", name), "wb") as f:
        f.write(noise(n, name))
PY
    touch -d '2024-01-02 03:04:05 UTC' "$WORK"/www/*
}

start_servers() {
    log "nghttpd :8080 (push), nghttpd :8081 (trailer, padding), grpc :50051 in $SRV_NS"
    ip netns exec "$SRV_NS" nghttpd --no-tls -a 0.0.0.0 -d "$WORK/www" --echo-upload \
        -p /index.html=/style.css,/app.js 8080 >"$WORK/nghttpd-8080.log" 2>&1 &
    SRV_PIDS="$SRV_PIDS $!"
    ip netns exec "$SRV_NS" nghttpd --no-tls -a 0.0.0.0 -d "$WORK/www" --echo-upload \
        --trailer 'x-fixture-trailer: done' -b 16 8081 >"$WORK/nghttpd-8081.log" 2>&1 &
    SRV_PIDS="$SRV_PIDS $!"
    ip netns exec "$SRV_NS" nghttpx -f '0.0.0.0,8082;no-tls' -b '127.0.0.1,8081;;proto=h2' \
        --workers=1 --errorlog-file="$WORK/nghttpx.err" --accesslog-file="$WORK/nghttpx.acc" \
        >"$WORK/nghttpx.out" 2>&1 &
    SRV_PIDS="$SRV_PIDS $!"
    (cd "$GRPC" && exec ip netns exec "$SRV_NS" python3 server.py "0.0.0.0:50051" \
        "$LOGS/grpc-server.jsonl") >"$WORK/grpc-server.out" 2>&1 &
    SRV_PIDS="$SRV_PIDS $!"
    # A second gRPC server that announces SETTINGS_MAX_FRAME_SIZE 1 MiB (big-frames case).
    (cd "$GRPC" && exec ip netns exec "$SRV_NS" python3 server.py "0.0.0.0:50052" \
        "$LOGS/grpc-server-big.jsonl" 1048576) >"$WORK/grpc-server-big.out" 2>&1 &
    SRV_PIDS="$SRV_PIDS $!"
    for _ in $(seq 100); do
        if in_srv curl -s --noproxy '*' --http2-prior-knowledge -o /dev/null "http://127.0.0.1:8080/small.txt" &&
           in_srv curl -s --noproxy '*' --http2-prior-knowledge -o /dev/null "http://127.0.0.1:8081/small.txt" &&
           in_srv curl -s --noproxy '*' --http2 -o /dev/null "http://127.0.0.1:8082/small.txt" &&
           grep -q listening "$WORK/grpc-server.out" &&
           grep -q listening "$WORK/grpc-server-big.out"; then
            : >"$LOGS/grpc-server.jsonl"
            return 0
        fi
        sleep 0.1
    done
    die "servers did not start: $(cat "$WORK/grpc-server.out")"
}

cap_start() {
    local name=$1
    log "capture $name"
    : >"$WORK/tcpdump.log"
    ip netns exec "$SRV_NS" tcpdump -Z root --immediate-mode -i "$SRV_IF" -s 0 -U -n -w "$WORK/$name.pcap" \
        'tcp or udp' 2>"$WORK/tcpdump.log" &
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

# nghttp in the client namespace, verbose: every frame it sent and received goes to the
# case's log (the client's view, for the truth cross-check); bodies are discarded.
cnghttp() {
    local name=$1; shift
    in_cli nghttp -n -v "$@" >>"$LOGS/$name.nghttp.log" 2>&1
}
ccurl() {
    local name=$1; shift
    in_cli curl -sS --noproxy '*' --max-time 20 -o /dev/null \
        -w '%{url_effective}\t%{http_version}\t%{response_code}\t%{size_download}\t%{size_upload}\n' \
        "$@" >>"$LOGS/$name.curl.tsv"
}
cgrpc() {
    local name=$1; shift
    (cd "$GRPC" && ip netns exec "$CLI_NS" python3 client.py "${2:-$GRPC_ADDR}" "$1" "$LOGS/$name.grpc-client.jsonl")
}
# The server's log lines written during a case belong to it.
srv_log_mark() { wc -l <"$LOGS/grpc-server.jsonl"; }
srv_log_take() {
    local name=$1 from=$2
    sleep 1.6  # the Slow handler logs when its 1.5 s sleep ends
    tail -n +"$((from + 1))" "$LOGS/grpc-server.jsonl" >"$LOGS/$name.grpc-server.jsonl"
}

# ---------------------------------------------------------------- the cases

case_nghttp_prior() {
    # Prior knowledge, every request multiplexed on one connection; padding both ways
    # (-b), trailers from nghttpd B, 64 KiB stream windows (-w 16) so the 70000-byte body
    # needs the client's WINDOW_UPDATEs.
    cap_start h2-nghttp-prior
    cnghttp h2-nghttp-prior -b 8 -w 16 -W 16 "$H2B/index.html" "$H2B/style.css" "$H2B/app.js" \
        "$H2B/small.txt" "$H2B/medium.json" "$H2B/text-20k.txt" "$H2B/huge.bin" "$H2B/missing.html" "$H2B/small.txt?q=%20x&y=2"
    cap_stop h2-nghttp-prior
}

case_nghttp_post() {
    cap_start h2-nghttp-post
    # POST with a body (nghttpd echoes it), then a large header block that nghttp splits
    # into HEADERS + CONTINUATION frames.
    cnghttp h2-nghttp-post -d "$WORK/body/upload-20k.bin" "$H2A/echo"
    cnghttp h2-nghttp-post --continuation "$H2A/small.txt" "$H2A/medium.json"
    cap_stop h2-nghttp-post
}

case_nghttp_push() {
    cap_start h2-nghttp-push
    # nghttpd A pushes /style.css and /app.js with /index.html (PUSH_PROMISE).
    cnghttp h2-nghttp-push "$H2A/index.html" "$H2A/small.txt"
    cap_stop h2-nghttp-push
}

case_nghttp_upgrade() {
    cap_start h2-nghttp-upgrade
    # HTTP/1.1 Upgrade: h2c (nghttpx); the first request is stream 1, answered as HTTP/2
    # after the 101.
    cnghttp h2-nghttp-upgrade -u "$H2U/index.html" "$H2U/small.txt" "$H2U/medium.json"
    cap_stop h2-nghttp-upgrade
}

case_curl() {
    cap_start h2-curl
    # curl 7.88 with prior knowledge: one transfer per connection (7.88.1 fails a second
    # transfer on a reused prior-knowledge connection with "Error in the HTTP2 framing
    # layer"), a GET and a POST. Then the h2c upgrade via nghttpx: two GETs on one
    # connection (the first is the upgrade request), and a POST whose body goes with the
    # HTTP/1.1 upgrade request.
    ccurl h2-curl --local-port 45001 --http2-prior-knowledge "$H2A/text-20k.txt"
    ccurl h2-curl --local-port 45002 --http2-prior-knowledge --data-binary "@$WORK/body/upload-4k.bin" \
        -H 'Content-Type: application/octet-stream' "$H2A/upload"
    ccurl h2-curl --local-port 45003 --http2 "$H2U/medium.json" -o /dev/null "$H2U/small.txt"
    ccurl h2-curl --local-port 45004 --http2 -d 'name=vxtap&x=1' "$H2U/form"
    cap_stop h2-curl
}

case_grpc_calls() {
    local mark
    mark=$(srv_log_mark)
    cap_start grpc-calls
    cgrpc grpc-calls calls
    cap_stop grpc-calls
    srv_log_take grpc-calls "$mark"
}

case_grpc_bigframes() {
    # Both peers announce SETTINGS_MAX_FRAME_SIZE 1 MiB, so the ~20 KB messages travel in
    # single DATA frames larger than the default 16384 bytes (legal: negotiated).
    cap_start grpc-bigframes
    cgrpc grpc-bigframes bigframes "$SRV_IP:50052"
    cap_stop grpc-bigframes
    sleep 0.3
    cp "$LOGS/grpc-server-big.jsonl" "$LOGS/grpc-bigframes.grpc-server.jsonl"
}

case_grpc_midstream() {
    # The capture starts inside the long server stream (8 replies, 100 ms apart): after the
    # first unary call finished (the client logged it) and 250 ms more. No handshake, no
    # preface, no SETTINGS, no request HEADERS for the stream in view, and HPACK state the
    # tap never saw (the third call's :path is a dynamic-table reference).
    local mark pid
    mark=$(srv_log_mark)
    cgrpc grpc-midstream stream &
    pid=$!
    for _ in $(seq 200); do
        [ -s "$LOGS/grpc-midstream.grpc-client.jsonl" ] && break
        sleep 0.02
    done
    sleep 0.25
    cap_start grpc-midstream
    wait "$pid"
    cap_stop grpc-midstream
    srv_log_take grpc-midstream "$mark"
}

case_loss_retransmit() {
    # "The network lost it": the router drops every 4th large server->client segment of
    # the gRPC connection and every 3rd of the nghttp one (after the tap: the capture holds
    # the original and the server's retransmission) and a client->server segment of the
    # nghttp POST (before the tap: a hole filled later by the client's retransmission).
    local mark
    in_net iptables -A FORWARD -i "$NS_IF" -p tcp --sport 50051 -m length --length 1000:65535 \
        -m statistic --mode nth --every 4 --packet 2 -j DROP
    in_net iptables -A FORWARD -i "$NS_IF" -p tcp --sport 8081 -m length --length 1000:65535 \
        -m statistic --mode nth --every 3 --packet 1 -j DROP
    in_net iptables -A FORWARD -i "$NC_IF" -p tcp --dport 8080 -m length --length 1000:65535 \
        -m statistic --mode nth --every 5 --packet 2 -j DROP
    mark=$(srv_log_mark)
    cap_start h2-loss-retransmit
    cgrpc h2-loss-retransmit stream
    cnghttp h2-loss-retransmit -w 16 -W 16 "$H2B/text-20k.txt" "$H2B/app.js" "$H2B/small.txt"
    cnghttp h2-loss-retransmit -d "$WORK/body/upload-20k.bin" "$H2A/echo"
    cap_stop h2-loss-retransmit
    srv_log_take h2-loss-retransmit "$mark"
    log "  router drops: $(in_net iptables -L FORWARD -v -n -x | awk '$3 == "DROP" {n += $1} END {print n}')"
    in_net iptables -F FORWARD
}

do_capture() {
    [ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, tcpdump, iptables)"
    python3 -c 'import grpc' 2>/dev/null || die "python3 needs grpcio (pip install grpcio)"
    install_tools
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
    WORK=$(mktemp -d /tmp/vxtap-h2-fixtures.XXXXXX)
    LOGS=$WORK/logs
    chmod 755 "$WORK"
    mkdir -p "$PLAIN"
    setup_netns
    make_content
    start_servers
    case_nghttp_prior
    case_nghttp_post
    case_nghttp_push
    case_nghttp_upgrade
    case_curl
    case_grpc_calls
    case_grpc_bigframes
    case_grpc_midstream
    case_loss_retransmit
    rm -rf "$HERE/logs"
    mkdir -p "$HERE/logs"
    cp "$LOGS"/h2-* "$LOGS"/grpc-* "$HERE/logs/"
    rm -f "$HERE/logs/grpc-server.jsonl" "$HERE/logs/grpc-server-big.jsonl"
    ls -l "$PLAIN" >&2
}

do_derive() {
    "$HERE/derive.sh"
}

case $STAGE in
    capture) do_capture ;;
    derive) do_derive ;;
    all) do_capture; trap - EXIT; cleanup; set -e; WORK=; do_derive ;;
    *) die "usage: $0 [capture|derive|all]" ;;
esac
