#!/bin/sh
# The second command: the whole test suite (unit, property, and integration
# tests with real containers; needs root). Installs missing packages first.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the integration tests start real containers" >&2; exit 1; }
scripts/deps.sh
images/build.sh
# Dependencies built once are reused by the next clone (a fresh machine
# builds everything: about 15 minutes on 2 cores). Set CARGO_TARGET_DIR to
# choose another place.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
cargo test --all-targets -- --test-threads 2
