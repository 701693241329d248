#!/bin/sh
# Smoke-runs cross/out/shoal-ARCH (aarch64 or armv7l) under qemu-user, as root:
#   1. --version
#   2. init, then agent answering `get nodes` (the binary under qemu-user)
#   3. a pod from an ARCH image built by images/build.sh from Debian's
#      busybox-static for ARCH; its container prints `uname -m`
# The agent runs in a network namespace of its own (shoal-smoke-ARCH-PID).
# Step 3 needs binfmt_misc: the agent starts its shims and containers by
# exec, which the kernel hands to qemu only through a binfmt entry; one is
# registered as shoal-qemu-ARCH (flag F) unless the host has one. Every
# namespace, entry, process, mount and file made here is removed on exit.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/arch.sh"
a=${1:?usage: cross/smoke.sh aarch64|armv7l}
arch_vars "$a"
[ -n "$QEMU" ] || { echo "smoke.sh: $a is this machine's own architecture" >&2; exit 2; }
bin="$here/out/shoal-$a"
[ -x "$bin" ] || { echo "smoke.sh: no $bin: run cross/build.sh $a" >&2; exit 1; }
qemu=${QEMU_BIN:-/usr/bin/$QEMU}   # QEMU_BIN: another build of the emulator
ns=shoal-smoke-$a-$$
dir=/tmp/shoal-smoke-$a-$$
prefix=shoal-$(printf %s "$dir" | sha256sum | cut -c1-8)
binfmt=/proc/sys/fs/binfmt_misc
ours=""
agent=""

cleanup() {
  set +e
  if [ -n "$agent" ]; then
    kill "$agent" 2>/dev/null
    i=0; while kill -0 "$agent" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -9 "$agent" 2>/dev/null
  fi
  # Shims (their command line names the data dir) and containers (in our cgroups).
  for p in $(grep -l -s "$dir" /proc/[0-9]*/cmdline | cut -d/ -f3); do kill -9 "$p" 2>/dev/null; done
  for f in $(find /sys/fs/cgroup -path "*/$prefix*" -name cgroup.procs 2>/dev/null); do
    for p in $(cat "$f"); do kill -9 "$p" 2>/dev/null; done
  done
  sleep 0.2
  find /sys/fs/cgroup -depth -type d -path "*/$prefix*" -exec rmdir {} + 2>/dev/null
  grep " $dir" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$dir" "$dir.log"
  ip netns del "$ns" 2>/dev/null
  [ -z "$ours" ] || echo -1 > "$binfmt/$ours"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step() { printf '\n== %s: %s\n' "$a" "$*"; }
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
cli() { in_ns env SHOAL_CONFIG="$dir/admin.conf" SHOAL_LOG=warn "$qemu" "$bin" "$@"; }

step "1. --version under $QEMU"
"$qemu" "$bin" --version

step "2. init and agent under $QEMU, in network namespace $ns"
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns "$qemu" "$bin" init --data-dir "$dir" --listen 127.0.0.1:4740 --name "smoke-$a" >/dev/null
SHOAL_LOG=info in_ns "$qemu" "$bin" agent --data-dir "$dir" > "$dir.log" 2>&1 &
agent=$!
i=0
t0=$(date +%s)
# Each try may wait out the CLI's own 10-s connect timeout: the limit is time.
until cli get nodes >/dev/null 2>&1; do
  if [ $(( $(date +%s) - t0 )) -ge 60 ] || ! kill -0 "$agent" 2>/dev/null; then
    echo "agent did not answer in 60 s; its log:"; cat "$dir.log"; exit 1
  fi
  sleep 0.1
done
echo "agent answered after $(( $(date +%s) - t0 )) s"
cli get nodes -o wide

step "3. a pod from a $OCI${VARIANT:+/$VARIANT} image"
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
fi
[ -e "$binfmt/register" ] || { echo "SKIPPED step 3: binfmt_misc cannot be mounted here, so the kernel cannot exec $a binaries for shims and containers"; exit 3; }
name=qemu-$(echo "$QEMU" | sed 's/^qemu-//; s/-static$//')
if [ "$(head -1 "$binfmt/$name" 2>/dev/null)" = enabled ]; then
  echo "using the host's binfmt entry $name"
else
  conf=/usr/lib/binfmt.d/$name.conf
  [ -f "$conf" ] || { echo "no $conf (qemu-user-static)" >&2; exit 1; }
  ours=shoal-$name
  [ ! -e "$binfmt/$ours" ] || echo -1 > "$binfmt/$ours"
  # Debian's magic and mask, our name, the static emulator; F opens it now,
  # so containers with their own root find it too.
  awk -F: -v n="$ours" -v q="$qemu" '{ printf ":%s:%s:%s:%s:%s:%s:F\n", n, $3, $4, $5, $6, q }' "$conf" > "$binfmt/register"
  echo "registered binfmt entry $ours -> $qemu"
fi
# Ask the emulator first for what a container start needs: qemu-user (7.2
# and 10.0 alike) refuses clone(2) with CLONE_PARENT or namespace flags,
# which libcontainer's intermediate and init processes are made with.
"$CROSS_CC" -static -O -o "$dir/probe" "$here/probe.c"
echo "what $(basename "$qemu") lets a $a process do:"
if ! "$qemu" "$dir/probe"; then
  echo "step 3 NOT POSSIBLE under qemu-user: the emulator refuses a call above that"
  echo "every container start needs (EINVAL comes from qemu, not the kernel: the"
  echo "same calls succeed natively). Steps 1 and 2 passed."
  echo "smoke-run of $a: steps 1-2 passed, step 3 not possible under qemu-user"
  exit 0
fi
imgs="$dir/images"
BUSYBOX="$here/work/$a/busybox" IMAGE_ARCH=$OCI IMAGE_VARIANT=$VARIANT CC=$CROSS_CC OUT="$imgs" \
  "$here/../images/build.sh" >/dev/null
cli image import "$imgs/busybox.tar"
cli apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: smoke
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: localhost/busybox:latest
    command: ["sh", "-c", "echo machine=\$(uname -m); echo smoke-ok"]
YAML
i=0
until cli logs smoke 2>/dev/null | grep -q smoke-ok; do
  i=$((i+1))
  if [ $i -ge 300 ]; then
    echo "the pod did not print in 60 s:"; cli describe pod smoke; tail -30 "$dir.log"
    exit 1
  fi
  sleep 0.2
done
cli logs smoke
cli get pods -o wide
cli delete pod smoke >/dev/null
echo "smoke-run of $a passed"
