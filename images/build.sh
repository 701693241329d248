#!/bin/sh
# Builds the project's images from Debian's busybox-static into OCI archives:
#   images/out/busybox.tar          localhost/busybox:latest     (OCI image layout)
#   images/out/hello-http.tar       localhost/hello-http:latest  (OCI, two layers)
#   images/out/busybox-docker.tar   localhost/busybox-docker:latest (docker save format)
#   images/out/web-v1.tar, web-v2.tar  localhost/web:v1, :v2 (httpd on 8080; two versions)
#   images/out/netcheck.tar         localhost/netcheck:latest  (busybox + udpecho and resolve, static UDP and DNS tools)
#   images/out/nginx.tar, gb-frontend.tar, fluentd.tar  stand-ins named as the images of
#                                   the Kubernetes docs' Deployment, ReplicaSet, DaemonSet examples
# Usage: images/build.sh   (needs /bin/busybox from busybox-static, cc with a static libc, sha256sum, gzip, tar)
# For another architecture (cross/smoke.sh): BUSYBOX=its busybox-static,
# IMAGE_ARCH and IMAGE_VARIANT as OCI names them (arm64; arm, v7), CC its
# cross gcc, OUT another directory.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
bb=${BUSYBOX:-/bin/busybox}
cc=${CC:-cc}
[ -x "$bb" ] || { echo "build.sh: $bb missing: apt-get install busybox-static" >&2; exit 1; }
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; armv7l|armv6l) arch=arm ;; *) arch=$(uname -m) ;; esac
arch=${IMAGE_ARCH:-$arch}
variant=${IMAGE_VARIANT:+\"variant\":\"$IMAGE_VARIANT\",}
work=$(mktemp -d /tmp/shoal-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
mktar() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .; }

# Layer 1: busybox with its applets, passwd and group.
base="$work/base"
mkdir -p "$base/bin" "$base/etc" "$base/tmp" "$base/root" "$base/proc" "$base/sys" "$base/dev"
cp "$bb" "$base/bin/busybox"
for a in $("$bb" --list); do [ "$a" = busybox ] || ln -sf busybox "$base/bin/$a"; done
cp "$here/busybox/passwd" "$here/busybox/group" "$base/etc/"
chmod 1777 "$base/tmp"
# Layer 2 of hello-http: the page and nothing else.
web="$work/web"
mkdir -p "$web/www"
cp "$here/hello-http/index.html" "$web/www/index.html"

# Layer 2 of netcheck: udpecho, static, as Debian's busybox nc has no UDP;
# resolve, static, asks DNS as glibc does (busybox's nslookup searches only
# names without a dot).
net="$work/net"
mkdir -p "$net/bin"
"$cc" -static -O2 -o "$net/bin/udpecho" "$here/netcheck/udpecho.c"
"$cc" -static -O2 -o "$net/bin/resolve" "$here/netcheck/resolve.c" -lresolv

# layer DIR NAME -> sets L_DIFF, L_DIGEST, L_SIZE; blob in $2/blobs
layer() {
  mktar "$1" "$work/$2.tar"
  L_DIFF=$(sha "$work/$2.tar")
  gzip -n -c "$work/$2.tar" > "$work/$2.tar.gz"
  L_DIGEST=$(sha "$work/$2.tar.gz")
  L_SIZE=$(size "$work/$2.tar.gz")
}

# oci NAME REF CMD_JSON LAYERNAMES...
oci() {
  name=$1 ref=$2 cmd=$3; shift 3
  dir="$work/oci-$name"; mkdir -p "$dir/blobs/sha256"
  diffs="" layers=""
  for l in "$@"; do
    cp "$work/$l.tar.gz" "$dir/blobs/sha256/$(sha "$work/$l.tar.gz")"
    diffs="$diffs${diffs:+,}\"sha256:$(sha "$work/$l.tar")\""
    layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$(sha "$work/$l.tar.gz")\",\"size\":$(size "$work/$l.tar.gz")}"
  done
  printf '{"architecture":"%s",'"$variant"'"os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$cmd" "$diffs" > "$work/config-$name.json"
  cd_="$(sha "$work/config-$name.json")"
  cp "$work/config-$name.json" "$dir/blobs/sha256/$cd_"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cd_" "$(size "$work/config-$name.json")" "$layers" > "$work/manifest-$name.json"
  md="$(sha "$work/manifest-$name.json")"
  cp "$work/manifest-$name.json" "$dir/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"latest"}}]}' \
    "$md" "$(size "$work/manifest-$name.json")" "$ref" > "$dir/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
  mktar "$dir" "$out/$name.tar"
  echo "built $out/$name.tar ($ref)"
}

layer "$base" base
layer "$web" web
layer "$net" net
oci busybox localhost/busybox:latest '["sh"]' base
oci hello-http localhost/hello-http:latest '["httpd","-f","-v","-p","8080","-h","/www"]' base web
oci netcheck localhost/netcheck:latest '["sh"]' base net
# Two versions of one web image, for rolling updates (they differ in their command).
oci web-v1 localhost/web:v1 '["httpd","-f","-v","-p","8080","-h","/www"]' base web
oci web-v2 localhost/web:v2 '["httpd","-f","-vv","-p","8080","-h","/www"]' base web
# Stand-ins named as the images of the Kubernetes documentation's own
# Deployment, ReplicaSet and DaemonSet examples, so those manifests apply unchanged.
oci nginx docker.io/library/nginx:1.14.2 '["httpd","-f","-v","-p","80","-h","/www"]' base web
oci gb-frontend us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5 '["httpd","-f","-v","-p","80","-h","/www"]' base web
oci fluentd quay.io/fluentd_elasticsearch/fluentd:v2.5.2 '["sh","-c","while true; do sleep 3600; done"]' base
# ... and of the DNS page's examples (busybox:1.28 with the DNS tool).
oci nginx-latest docker.io/library/nginx:latest '["httpd","-f","-v","-p","80","-h","/www"]' base web
oci busybox-128 docker.io/library/busybox:1.28 '["sh"]' base net

# docker save format: plain layer tars, config named by its digest.
d="$work/docker"; mkdir -p "$d/base"
cp "$work/base.tar" "$d/base/layer.tar"
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$arch" "$(sha "$work/base.tar")" > "$work/dcfg.json"
dc=$(sha "$work/dcfg.json"); cp "$work/dcfg.json" "$d/$dc.json"
printf '[{"Config":"%s.json","RepoTags":["localhost/busybox-docker:latest"],"Layers":["base/layer.tar"]}]' "$dc" > "$d/manifest.json"
mktar "$d" "$out/busybox-docker.tar"
echo "built $out/busybox-docker.tar (localhost/busybox-docker:latest)"
