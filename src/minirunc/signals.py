"""Signal names and numbers for `kill`, without importing the `signal` module (it pulls enum).

Accepts what runc accepts: `KILL`, `SIGKILL`, `kill`, `9`, and the real-time forms
`RTMIN`, `RTMIN+3`, `RTMAX-1`; and `0`, which sends nothing and only asks whether the
container's init is alive (kill(2)'s null signal; runc passes it through).
"""

from .errors import UsageError

# Linux numbering (x86, arm, aarch64, riscv: the generic table).
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN = 34
SIGRTMAX = 64


def parse_signal(text):
    """Signal number for a name or number; UsageError naming the input otherwise."""
    raw = text.strip()
    if raw.isdigit():
        num = int(raw)
        if 0 <= num <= SIGRTMAX:
            return num
        raise UsageError("invalid signal %r: numbers go from 0 (only check that the container "
                         "is alive) to %d" % (text, SIGRTMAX))
    name = raw.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value, sign in (("RTMIN", SIGRTMIN, 1), ("RTMAX", SIGRTMAX, -1)):
        if name == base:
            return value
        if name.startswith(base) and name[len(base)] in "+-":
            offset = name[len(base) + 1:]
            if offset.isdigit():
                num = value + (int(offset) if name[len(base)] == "+" else -int(offset))
                if SIGRTMIN <= num <= SIGRTMAX:
                    return num
    raise UsageError("unknown signal %r: use a name such as TERM, SIGKILL or a number" % text)
