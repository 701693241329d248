#!/bin/sh
# The first command: set up this machine, build Shoal, start a one-node
# cluster on its embedded defaults (data in /var/lib/shoal, UDP 4740) and run
# the demo pod from images/. Run as root. The agent keeps running afterwards.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (containers, cgroups, mounts)" >&2; exit 1; }
scripts/deps.sh
cargo build --release
images/build.sh
bin=target/release/shoal
data=/var/lib/shoal
mkdir -p "$data"
if ! "$bin" --config "$data/admin.conf" get pods >/dev/null 2>&1; then
  nohup "$bin" up --data-dir "$data" > /var/log/shoal.log 2>&1 &
  echo $! > "$data/agent.pid"
  echo "shoal agent started (pid $!, log /var/log/shoal.log)"
  i=0; until "$bin" --config "$data/admin.conf" get pods >/dev/null 2>&1; do
    i=$((i+1)); [ $i -lt 100 ] || { cat /var/log/shoal.log; exit 1; }; sleep 0.1
  done
fi
export SHOAL_CONFIG="$data/admin.conf"
for i in busybox hello-http; do "$bin" image import "images/out/$i.tar"; done
"$bin" apply -f examples/hello.yaml
i=0; until "$bin" logs hello -c client 2>/dev/null | grep -q Hello; do
  i=$((i+1)); [ $i -lt 150 ] || { "$bin" describe pod hello; exit 1; }; sleep 0.2
done
"$bin" get nodes
"$bin" get pods -o wide
echo "--- shoal logs hello -c client"
"$bin" logs hello -c client | head -3
echo
echo "Shoal runs. Try: SHOAL_CONFIG=$data/admin.conf $bin describe pod hello"
echo "Stop the demo: $bin delete pod hello; stop the agent: kill \$(cat $data/agent.pid)"
