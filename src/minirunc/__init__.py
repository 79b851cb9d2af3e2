"""minirunc: a small, daemonless OCI container runtime with runc's command line.

Python plans (config, state, user interface); the C init helper in native/ executes
the plan inside the new namespaces. See docs/design.md.
"""

__version__ = "0.1.0"
SPEC_VERSION = "1.2.0"
