"""Boot the test hosts built by imagebuild.py in QEMU and read their serial console.

Usage: ``python build/images/qemu_runner.py busybox|busybox-5.10|puppy [--timeout S]`` boots
one image with the console on stdout and prints the parsed markers at the end.  The tests import
``start``/``finish`` and ``parse_console``.

QEMU runs with ``-no-reboot -nodefaults -serial stdio`` and ``panic=-1`` on the kernel
command line, so a panic ends QEMU instead of hanging; the guest powers off after its last
marker (QEMU then exits 0 whatever happened: the markers carry the statuses).
Acceleration: TCG, unless /sys/module/kvm_intel or /sys/module/kvm_amd exists (the /dev/kvm of
some VMs is a software backend on which QEMU hangs).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "out", "images.json")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def accel():
    if os.path.exists("/dev/kvm") and any(os.path.exists("/sys/module/" + m)
                                          for m in ("kvm_intel", "kvm_amd")):
        return "kvm"
    return "tcg"


def load_manifest(path=MANIFEST):
    with open(path) as f:
        return json.load(f)


def qemu_command(image, spec, memory_mb=2048, smp=1):
    acc = accel()
    cmd = [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
           "-machine", "pc,accel=%s" % acc, "-cpu", "host" if acc == "kvm" else "max",
           "-smp", str(smp), "-m", str(memory_mb),
           "-no-reboot", "-nodefaults", "-display", "none", "-monitor", "none",
           "-serial", "stdio",
           "-kernel", spec["kernel"], "-initrd", spec["initrd"], "-append", spec["cmdline"]]
    if spec.get("disk"):
        cmd += ["-drive", "file=%s,if=virtio,format=raw,readonly=on,cache=unsafe" % spec["disk"]]
    return cmd


class Boot:
    """One running QEMU whose console goes to a log file."""

    def __init__(self, image, spec, log_path, timeout, **kw):
        self.image, self.log_path, self.timeout = image, log_path, timeout
        self.cmd = qemu_command(image, spec, **kw)
        self.log = open(log_path, "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.timed_out = False
        self.elapsed = None
        self.returncode = None

    def wait(self):
        try:
            self.returncode = self.proc.wait(timeout=max(1, self.timeout -
                                                        (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.proc.kill()
            self.returncode = self.proc.wait()
        self.elapsed = time.monotonic() - self.t0
        self.log.close()
        return self

    def poll(self):
        """True once QEMU has ended (or been killed at the timeout); elapsed is then set."""
        if self.elapsed is not None:
            return True
        if self.proc.poll() is None and time.monotonic() - self.t0 < self.timeout:
            return False
        return self.wait() is self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()

    @property
    def console(self):
        with open(self.log_path, "rb") as f:
            return clean(f.read().decode("utf-8", "replace"))

    def tail(self, n=40):
        return "\n".join(self.console.splitlines()[-n:])


def wait_all(boots, interval=0.2):
    """Wait for boots running at once, each one's elapsed time taken when it ends."""
    while not all([b.poll() for b in boots]):
        time.sleep(interval)
    return boots


def clean(text):
    return ANSI.sub("", text).replace("\r", "")


MARKER = re.compile(r"^@@(\w[\w-]*)\s*(.*)$")
KV = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|$)")


def parse_console(text):
    """Markers of steps.sh/host-init: steps {name: status}, plus the per-bundle facts and
    the cgroup v2 facts (cgroup: {"cgroup"|"pids"|"memory"|"devices": {key: value}})."""
    out = {"steps": {}, "times": {}, "root": {}, "index": {}, "http": {}, "page": {},
           "host": None, "done": None, "skip": None, "info": [], "initrd_fail": None,
           "cgroup": {}}
    for line in clean(text).splitlines():
        m = MARKER.match(line.strip())
        if not m:
            continue
        kind, rest = m.group(1), m.group(2)
        if kind == "STEP":
            name, _, fields = rest.partition(" ")
            kv = dict(KV.findall(fields))
            out["steps"][name] = int(kv.get("status", "-1"))
            out["times"][name] = float(kv.get("t", "nan"))
        elif kind in ("ROOT", "INDEX", "HTTP", "PAGE"):
            bundle, _, fields = rest.partition(" ")
            out[kind.lower()][bundle] = dict(KV.findall(fields))
        elif kind in ("CGROUP", "PIDS", "MEMORY", "DEVICES"):
            out["cgroup"][kind.lower()] = dict(KV.findall(rest))
        elif kind == "HOST":
            out["host"] = dict(KV.findall(rest))
        elif kind == "DONE":
            out["done"] = dict(KV.findall(rest))
        elif kind == "SKIP":
            out["skip"] = rest
        elif kind == "INFO":
            out["info"].append(rest)
        elif kind == "INITRD-FAIL":
            out["initrd_fail"] = rest
    return out


def start(image, timeout, log_path=None, manifest=None, **kw):
    manifest = manifest or load_manifest()
    if "initrd" not in manifest.get(image, {}):
        raise KeyError("image %s not built (make images)" % image)
    log_path = log_path or os.path.join(HERE, "out", image, "console.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    return Boot(image, manifest[image], log_path, timeout, **kw)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="boot a minirunc test host")
    ap.add_argument("image", help="busybox, busybox-5.10 or puppy (an image of the manifest)")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--smp", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        boot = start(args.image, args.timeout, smp=args.smp)
    except (OSError, KeyError) as e:
        print("qemu_runner: %s" % (e.args[0] if isinstance(e, KeyError) else e), file=sys.stderr)
        return 1
    print(" ".join(boot.cmd), flush=True)
    pos = 0
    while True:
        done = boot.proc.poll() is not None or time.monotonic() - boot.t0 > args.timeout
        with open(boot.log_path, "rb") as f:
            f.seek(pos)
            chunk = f.read()
        pos += len(chunk)
        sys.stdout.write(clean(chunk.decode("utf-8", "replace")))
        sys.stdout.flush()
        if done:
            break
        time.sleep(0.2)
    boot.wait()
    parsed = parse_console(boot.console)
    print("\n== %s: %s after %.1f s (qemu exit %s)" % (
        args.image, "TIMEOUT" if boot.timed_out else "done", boot.elapsed, boot.returncode))
    print(json.dumps(parsed, indent=1))
    ok = parsed["done"] is not None and parsed["steps"] and all(
        v == 0 for v in parsed["steps"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
