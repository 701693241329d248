#!/bin/sh
# Installs the shoal binary and its systemd unit. Run as root from a built tree
# (cargo build --release), from a tree with cross/out/shoal-<arch> (the binary
# for this machine's `uname -m` is picked: x86_64, aarch64, armv7l), or with
# SHOAL_BIN pointing at a binary. The unit is the same on every architecture.
set -eu
cd "$(dirname "$0")"
bin=${SHOAL_BIN:-}
if [ -z "$bin" ]; then
  bin=cross/out/shoal-$(uname -m)
  [ -x "$bin" ] || bin=target/release/shoal
fi
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release first" >&2; exit 1; }
install -m 0755 "$bin" /usr/local/bin/shoal
install -m 0644 systemd/shoal.service /etc/systemd/system/shoal.service
mkdir -p /var/lib/shoal
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "installed; run 'shoal init' (first node) or 'shoal join ADDR --token T', then: systemctl enable --now shoal"
else
  echo "installed /usr/local/bin/shoal and /etc/systemd/system/shoal.service (systemd not running here)"
fi
