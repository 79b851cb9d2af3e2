"""The binaries' math functions: musl's, from Debian's musl-dev (build/binary.py musl_math()),
mended by build/math_fixes.c, held to glibc's libm.

tests/math_probe.c is linked the way each binary is (the target's zig toolchain, the build's
libmrm.a and math_fixes.o, the same --wrap flags) and once against glibc's libm alone; both
evaluate every function on the same arguments: special values (zeros, infinities, NaN,
subnormals, the largest doubles, domain edges), a log-uniform spread over 1e-30..1e30 of both
signs and a grid over [-10, 10].  The class of every result (NaN, infinity, zero or finite,
and its sign) must be glibc's, since CPython's math module tells a domain or range error by it
(musl sets no errno); the exact functions must agree bit for bit, the others within 4 ulp.
That the probe runs the binary's own code is checked by the size of each function in both."""

import math
import os
import random
import struct
import subprocess

import pytest

from conftest import build_constant

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.path.join(REPO, "tests", "math_probe.c")
GLIBC_LIBM = "/lib/x86_64-linux-gnu/libm.so.6"
TARGETS = {"gnu": "minirunc", "musl": "minirunc-static"}
ONE_ARG = ("sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp exp2 expm1 log log2 "
           "log10 log1p sqrt cbrt erf erfc floor ceil round fabs frexp modf").split()
TWO_ARGS = "pow fmod atan2 hypot nextafter copysign".split()
WITH_EXPONENT = ("ldexp", "scalbn")
FUNCTIONS = ONE_ARG + TWO_ARGS + list(WITH_EXPONENT)
# correctly rounded by definition: musl and glibc must give the same bits
EXACT = {"floor", "ceil", "round", "fabs", "sqrt", "fmod", "nextafter", "copysign", "frexp",
         "modf", "ldexp", "scalbn"}
