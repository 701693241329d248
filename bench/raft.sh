#!/usr/bin/env bash
# bench/raft.sh - Shoal's Raft measured on the shared netns harness (../shared/bench/cluster,
# hosts peer-h1..4 on bridge peer-br0), side by side with etcd 3.4 in the same run. Root.
#   REPS=10 bench/raft.sh                   # every stage, full size (about 22 min on 2 cores)
#   STAGES="failover latency idle scheduler" REPS=10 bench/raft.sh
#   STAGES=latency BENCH_N=200 bench/raft.sh                            # one short stage
#   STAGES="failover latency backlog idle scheduler" REPS=2 BENCH_N=200 IDLE_SECS=30 SCHED_REPS=2 \
#     BACKLOGS="1000 3000" bench/raft.sh    # everything, short (about 6 min)
# Stages (each builds its own cluster and tears it down; the etcd side runs after Shoal's):
#   failover  3 nodes via own.sh (STAGES="up failover"): kill -9 of the leader, then a write
#             (`shoal apply` of a Pending pod) to a survivor every 50 ms until one commits;
#             REPS runs, the old leader restarted and a voter again before the next.
#             etcd: etcd.sh STAGES=failover, REPS runs (same protocol, its own client).
#   latency   3 nodes, client in host 4: `shoal bench-apply` (one QUIC connection) sequential
#             (BENCH_N applies) and with C concurrent streams for C in CONCS (C*BENCH_N/4
#             applies), to the leader and to a follower; the pods are deleted after each row.
#             etcd: etcd.sh STAGES="bench grpc" (HTTP gateway and gRPC puts, BENCH_N).
#   backlog   3 nodes: sequential applies (BENCH_N) to the leader with 0, then about B pods
#             pending in the store for B in BACKLOGS (every write wakes a scheduling pass over
#             them): latency and the leader's CPU time per apply. Shoal only.
#   idle      Shoal: 3 voters + a 4th node that stays a learner; etcd: 3 members (etcd.sh's
#             flags). Over IDLE_SECS per node: write_bytes (/proc/PID/io), RSS, CPU, bytes on
#             its bridge port (rx+tx, gossip included), and bytes per host pair on the bridge
#             (nft counters), which separate Raft (leader<->follower) from gossip (every pair).
#   scheduler cargo test --release --lib scheduler_throughput -- --ignored (1,000 nodes x
#             10,000 pods, the pure function), built once, SCHED_REPS runs of the test binary.
# Env: STAGES, REPS (10), BENCH_N (1000), CONCS ("64"), IDLE_SECS (300), SCHED_REPS (5),
#      BACKLOGS ("1000 5000"),
#      SETTLE (5), ETCD (1; 0 skips the etcd side), SHOAL ($CARGO_TARGET_DIR or target, then /release/shoal),
#      KIT (../shared/bench/cluster), PEER_STATE (/tmp/peer-cluster).
# Needs: `cargo build --release` first; etcd, etcdctl, nft, python venv from $KIT/setup.sh (run
# here when etcd or nft is missing); jq.
# Results: $PEER_STATE/results/raft_{latency,backlog,idle,idle_pairs,scheduler}.tsv, own_N3_raft.tsv
# (Shoal failover), etcd_raft.tsv + etcd_{bench,grpc}_raft.jsonl, and raft.summary (all of it).
# Logs: $PEER_STATE/raft-logs/STAGE-hI.log (Shoal), own-logs/ (failover), etcd-logs/.
# Agents run in their host's network namespace only (nsenter --net): `ip netns exec` would
# remount /sys and hide the cgroups. Everything started here is killed by PID on exit, and the
# peer-* namespaces are deleted (after a crash: $KIT/teardown.sh). own.sh's warning "hN PID is
# still bash" at start-up is expected: joiners wait for h1's token before they exec the agent.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-$(cd "$HERE/../shared/bench/cluster" && pwd)}
export SHOAL=${SHOAL:-${CARGO_TARGET_DIR:-$HERE/target}/release/shoal}
export PEER_STATE=${PEER_STATE:-/tmp/peer-cluster}
STAGES=${STAGES:-failover latency backlog idle scheduler}
REPS=${REPS:-10}
BENCH_N=${BENCH_N:-1000}
CONCS=${CONCS:-64}
IDLE_SECS=${IDLE_SECS:-300}
SCHED_REPS=${SCHED_REPS:-5}
BACKLOGS=${BACKLOGS:-1000 5000}
SETTLE=${SETTLE:-5}
ETCD=${ETCD:-1}
PORT=4740
OUTD=$PEER_STATE/results
SDIR=$PEER_STATE/raft          # Shoal data dirs
EDIR=$PEER_STATE/raft-etcd     # etcd data dirs (idle stage)
LOGD=$PEER_STATE/raft-logs    # agent and etcd logs, per stage (kept)
ADMIN=$SDIR/h1/admin.conf
CUR_STAGE=none
SUMMARY=$OUTD/raft.summary

