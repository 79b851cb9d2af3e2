#!/bin/sh
# Debian 11's C library (libc6 from bullseye: glibc 2.31), unpacked into build/bullseye/root for
# tests/test_portable.py (a chroot whose only C library it is). apt runs with a private sources
# list, state and cache under build/bullseye (build/debian_apt.sh): the system's apt state is
# not touched.
# Usage: sh build/bullseye_libc.sh   (from the repository root; `make test` runs it once)
set -eu
D="$(pwd)/build/bullseye"
HERE=$(cd "$(dirname "$0")" && pwd)
apt() { sh "$HERE/debian_apt.sh" "$D" bullseye apt-get -qq "$@"; }
apt update
rm -f "$D"/archives/libc6_*.deb
(cd "$D/archives" && apt download libc6)
deb=$(ls "$D"/archives/libc6_2.31-*_amd64.deb)
rm -rf "$D/root.tmp" && mkdir -p "$D/root.tmp"
dpkg-deb -x "$deb" "$D/root.tmp"
test -e "$D/root.tmp/lib/x86_64-linux-gnu/libc.so.6"
rm -rf "$D/root" && mv "$D/root.tmp" "$D/root"
echo "bullseye libc: $(basename "$deb") -> build/bullseye/root"
