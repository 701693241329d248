#!/usr/bin/env bash
# bench/workloads.sh - the workload controllers measured on the netns harness (tests/common/netns.rs:
# real agents in network namespaces, release build), then Docker Swarm's side from the shared kit
# (../shared/bench/swarm) in the same run. Root. About 12 min on 2 cores, plus the release build.
#   bench/workloads.sh                 # Shoal, then Swarm tuned (RESTART_DELAY=0s HEARTBEAT=1s) and default
#   SWARM=0 bench/workloads.sh         # Shoal only
# Shoal's figures (tests/bench_workloads.rs, `BENCH` lines):
#   node_death   3 nodes, Deployment of 3 (busybox httpd); 10 runs: kill -9 of a follower's agent and
#                every container of it (a crash of the whole node) until 3 replicas are Ready, none on
#                the victim, as the leader's replica shows them (polled every 200 ms); the victim is
#                restarted and the count must return to exactly 3 before the next run.
#   rolling      10 replicas, default strategy (25 %/25 %): `set image` until `rollout status` returns, 3 runs.
#   idle         Raft entries and the leader agent's CPU over 30 s with the 10 replicas settled.
#   hollow       1 real node + 100 hollow nodes (`shoal hollow --token`): a Deployment scaled from 0 to
#                1,000 until every pod is reported Running; then 30 s of idle as above.
# Needs: busybox-static (images/build.sh), iproute2, nsenter; Swarm's side: docker.io, jq, curl
# (../shared/bench/swarm/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
out=${OUT:-/tmp/shoal-bench-workloads}
mkdir -p "$out"
scripts/deps.sh
images/build.sh >/dev/null
cargo test --release --test bench_workloads --no-run
cargo test --release --test bench_workloads -- --ignored --test-threads 1 --nocapture 2>&1 | tee "$out/shoal.log" | grep -E "BENCH|^roll|test result|not reached" || true
if [[ ${SWARM:-1} == 1 ]]; then
  kit=../shared/bench/swarm
  (cd "$kit" && ./setup.sh >/dev/null)
  (cd "$kit" && RESTART_DELAY=0s HEARTBEAT=1s STAGES="up kill update idle" REPS=${SWARM_REPS:-5} TAG=fast ./swarm.sh) 2>&1 | tail -25 | tee "$out/swarm-fast.log"
  (cd "$kit" && STAGES="up kill update idle" REPS=${SWARM_REPS:-3} TAG=default ./swarm.sh) 2>&1 | tail -25 | tee "$out/swarm-default.log"
fi