MAX_ULPS = 4
SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e-310, -1e-310,
           2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 1.0, -1.0,
           0.5, -0.5, 2.0, -2.0, 709.78, 710.0, -745.2, 1e300, -1e300, 1e-300, math.pi,
           math.pi / 2, 1e22, 2.0 ** 53, -(2.0 ** 26), -(2.0 ** 25) - 1]


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def double(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def kind(x):
    name = "nan" if math.isnan(x) else "inf" if math.isinf(x) else "zero" if x == 0 else "finite"
    return name if name == "nan" else name + ("-" if math.copysign(1, x) < 0 else "+")


def ulps(a, b):
    """Doubles between two bit patterns (ordered as numbers: negative ones mirrored)."""
    def ordered(u):
        return u if u < 1 << 63 else (1 << 63) - u
    return abs(ordered(a) - ordered(b))


def function_sizes(path):
    """{name: [size of each function of that name]} from the symbol table."""
    sizes = {}
    out = subprocess.run(["nm", "-S", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "TtWi":
            sizes.setdefault(fields[3], []).append(int(fields[1], 16))
    return sizes


@pytest.fixture(scope="module", params=sorted(TARGETS))
def build(request):
    """(binary, build/binary/<target>) of one target, or skip when it was not built here."""
    binary = os.path.join(REPO, "dist", TARGETS[request.param])
    work = os.path.join(REPO, "build", "binary", request.param)
    parts = [binary] + [os.path.join(work, p) for p in
                        ("lib/libmrm.a", "obj/math_fixes.o", "toolchain/zig-cc", "minirunc-symbols")]
    missing = [p for p in parts if not os.path.exists(p)]
    if missing:
        if os.environ.get("MINIRUNC_REQUIRE_BINARY"):
            pytest.fail("%s missing and MINIRUNC_REQUIRE_BINARY is set: run `make binary "
                        "binary-static`" % ", ".join(missing))
        pytest.skip("%s missing: run `make binary binary-static`" % ", ".join(missing))
    return request.param, work


@pytest.fixture(scope="module")
def probes(build, tmp_path_factory):
    """(the probe linked as the target's binary is, the probe on glibc's libm)."""
    target, work = build
    out = tmp_path_factory.mktemp("math-" + target)
    ours, glibc = str(out / "ours"), str(out / "glibc")
    cmd = [os.path.join(work, "toolchain", "zig-cc"), "-O1", "-fno-builtin", PROBE,
           os.path.join(work, "obj", "math_fixes.o"), os.path.join(work, "lib", "libmrm.a"),
           "-lm", "-o", ours]
    cmd += ["-Wl,--wrap=%s" % name for name in build_constant("MATH_FIXES")]
    if target == "musl":
        cmd.append("-static")
    for argv in (cmd, ["gcc", "-O1", "-fno-builtin", PROBE, "-lm", "-o", glibc]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    return ours, glibc


def arguments():
    rng = random.Random(7)
    values = SPECIAL + [rng.choice((1, -1)) * 10 ** rng.uniform(-30, 30) for _ in range(1500)]
    values += [i / 40 for i in range(-400, 401)]
    lines = ["%s %x 0" % (name, bits(v)) for name in ONE_ARG for v in values]
    for name in TWO_ARGS:
        pairs = [(a, b) for a in SPECIAL for b in SPECIAL]
        pairs += [(rng.choice(values), rng.choice(values)) for _ in range(3000)]
        lines += ["%s %x %x" % (name, bits(a), bits(b)) for a, b in pairs]
    for name in WITH_EXPONENT:
        lines += ["%s %x %x" % (name, bits(v), n & (1 << 64) - 1)
                  for v in values[:500] for n in (-1100, -1074, -10, 0, 3, 1000, 1100)]
    return lines


def evaluate(probe, lines):
    r = subprocess.run([probe], input="\n".join(lines) + "\n", capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout[-300:] + r.stderr
    out = r.stdout.splitlines()
    assert len(out) == len(lines)
    return out


def test_the_probe_runs_the_binaries_own_math(build, probes):
    """Each function the probe calls is the binary's: one definition of that name in the
    binary, as long as the probe's.  The gnu binary has no math beyond what the probe knows."""
    target, work = build
    ours = function_sizes(probes[0])
    binary = function_sizes(os.path.join(work, "minirunc-symbols"))
    for name in FUNCTIONS:
        assert len(ours.get(name, ())) == 1 and binary.get(name) == ours[name], \
            (name, binary.get(name), ours.get(name))
    for name in build_constant("MATH_FIXES"):
        assert binary.get("__wrap_" + name) == ours.get("__wrap_" + name), name
    if target == "gnu":
        out = subprocess.run(["nm", "-D", "--defined-only", GLIBC_LIBM], capture_output=True,
                             text=True, check=True).stdout
        libm = {line.split()[-1].split("@")[0] for line in out.splitlines()}
        assert set(binary) & libm <= set(FUNCTIONS), sorted(set(binary) & libm - set(FUNCTIONS))


def test_the_math_gives_glibcs_results(probes):
    lines = arguments()
    ours, glibc = (evaluate(p, lines) for p in probes)
    wrong = []
    for line, a, b in zip(lines, ours, glibc):
        name = line.split()[0]
        if a == b:
            continue
        x, y = (double(int(v.split()[0], 16)) for v in (a, b))
        if math.isnan(x) and math.isnan(y) and a.split()[1:] == b.split()[1:]:
            continue   # a NaN's sign and payload are not specified
        if name in EXACT or kind(x) != kind(y) or ulps(bits(x), bits(y)) > MAX_ULPS:
            wrong.append("%s(%r): %s, glibc %s (%r, %r)" % (
                name, double(int(line.split()[1], 16)), a, b, x, y))
    assert not wrong, "%d of %d differ, e.g.:\n%s" % (len(wrong), len(lines), "\n".join(wrong[:20]))


def test_acosh_below_one_is_nan(probes):
    """musl's acosh(x) for -2**26 < x <= -2 gave numbers (17.37 for -1.7e7), so CPython's
    math.acosh raised no ValueError there (build/math_fixes.c)."""
    lines = ["acosh %x 0" % bits(x) for x in (-1.7e7, -2.0, -3.0, -6.7e7, 0.5, -math.inf)]
    for value in evaluate(probes[0], lines):
        assert math.isnan(double(int(value, 16))), value