[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
[[ -x $SHOAL ]] || { echo "build first: cargo build --release ($SHOAL missing)" >&2; exit 1; }
"$SHOAL" bench-apply --help >/dev/null 2>&1 || { echo "$SHOAL has no bench-apply: rebuild" >&2; exit 1; }
for s in $STAGES; do
  case $s in failover | latency | backlog | idle | scheduler) ;; *) echo "unknown stage $s" >&2; exit 1 ;; esac
done
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 1; }
if ! command -v etcd >/dev/null || ! command -v nft >/dev/null || [[ ! -x $PEER_STATE/venv/bin/python ]]; then
  "$KIT/setup.sh" || exit 1
fi
. "$KIT/lib.sh"
mkdir -p "$OUTD"
rm -rf "$LOGD"; mkdir -p "$LOGD"

SLEEP_PID=
cleanup() {
  peer_log "cleanup"
  [[ -n $SLEEP_PID ]] && kill "$SLEEP_PID" 2>/dev/null
  peer_teardown >/dev/null 2>&1
  rm -rf "$SDIR" "$EDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rec() {   # FILE FIELDS... -> one TSV row with the 1-min load appended
  local f=$1; shift
  printf '%s\t%s\n' "$*" "$(cut -d' ' -f1 /proc/loadavg)" | tr ' ' '\t' >>"$f"
}

# ---------------------------------------------------------------- Shoal on the harness
# shoal_cli I ARGS...: the CLI inside host I with the admin credentials (10 s cap)
shoal_cli() {
  local i=$1; shift
  SHOAL_CONFIG=$ADMIN SHOAL_LOG=warn timeout -k 1 10 nsenter --net="/run/netns/$(peer_ns "$i")" "$SHOAL" "$@" </dev/null
}

# spawn NAME I LOG cmd...: like peer_spawn, but with nsenter (execs, so $! is the program)
spawn() {
  local name=$1 i=$2 log=$3 pid f; shift 3
  nsenter --net="/run/netns/$(peer_ns "$i")" "$@" >>"$log" 2>&1 </dev/null &
  pid=$!
  disown "$pid"
  read -ra f < <(_peer_stat "$pid")
  printf '%s %s %s\n' "$pid" "${f[19]:-0}" "$1" >"$PEER_PIDDIR/$name.pid"
}

shoal_start() { NO_COLOR=1 SHOAL_LOG=info spawn "shoal-h$1" "$1" "$LOGD/$CUR_STAGE-h$1.log" "$SHOAL" agent --data-dir "$SDIR/h$1"; }

# "name status role" per node, as host I sees it
shoal_roles() {
  shoal_cli "$1" get nodes -o json --server "$(peer_ip "$1"):$PORT" 2>/dev/null |
    jq -r '.[] | "\(.name) \(.status) \(.role)"' 2>/dev/null
}

# wait_for SECS WHAT CMD...: poll CMD every 0.2 s until it succeeds
wait_for() {
  local secs=$1 what=$2 k; shift 2
  for ((k = 0; k < secs * 5; k++)); do "$@" && return 0; sleep 0.2; done
  peer_log "timeout ($secs s): $what"
  return 1
}

