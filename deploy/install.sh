#!/usr/bin/env bash
# Install vxtap as a hardened systemd service on this host (Amazon Linux 2023, Debian, Ubuntu...).
#
# Runs from an unpacked bundle made by deploy/package.sh (bin/vxtap beside this script) or from
# the repository's deploy/ directory with --binary target/release/vxtap.
#
#   install.sh [--binary PATH] [--root DIR] [--no-start] [--with-logrotate]
#
#   --binary PATH      the vxtap executable (default: bin/vxtap next to this script)
#   --root DIR         install below DIR instead of / (packaging, tests); implies --no-start
#   --no-start         copy files only: no sysctl, no systemctl
#   --with-logrotate   also install /etc/logrotate.d/vxtap, for a vxtap.toml WITHOUT
#                      rotate_size / rotate_interval (use one rotation mechanism, not both)
#
# Idempotent: an existing /etc/vxtap/vxtap.toml is kept (the example is refreshed beside it as
# vxtap.toml.example); rerunning with a new binary upgrades and restarts the service.
# The S3 shipper timer is enabled only when /etc/vxtap/ship.env exists, the retention timer
# only with /etc/vxtap/retain.env, the Auto Scaling drain service only with
# /etc/vxtap/lifecycle.env.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=$src/bin/vxtap
root=
start=1
logrotate=0

while [[ $# -gt 0 ]]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --root) root=${2:?--root needs a directory}; start=0; shift 2 ;;
    --no-start) start=0; shift ;;
    --with-logrotate) logrotate=1; shift ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

[[ -f $binary ]] || { echo "install.sh: no vxtap binary at '$binary' (use --binary)" >&2; exit 1; }
root=${root%/}

install -D -m 0755 "$binary" "$root/usr/local/bin/vxtap"
for script in vxtap-ship vxtap-drain vxtap-retain; do
  install -D -m 0755 "$src/ship/$script" "$root/usr/local/libexec/$script"
done
for unit in vxtap.service vxtap-ship.service vxtap-ship.timer vxtap-lifecycle.service \
  vxtap-retain.service vxtap-retain.timer; do
  install -D -m 0644 "$src/systemd/$unit" "$root/etc/systemd/system/$unit"
done
install -D -m 0644 "$src/systemd/99-vxtap.conf" "$root/etc/sysctl.d/99-vxtap.conf"
if [[ $logrotate == 1 ]]; then
  install -D -m 0644 "$src/logrotate/vxtap" "$root/etc/logrotate.d/vxtap"
fi
install -D -m 0644 "$src/config/vxtap.toml" "$root/etc/vxtap/vxtap.toml.example"
if [[ ! -e $root/etc/vxtap/vxtap.toml ]]; then
  install -m 0644 "$src/config/vxtap.toml" "$root/etc/vxtap/vxtap.toml"
fi
# Secrets (VXTAP_REDACT_KEY=...) go in vxtap.env: root-only, read by systemd before it drops
# privileges. Create it empty so permissions are right from the start.
if [[ ! -e $root/etc/vxtap/vxtap.env ]]; then
  install -m 0600 /dev/null "$root/etc/vxtap/vxtap.env"
fi

if [[ $start == 0 ]]; then
  echo "vxtap installed below ${root:-/} (not started)"
  exit 0
fi

sysctl -q -p /etc/sysctl.d/99-vxtap.conf
systemctl daemon-reload
systemctl enable vxtap.service
systemctl restart vxtap.service
if [[ -e /etc/vxtap/ship.env ]]; then
  systemctl enable --now vxtap-ship.timer
fi
if [[ -e /etc/vxtap/retain.env ]]; then
  systemctl enable --now vxtap-retain.timer
fi
if [[ -e /etc/vxtap/lifecycle.env ]]; then
  systemctl enable vxtap-lifecycle.service
  systemctl restart vxtap-lifecycle.service
fi
echo "vxtap installed and started: systemctl status vxtap; curl -s localhost:9090/metrics"
