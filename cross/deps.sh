#!/bin/sh
# Installs what cross/build.sh and cross/smoke.sh need for ARCH... (default
# all): Rust's std for each target (rustup), Debian's cross gcc and libc, the
# target's libseccomp through Debian multiarch (linked statically, so the
# binary needs only the board's glibc), qemu-user-static for the smoke run,
# and the target's busybox-static .deb for its test images. Idempotent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/arch.sh"
[ "$(id -u)" = 0 ] || { echo "run as root (apt-get, dpkg --add-architecture)" >&2; exit 1; }
arches=${*:-$ALL_ARCHES}
need="qemu-user-static binfmt-support"
for a in $arches; do
  arch_vars "$a"
  if [ "$a" != "$(uname -m)" ]; then
    dpkg --print-foreign-architectures | grep -qx "$DEB" || dpkg --add-architecture "$DEB"
    need="$need gcc-$GNU libc6-dev-$DEB-cross libseccomp-dev:$DEB libc6:$DEB"
  fi
done
"$here/../scripts/deps.sh" $need
for a in $arches; do
  arch_vars "$a"
  rustup target list --installed | grep -qx "$TRIPLE" || rustup target add "$TRIPLE"
  # busybox-static is not multi-arch (installing :arm64 would replace the
  # host's), so the target's copy is unpacked into cross/work instead.
  bb="$here/work/$a/busybox"
  if [ "$a" != "$(uname -m)" ] && [ ! -x "$bb" ]; then
    mkdir -p "$here/work/$a/deb"
    (cd "$here/work/$a/deb" && apt-get download -qq "busybox-static:$DEB")
    dpkg-deb -x "$here/work/$a/deb"/busybox-static_*.deb "$here/work/$a/deb/root"
    cp "$here/work/$a/deb/root/bin/busybox" "$bb"
  fi
done
