#!/bin/sh
# Pod start latency: time from `shoal apply` until the container's process
# runs (the pod's startedAt, stamped when the shim reports the pid), for a
# locally present image. Also idle RSS with 0 and N pods, idle disk writes.
# Usage (as root): bench/pod_start.sh [N=20]   (builds nothing; needs target/release/shoal)
set -eu
cd "$(dirname "$0")/.."
N=${1:-20}
bin=$PWD/target/release/shoal
data=/tmp/shoal-bench-$$
port=47$(( $$ % 90 + 10 ))
mkdir -p $data
"$bin" up --data-dir $data --listen 127.0.0.1:$port > $data.log 2>&1 &
agent=$!
cleanup() {
  kill -9 $agent 2>/dev/null || true
  for p in $(pgrep -f "shim run $data" || true); do kill -9 $p 2>/dev/null || true; done
  prefix=shoal-$(printf %s "$data" | sha256sum | cut -c1-8)
  for c in /sys/fs/cgroup/pids/$prefix /sys/fs/cgroup/$prefix; do
    [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} \; | while read p; do kill -9 "$p" 2>/dev/null || true; done
  done
  sleep 0.5
  awk '{print $5}' /proc/self/mountinfo | grep "^$data" | sort -r | while read m; do umount -l "$m"; done
  for c in /sys/fs/cgroup/*/$prefix /sys/fs/cgroup/$prefix; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  rm -rf $data $data.log
}
trap cleanup EXIT
export SHOAL_CONFIG=$data/admin.conf
i=0; until "$bin" get pods >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
"$bin" image import images/out/busybox.tar >/dev/null
sleep 2
rss() { awk '/VmRSS/{print $2}' /proc/$agent/status; }
echo "idle RSS, 0 pods: $(rss) kB"
lat=""
for n in $(seq 1 $N); do
  t0=$(date +%s%3N)
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p%s}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, "3600"]}\n' $n | "$bin" apply -f - >/dev/null
  while :; do
    s=$("$bin" get pods p$n -o json | jq -r '.status.containerStatuses[0].state.running.startedAt // empty')
    [ -n "$s" ] && break
    sleep 0.02
  done
  lat="$lat $((s - t0))"
done
echo "pod start latency ms (apply -> process runs), $N pods:$lat"
echo "$lat" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, p90 %d ms\n", a[int((NR+1)/2)], a[int(NR*0.9+0.5)]}'
sleep 5
echo "idle RSS, $N pods: $(rss) kB (agent); shims: $(for p in $(pgrep -f "shim run $data"); do awk '/VmRSS/{print $2}' /proc/$p/status; done | awk '{s+=$1; n++} END {printf "%d processes, %d kB total", n, s}')"
w0=$(awk '/^write_bytes/{print $2}' /proc/$agent/io)
secs=${IDLE_SECS:-120}
sleep $secs
w1=$(awk '/^write_bytes/{print $2}' /proc/$agent/io)
echo "idle disk writes: $((w1 - w0)) bytes in ${secs}s with $N pods => $(( (w1 - w0) * 3600 / secs )) bytes/hour"
