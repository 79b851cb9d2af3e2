"""How a command ends (cli.main_exit): its output flushed and its exit code kept although the
interpreter's finalization is skipped, and the cyclic garbage collector off only for the
short commands."""

import json
import subprocess
import sys

from conftest import minirunc_command, runtime_env

# Runs cli.main_exit from the source tree with two commands replaced by probes that print
# whether the cyclic collector is on; the rest of the command line is real.
PROBE = r"""
import gc, sys
from minirunc import cli, commands

def probe(name, code):
    def command(root, options, *args):
        sys.stdout.write("%s gc=%s\n" % (name, gc.isenabled()))
        return code
    return command

commands.cmd_list = probe("list", 0)
commands.cmd_features = probe("features", 3)
sys.argv = ["minirunc"] + sys.argv[1:]
cli.main_exit()
raise SystemExit("main_exit returned")
"""


def probe(*args):
    return subprocess.run([sys.executable, "-c", PROBE] + list(args), env=runtime_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                          universal_newlines=True)


def test_short_command_runs_without_the_cyclic_collector(tmp_path):
    r = probe("--root", str(tmp_path), "list")
    assert (r.returncode, r.stdout, r.stderr) == (0, "list gc=False\n", "")


def test_other_commands_get_the_collector_back_and_keep_their_exit_code(tmp_path):
    r = probe("--root", str(tmp_path), "features")
    assert (r.returncode, r.stdout, r.stderr) == (3, "features gc=True\n", "")


def test_buffered_output_is_all_written_before_the_process_ends(tmp_path):
    """`features` prints more than one write's worth through a buffered stdout; a pipe sees
    all of it, then EOF, and the exit code is 0."""
    r = subprocess.run(minirunc_command() + ["--root", str(tmp_path), "features"],
                       env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    assert len(r.stdout) > 1000
    assert json.loads(r.stdout.decode())["ociVersionMax"]


def test_an_error_keeps_its_line_and_exit_code(tmp_path):
    r = subprocess.run(minirunc_command() + ["--root", str(tmp_path), "start", "no-such-ctr"],
                       env=runtime_env({"MINIRUNC_NO_DOOR": "1"}), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, universal_newlines=True)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "no-such-ctr" in lines[0], r.stderr
