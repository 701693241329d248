#!/bin/sh
# Installs the Debian packages Shoal builds and runs with, if missing
# (nftables: the agent hands its Service and masquerade rules to `nft -j`;
# gcc and libc6-dev: images/build.sh builds a static UDP tool for the tests;
# dnsmasq-base: the tests' stand-in for the internet's DNS; docker-registry,
# skopeo and apache2-utils' htpasswd: the tests' registry on loopback, with
# TLS and basic auth, and what pushes images to it). Extra packages
# given as arguments are installed too (cross/deps.sh).
set -eu
need=""
for p in libseccomp-dev busybox-static pkg-config iproute2 iputils-ping ca-certificates systemd nftables gcc libc6-dev dnsmasq-base docker-registry skopeo apache2-utils "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
  echo "installing:$need"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
