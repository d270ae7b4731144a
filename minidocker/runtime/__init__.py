"""The runtime: this is what runc does for Docker.

Docker never makes a container itself. It writes an OCI *bundle* (a directory with config.json,
the OCI runtime spec's description of the container) and asks an OCI runtime, runc, to run it:
`runc create`, `runc start`, `runc state`, `runc kill`, `runc delete`. This package is that
runtime. It reads the bundle's config.json and nothing else, in the spec's own field names:
`process` (args, env, cwd, user, terminal, rlimits, noNewPrivileges), `root`, `hostname`,
`mounts`, and `linux` (namespaces, cgroupsPath, resources, devices, maskedPaths, readonlyPaths,
uidMappings and gidMappings: a new user namespace is made first, in two stages, see userns.py).

The container's first process, in order (spawn.py, rootfs.py, mounts.py, process.py):

1. create() makes the cgroup at linux.cgroupsPath and writes linux.resources into it;
2. the process is forked into a new PID namespace (or the one a namespace's `path` names),
   where it is PID 1;
3. it joins its cgroup, then joins (setns) or makes (unshare) the other namespaces;
4. it builds its root filesystem: private mounts, the rootfs bound on itself, every entry of
   `mounts` in order, the device nodes, then pivot_root, masked and read-only paths;
5. it takes on the process settings (stdio, cwd, rlimits, groups, uid/gid, no_new_privs) and
   then *waits*: it opens exec.fifo in the state dir for writing, which blocks until start()
   opens it for reading. Only then does it exec the command.

That wait is runc's create/start split. Between the two, the container exists (namespaces,
cgroup, mounts) but runs nothing of its own: an engine can still set up its network, or
a test can look at it. The fifo also carries back an exec error, as the error pipe of Python's
subprocess does: it is close-on-exec, so when the exec works start() reads EOF; when it fails,
the process writes the error (`exec: "nope": executable file not found in $PATH`, exit code
127) and start() raises it. Errors before the wait go back to create() the same way, on a pipe.

The engine calls these functions in-process (run() is create + start in the caller, which stays
the container's parent); `minidocker runtime` is the same API on runc's command line.
See docs/01-isolation.md#the-runtime.
"""

from minidocker.runtime.lifecycle import (create, default_root, delete, exec_process, kill, list_containers,
                                          process_start_time, run, start, state, stats)

__all__ = ["StartError", "create", "default_root", "delete", "exec_process", "exit_code", "join", "kill",
           "list_containers", "process_start_time", "run", "start", "state", "stats"]

# Three names come from the code that makes processes (process.py, spawn.py, and through them
# rootfs.py, mounts.py, linux/): they are imported on first use, not here. `minidocker-runc
# state` (and start, kill, delete), a process of its own at each call of containerd's shim,
# imports this package and must not pay for what only create and exec use.
_LAZY = {"StartError": "process", "exit_code": "process", "join": "spawn"}


def __getattr__(name: str):
    """PEP 562: called for a name the module does not have (yet)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"minidocker.runtime.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