# true when host I sees N nodes, all Ready, VOTERS of them leader|voter, none unknown to Raft
cluster_is() {
  local i=$1 n=$2 voters=$3 out
  out=$(shoal_roles "$i") || return 1
  awk -v n="$n" -v v="$voters" '{c++} $2=="Ready"{r++} $3=="leader"{l++} $3=="voter"||$3=="leader"{vo++} $3=="-"{u++}
    END{exit !(c==n && r==n && l==1 && vo==v && u==0)}' <<<"$out"
}

shoal_leader() {   # host index of the leader, as host I sees it
  shoal_roles "$1" | awk '$3=="leader"{sub(/^h/, "", $1); print $1; exit}'
}

# shoal_up N: init h1, N-1 joins through h1; waits for min(N,3) voters
shoal_up() {
  local n=$1 i token
  rm -rf "$SDIR"; mkdir -p "$SDIR"
  shoal_cli 1 init --data-dir "$SDIR/h1" --name h1 --listen "$(peer_ip 1):$PORT" >/dev/null || return 1
  shoal_start 1
  wait_for 20 "h1 leads" eval '[[ $(shoal_leader 1) == 1 ]]' || return 1
  token=$(shoal_cli 1 token create --ttl 1h --server "$(peer_ip 1):$PORT") || return 1
  for ((i = 2; i <= n; i++)); do
    shoal_cli "$i" join "$(peer_ip 1):$PORT" --token "$token" --data-dir "$SDIR/h$i" --name "h$i" \
      --listen "$(peer_ip "$i"):$PORT" >/dev/null || return 1
    shoal_start "$i"
  done
  wait_for 60 "$n nodes, $((n < 3 ? 1 : 3)) voters" cluster_is 1 "$n" $((n < 3 ? 1 : 3)) || return 1
  peer_log "shoal up: $(shoal_roles 1 | paste -sd' ')"
}

# shoal_add I: one more node (joins after the voters are chosen, so it stays a learner)
shoal_add() {
  local i=$1 n=$2 token
  token=$(shoal_cli 1 token create --ttl 1h --server "$(peer_ip 1):$PORT") || return 1
  shoal_cli "$i" join "$(peer_ip 1):$PORT" --token "$token" --data-dir "$SDIR/h$i" --name "h$i" \
    --listen "$(peer_ip "$i"):$PORT" >/dev/null || return 1
  shoal_start "$i"
  wait_for 60 "$n nodes" cluster_is 1 "$n" 3 || return 1
  peer_log "shoal: $(shoal_roles 1 | paste -sd' ')"
}

net_fresh() { peer_teardown >/dev/null 2>&1; rm -rf "$SDIR" "$EDIR"; peer_net_up "$1" || exit 1; }

