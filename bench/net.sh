#!/usr/bin/env bash
# bench/net.sh - the pod network and Services measured on the netns harness (tests/common/netns.rs:
# real agents in network namespaces, release build). Root. About 4 min on 2 cores, plus the build.
#   bench/net.sh
# Shoal's figures (tests/bench_net.rs, `BENCH` lines):
#   paths   3 nodes on one link and one behind a router: iperf3 (5 s, 3 runs) and 5,000 1-byte round
#           trips between pods across nodes, host-gw (h1->h2) and VXLAN (h1->h4), each against host to
#           host on the same path; through a ClusterIP against straight to the pod, and new
#           connections per second both ways.
#   table   the node's nftables table (the real code through `nft -j`) written whole and changed by one
#           Service with 10, 100 and 1,000 Services, and TCP connect latency through a Service address.
#   rss     one agent's RSS with no Services and with 1,000.
#   dns     dnsperf from a pod against the cluster DNS (through its address and straight to the node)
#           and against dnsmasq serving the same 100 names: latency with one query in flight, rate
#           with 100.
# Needs: iperf3, dnsperf, dnsmasq-base, nftables, busybox-static and gcc (images/build.sh), iproute2,
# nsenter.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
out=${OUT:-/tmp/shoal-bench-net}
mkdir -p "$out"
scripts/deps.sh
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
command -v dnsperf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null
images/build.sh >/dev/null
cargo test --release --test bench_net --no-run
cargo test --release --test bench_net -- --ignored --test-threads 1 --nocapture 2>&1 | tee "$out/shoal.log" | grep -E "BENCH|test result|not reached|panicked" || true
