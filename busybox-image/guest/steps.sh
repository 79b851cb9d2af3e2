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
debug_msg() { sed 's/.*level=debug msg=//; s/^"//; s/"$//'; }

if ! command -v minirunc >/dev/null 2>&1; then
    echo "@@SKIP no minirunc binary in this image"
    exit 0
fi
echo "@@INFO $(minirunc --version 2>&1 | head -n 1)"
# All bundles, or those named on the kernel command line: minirunc.bundles=hexo-lite[,...]
BUNDLES="hexo-lite hexo"
for w in $(cat /proc/cmdline); do
    case $w in minirunc.bundles=*) BUNDLES=$(echo "${w#*=}" | tr , ' ') ;; esac
done

for b in $BUNDLES; do
    case $b in hexo-lite) wait_s=30 ;; *) wait_s=150 ;; esac
    cd "/bundles/$b" || { mark "$b-generate" 1; continue; }
    rm -rf blog/public

    # hexo g: bare `minirunc` in the bundle (id = directory name), --debug for the root note
    T0=$(up)
    minirunc --debug >/tmp/$b-g.out 2>/tmp/$b-g.err
    rc=$?
    show /tmp/$b-g.out
    grep -v 'level=debug' /tmp/$b-g.err | show
    mark "$b-generate" $rc
    # minirunc --debug says how it entered the rootfs: "with pivot_root" or "... chroot"
    # (debug records are runc's logrus text: time="..." level=debug msg="...": keep the msg)
    if grep -q 'with pivot_root' /tmp/$b-g.err; then
        echo "@@ROOT $b path=pivot_root note=$(grep 'with pivot_root' /tmp/$b-g.err | head -n 1 | debug_msg)"
    elif grep -qi 'chroot' /tmp/$b-g.err; then
        echo "@@ROOT $b path=chroot note=$(grep -i chroot /tmp/$b-g.err | head -n 1 | debug_msg)"
    else
        echo "@@ROOT $b path=unknown"
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
    [ $rc = 0 ] || wait_s=0   # no server was started: one try, no waiting

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
    while [ $i -lt 50 ]; do   # (a container that does not exist is not waited for)
        st=$(minirunc state "$b-serve" 2>/dev/null) || break
        echo "$st" | grep -q '"stopped"' && break
        sleep 0.1; i=$((i + 1))
    done
    minirunc delete "$b-serve"; rc=$?
    mark "$b-delete" $rc
    left=$(minirunc list -q | wc -l)
    [ "$left" = 0 ]; mark "$b-clean" $?
done

# ---- cgroup v2 limits, really exercised (the host mounts only cgroup2, every controller on it).
# Bundles made here on the hexo-lite rootfs (busybox; read-only, shared).  Each step is bounded
# by `timeout`.  Markers: @@CGROUP (controllers), @@PIDS, @@MEMORY, @@DEVICES.
CG=/sys/fs/cgroup
CGROOTFS=/bundles/hexo-lite/rootfs
cg_bundle() {  # dir, args (JSON list), resources (JSON object), more linux fields (JSON, or "")
    mkdir -p "$1"
    cat >"$1/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": $2,
             "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "cwd": "/"},
 "root": {"path": "$CGROOTFS", "readonly": true},
 "hostname": "cg",
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755", "size=1024k"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "nodev", "mode=1777", "size=1024k"]}],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
           "resources": $3 $4}}
JSON
}
cg_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }    # a pid's cgroup v2 path
cg_field() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; }
has_all() { for c in $2; do echo " $1 " | grep -q " $c " || return 1; done; }

T0=$(up)
ctl=$(cat $CG/cgroup.controllers 2>/dev/null)
# The containers above made the runtime enable controllers at the root: take cpu, memory and
# pids away again (possible now that no child cgroup is left) so that the pids step shows the
# runtime enabling what it needs, as runc does.
reset=no; echo "-cpu -memory -pids" >$CG/cgroup.subtree_control 2>/dev/null && reset=yes
before=$(cat $CG/cgroup.subtree_control 2>/dev/null)
echo "@@CGROUP controllers=$ctl reset=$reset subtree_before=$before"
has_all "$ctl" "cpu memory pids"; mark cgroup-controllers $?

