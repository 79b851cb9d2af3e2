"""Benchmark minirunc (the binary and from source) against runc and crun.

Usage (root, from the repository root, after `make binary`): ``.venv/bin/python build/bench.py``
(`make bench`).  Writes docs/benchmarks.md and prints the table.

One `hyperfine -N --warmup 3` session times, for each runtime:
  run         `run` of a `true` container (create + start + wait + delete)
  lifecycle   create, start, delete of a `true` container (three commands through `sh -c`;
              the shell's ~1 ms is the same for every runtime)
  create      `create` of a `true` container (the last one deleted before: not timed)
  state       `state` of a created container
  kill        `kill ID 0` of that created container (the null signal: nothing changes)
  start       `start` of a created container (create before, delete after: not timed)
  delete      `delete` of a stopped container (create + start + exit before: not timed)
  list        `list` of the runtime's containers (the created one of `state`, the running
              one of `exec`)
  exec        `exec ID true` in a running `sleep` container
  50 sleeps   50 detached `sleep` containers started (`run -d`), then `delete --force`d
and `/usr/bin/time -v` gives the maximum RSS of one `run` and of one `state` (the median of
five runs).
minirunc-py is the same binary with MINIRUNC_NO_DOOR=1 (through /usr/bin/env): the
interpreter's path for the verbs native/door.c serves.

crun 1.8.1 refuses this host's hybrid cgroups, so the whole session runs in a private mount
namespace with /sys/fs/cgroup/unified unmounted, for every runtime alike.
"""

import json
import os
import platform
import re
import shutil
import statistics
import sys
import time

from plumbum import FG, local

ROOT = local.path(__file__).dirname.dirname
sys.path.insert(0, str(ROOT / "tests"))
from make_bundle import base_config, make_bundle  # noqa: E402

WORK = local.path("/run/minirunc-bench")
BINARY = ROOT / "dist" / "minirunc"
STATIC = ROOT / "dist" / "minirunc-static"
VENV_PY = ROOT / ".venv" / "bin" / "python"
SLEEPERS = 50


def die(message):
    sys.stderr.write("bench: error: %s\n" % message)
    sys.exit(1)


def reexec_in_private_mount_ns():
    """Run again inside `unshare -m` with the cgroup2 hierarchy of the hybrid setup hidden."""
    if os.environ.get("MINIRUNC_BENCH_NS") == "1":
        return
    os.environ["MINIRUNC_BENCH_NS"] = "1"
    script = ("mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified; "
              'exec "$@"')
    os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                          "sh", sys.executable] + sys.argv)


def runtimes():
    if not BINARY.exists():
        die("%s is missing: run `make binary`" % BINARY)
    if not STATIC.exists():
        die("%s is missing: run `make binary-static`" % STATIC)
    rts = {
        "minirunc": [str(BINARY)],
        "minirunc-py": ["/usr/bin/env", "MINIRUNC_NO_DOOR=1", str(BINARY)],
        "minirunc-static": [str(STATIC)],
        "minirunc-src": [str(VENV_PY), "-m", "minirunc"],
        "runc": [shutil.which("runc") or die("runc not installed")],
        "crun": [shutil.which("crun") or die("crun not installed")],
    }
    return {name: cmd + ["--root", str(WORK / ("root-" + name))] for name, cmd in rts.items()}


def bundles():
    true_b, sleep_b = WORK / "bundle-true", WORK / "bundle-sleep"
    for path, args in ((true_b, ["true"]), (sleep_b, ["sleep", "1000"])):
        if path.exists():
            path.delete()
        make_bundle(str(path), config=base_config(args, terminal=False))
    return str(true_b), str(sleep_b)


def sh(script):
    """One command through `sh -c` (hyperfine -N splits on whitespace, honouring quotes)."""
    assert '"' not in script, script
    return 'sh -c "%s"' % script


def scenarios(rts, true_b, sleep_b):
    """(label, runtime, command, prepare, unused) for every cell of the table."""
    out = []
    for name, rt in rts.items():
        r = " ".join(rt)
        out.append(("run", name, "%s run --bundle %s bench-run" % (r, true_b), None, None))
        out.append(("lifecycle", name,
                    sh("%s create --bundle %s bench-cs && %s start bench-cs && %s delete --force bench-cs"
                       % (r, true_b, r, r)), None, None))
        out.append(("create", name, "%s create --bundle %s bench-cr" % (r, true_b),
                    sh("%s delete --force bench-cr >/dev/null 2>&1; true" % r), None))
        out.append(("state", name, "%s state bench-state" % r, None, None))
        out.append(("kill", name, "%s kill bench-state 0" % r, None, None))
        # hyperfine 1.15 has no --conclude: the next prepare deletes the last one
        out.append(("start", name, "%s start bench-start" % r,
                    sh("%s delete --force bench-start >/dev/null 2>&1; %s create --bundle %s bench-start"
                       % (r, r, true_b)), None))
        out.append(("delete", name, "%s delete bench-del" % r,
                    sh("%s create --bundle %s bench-del && %s start bench-del && sleep 0.2"
                       % (r, true_b, r)), None))
        out.append(("list", name, "%s list" % r, None, None))
        out.append(("exec", name, "%s exec bench-exec true" % r, None, None))
        loop = ("for i in $(seq %d); do %s run -d --bundle %s bench-s$i </dev/null >/dev/null 2>&1 || exit 1; done; "
                "for i in $(seq %d); do %s delete --force bench-s$i || exit 1; done"
                % (SLEEPERS, r, sleep_b, SLEEPERS, r))
        out.append(("50 sleeps", name, sh(loop), None, None))
    return out