# ---------------------------------------------------------------- stage: failover
# own.sh spawns with `ip netns exec` (a new mount namespace with its own /sys); the agent is
# exec'd from there with nsenter into this script's mount namespace and the host's netns.
stage_failover() {
  export RAFT_MNT=/proc/$$/ns/mnt
  export OWN_START='
TOKEN=$PEER_STATE/own/token; ADMIN=$PEER_STATE/own/h1/admin.conf
if [ ! -f "$DATA/node.yaml" ]; then
  if [ "$I" = 1 ]; then
    "$SHOAL" init --data-dir "$DATA" --name h1 --listen "$IP:4740" >/dev/null
    ( for k in $(seq 100); do
        t=$("$SHOAL" token create --config "$ADMIN" --server "$IP:4740" 2>/dev/null) && { echo "$t" > "$TOKEN.tmp"; mv "$TOKEN.tmp" "$TOKEN"; exit 0; }
        sleep 0.05; done ) &
  else
    for k in $(seq 200); do [ -s "$TOKEN" ] && break; sleep 0.05; done
    "$SHOAL" join "$IP1:4740" --token "$(cat "$TOKEN")" --data-dir "$DATA" --name "h$I" --listen "$IP:4740" >/dev/null
  fi
fi
NO_COLOR=1 SHOAL_LOG=info exec nsenter --mount="$RAFT_MNT" --net="/run/netns/peer-h$I" "$SHOAL" agent --data-dir "$DATA"'
  export OWN_SEES_ALL='[ "$(SHOAL_LOG=warn "$SHOAL" get nodes -o json --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740" 2>/dev/null | grep -c "\"status\": \"Ready\"")" -ge "$N" ]'
  export OWN_SEES_FAILED='SHOAL_LOG=warn "$SHOAL" get nodes --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740" 2>/dev/null | awk -v v="h$V" '"'"'$1==v && $2=="Down"{f=1} END{exit !f}'"'"''
  # The leader, only once all N are Ready and voting (a restarted node is a voter again).
  export OWN_LEADER='SHOAL_LOG=warn "$SHOAL" get nodes -o json --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740" 2>/dev/null |
  jq -r --argjson n "$N" '"'"'if ([.[]|select(.status=="Ready" and (.role=="voter" or .role=="leader"))]|length)==$n
    then (.[]|select(.role=="leader")|.name|ltrimstr("h")) else empty end'"'"''
  export OWN_WRITE='printf "apiVersion: v1\nkind: Pod\nmetadata: {name: fo-%s-%s-%s}\nspec:\n  nodeSelector: {nonexistent: x}\n  containers: [{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}]\n" "$(date +%s%N)" "$I" "$RANDOM" |
  SHOAL_LOG=warn "$SHOAL" apply -f - --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740"'
  # In the restarted node (own.sh gives it 5 s): wait until it follows a leader other than itself.
  export OWN_REJOIN='for k in $(seq 45); do
  SHOAL_LOG=warn "$SHOAL" get nodes -o json --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740" 2>/dev/null |
    jq -e --arg me "h$I" '"'"'any(.[]; .role=="leader" and .name!=$me)'"'"' >/dev/null && exit 0
  sleep 0.1; done; exit 1'
  N=3 REPS=$REPS SETTLE=$SETTLE TAG=raft STAGES="up failover" "$KIT/own.sh"
}

# shoal_bench CLIENT_HOST SERVER_HOST ARGS...: bench-apply from a host to a node
shoal_bench() {
  local c=$1 h=$2; shift 2
  SHOAL_CONFIG=$ADMIN SHOAL_LOG=warn timeout -k 5 900 nsenter --net="/run/netns/$(peer_ns "$c")" \
    "$SHOAL" bench-apply --server "$(peer_ip "$h"):$PORT" "$@" </dev/null
}

logs_grep() { local p=$1; shift; sed 's/\x1b\[[0-9;]*m//g' "$@" | grep -cE -- "$p"; }   # count, colours stripped

# ---------------------------------------------------------------- stage: latency
stage_latency() {
  local res=$OUTD/raft_latency.tsv l f c target host n line
  : >"$res"; : >"$OUTD/raft_latency.notes"
  net_fresh 4
  shoal_up 3 || return 1
  l=$(shoal_leader 1); f=$((l % 3 + 1))
  peer_log "latency: leader h$l, follower h$f, client in host 4"
  for c in 1 $CONCS; do
    for target in leader follower; do
      host=$l; [[ $target == follower ]] && host=$f
      n=$BENCH_N; ((c > 1)) && n=$((c * BENCH_N / 4))
      shoal_bench 4 "$host" --count "$n" --concurrency "$c" --warmup 50 --delete --prefix "b-$target-c$c" \
        >"$SDIR/bench.out" 2>"$SDIR/bench.err"
      while read -r line; do
        peer_log "$target h$host: $line"
        # op count concurrency ok errors secs per_sec p50 p90 p99 max mean
        rec "$res" "$target" "h$host" $(tr ' ' '\n' <<<"$line" | cut -d= -f2 | paste -sd' ')
      done <"$SDIR/bench.out"
      [[ -s $SDIR/bench.err ]] && peer_log "bench-apply stderr: $(head -3 "$SDIR/bench.err" | paste -sd' ')"
    done
  done
  [[ $(shoal_leader 1) == "$l" ]] || peer_log "warn: the leader changed during the run (now h$(shoal_leader 1))"
  line="agent logs ($LOGD/latency-h*.log): $(logs_grep ' WARN ' "$LOGD"/latency-h*.log) WARN and $(logs_grep ' ERROR ' "$LOGD"/latency-h*.log) ERROR lines; $(logs_grep 'AppendEntries.*no reply within' "$LOGD/latency-h$l.log") AppendEntries timeouts on the leader h$l"
  peer_log "$line"; echo "$line" >>"$OUTD/raft_latency.notes"
  peer_teardown >/dev/null 2>&1
}

