"""No cgroup filesystem mounted (an embedded host, a minimal initramfs): the container
runs without cgroups, and a config asking for resources gets one warning naming them."""

from .base import Driver
from .validate import requested
from ..errors import StateError


class NoneDriver(Driver):
    name = "none"

    def record(self):
        return {"driver": self.name}

    def apply(self, resources, config_devices=(), current=None):
        wanted = requested(resources)
        if not wanted:
            return []
        return ["linux.resources: no cgroup filesystem is mounted on this host; %s NOT applied"
                % ", ".join(wanted)]

    def freeze(self):
        raise StateError(None, "no cgroup filesystem is mounted on this host: pause and resume "
                         "need a freezer")

    thaw = freeze
