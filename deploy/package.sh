#!/usr/bin/env bash
# Build the deployment bundle that the CloudFormation user data (and install.sh) consume:
#
#   deploy/package.sh [--binary target/release/vxtap] [--arch x86_64|aarch64] [--out DIR]
#
# Produces DIR/vxtap-<version>-linux-<arch>.tar.gz containing
#   vxtap/bin/vxtap  vxtap/install.sh  vxtap/systemd/*  vxtap/logrotate/vxtap
#   vxtap/config/vxtap.toml  vxtap/ship/vxtap-{ship,drain,retain}
#   vxtap/cloudwatch/*  (CloudWatch agent config template, rsyslog drop-in)
# and prints its path. Upload it to S3 and pass the s3:// URI as the stack's BundleS3Uri.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
binary=$repo/target/release/vxtap
arch=$(uname -m)
out=$repo/target/deploy

while [[ $# -gt 0 ]]; do
  case $1 in
    --binary) binary=${2:?}; shift 2 ;;
    --arch) arch=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -f $binary ]] || { echo "package.sh: no binary at '$binary' (cargo build --release)" >&2; exit 1; }
case $arch in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "package.sh: unsupported arch '$arch'" >&2; exit 2 ;;
esac

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
version=${version:-0.0.0}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
b=$stage/vxtap
mkdir -p "$b/bin" "$b/systemd" "$b/logrotate" "$b/config" "$b/ship" "$b/cloudwatch"
install -m 0755 "$binary" "$b/bin/vxtap"
install -m 0755 "$here/install.sh" "$b/install.sh"
install -m 0644 "$here"/systemd/vxtap.service "$here"/systemd/vxtap-ship.service \
  "$here"/systemd/vxtap-ship.timer "$here"/systemd/vxtap-lifecycle.service \
  "$here"/systemd/vxtap-retain.service "$here"/systemd/vxtap-retain.timer \
  "$here"/systemd/99-vxtap.conf "$b/systemd/"
install -m 0644 "$here/logrotate/vxtap" "$b/logrotate/vxtap"
install -m 0644 "$here/config/vxtap.toml" "$b/config/vxtap.toml"
install -m 0755 "$here/ship/vxtap-ship" "$here/ship/vxtap-drain" "$here/ship/vxtap-retain" "$b/ship/"
install -m 0644 "$here"/cloudwatch/* "$b/cloudwatch/"

mkdir -p "$out"
tarball=$out/vxtap-$version-linux-$arch.tar.gz
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$tarball" vxtap
echo "$tarball"
