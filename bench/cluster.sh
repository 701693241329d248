#!/usr/bin/env bash
# bench/cluster.sh - Shoal's membership measured in the shared netns harness
# (../shared/bench/cluster), side by side with HashiCorp Serf. Root.
#   bench/cluster.sh shoal    # N=5: formation, idle, kill -9 x REPS, partition x REPS
#   bench/cluster.sh serf     # the same stages for Serf (LAN profile)
#   bench/cluster.sh soak     # 5 Shoal nodes idle for SOAK_SECS (600), counting Down/Suspect marks
#   bench/cluster.sh join     # N-1 nodes up; REPS times: join host N (join + agent start) until all see N
#   bench/cluster.sh gossip   # N nodes idle: gossip's own bytes per node over IDLE_SECS (60), from `shoal info`
#   bench/cluster.sh kill     # kill -9 x REPS as the kit's stage, but each at a random point of the probe period
# Env: N (5), REPS (10), SHOAL ($CARGO_TARGET_DIR or target, then /release/shoal), KIT (../shared/bench/cluster).
# Results: $PEER_STATE/results/{own_N5_shoal,serf_N5}.{tsv,summary}; soak prints its counts.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-$(cd "$HERE/../shared/bench/cluster" && pwd)}
export SHOAL=${SHOAL:-${CARGO_TARGET_DIR:-$HERE/target}/release/shoal}
export N=${N:-5} REPS=${REPS:-10}
export PEER_STATE=${PEER_STATE:-/tmp/peer-cluster}
[[ -x $SHOAL ]] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v jq >/dev/null || "$HERE/scripts/deps.sh" jq

# Runs in each host (own.sh exports I, IP, IP1, N, V, DATA). Host 1 inits and,
# once its agent answers, writes a join token; the others wait for it and join.
# The last command execs the agent, so own.sh tracks the agent's own pid.
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
exec "$SHOAL" agent --data-dir "$DATA"'
export OWN_SEES_ALL='[ "$("$SHOAL" get nodes -o json --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740" 2>/dev/null | grep -c "\"status\": \"Ready\"")" -ge "$N" ]'
export OWN_SEES_FAILED='"$SHOAL" get nodes --config "$PEER_STATE/own/h1/admin.conf" --server "$IP:4740" 2>/dev/null | awk -v v="h$V" '"'"'$1==v && $2=="Down"{f=1} END{exit !f}'"'"''