# ---------------------------------------------------------------- stage: backlog
# Every committed write wakes the leader's scheduling pass, which reads every pending pod;
# pods no node matches stay pending. Sequential applies to the leader with 0, then B
# pending pods in the store (filled with 64 streams, not timed), B in BACKLOGS.
stage_backlog() {
  local res=$OUTD/raft_backlog.tsv l b have=0 line pid c0 c1 hz
  : >"$res"
  hz=$(getconf CLK_TCK)
  net_fresh 4
  shoal_up 3 || return 1
  l=$(shoal_leader 1); pid=$(peer_pid "shoal-h$l")
  for b in 0 $BACKLOGS; do
    if ((b > have)); then
      shoal_bench 4 "$l" --count $((b - have)) --concurrency 64 --prefix "fill-$have" >/dev/null || return 1
      have=$b
    fi
    sleep 1
    # the probe's pods stay too: the next level starts with B + BENCH_N + 20 pending
    c0=$(peer_cpu_ticks "$pid")
    line=$(shoal_bench 4 "$l" --count "$BENCH_N" --concurrency 1 --warmup 20 --prefix "probe-$b" | awk 'NR==1')
    sleep 0.5   # the leader's last scheduling pass
    c1=$(peer_cpu_ticks "$pid")
    peer_log "backlog $have pending: $line; leader CPU $(((c1 - c0) * 1000 / hz)) ms"
    # pending host op count conc ok errors secs per_sec p50 p90 p99 max mean leader_cpu_ms_per_apply
    rec "$res" "$have" "h$l" $(tr ' ' '\n' <<<"$line" | cut -d= -f2 | paste -sd' ') \
      "$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n=$((BENCH_N + 20)) 'BEGIN{printf "%.2f", t*1000/hz/n}')"
    have=$((have + BENCH_N + 20))
  done
  peer_teardown >/dev/null 2>&1
}

# ---------------------------------------------------------------- stage: idle
# idle_measure SYSTEM RESULT NAME:HOST:ROLE... -> one row per process over IDLE_SECS
idle_measure() {
  local sys=$1 res=$2; shift 2
  local hz spec name i role pid a b
  local -A c0 w0 b0 rs
  hz=$(getconf CLK_TCK)
  local n=$#
  # counters per host pair on the bridge (IPv4 frames only)
  {
    echo "table bridge raftbench {"
    echo "  chain pairs {"
    echo "    type filter hook forward priority 10; policy accept;"
    for ((a = 1; a <= n; a++)); do for ((b = 1; b <= n; b++)); do
      ((a != b)) && echo "    ip saddr $(peer_ip "$a") ip daddr $(peer_ip "$b") counter"
    done; done
    echo "  }"
    echo "}"
  } | ip netns exec "$PEER_CORE" nft -f - || return 1
  for spec in "$@"; do
    IFS=: read -r name i role <<<"$spec"; pid=$(peer_pid "$name")
    c0[$name]=$(peer_cpu_ticks "$pid"); b0[$name]=$(peer_port_bytes "$i")
    w0[$name]=$(awk '/^write_bytes/{print $2}' "/proc/$pid/io")
  done
  sleep "$IDLE_SECS" &   # waited for, so that a signal runs the trap at once
  SLEEP_PID=$!; wait "$SLEEP_PID"; SLEEP_PID=
  for spec in "$@"; do
    IFS=: read -r name i role <<<"$spec"; pid=$(peer_pid "$name")
    peer_alive "$name" || { peer_log "warn: $name died during the idle window"; continue; }
    # system host role rss_kb cpu% write_bytes write_bytes_per_hour port_B/s
    rec "$res" "$sys" "h$i" "$role" "$(peer_rss_kb "$pid")" \
      "$(awk -v a="${c0[$name]}" -v b="$(peer_cpu_ticks "$pid")" -v hz="$hz" -v s="$IDLE_SECS" 'BEGIN{printf "%.3f", 100*(b-a)/hz/s}')" \
      "$(($(awk '/^write_bytes/{print $2}' "/proc/$pid/io") - ${w0[$name]}))" \
      "$(awk -v d="$(($(awk '/^write_bytes/{print $2}' "/proc/$pid/io") - ${w0[$name]}))" -v s="$IDLE_SECS" 'BEGIN{printf "%.0f", d*3600/s}')" \
      "$(awk -v a="${b0[$name]}" -v b="$(peer_port_bytes "$i")" -v s="$IDLE_SECS" 'BEGIN{printf "%.0f", (b-a)/s}')"
  done
  # system a b bytes/s (both directions) per unordered pair
  ip netns exec "$PEER_CORE" nft list table bridge raftbench |
    awk -v s="$IDLE_SECS" -v net="$PEER_NET." -v sys="$sys" '/counter/{
      for (k = 1; k <= NF; k++) { if ($k=="saddr") a=$(k+1); if ($k=="daddr") b=$(k+1); if ($k=="bytes") y=$(k+1) }
      sub(net, "", a); sub(net, "", b); key = (a < b) ? a" "b : b" "a; t[key] += y }
      END { for (k in t) { split(k, p, " "); printf "%s\th%s\th%s\t%.0f\n", sys, p[1], p[2], t[k]/s } }' |
    sort >>"$OUTD/raft_idle_pairs.tsv"
  ip netns exec "$PEER_CORE" nft delete table bridge raftbench
}

