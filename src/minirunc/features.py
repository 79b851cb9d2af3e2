"""The features document (runtime-spec features.md, runc's `features` command): what this
build of minirunc recognizes and implements, from the same tables the config validator
and the plan use, so the document cannot drift from the code."""

from minirunc import SPEC_VERSION, caps, mountopts
from minirunc.config import (HOOK_KINDS, NAMESPACE_TYPES, SECCOMP_ACTIONS, SECCOMP_ARCHES,
                             SECCOMP_FLAGS, SECCOMP_OPS)

# Accepted in config.json but refused with an error (there is no seccomp agent support).
_UNSUPPORTED_ACTIONS = ("SCMP_ACT_NOTIFY",)
# Recognized, but the init does not pass it on (it only matters with SCMP_ACT_NOTIFY).
_UNSUPPORTED_FLAGS = ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",)


def features(criu_path=None):
    """The document as a dict (key order as in the spec).  Checkpoint/restore is announced
    with runc's annotation when a usable CRIU (``--criu``, or `criu` on PATH) answers."""
    mount_options = (set(mountopts.FLAGS) | set(mountopts.PROPAGATION) | set(mountopts.RECURSIVE)
                     | set(mountopts.IDMAP) | set(mountopts.COPYUP))
    document = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(mount_options - set(mountopts.UNSUPPORTED)),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            "capabilities": list(caps.NAMES),
            # --systemd-cgroup is mapped onto cgroupfs paths, not a systemd driver.
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(a for a in SECCOMP_ACTIONS if a not in _UNSUPPORTED_ACTIONS),
                "operators": sorted(SECCOMP_OPS),
                "archs": sorted(SECCOMP_ARCHES),
                "knownFlags": sorted(SECCOMP_FLAGS),
                "supportedFlags": sorted(f for f in SECCOMP_FLAGS if f not in _UNSUPPORTED_FLAGS),
            },
            # The runtime's support, "irrelevant to the availability ... on the host" (spec):
            # labels are applied where the module is active, warned about where not (lsm.py).
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
    }
    from minirunc.criu import available
    if available(criu_path):
        document["annotations"] = {"org.opencontainers.runc.checkpoint.enabled": "true"}
    return document