case ${1:-} in
  shoal)
    TAG=shoal STAGES=${STAGES:-"up idle kill partition"} "$KIT/own.sh" ;;
  serf)
    "$KIT/setup.sh" >/dev/null
    STAGES=${STAGES:-"formation idle kill partition"} "$KIT/serf.sh" ;;
  soak | join | gossip | kill)
    SOAK_SECS=${SOAK_SECS:-600}
    . "$KIT/lib.sh"
    trap 'peer_teardown >/dev/null 2>&1; rm -rf "$PEER_STATE/own"' EXIT
    peer_teardown >/dev/null 2>&1; rm -rf "$PEER_STATE/own"; mkdir -p "$PEER_STATE/own"
    peer_net_up "$N"
    export IP1; IP1=$(peer_ip 1)
    up=$N; [[ $1 == join ]] && up=$((N - 1))
    for ((i = 1; i <= up; i++)); do
      mkdir -p "$PEER_STATE/own/h$i"
      I=$i IP=$(peer_ip "$i") DATA=$PEER_STATE/own/h$i peer_spawn "own-h$i" "$i" "$PEER_STATE/own/h$i.log" \
        env SHOAL_LOG=info bash -c "$OWN_START" >/dev/null
      sleep 0.2
    done
    r=$(N=$up peer_until "$EPOCHREALTIME" 60 0.2 "$OWN_SEES_ALL" $(seq 1 "$up"))
    echo "formed: $r"
    if [[ $1 == join ]]; then
      for ((r = 1; r <= REPS; r++)); do
        rm -rf "$PEER_STATE/own/h$N"; mkdir -p "$PEER_STATE/own/h$N"
        t0=$EPOCHREALTIME
        I=$N IP=$(peer_ip "$N") DATA=$PEER_STATE/own/h$N peer_spawn "own-h$N" "$N" "$PEER_STATE/own/h$N.log" \
          bash -c "$OWN_START" >/dev/null
        # The members first, then the joiner: a check against a node whose agent
        # is not up yet blocks a whole polling round, which would add to the others.
        old=$(peer_until "$t0" 30 0.05 "$OWN_SEES_ALL" $(seq 1 $((N - 1))))
        new=$(peer_until "$t0" 30 0.05 "$OWN_SEES_ALL" "$N")
        res="members: ${old% * *} joiner: ${new% * *}"
        echo "join r$r: first/all seconds: $res"
        ip netns exec "$(peer_ns "$N")" "$SHOAL" leave --data-dir "$PEER_STATE/own/h$N" >/dev/null
        sleep 1; peer_kill "own-h$N" KILL; sleep 1
      done
      exit 0
    fi
    if [[ $1 == kill ]]; then
      # The kit's kill stage sleeps a fixed 5 s after the last victim is back,
      # so its kills all fall at about one phase of the probe periods (which
      # start on the wall clock's 900-ms boundaries). Here each kill comes
      # 3-4 s after, at a random phase, which is printed.
      export V
      : > "$PEER_STATE/own/kill.tsv"
      for ((r = 1; r <= REPS; r++)); do
        V=$((2 + (r - 1) % (N - 1)))
        sleep "$(awk -v r="$RANDOM" 'BEGIN{printf "%.3f", 3 + r % 1000 / 1000}')"
        t0=$EPOCHREALTIME
        kill -9 "$(peer_pid "own-h$V")"
        res=$(peer_until "$t0" 30 0.1 "$OWN_SEES_FAILED" $(seq 1 "$N" | grep -vx "$V"))
        phase=$(awk -v t="$t0" 'BEGIN{printf "%d", (t * 1000) % 900}')
        echo "kill r$r victim h$V at phase $phase ms: first/all/seen/total=$res"
        echo "$res" >> "$PEER_STATE/own/kill.tsv"
        peer_kill "own-h$V" KILL
        I=$V IP=$(peer_ip "$V") DATA=$PEER_STATE/own/h$V peer_spawn "own-h$V" "$V" "$PEER_STATE/own/h$V.log" \
          env SHOAL_LOG=info bash -c "$OWN_START" >/dev/null
        peer_until "$EPOCHREALTIME" 30 0.2 "$OWN_SEES_ALL" $(seq 1 "$N") >/dev/null
      done
      sort -n -k2 "$PEER_STATE/own/kill.tsv" | awk '{a[NR]=$2} END{printf "kill -> all survivors see Down, %d runs: median %.3f s, max %.3f s\n", NR, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[NR]}'
      exit 0
    fi
    if [[ $1 == gossip ]]; then
      # Gossip shares its UDP port with Raft and the API, so its bytes come from
      # its own QUIC connections' counters (`shoal info`), with Ethernet, IP and
      # UDP headers added as a bridge port counts them; the port's whole count
      # (Raft included) is printed beside it.
      info() { ip netns exec "$(peer_ns "$1")" "$SHOAL" info -o json --config "$PEER_STATE/own/h1/admin.conf" --server "$(peer_ip "$1"):4740"; }
      wire='def w: .udpTx.bytes + .udpRx.bytes + 42 * (.udpTx.datagrams + .udpRx.datagrams)'
      sleep "${SETTLE:-10}"
      declare -a g0 p0 k0
      for ((i = 1; i <= N; i++)); do
        info "$i" > "$PEER_STATE/own/info0.h$i.json"
        p0[i]=$(peer_port_bytes "$i")
      done
      sleep "${IDLE_SECS:-60}"
      for ((i = 1; i <= N; i++)); do
        info "$i" > "$PEER_STATE/own/info1.h$i.json"
        p1=$(peer_port_bytes "$i")
        jq -rn --slurpfile a "$PEER_STATE/own/info0.h$i.json" --slurpfile b "$PEER_STATE/own/info1.h$i.json" \
          --argjson port "$(( p1 - p0[i] ))" --arg host "h$i" \
          "$wire"'; (($b[0].uptimeMs - $a[0].uptimeMs) / 1000) as $s
           | ((($b[0] | w) - ($a[0] | w)) / $s) as $g
           | "\($host)\tgossip \($g | floor) B/s (rx+tx, on the wire)\twhole port \($port / $s | floor) B/s\t"
             + ([$b[0].sent | to_entries[] | .key as $k | "\($k) \((.value.bytes - ($a[0].sent[$k].bytes // 0)) / $s * 10 | floor / 10) B/s"] | join(", "))'
      done
      echo "h2 as \`shoal info\` shows it:"
      ip netns exec "$(peer_ns 2)" "$SHOAL" info --config "$PEER_STATE/own/h1/admin.conf" --server "$(peer_ip 2):4740"
      exit 0
    fi
    sleep "$SOAK_SECS"
    down=$(cat "$PEER_STATE"/own/h*.log | grep "member status" | grep -c "to=Down")
    susp=$(cat "$PEER_STATE"/own/h*.log | grep "member status" | grep -c "to=Suspect")
    echo "soak ${SOAK_SECS}s N=$N: false Down marks: $down, Suspect marks: $susp"
    ;;
  *) sed -n 2,9p "$0"; exit 1 ;;
esac