etcd_idle() {
  local i cluster specs=() l
  cluster=$(for i in 1 2 3; do printf 'm%s=http://%s:2380\n' "$i" "$(peer_ip "$i")"; done | paste -sd,)
  rm -rf "$EDIR"; mkdir -p "$EDIR"
  for i in 1 2 3; do   # the flags of etcd.sh's etcd_start
    spawn "etcd-m$i" "$i" "$LOGD/idle-etcd-m$i.log" etcd --name "m$i" --data-dir "$EDIR/m$i" \
      --listen-peer-urls "http://$(peer_ip "$i"):2380" --initial-advertise-peer-urls "http://$(peer_ip "$i"):2380" \
      --listen-client-urls "http://$(peer_ip "$i"):2379,http://127.0.0.1:2379" \
      --advertise-client-urls "http://$(peer_ip "$i"):2379" --initial-cluster "$cluster" \
      --initial-cluster-state new --initial-cluster-token peer-cluster \
      --heartbeat-interval 100 --election-timeout 1000 --logger zap --log-outputs stderr
  done
  local eps; eps=$(for i in 1 2 3; do printf 'http://%s:2379\n' "$(peer_ip "$i")"; done | paste -sd,)
  wait_for 30 "etcd leader" eval 'l=$(ip netns exec peer-h1 python3 "$KIT/etcd_tool.py" leader --endpoints "$eps" 2>/dev/null) && [[ $l != none ]]' || return 1
  l=$(ip netns exec peer-h1 python3 "$KIT/etcd_tool.py" leader --endpoints "$eps" | awk '{print $1}')
  sleep 10
  for i in 1 2 3; do specs+=("etcd-m$i:$i:$([[ $i == "$l" ]] && echo leader || echo voter)"); done
  peer_log "etcd idle ${IDLE_SECS}s: ${specs[*]}"
  idle_measure etcd "$OUTD/raft_idle.tsv" "${specs[@]}"
}

stage_idle() {
  local res=$OUTD/raft_idle.tsv specs=() line name st role
  : >"$res"; : >"$OUTD/raft_idle_pairs.tsv"
  net_fresh 4
  shoal_up 3 || return 1
  shoal_add 4 4 || return 1
  sleep 10
  while read -r name st role; do specs+=("shoal-$name:${name#h}:$role"); done < <(shoal_roles 1)
  peer_log "shoal idle ${IDLE_SECS}s: ${specs[*]}"
  idle_measure shoal "$res" "${specs[@]}"
  peer_log "roles after: $(shoal_roles 1 | paste -sd' ')"
  peer_teardown >/dev/null 2>&1
  if ((ETCD)); then
    net_fresh 3
    etcd_idle
    peer_teardown >/dev/null 2>&1
  fi
}