def quiet(argv, env):
    """Run argv with stdio on /dev/null (a container keeps what it is given)."""
    import subprocess
    return local[argv[0]][argv[1:]].popen(env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait()


RSS_RUNS = 5


def max_rss_kb(rt, *args):
    """The median of RSS_RUNS maximum RSS (`/usr/bin/time -v`, kB), and their range."""
    values = []
    for _ in range(RSS_RUNS):
        out = local["/usr/bin/time"].run(["-v"] + rt + list(args), retcode=None)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out[2])
        if not m:
            return None
        values.append(int(m.group(1)))
    return "%d (%d-%d)" % (statistics.median_low(values), min(values), max(values))


def main():
    if os.geteuid() != 0:
        die("run as root")
    reexec_in_private_mount_ns()
    if WORK.exists():
        WORK.delete()
    WORK.mkdir()
    rts = runtimes()
    true_b, sleep_b = bundles()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # The container `state` is timed on, one per runtime (its stdio: /dev/null, not our pipes).
    # ... and the running one `exec` goes into.
    for rt in rts.values():
        quiet(rt + ["create", "--bundle", true_b, "bench-state"], env)
        quiet(rt + ["run", "-d", "--bundle", sleep_b, "bench-exec"], env)
    cells = scenarios(rts, true_b, sleep_b)
    args = ["-N", "--warmup", "3", "--min-runs", "5", "--max-runs", "30",
            "--export-json", str(WORK / "hyperfine.json"), "--style", "basic"]
    for label, name, cmd, prepare, conclude in cells:
        args += ["-n", "%s | %s" % (label, name)]
    commands = []
    for label, name, cmd, prepare, conclude in cells:
        args += ["--prepare", prepare or "true"]
        commands.append(cmd)
    started = time.time()
    with local.env(**env):
        local["hyperfine"][args + commands] & FG
    rss = {name: max_rss_kb(rt, "run", "--bundle", true_b, "bench-rss") for name, rt in rts.items()}
    rss_state = {name: max_rss_kb(rt, "state", "bench-state") for name, rt in rts.items()}
    for rt in rts.values():
        for cid in ("bench-state", "bench-start", "bench-cr", "bench-exec"):
            quiet(rt + ["delete", "--force", cid], env)
    results = json.loads((WORK / "hyperfine.json").read("utf-8"))["results"]
    table = {}
    for cell, res in zip(cells, results):
        table[(cell[0], cell[1])] = statistics.median(res["times"]) * 1000
    report = render(table, rss, rss_state, rts, time.time() - started)
    (ROOT / "docs" / "benchmarks.md").write(report, "utf-8")
    print(report)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def render(table, rss, rss_state, rts, seconds):
    labels = []
    for label, _ in table:
        if label not in labels:
            labels.append(label)
    names = list(rts)
    versions = {
        "runc": local["runc"]("--version").splitlines()[0],
        "crun": local["crun"]("--version").splitlines()[0],
        "minirunc": local[str(BINARY)]("--version").splitlines()[0],
    }
    lines = [
        "# Benchmarks: minirunc against runc and crun",
        "",
        "Written by `make bench` (build/bench.py); medians of one `hyperfine -N --warmup 3` session"
        " (5 to 30 runs per cell), in milliseconds.",
        "",
        "- date: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "- machine: Linux %s, %s, %d cores" % (platform.release(), cpu_model(), os.cpu_count()),
        "- %s; %s; %s; minirunc-src = `.venv/bin/python -m minirunc` (CPython %s)"
        % (versions["minirunc"], versions["runc"], versions["crun"], platform.python_version()),
        "- every runtime runs in `unshare -m` with /sys/fs/cgroup/unified unmounted (crun 1.8.1"
        " refuses hybrid cgroups); busybox bundles from tests/make_bundle.py, `terminal: false`",
        "- lifecycle = `create`, `start`, `delete --force` through one `sh -c`; start and delete"
        " exclude their set-up (hyperfine --prepare); 50 sleeps = 50 `run -d` then 50"
        " `delete --force` through one `sh -c`",
        "",
        "| scenario | " + " | ".join(names) + " | minirunc/runc | minirunc/crun |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    for label in labels:
        row = [table.get((label, n)) for n in names]
        mine, runc, crun = table.get((label, "minirunc")), table.get((label, "runc")), table.get((label, "crun"))
        lines.append("| %s | %s | %s | %s |" % (
            label, " | ".join("%.1f" % v if v is not None else "-" for v in row),
            "%.2f" % (mine / runc) if mine and runc else "-",
            "%.2f" % (mine / crun) if mine and crun else "-"))
    lines += ["", "Maximum RSS of one `run` (`/usr/bin/time -v`, median (range) of %d), kB: "
              % RSS_RUNS +
              ", ".join("%s %s" % (n, rss[n]) for n in names) + ".",
              "", "Maximum RSS of one `state`, likewise, kB: " +
              ", ".join("%s %s" % (n, rss_state[n]) for n in names) + ".",
              "", "minirunc-py = the same binary with MINIRUNC_NO_DOOR=1 (through /usr/bin/env):"
              " the interpreter's path where native/door.c would answer (state, kill, start,"
              " delete of a stopped container, list); create, run, exec and `delete --force` of"
              " a live container have no door, so minirunc and minirunc-py do the same there.",
              "",
              "Session time: %.0f s." % seconds, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
