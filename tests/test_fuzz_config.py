"""Fuzzing config.json (issue 8, "Fuzzing"): every input ends in a valid plan (exit 0) or one
clear line, never a traceback, a hang or anything left behind.

A realistic base config (make_bundle.base_config, enriched with every section minirunc reads:
hooks, seccomp, devices, sysctl, resources, scheduler, affinity, time offsets, a bind
mount...) is mutated by hypothesis at any JSON path: wrong types, out-of-range and huge
numbers, NUL bytes, lone surrogates, huge strings, deep nesting, removed keys, extra keys,
empty lists; sometimes the text itself is damaged (truncated, invalid UTF-8, trailing bytes).

Two levels:
(a) in process, thousands of cases: load_bundle + build_plan + Plan.encode (no container
    is made).  Anything but a plan or a MiniruncError whose text is one line is a bug.
(b) through the real CLI, fewer cases: `create` then `delete --force` with a private
    --root; exit 0 or one line of error (warnings are lines of their own), no traceback,
    no hang, and afterwards no state directory, no cgroup named after the id, no process.

The run is reproducible (derandomize, no example database).  MINIRUNC_FUZZ_EXAMPLES=N
raises the number of cases: N in process (default 2000), N/10 through the CLI (default
and minimum 150).
"""

import copy
import json
import os
import random
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_leftovers import (leftover_cgroups, leftover_processes, mounts_under,
                            subreaper)  # noqa: F401 (a fixture)
from make_bundle import base_config, make_rootfs

_REQUESTED = int(os.environ.get("MINIRUNC_FUZZ_EXAMPLES", "0") or "0")
IN_PROCESS_EXAMPLES = _REQUESTED or 2000
CLI_EXAMPLES = max(_REQUESTED // 10, 150) if _REQUESTED else 150


def _settings(examples):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ the base config

def rich_config(args=("sh",), cli=False):
    """base_config plus every section minirunc reads, each with a valid value.

    ``cli``: the variant the real CLI runs.  It leaves out what would reach the host
    outside the container if a mutation turned it into something else: linux.sysctl
    (issue 8 item 1), linux.cgroupsPath (a mutated path could name a foreign cgroup,
    item 3), and root.path is never mutated there (a mutated "/" would make mount
    destinations on the host's own root)."""
    config = base_config(list(args))
    process = config["process"]
    process["user"].update({"umask": 18, "additionalGids": [1, 2]})
    process["capabilities"]["inheritable"] = []
    process["rlimits"].append({"type": "RLIMIT_CORE", "hard": 0, "soft": 0})
    process["oomScoreAdj"] = 0
    process["consoleSize"] = {"height": 24, "width": 80}
    process["scheduler"] = {"policy": "SCHED_OTHER", "nice": 0}
    process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    process["execCPUAffinity"] = {"initial": "0", "final": "0-1"}
    config["domainname"] = "fuzz.local"
    config["annotations"] = {"org.example.key": "value"}
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": "data",
                             "options": ["rbind", "ro", "nosuid"]})
    linux = config["linux"]
    linux["namespaces"] += [{"type": "cgroup"}, {"type": "time"}]
    linux["timeOffsets"] = {"monotonic": {"secs": 10, "nanosecs": 0}}
    linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                         "fileMode": 0o666, "uid": 0, "gid": 0}]
    linux["rootfsPropagation"] = "rslave"
    linux["personality"] = {"domain": "LINUX"}
    linux["resources"] = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20},
        "pids": {"limit": 64},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
    }
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}]}
    config["hooks"] = {
        "prestart": [{"path": "/bin/true", "args": ["true", "pre"], "env": ["A=b"],
                      "timeout": 5}],
        "createContainer": [{"path": "/bin/true", "args": ["true"]}],
        "poststop": [{"path": "/bin/true"}],
    }
    if not cli:
        linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"}
        linux["cgroupsPath"] = "fuzz/inner"
    return config


