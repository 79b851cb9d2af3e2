#!/bin/sh
# A working CRIU for the tests and the README, at build/criu/criu, without installing
# anything into the system.
#
# Debian 12's criu 3.17 fails on newer kernels ("Unexpected rt vDSO area bounds"); Debian
# 13's 4.1.1 works. Its package and its libraries (including Debian 13's libc6) are
# downloaded with a private apt state and sources list (build/debian_apt.sh: the system's
# apt state is never read or written), unpacked with `dpkg -x` under build/criu/root, and
# build/criu/criu is a wrapper that runs the binary through that tree's own ld.so with
# --library-path.
#
# usage: build/criu.sh OUTDIR      (OUTDIR/criu is the result; reruns reuse OUTDIR/apt)
set -eu

out=$(realpath -m "${1:-build/criu}")
suite=${CRIU_SUITE:-trixie}
mirror=${CRIU_MIRROR:-http://deb.debian.org/debian}

here=$(cd "$(dirname "$0")" && pwd)
apt_dir=$out/apt
root=$out/root
apt() {
    DEBIAN_MIRROR=$mirror sh "$here/debian_apt.sh" "$apt_dir" "$suite" apt-get -q "$@"
}

apt update >/dev/null
# Only the packages of this run are unpacked: older versions from a previous run go first.
rm -f "$apt_dir"/archives/*.deb
# An empty status file: apt fetches criu and its whole dependency closure (libc6 included),
# which is what an unpacked tree run through its own ld.so needs.
apt install -y --download-only criu >/dev/null
rm -rf "$root.new"
mkdir -p "$root.new"
for deb in "$apt_dir"/archives/*.deb; do
    dpkg -x "$deb" "$root.new"
done
rm -rf "$root"
mv "$root.new" "$root"

lib=$root/usr/lib/x86_64-linux-gnu
bin=$root/usr/sbin/criu
test -x "$bin" || { echo "criu.sh: no usr/sbin/criu in the $suite packages" >&2; exit 1; }
cat > "$out/criu.new" <<EOF
#!/bin/sh
# CRIU from Debian $suite, run through its own libraries (made by build/criu.sh)
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib:$root/lib/x86_64-linux-gnu" "$bin" "\$@"
EOF
chmod 755 "$out/criu.new"
mv "$out/criu.new" "$out/criu"
"$out/criu" --version | head -1
