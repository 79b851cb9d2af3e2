#!/bin/sh
# The minirunc steps of the image tests, run on the serial console of each test host.
# One marker line per step: "@@STEP <name> status=<exit status> t=<seconds>".
# Bundles live in /bundles/<name>: config.json runs `hexo g`, serve/config.json `hexo s`.
TITLE="Hello from minirunc"
PORT=4000
up() { cut -d' ' -f1 /proc/uptime; }
T0=$(up)
elapsed() { awk -v a="$T0" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }'; }
mark() { echo "@@STEP $1 status=$2 t=$(elapsed)"; T0=$(up); }
show() { sed 's/^/    | /' "$@" | tail -n "${LINES_SHOWN:-12}"; }

if ! command -v minirunc >/dev/null 2>&1; then
    echo "@@SKIP no minirunc binary in this image"
    exit 0
fi
echo "@@INFO $(minirunc --version 2>&1 | head -n 1)"

for b in hexo-lite hexo; do
    case $b in hexo-lite) wait_s=30 ;; *) wait_s=150 ;; esac
    cd "/bundles/$b" || { mark "$b-generate" 1; continue; }
    rm -rf blog/public

    # hexo g: bare `minirunc` in the bundle (id = directory name), --debug for the root note
    T0=$(up)
    minirunc --debug >/tmp/$b-g.out 2>/tmp/$b-g.err
    rc=$?
    show /tmp/$b-g.out
    grep -v 'minirunc: debug' /tmp/$b-g.err | show
    mark "$b-generate" $rc
    if grep -qi 'chroot' /tmp/$b-g.err; then
        echo "@@ROOT $b path=chroot note=$(grep -i chroot /tmp/$b-g.err | head -n 1)"
    else
        echo "@@ROOT $b path=pivot_root"
    fi
    line=$(grep -o "[^>]*$TITLE[^<]*" blog/public/index.html 2>/dev/null | head -n 1)
    [ -n "$line" ]; rc=$?
    echo "@@INDEX $b file=blog/public/index.html title=$line"
    mark "$b-index" $rc

    # hexo s: detached
    minirunc run -d --bundle "/bundles/$b/serve" "$b-serve" >/tmp/$b-s.out 2>&1
    rc=$?
    show /tmp/$b-s.out
    mark "$b-serve" $rc

    # fetch http://127.0.0.1:4000/ until it answers (bounded)
    rc=1
    i=0
    end=$(awk -v a="$(up)" -v w="$wait_s" 'BEGIN { print a + w }')
    while :; do
        rm -f /tmp/$b.html
        # (no -T: busybox 1.35 wget segfaults on it; timeout bounds each try instead)
        if timeout 20 wget -S -O /tmp/$b.html "http://127.0.0.1:$PORT/" 2>/tmp/$b.hdr; then
            rc=0; break
        fi
        i=$((i + 1))
        awk -v e="$end" -v n="$(up)" 'BEGIN { exit !(n < e) }' || break
        sleep 0.5
    done
    http=$(grep -o 'HTTP/[0-9.]* [0-9][0-9][0-9].*' /tmp/$b.hdr | tail -n 1 | tr -d '\r')
    echo "@@HTTP $b status_line=$http tries=$((i + 1))"
    [ $rc = 0 ] || show /tmp/$b.hdr /tmp/$b-s.out
    mark "$b-fetch" $rc
    line=$(grep -o "[^>]*$TITLE[^<]*" /tmp/$b.html 2>/dev/null | head -n 1)
    [ -n "$line" ]; rc=$?
    echo "@@PAGE $b title=$line"
    mark "$b-page" $rc

    # kill (node and httpd as pid 1 ignore SIGTERM) and delete
    minirunc kill "$b-serve" KILL; rc=$?
    mark "$b-kill" $rc
    i=0
    while [ $i -lt 50 ] && ! minirunc state "$b-serve" 2>/dev/null | grep -q '"stopped"'; do
        sleep 0.1; i=$((i + 1))
    done
    minirunc delete "$b-serve"; rc=$?
    mark "$b-delete" $rc
    left=$(minirunc list -q | wc -l)
    [ "$left" = 0 ]; mark "$b-clean" $?
done