def userns_config():
    """The rich config in a user namespace, with an idmapped bind mount."""
    config = rich_config()
    linux = config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["mounts"].append({"destination": "/idmapped", "type": "bind", "source": "data",
                             "options": ["bind", "idmap"]})
    return config


def json_paths(doc, prefix=()):
    """Every JSON path of ``doc`` as a tuple of keys and indexes (the root is ())."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from json_paths(value, prefix + (i,))


def json_paths_values(doc):
    """Every value in ``doc`` (containers and leaves)."""
    yield doc
    children = doc.values() if isinstance(doc, dict) else doc if isinstance(doc, list) else ()
    for child in children:
        yield from json_paths_values(child)


# ------------------------------------------------------------------ mutations

# Stand-ins that json.dumps cannot write itself; serialize() puts the real text in.
HUGE_INT = "@@fuzz-huge-int@@"
DEEP = "@@fuzz-deep-%d@@"
DEEP_MARK = re.compile(r'"@@fuzz-deep-(\d+)@@"')

SPECIAL_VALUES = [
    None, True, False, 0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
    2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**30, -10**30, 0.5, -0.0, 1e308, float("nan"),
    float("inf"), "", " ", "x", "/", "//", "..", "/..", "/a/../..", ".", "a\0b", "\0",
    "\ud800", "x\udfff", "\ud83d\ude00", "=x", "=", "-1", "0x10", "\u00e9", "a\nb",
    [], {}, [""], [None], [[]], {"": ""}, "A" * 100000, HUGE_INT,
    DEEP % 150, DEEP % 199, DEEP % 200, DEEP % 201, DEEP % 1000, DEEP % 20000,
]

_text = st.text(st.characters(), max_size=12)
_lone = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
_strings = st.one_of(_text, _lone, st.builds(lambda a, b, c: a + b + c, _text, _lone, _text))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                     st.floats(), _strings)
_json_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_strings, inner, max_size=3)), max_leaves=6)
_values = st.one_of(st.sampled_from(SPECIAL_VALUES), _json_values)


def _string_variants(s):
    huge = (s or "A") * (100000 // max(len(s), 1) + 1)
    return [s + "\0", s + "\ud800", "\ud800" + s, huge[:100000], "/" + s,
            s + "/..", s.upper(), s[:1], s + "\n", "//" + s, s.replace("/", "//")]


def _number_variants(n):
    return [-n - 1, n + 2**32, n + 2**64, -n, n * 10**20, float(n), str(n), n + 1, n - 1]


# Values of the base config, to swap in as "same type" mutations: these get past the type
# checks more often and reach the kernel (mount options, capability names, paths...).
_BASE_STRINGS = sorted({v for v in json_paths_values(rich_config()) if isinstance(v, str)})
_BASE_INTS = sorted({v for v in json_paths_values(rich_config())
                     if isinstance(v, int) and not isinstance(v, bool)})


@st.composite
def mutation(draw, current):
    """One change of the value ``current`` found at some path."""
    choices = ["set", "set", "delete"]
    if isinstance(current, str):
        choices += ["variant"] * 3 + ["same-type"] * 3
    if isinstance(current, bool):
        choices += ["flip"] * 2
    elif isinstance(current, int):
        choices += ["variant"] * 3 + ["same-type"] * 3
    if isinstance(current, dict):
        choices += ["extra", "empty"]
    if isinstance(current, list):
        choices += ["append", "empty", "duplicate"]
    kind = draw(st.sampled_from(choices))
    if kind == "set":
        return ("set", draw(_values))
    if kind == "variant":
        variants = (_string_variants(current) if isinstance(current, str)
                    else _number_variants(current))
        return ("set", draw(st.sampled_from(variants)))
    if kind == "flip":
        return ("set", not current)
    if kind == "same-type":
        if isinstance(current, str):
            return ("set", draw(st.sampled_from(_BASE_STRINGS)))
        return ("set", draw(st.one_of(st.sampled_from(_BASE_INTS),
                                      st.integers(-1, max(2 * current, 16)))))
    if kind == "extra":
        return ("extra", draw(st.one_of(st.just("fuzzExtra"), _strings)), draw(_values))
    if kind == "append":
        return ("append", draw(_values))
    if kind == "empty":
        return ("set", type(current)())
    return (kind,)


def _parent(doc, path):
    """The container holding ``path`` and the last key, or (None, None) if it is gone."""
    node = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None, None
    if isinstance(node, dict) and isinstance(path[-1], str) and path[-1] in node:
        return node, path[-1]
    if isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        return node, path[-1]
    return None, None


def apply(doc, path, change):
    """Apply one mutation in place; returns the (possibly new) document."""
    change = copy.deepcopy(change)   # values are shared (SPECIAL_VALUES): never alias them
    if not path:
        if change[0] == "set":
            return change[1]
        node, key = None, None
        current = doc
    else:
        node, key = _parent(doc, path)
        if node is None:
            return doc
        current = node[key]
    kind = change[0]
    if kind == "set":
        node[key] = change[1]
    elif kind == "delete" and node is not None:
        del node[key]
    elif kind == "extra" and isinstance(current, dict):
        current[change[1]] = change[2]
    elif kind == "append" and isinstance(current, list):
        current.append(change[1])
    elif kind == "duplicate" and isinstance(current, list) and current:
        current.append(json.loads(json.dumps(current[0])))
    return doc


def serialize(doc):
    """JSON text of ``doc``, stand-ins replaced by a 5000-digit integer or deep nesting."""
    text = json.dumps(doc, indent=1)
    text = text.replace('"%s"' % HUGE_INT, "1" * 5000)
    return DEEP_MARK.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)


@st.composite
def damaged_text(draw, blob):
    kind = draw(st.sampled_from(["truncate", "byte", "bom", "trailing", "keep"]))
    if kind == "truncate":
        return blob[:draw(st.integers(0, max(len(blob) - 1, 0)))]
    if kind == "byte":
        at = draw(st.integers(0, len(blob)))
        return blob[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\0"])) \
            + blob[at:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + blob
    if kind == "trailing":
        return blob + draw(st.sampled_from([b"x", b"{}", b"\0", b" ,"]))
    return blob


@st.composite
def mutated_configs(draw, bases, skip=()):
    """(description, config.json bytes): a base with 1-3 mutations, sometimes damaged."""
    name = draw(st.sampled_from(sorted(bases)))
    base_text, paths = bases[name]
    paths = [p for p in paths if not any(p[:len(s)] == s for s in skip)]
    doc = json.loads(base_text)
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        node, key = _parent(doc, path) if path else (None, None)
        if path and node is None:
            continue
        change = draw(mutation(node[key] if path else doc))
        changes.append((path, change))
        doc = apply(doc, path, change)
    blob = serialize(doc).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 14)) == 5:   # (not 0: hypothesis favours the bounds)
        blob = draw(damaged_text(blob))
        changes.append(("text damaged",))
    return Case("%s: %s" % (name, _describe(changes)), blob)


class Case:
    """A mutated config.json; shown in a failure report by its mutations, not its 5 KB."""

    def __init__(self, description, blob):
        self.description = description
        self.blob = blob

    def __repr__(self):
        return "Case(%s)" % self.description


def _describe(changes):
    out = []
    for change in changes:
        text = repr(change)
        out.append(text if len(text) < 300 else text[:300] + "...")
    return "; ".join(out)


def _bases(cli=False):
    configs = {"rich": rich_config(cli=cli)}
    if not cli:
        configs["userns"] = userns_config()
    # The root itself is left out (the damaged-text cases cover the whole document), and the
    # paths are shuffled once: hypothesis favours the first entries of a list.
    bases = {}
    for name, c in configs.items():
        paths = [p for p in json_paths(c) if p]
        random.Random(7).shuffle(paths)
        bases[name] = (json.dumps(c), paths)
    return bases


# ------------------------------------------------------------------ checks

# Issue 8 item 8: echoed values are cut (errors.shown), so no message grows with the input
# (a 100 000-character string in config.json must not become a 100 000-character line).
MAX_MESSAGE = 2000
# A message of the init (ContainerSetupError) echoes paths of up to PATH_MAX: each long
# word of a long message is cut (errors._cut_words), so it is bounded like the others.
MAX_INIT_MESSAGE = MAX_MESSAGE


def check_one_line(message, limit=MAX_MESSAGE):
    assert message.strip(), "empty error message"
    assert len(message.splitlines()) == 1, "message of several lines: %r" % message[:500]
    message.encode()   # printable to a UTF-8 log file: no lone surrogate
    assert "Traceback" not in message
    assert len(message) <= limit, "message of %d characters: %r..." % (len(message),
                                                                      message[:300])


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory):
    bundle = tmp_path_factory.mktemp("fuzzbundle")
    (bundle / "rootfs").mkdir()
    (bundle / "data").mkdir()
    return bundle


def test_fuzz_config_in_process(plain_bundle):
    """(a) load_bundle + build_plan + encode over mutated configs: a plan or one line."""
    from minirunc.config import load_bundle
    from minirunc.errors import MiniruncError
    from minirunc.plan import build_plan

    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    with open("/proc/self/cgroup") as f:
        proc_cgroup = f.read()
    config_path = plain_bundle / "config.json"
    stats = {"cases": 0, "plans": 0, "errors": 0}

    @_settings(IN_PROCESS_EXAMPLES)
    @given(mutated_configs(_bases()))
    def case(sample):
        blob = sample.blob
        config_path.write_bytes(blob)
        stats["cases"] += 1
        try:
            config = load_bundle(str(plain_bundle))
            plan = build_plan(config, mountinfo=mountinfo, proc_cgroup=proc_cgroup)
            plan.add_session_keyring("fuzz", config.linux.namespace("user") is not None)
            plan.encode()
        except MiniruncError as e:
            stats["errors"] += 1
            check_one_line(str(e))
            return
        stats["plans"] += 1
        for warning in plan.warnings:
            check_one_line(warning)

    started = time.monotonic()
    case()
    print("config fuzz in process: %(cases)d cases, %(plans)d plans, %(errors)d errors"
          % stats, "in %.1f s" % (time.monotonic() - started))
    assert stats["plans"] and stats["errors"], stats


# ------------------------------------------------------------------ through the CLI

def check_cli_output(result, what):
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    for line in lines:
        assert line.startswith("minirunc: "), "%s: stray stderr line %r" % (what, line[:300])
    if result.returncode != 0:
        errors = [l for l in lines if not l.startswith("minirunc: warning: ")]
        assert len(errors) == 1, "%s failed (exit %d) without one line of error: %r" % (
            what, result.returncode, result.stderr[-2000:])
        check_one_line(errors[0], MAX_INIT_MESSAGE)


def test_fuzz_config_cli(rt, tmp_path, subreaper):
    """(b) `create` + `delete --force` of mutated configs: exit 0 or one line, nothing left."""
    bundle = tmp_path / "bundle"
    make_rootfs(str(bundle / "rootfs"))
    (bundle / "data").mkdir()
    config_path = bundle / "config.json"
    stats = {"cases": 0, "created": 0}
    # root.path stays as it is: see rich_config(cli=True)
    bases = _bases(cli=True)

    @_settings(CLI_EXAMPLES)
    @given(mutated_configs(bases, skip=[("root",)]))
    def case(sample):
        blob = sample.blob
        config_path.write_bytes(blob)
        cid = rt.new_id("fz")
        stats["cases"] += 1
        created = rt("create", "--bundle", bundle, cid, timeout=60)
        check_cli_output(created, "create")
        pid = None
        if created.returncode == 0:
            stats["created"] += 1
            with open(os.path.join(rt.root, cid, "state.json")) as f:
                pid = json.load(f)["pid"]
        else:
            assert not os.path.exists(os.path.join(rt.root, cid)), "failed create left its state"
        deleted = rt("delete", "--force", cid, timeout=60)
        check_cli_output(deleted, "delete --force")
        assert deleted.returncode == 0, deleted.stderr
        assert not os.path.exists(os.path.join(rt.root, cid)), "state directory left"
        assert not leftover_cgroups(cid), "cgroup directories left: %s" % leftover_cgroups(cid)
        left = leftover_processes()
        assert not left, "processes left (init pid was %s): %s" % (pid, left)
        assert not mounts_under(bundle, rt.root), "mounts left on the host"
        rt.ids.discard(cid)

    started = time.monotonic()
    case()
    print("config fuzz through the CLI: %(cases)d cases, %(created)d created" % stats,
          "in %.1f s" % (time.monotonic() - started))
    assert stats["created"], stats


# ------------------------------------------------------------------ item 7, case by case

def _edit_text(path, value):
    """config.json text of rich_config(cli=True) with ``value`` (raw JSON text) at ``path``."""
    doc = rich_config(cli=True)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "@@fuzz-raw@@"
    return json.dumps(doc, indent=1).replace('"@@fuzz-raw@@"', value)


DEEP_1000 = "[" * 1000 + "]" * 1000
ITEM7_CASES = [
    # (JSON path set, raw JSON value, words the one line must hold)
    (("process", "args", 0), '"sh\\ud800"', ["process.args[0]", "surrogate"]),
    (("hostname",), '"\\udfffx"', ["hostname", "surrogate"]),
    (("process", "env", 1), '"TERM=\\ud800"', ["process.env[1]", "surrogate"]),
    (("hooks", "prestart", 0, "args", 1), '"\\ud800"', ["hooks.prestart[0].args[1]"]),
    (("mounts", 1, "options", 2), '"mode=\\ud800"', ["mounts[1].options[2]"]),
    (("annotations", "org.example.key"), '"\\ud800"', ["annotations.org.example.key"]),
    (("linux", "resources", "unified"), '{"memory.high\\ud800": "1"}',
     ["linux.resources.unified.memory.high\\ud800"]),
    (("fuzzUnknown",), DEEP_1000, ["config.json", "nested more than 200 levels deep"]),
    (("annotations", "deep"), DEEP_1000, ["config.json", "nested more than 200 levels"]),
    (("fuzzUnknown",), "[" * 100000 + "]" * 100000, ["nested more than 200 levels"]),
    (("process", "user", "uid"), "1" * 5000, ["process.user.uid", "5000 digits"]),
    (("fuzzUnknown",), "-" + "9" * 4301, ["fuzzUnknown", "4301 digits"]),
    (("process", "cwd"), '"/tmp\\u0000x"', ["process.cwd", "NUL"]),
    (("process", "args", 0), '"s\\u0000h"', ["process.args[0]", "NUL"]),
    (("process", "env", 0), '"A=\\u0000"', ["process.env[0]", "NUL"]),
    (("hooks", "prestart", 0, "path"), '"/bin/true\\u0000"', ["hooks.prestart[0].path", "NUL"]),
    (("hooks", "prestart", 0, "env", 0), '"A=\\u0000"', ["hooks.prestart[0].env[0]", "NUL"]),
    (("mounts", 1, "options", 3), '"size=1\\u0000k"', ["mounts[1].options[3]", "NUL"]),
    (("mounts", 6, "source"), '"da\\u0000ta"', ["mounts[6].source", "NUL"]),
    (("linux", "devices", 0, "path"), '"/dev/f\\u0000"', ["linux.devices[0].path", "NUL"]),
    # found by the fuzzer: the init echoed the whole path in "file name too long"
    (("linux", "maskedPaths", 0), '"' + "/proc/acpi" * 500 + '"',
     ["linux.maskedPaths[0]", "5000 bytes", "PATH_MAX"]),
    (("hooks", "prestart", 0, "path"), '"' + "/bin/true" * 500 + '"',
     ["hooks.prestart[0].path", "4500 bytes", "PATH_MAX"]),
]


@pytest.mark.parametrize("path,value,words", ITEM7_CASES,
                         ids=["%s=%s" % (".".join(map(str, c[0])), c[1][:12]) for c in ITEM7_CASES])
def test_item7_refused_in_process(plain_bundle, path, value, words):
    """Surrogates, deep nesting, 4300+ digit integers, NUL: a ConfigError of one line that
    names the field (or the file), not a RecursionError, ValueError or UnicodeEncodeError."""
    from minirunc.config import load_bundle
    from minirunc.errors import ConfigError
    (plain_bundle / "config.json").write_text(_edit_text(path, value))
    with pytest.raises(ConfigError) as info:
        load_bundle(str(plain_bundle))
    check_one_line(str(info.value))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("path,value,words", [ITEM7_CASES[i] for i in (0, 8, 10, 12)],
                         ids=["surrogate", "deep", "digits", "nul"])
def test_item7_refused_by_create(rt, tmp_path, path, value, words):
    """The same through the CLI: exit 1, one line, nothing made."""
    bundle = tmp_path / "bundle"
    make_rootfs(str(bundle / "rootfs"))
    (bundle / "data").mkdir()
    (bundle / "config.json").write_text(_edit_text(path, value))
    cid = rt.new_id("it7")
    r = rt("create", "--bundle", bundle, cid)
    assert r.returncode == 1
    check_cli_output(r, "create")
    for word in words:
        assert word in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert not leftover_cgroups(cid)


def test_exec_argument_of_non_utf8_bytes(rt, make):
    """A command-line argument that is not UTF-8 reaches the process as the same bytes
    (it was a UnicodeEncodeError traceback when the plan was encoded)."""
    cid = rt.new_id("it7")
    r = rt("run", "-d", "--bundle", make(["sleep", "1000"]), cid)
    assert r.returncode == 0, r.stderr
    arg = os.fsdecode(b"a\xffb")
    r = rt("exec", cid, "sh", "-c", 'printf %s "$1" | od -An -tx1', "sh", arg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["61", "ff", "62"]


@pytest.mark.parametrize("text,path,words", [
    ("[" * 200 + "]" * 200, None, None),                  # 200 levels: read
    ('{"a": ' + "[" * 199 + "]" * 199 + "}", None, None),
    ("[" * 201 + "]" * 201, "", "nested more than 200 levels deep"),
    ('{"a": ' + "[" * 200 + "]" * 200 + "}", "", "nested more than 200"),
    ("[" * 3000 + "]" * 3000, "", "nested more than 200"),   # RecursionError in the scanner
    ("[" * 3000 + "]" * 2999, "", "nested more than 200"),   # invalid as well: still one line
    ('{"a": [1, ' + "7" * 4301 + "]}", "a[1]", "4301 digits"),
    ('{"a": {"b\\udc80": 1}}', "a.b\\udc80", "lone surrogate"),
    ('["\\ud83d\\ude00", "\\u00e9"]', None, None),        # a valid pair and a BMP character
])
def test_jsontext_limits(text, path, words):
    """jsontext.loads: LimitError (a ValueError: state.json's loader catches it too) with
    the JSON path, from any depth of the caller's stack."""
    from minirunc import jsontext
    if words is None:
        assert jsontext.loads(text) == json.loads(text)
        return
    with pytest.raises(jsontext.LimitError) as info:
        jsontext.loads(text)
    assert isinstance(info.value, ValueError)
    assert info.value.path == path and words in str(info.value)
