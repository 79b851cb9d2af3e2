#!/bin/sh
# apt-get or apt-cache against one Debian suite with a private state: its own sources list,
# lists, cache, archives and an empty dpkg status under DIR. The system's apt state and
# sources are never read or written, and nothing is installed. Packages come signed by
# Debian's archive keyring, so `download` checks each .deb against the signed index's sha256;
# `update` fails (exit 100) when an index cannot be fetched, instead of warning.
# Used by build/bullseye_libc.sh, build/criu.sh and build/images/imagebuild.py.
#
# usage: sh build/debian_apt.sh DIR SUITE apt-get|apt-cache ARGS...
#        (DEBIAN_MIRROR overrides http://deb.debian.org/debian)
set -eu
[ $# -ge 3 ] || { echo "usage: debian_apt.sh DIR SUITE apt-get|apt-cache ARGS..." >&2; exit 2; }
dir=$(realpath -m "$1")
suite=$2
tool=$3
shift 3
case $tool in
    apt-get|apt-cache) ;;
    *) echo "debian_apt.sh: $tool is not apt-get or apt-cache" >&2; exit 2 ;;
esac
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/cache"
[ -e "$dir/status" ] || : > "$dir/status"
line="deb [signed-by=$keyring] $mirror $suite main"
[ "$(cat "$dir/sources.list" 2>/dev/null)" = "$line" ] ||
    printf '%s\n' "$line" > "$dir/sources.list"

exec "$tool" -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
    -o Dir::State="$dir" -o Dir::State::Lists="$dir/lists" \
    -o Dir::State::status="$dir/status" -o Dir::State::extended_states="$dir/extended_states" \
    -o Dir::Cache="$dir/cache" -o Dir::Cache::Archives="$dir/archives" \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o APT::Install-Recommends=0 \
    -o APT::Get::AllowUnauthenticated=0 -o APT::Update::Error-Mode=any "$@"
