"""Cgroups: one small driver interface over the host's layout (v1, v2, hybrid or none).

- ``paths``: the host layout from /proc/self/mountinfo and /proc/self/cgroup, and where a
  container's cgroup goes (``linux.cgroupsPath`` read as runc reads it).
- ``validate``: linux.resources checked with JSON paths (pure; used by config.py).
- ``translate``: resources -> (controller, file, value) writes for v1 and v2 (pure).
- ``base``, ``v1``, ``v2``, ``hybrid``, ``none``: the drivers; ``stats``: runc's stats shape.

Nothing here is imported by `state` or `list`: ``state.py`` reads the freezer file it
needs straight from the path recorded in state.json.
"""


def driver_for_create(linux, container_id, systemd=False, mountinfo=None, proc_cgroup=None):
    """The driver a new container gets: (driver, notices)."""
    from .paths import choose_driver
    return choose_driver(linux, container_id, systemd, mountinfo, proc_cgroup)


def driver_from_record(record):
    """The driver of an existing container, from the ``cgroup`` record of state.json."""
    from .base import from_record
    return from_record(record)