# pids.limit 5 (and a cpu quota): the fork loop stops at 5 processes
T0=$(up)
cg_bundle /tmp/cg/pids '["sh", "-c", "seq 30 | xargs -n1 -P30 sleep 60"]' \
    '{"pids": {"limit": 5}, "cpu": {"quota": 50000, "period": 100000}}'
timeout 20 minirunc run -d --bundle /tmp/cg/pids cg-pids >/tmp/cg-pids.out 2>&1; rc=$?
pid=$(minirunc state cg-pids 2>/dev/null | tr , '\n' | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
dir=$CG$(cg_of "$pid")
i=0
while [ $i -lt 50 ] && [ "$(cat $dir/pids.current 2>/dev/null)" != 5 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.3
max=$(cat $dir/pids.max 2>/dev/null); cur=$(cat $dir/pids.current 2>/dev/null)
n=$(minirunc ps --format json cg-pids 2>/dev/null | tr , '\n' | grep -c '[0-9]')
echo "@@PIDS cgroup=$dir max=$max current=$cur ps=$n cpu_max=$(cat $dir/cpu.max 2>/dev/null) subtree_after=$(cat $CG/cgroup.subtree_control)"
timeout 20 minirunc delete --force cg-pids >>/tmp/cg-pids.out 2>&1
[ $rc = 0 ] && [ "$max" = 5 ] && [ "$cur" = 5 ] && [ "$n" = 5 ] && [ ! -e "$dir" ]; rc=$?
[ $rc = 0 ] || show /tmp/cg-pids.out
mark cgroup-pids $rc

# memory.limit 16 MiB: the hog (the container's process) is OOM-killed, exit 137.  The
# container's cgroup goes with it; its parent, made here, keeps the hierarchical memory.events.
T0=$(up)
mkdir -p $CG/cg-mem
cg_bundle /tmp/cg/mem '["tail", "/dev/zero"]' \
    "{\"memory\": {\"limit\": $((16 << 20)), \"swap\": $((16 << 20))}}" ', "cgroupsPath": "/cg-mem/hog"'
timeout 30 minirunc run --bundle /tmp/cg/mem cg-mem >/tmp/cg-mem.out 2>&1; rc=$?
oom=$(cg_field $CG/cg-mem/memory.events oom_kill)
echo "@@MEMORY exit=$rc oom_kill=$oom max_seen=$(cat $CG/cg-mem/memory.peak 2>/dev/null)"
rmdir $CG/cg-mem/hog $CG/cg-mem 2>/dev/null
[ $rc = 137 ] && [ "${oom:-0}" -ge 1 ]; rc=$?
[ $rc = 0 ] || show /tmp/cg-mem.out
mark cgroup-memory $rc

# linux.resources.devices denies c 1:3 (/dev/null, listed in linux.devices so that runc's
# default rule for it is left out): the eBPF device program refuses the write, /dev/zero reads
T0=$(up)
null='{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438}'
cg_bundle /tmp/cg/dev '["sh", "-c", "echo x >/dev/null && echo null-ok; head -c 4 /dev/zero | wc -c"]' \
    '{"devices": [{"allow": false, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}' \
    ", \"devices\": [$null]"
timeout 20 minirunc run --bundle /tmp/cg/dev cg-dev >/tmp/cg-dev.out 2>&1; rc=$?
denied=no; grep -q 'Operation not permitted' /tmp/cg-dev.out && ! grep -q null-ok /tmp/cg-dev.out && denied=yes
zero=$(grep -x '[0-9]*' /tmp/cg-dev.out | head -n 1)
echo "@@DEVICES null_denied=$denied zero_bytes=$zero exit=$rc"
[ $denied = yes ] && [ "$zero" = 4 ]; rc=$?
[ $rc = 0 ] || show /tmp/cg-dev.out
mark cgroup-devices $rc
left=$(minirunc list -q | wc -l)
[ "$left" = 0 ]; mark cgroup-clean $?
