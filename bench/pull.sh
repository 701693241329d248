#!/usr/bin/env bash
# bench/pull.sh - pulling a multi-layer image from a registry on loopback:
# `shoal image pull` (into the store, every layer unpacked) side by side
# with `skopeo copy` (to an OCI layout, nothing unpacked) from the same
# registry over the same TLS, and the agent's peak RSS (VmHWM) for two
# image sizes (layers are streamed: it should not grow with the image).
# Root. Needs docker-registry, skopeo, openssl (installs them if missing).
# Env: REPS (5), LAYERS (5), LAYER_MB (10), BIG_LAYER_MB (40),
#      SHOAL ($CARGO_TARGET_DIR or target, then /release/shoal).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHOAL=${SHOAL:-${CARGO_TARGET_DIR:-$HERE/target}/release/shoal}
REPS=${REPS:-5} LAYERS=${LAYERS:-5} LAYER_MB=${LAYER_MB:-10} BIG_LAYER_MB=${BIG_LAYER_MB:-40}
[[ -x $SHOAL ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for t in docker-registry skopeo openssl; do command -v $t >/dev/null || "$HERE/scripts/deps.sh"; done
W=/tmp/shoal-bench-pull-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  umount -R "$W/node" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/certs"

# TLS for 127.0.0.1 from a CA of our own.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=shoal-bench-ca \
  -keyout "$W/ca.key" -out "$W/certs/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$W/server.key" -out "$W/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$W/ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/certs/ca.crt" -CAkey "$W/ca.key" -CAcreateserial \
  -days 1 -extfile "$W/ext" -out "$W/server.crt" 2>/dev/null
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat > "$W/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: $REG, tls: {certificate: $W/server.crt, key: $W/server.key}}
EOF
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

# An OCI layout NAME with COUNT layers of MB megabytes of random data each
# (incompressible: the bytes on the wire are the layer's size).
layout() {
  local name=$1 count=$2 mb=$3 dir="$W/oci-$1" diffs="" layers=""
  mkdir -p "$dir/blobs/sha256"
  for i in $(seq "$count"); do
    mkdir -p "$W/l/$name$i/data"
    head -c "$((mb * 1000000))" /dev/urandom > "$W/l/$name$i/data/blob$i"
    tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$W/l/$name$i" -cf "$W/l/$name$i.tar" .
    gzip -1 -n -c "$W/l/$name$i.tar" > "$W/l/$name$i.tgz"
    local d g s
    d=$(sha256sum < "$W/l/$name$i.tar" | cut -d' ' -f1)
    g=$(sha256sum < "$W/l/$name$i.tgz" | cut -d' ' -f1)
    s=$(stat -c %s "$W/l/$name$i.tgz")
    cp "$W/l/$name$i.tgz" "$dir/blobs/sha256/$g"
    diffs="$diffs${diffs:+,}\"sha256:$d\""
    layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$g\",\"size\":$s}"
  done
  local arch
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=arm ;; esac
  printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$arch" "$diffs" > "$W/cfg"
  local c m
  c=$(sha256sum < "$W/cfg" | cut -d' ' -f1); cp "$W/cfg" "$dir/blobs/sha256/$c"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$c" "$(stat -c %s "$W/cfg")" "$layers" > "$W/man"
  m=$(sha256sum < "$W/man" | cut -d' ' -f1); cp "$W/man" "$dir/blobs/sha256/$m"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$m" "$(stat -c %s "$W/man")" > "$dir/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
  skopeo copy -q --dest-cert-dir "$W/certs" "oci:$dir:1" "docker://$REG/bench/$name:1"
  rm -rf "$W/l"
}
layout small "$LAYERS" "$LAYER_MB"
layout big "$LAYERS" "$BIG_LAYER_MB"

# A node whose registries.yaml trusts the CA.
start_node() {
  rm -rf "$W/node"; mkdir -p "$W/node"
  links > "$W/links.before"; tables > "$W/tables.before"
  printf 'configs:\n  "%s":\n    tls: {ca_file: %s}\n' "$REG" "$W/certs/ca.crt" > "$W/node/registries.yaml"
  local port
  port=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "$SHOAL" up --data-dir "$W/node" --name benchpull --listen "127.0.0.1:$port" >"$W/agent.log" 2>&1 &
  AGENT=$!; PIDS+=($AGENT)
  for _ in $(seq 200); do [ -f "$W/node/admin.conf" ] && SHOAL_CONFIG=$W/node/admin.conf "$SHOAL" get nodes >/dev/null 2>&1 && return; sleep 0.1; done
  echo "agent did not start" >&2; cat "$W/agent.log" >&2; exit 1
}
# The node's bridge and nftables table (named shoal*) are the ones that
# were not there before it started; they go with it.
links() { ip -o link | awk -F': ' '{print $2}' | grep '^shoal' | sort; }
tables() { nft list tables | awk '{print $3}' | grep '^shoal' | sort; }
stop_node() {
  kill "$AGENT"; wait "$AGENT" 2>/dev/null || true; umount -R "$W/node" 2>/dev/null || true
  for l in $(comm -13 "$W/links.before" <(links)); do ip link del "$l" 2>/dev/null || true; done
  for t in $(comm -13 "$W/tables.before" <(tables)); do nft delete table ip "$t" 2>/dev/null || true; done
}
export SHOAL_CONFIG=$W/node/admin.conf
secs() { local a b; a=$(date +%s.%N); "$@" >/dev/null; b=$(date +%s.%N); echo "$b - $a" | bc; }
median() { sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$AGENT/status"; }

MB=$((LAYERS * LAYER_MB))
echo "image: $LAYERS layers x $LAYER_MB MB (random), registry https://$REG, $REPS runs each, alternating"
start_node
RSS0=$(hwm)
: > "$W/shoal.t"; : > "$W/skopeo.t"
for r in $(seq "$REPS"); do
  SHOAL_CONFIG=$W/node/admin.conf "$SHOAL" image rm "$REG/bench/small:1" >/dev/null 2>&1 || true
  secs "$SHOAL" image pull "$REG/bench/small:1" >> "$W/shoal.t"
  rm -rf "$W/skopeo-out"
  secs skopeo copy -q --src-cert-dir "$W/certs" "docker://$REG/bench/small:1" "oci:$W/skopeo-out:1" >> "$W/skopeo.t"
done
RSS_SMALL=$(hwm)
stop_node
printf 'shoal image pull  (%d MB): median %ss  runs: %s\n' "$MB" "$(median < "$W/shoal.t")" "$(tr '\n' ' ' < "$W/shoal.t")"
printf 'skopeo copy       (%d MB): median %ss  runs: %s\n' "$MB" "$(median < "$W/skopeo.t")" "$(tr '\n' ' ' < "$W/skopeo.t")"

# Peak RSS: a fresh agent per image size.
start_node
"$SHOAL" image pull "$REG/bench/big:1" >/dev/null
RSS_BIG=$(hwm)
stop_node
printf 'agent VmHWM: idle %s kB; after pulling %d MB x%d: %s kB; fresh agent after one %d MB pull: %s kB\n' \
  "$RSS0" "$MB" "$REPS" "$RSS_SMALL" "$((LAYERS * BIG_LAYER_MB))" "$RSS_BIG"
