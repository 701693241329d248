#!/bin/sh
# Builds release binaries for ARCH... (x86_64 aarch64 armv7l, as uname -m
# names them; default all three) into cross/out/shoal-<arch>, prints their
# sizes, then smoke-runs each ARM one under qemu-user (cross/smoke.sh).
# Installs what it needs first (cross/deps.sh). Run as root.
#   cross/build.sh                 # all three, smoke-run aarch64 and armv7l
#   cross/build.sh aarch64         # one
#   SMOKE=0 cross/build.sh         # build only
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/arch.sh"
arches=${*:-$ALL_ARCHES}
for a in $arches; do arch_vars "$a"; done
"$here/deps.sh" $arches
cd "$here/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
mkdir -p "$here/out"
for a in $arches; do
  arch_vars "$a"
  t=$(echo "$TRIPLE" | tr 'a-z-' 'A-Z_')
  u=$(echo "$TRIPLE" | tr '-' '_')
  start=$(date +%s)
  # libseccomp from Debian's multiarch library directory, linked statically;
  # sqlite (rusqlite's bundled copy) and ring's assembly through the cross gcc.
  env "CARGO_TARGET_${t}_LINKER=$CROSS_CC" "CC_$u=$CROSS_CC" "AR_$u=$CROSS_AR" \
    PKG_CONFIG_ALLOW_CROSS=1 "PKG_CONFIG_LIBDIR=/usr/lib/$GNU/pkgconfig" \
    LIBSECCOMP_LINK_TYPE=static "LIBSECCOMP_LIB_PATH=/usr/lib/$GNU" \
    cargo build --release --locked --target "$TRIPLE" --bin shoal
  cp "$CARGO_TARGET_DIR/$TRIPLE/release/shoal" "$here/out/shoal-$a"
  echo "built cross/out/shoal-$a: $(stat -c %s "$here/out/shoal-$a") bytes in $(( $(date +%s) - start )) s"
done
for a in $arches; do
  printf '%-8s %10s bytes  %s\n' "$a" "$(stat -c %s "$here/out/shoal-$a")" "$(file -b "$here/out/shoal-$a" | cut -d, -f1-2)"
done
[ "${SMOKE:-1}" = 1 ] || exit 0
for a in $arches; do
  [ "$a" = x86_64 ] || "$here/smoke.sh" "$a"
done
