"""Regenerates build/hot_functions.txt: the functions of the binary that the hot commands
call, in the order they first call them.

build/binary.py (hot_text_script()) puts the listed functions together at the front of
.text.  On a page fault the kernel maps the whole 64 KB window around the page from the
page cache; scattered as the compiler leaves them, the ~0.8 MB a `run` executes lay in 41 of
the 44 windows of the gnu binary's .text (2.6 MB resident); laid out together, a `run`
touches 15.

Usage (root, from the repository root, after `make binary`):
``.venv/bin/python build/hot_functions.py`` (`make hot-functions`), then `make binary`.
It traces, with build/trace_calls.c (a breakpoint on every function, each reported once),
the gnu build's executable with its symbols (build/binary/gnu/minirunc-symbols, the same
code as dist/minirunc): a `run` of a busybox `true` bundle, then `exec` into a running
container and the interpreter's `state` and `delete` of it.  Worth redoing after a change
of CPython, Nuitka or the run path; tests/test_binary.py says when the list has gone stale.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from make_bundle import base_config, make_bundle  # noqa: E402

LIST = os.path.join(ROOT, "build", "hot_functions.txt")
TRACER_SOURCE = os.path.join(ROOT, "build", "trace_calls.c")
HEADER = ("# build/hot_functions.py: the functions the hot commands call, in first-call order;\n"
          "# build/binary.py hot_text_script() puts them at the front of .text.\n")


def unstripped(target="gnu"):
    """The target's finished executable with its symbol table (build/binary.py symbols_copy())."""
    return os.path.join(ROOT, "build", "binary", target, "minirunc-symbols")


def function_symbols(exe):
    """{address: (name, size)} of the functions in exe's symbol table."""
    out = subprocess.run(["nm", "-S", exe], check=True, capture_output=True, text=True).stdout
    functions = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "TtWw" and int(fields[1], 16):
            functions[int(fields[0], 16)] = (fields[3], int(fields[1], 16))
    return functions


def build_tracer(directory):
    tracer = os.path.join(directory, "trace_calls")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", tracer, TRACER_SOURCE], check=True)
    return tracer


def traced(tracer, exe, functions, args, directory):
    """The addresses of `functions` that `exe args` calls, in first-call order."""
    addresses, called = os.path.join(directory, "addresses"), os.path.join(directory, "called")
    with open(addresses, "w") as f:
        f.write("".join("%x\n" % a for a in sorted(functions)))
    # A file, not a pipe: a created container keeps the stdio it inherited.
    with tempfile.TemporaryFile() as output:
        # MINIRUNC_NO_DOOR: the interpreter's `state` and `delete` (the others have no door)
        r = subprocess.run([tracer, addresses, called, exe] + list(args), stdin=subprocess.DEVNULL,
                           stdout=output, stderr=output, timeout=120,
                           env=dict(os.environ, MINIRUNC_NO_DOOR="1"))
        if r.returncode != 0:
            output.seek(0)
            raise RuntimeError("%s %s: exit %d\n%s" % (exe, " ".join(args), r.returncode,
                                                         output.read().decode(errors="replace")))
    with open(called) as f:
        return [int(line, 16) for line in f if line.strip()]


def hot_commands(directory):
    """[(args, ...)] of the traced commands, with the bundles they need made in directory."""
    root = os.path.join(directory, "state")
    true_b, sleep_b = os.path.join(directory, "true"), os.path.join(directory, "sleep")
    make_bundle(true_b, config=base_config(["true"]))
    make_bundle(sleep_b, config=base_config(["sleep", "1000"]))
    return root, [
        ["--root", root, "run", "--bundle", true_b, "hot-run"],
        ["--root", root, "create", "--bundle", sleep_b, "hot-exec"],
        ["--root", root, "start", "hot-exec"],
        ["--root", root, "exec", "hot-exec", "true"],
        ["--root", root, "state", "hot-exec"],
        ["--root", root, "delete", "--force", "hot-exec"],
    ]


def called_functions(exe):
    """The names of exe's functions that the hot commands call, in first-call order."""
    functions = function_symbols(exe)
    with tempfile.TemporaryDirectory() as directory:
        tracer = build_tracer(directory)
        root, commands = hot_commands(directory)
        order = []
        try:
            for args in commands:
                order += traced(tracer, exe, functions, args, directory)
        finally:
            subprocess.run([exe, "--root", root, "delete", "--force", "hot-exec"],
                           capture_output=True)
    return list(dict.fromkeys(functions[a][0] for a in order))


def main():
    if os.geteuid() != 0:
        sys.exit("hot_functions: run as root (the traced commands run containers)")
    exe = unstripped()
    if not os.path.exists(exe):
        sys.exit("hot_functions: %s is missing: run `make binary`" % exe)
    names = called_functions(exe)
    with open(LIST + ".tmp", "w") as f:
        f.write(HEADER + "".join(n + "\n" for n in names))
    os.replace(LIST + ".tmp", LIST)
    print("hot_functions: %d functions -> %s" % (len(names), os.path.relpath(LIST, ROOT)))


if __name__ == "__main__":
    main()