# ---------------------------------------------------------------- stage: scheduler
stage_scheduler() {
  local res=$OUTD/raft_scheduler.tsv r out bin
  : >"$res"
  # build once (the lib's unit tests, release profile), then run the test binary itself
  out=$(cd "$HERE" && cargo test --release --lib --no-run 2>&1) ||
    { peer_log "building the tests failed: $(tail -5 <<<"$out")"; return 1; }
  bin=$(sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))$/\1/p' <<<"$out" | tail -1)
  [[ -n $bin ]] || { peer_log "no unittests executable in: $(tail -3 <<<"$out")"; return 1; }
  bin=$HERE/$bin
  for ((r = 1; r <= SCHED_REPS; r++)); do
    out=$("$bin" scheduler_throughput --ignored --nocapture 2>&1) ||
      { peer_log "scheduler test failed: $(tail -5 <<<"$out")"; return 1; }
    out=$(grep -m1 '^scheduler:' <<<"$out")
    peer_log "scheduler r$r: $out"
    # "scheduler: B of P pods placed on 1000 nodes in T: R placements/s"
    rec "$res" scheduler "$r" "$(awk '{print $2}' <<<"$out")" "$(awk '{for (k=1;k<=NF;k++) if ($k=="placements/s") print $(k-1)}' <<<"$out")" \
      "$(awk '{for (k=1;k<=NF;k++) if ($k=="in") {t=$(k+1); sub(/:$/, "", t); print t}}' <<<"$out")"
  done
}

# ---------------------------------------------------------------- summary
stats_of() { awk "$1" "$2" | peer_stats; }   # AWK-PROGRAM FILE -> n median min max mean

