# Sourced by cross/*.sh: what each architecture is called by uname -m, Rust,
# Debian and the OCI image spec. Usage: arch_vars ARCH (x86_64|aarch64|armv7l).
arch_vars() {
  case $1 in
    x86_64)  TRIPLE=x86_64-unknown-linux-gnu       GNU=x86_64-linux-gnu       DEB=amd64 OCI=amd64 VARIANT=""  QEMU="" ;;
    aarch64) TRIPLE=aarch64-unknown-linux-gnu      GNU=aarch64-linux-gnu      DEB=arm64 OCI=arm64 VARIANT=""  QEMU=qemu-aarch64-static ;;
    armv7l)  TRIPLE=armv7-unknown-linux-gnueabihf  GNU=arm-linux-gnueabihf    DEB=armhf OCI=arm   VARIANT=v7  QEMU=qemu-arm-static ;;
    *) echo "unknown architecture '$1': one of x86_64 aarch64 armv7l (as uname -m names them)" >&2; return 2 ;;
  esac
  # The C compiler and archiver for this target: the host's own for the host, else Debian's cross gcc.
  if [ "$1" = "$(uname -m)" ]; then CROSS_CC=cc CROSS_AR=ar; else CROSS_CC=$GNU-gcc CROSS_AR=$GNU-ar; fi
}
ALL_ARCHES="x86_64 aarch64 armv7l"
