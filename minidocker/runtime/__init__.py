"""The runtime: from an OCI runtime config (config.json) to an isolated process.

This is what runc does for Docker. `spawn()` starts a container's first process, `join()` starts
another process inside a running container (`exec`). In order, the first process:

1. is forked into a new PID namespace, where it is PID 1;
2. joins its cgroup, then unshares the other namespaces (mount, UTS, IPC, network, cgroup);
3. builds its root filesystem: private mounts, the rootfs bound on itself (or an overlay),
   /proc, /dev and /sys, then pivot_root into it and the old root detached;
4. takes on the process settings (stdio, cwd, uid/gid) and execs the command.

Errors before the exec travel back to the parent through a close-on-exec pipe, as Python's own
subprocess does: if the exec succeeds the kernel closes the pipe and the parent reads nothing.
See docs/01-isolation.md.
"""

from minidocker.runtime.process import StartError, exit_code
from minidocker.runtime.spawn import join, spawn

__all__ = ["StartError", "exit_code", "join", "spawn"]