summary() {
  local f
  echo "== bench/raft.sh $(date -u +%FT%TZ) stages=\"$STAGES\" reps=$REPS ($(peer_env_line))"
  echo "   shoal $("$SHOAL" --version 2>/dev/null | awk '{print $2}') ($(cd "$HERE" && git log -1 --format=%h 2>/dev/null)$(cd "$HERE" && git diff --quiet 2>/dev/null || echo +dirty)), etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}')"
  f=$OUTD/own_N3_raft.tsv
  if [[ $STAGES == *failover* && -f $f ]]; then
    echo "-- failover, 3 nodes, kill -9 of the leader -> first committed write (s): n median min max mean"
    echo "shoal  $(stats_of '$1=="failover" && $5!="NA"{print $5}' "$f")   runs: $(awk '$1=="failover"{printf "%s ", $5}' "$f")"
    [[ -f $OUTD/etcd_raft.tsv ]] &&
      echo "etcd   $(stats_of '$1=="failover" && $5!="NA"{print $5}' "$OUTD/etcd_raft.tsv")   runs: $(awk '$1=="failover"{printf "%s ", $5}' "$OUTD/etcd_raft.tsv")"
  fi
  f=$OUTD/raft_latency.tsv
  if [[ $STAGES == *latency* && -f $f ]]; then
    echo "-- apply (Shoal, one QUIC connection, Pending pod) / put (etcd): ops/s and latency ms"
    [[ -f $OUTD/raft_latency.notes ]] && sed 's/^/shoal  /' "$OUTD/raft_latency.notes"
    awk '$3=="apply"||$3=="delete"{printf "shoal  %-6s %-8s %-4s c=%-3s n=%-6s err=%-3s %8.1f/s  p50 %7.2f  p90 %7.2f  p99 %7.2f  max %8.2f\n", $3, $1, $2, $5, $4, $7, $9, $10, $11, $12, $13}' "$f"
    for f in "$OUTD/etcd_bench_raft.jsonl" "$OUTD/etcd_grpc_raft.jsonl"; do
      [[ -f $f ]] || continue
      awk -F'\t' '{print $1"\t"$2}' "$f" | while IFS=$'\t' read -r what js; do
        jq -r --arg w "$what" 'select(.ops_per_s) | "etcd   \($w) c=\(.clients) n=\(.n) err=\(.errors // 0) \(.ops_per_s)/s  p50 \(.p50_ms)  p90 \(.p90_ms)  p99 \(.p99_ms)  max \(.max_ms)"' <<<"$js" 2>/dev/null
      done
    done
  fi
  f=$OUTD/raft_backlog.tsv
  if [[ $STAGES == *backlog* && -f $f ]]; then
    echo "-- sequential apply to the leader with B pods pending (no node matches them)"
    awk '$3=="apply"{printf "shoal  pending=%-6s n=%-5s err=%-3s %7.1f/s  p50 %7.2f  p90 %7.2f  p99 %7.2f  max %8.2f ms  leader CPU %s ms/apply\n", $1, $4, $7, $9, $10, $11, $12, $13, $15}' "$f"
  fi
  f=$OUTD/raft_idle.tsv
  if [[ $STAGES == *idle* && -f $f ]]; then
    echo "-- idle over ${IDLE_SECS}s per node: system host role RSS_KiB CPU% write_bytes write_bytes/h port_B/s(rx+tx, gossip incl.)"
    awk '{printf "%-6s %-3s %-7s %7s KiB  %6s %%  %9s B  %10s B/h  %6s B/s\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$f"
    echo "-- idle bytes/s per host pair on the bridge (both directions, IPv4)"
    awk '{printf "%-6s %s-%s %6s B/s\n", $1, $2, $3, $4}' "$OUTD/raft_idle_pairs.tsv"
    # Raft estimate: leader<->X minus the mean of the pairs without the leader (gossip only)
    awk -v OFS='\t' 'FNR==NR { if ($3=="leader") L[$1]=$2; role[$1" "$2]=$3; next }
      { k[$1]++; sys[$1]; if ($2==L[$1]||$3==L[$1]) { o=($2==L[$1])?$3:$2; lp[$1" "o]=$4 } else { g[$1]+=$4; gn[$1]++ } }
      END { for (s in sys) { gm = gn[s] ? g[s]/gn[s] : 0
              printf "%s: pairs without the leader %.0f B/s mean (%s)\n", s, gm, s=="shoal" ? "gossip only" : "peer-link keep-alives, no gossip"
              for (x in lp) { split(x, p, " "); if (p[1]!=s) continue
                if (s=="shoal") printf "%s: leader<->%s (%s) %.0f B/s, minus that mean: Raft ~%.0f B/s\n", s, p[2], role[s" "p[2]], lp[x], lp[x]-gm
                else printf "%s: leader<->%s (%s) %.0f B/s, all of it etcd peer traffic\n", s, p[2], role[s" "p[2]], lp[x] } } }' \
      "$OUTD/raft_idle.tsv" "$OUTD/raft_idle_pairs.tsv" | sort
  fi
  f=$OUTD/raft_scheduler.tsv
  if [[ $STAGES == *scheduler* && -f $f ]]; then
    echo "-- scheduler, pure function, 1,000 nodes x 10,000 pods: placements/s n median min max mean"
    echo "$(stats_of '{print $4}' "$f")   elapsed: $(awk '{printf "%s ", $5}' "$f")"
  fi
  return 0
}

# ---------------------------------------------------------------- main
peer_log "bench/raft.sh STAGES=\"$STAGES\" REPS=$REPS; $(peer_env_line)"
t_start=$EPOCHREALTIME
etcd_stages=""
for s in $STAGES; do
  peer_log "=== stage $s"
  CUR_STAGE=$s
  case $s in
    failover) stage_failover; etcd_stages+=" failover" ;;
    latency) stage_latency || peer_log "latency stage failed"; etcd_stages+=" bench grpc" ;;
    backlog) stage_backlog || peer_log "backlog stage failed" ;;
    idle) stage_idle || peer_log "idle stage failed" ;;
    scheduler) stage_scheduler ;;
  esac
  peer_teardown >/dev/null 2>&1
done
if ((ETCD)) && [[ -n $etcd_stages ]]; then
  peer_log "=== etcd:$etcd_stages"
  REPS=$REPS SETTLE=$SETTLE BENCH_N=$BENCH_N TAG=raft STAGES="${etcd_stages# }" "$KIT/etcd.sh"
fi
summary | tee "$SUMMARY"
peer_log "done in $(peer_dt "$t_start" "$EPOCHREALTIME") s; results in $OUTD"
