"""Containers (容器): the engine's lifecycle of a container, from create to rm.

A container is a record on disk (`records.py`) plus, while it runs, a process tree that the
runtime made (minidocker/runtime/) and a supervisor that watches it (`supervisor.py`, Docker's
containerd-shim). The engine speaks the Docker Engine API's JSON: a container is created from a
Config and a HostConfig (`spec.py` turns them into the OCI config.json the runtime reads), and
`inspect` answers with ContainerJSON. The command line (minidocker/cli/) only translates flags
into those bodies, as the docker CLI does; the daemon (chapter 07) puts HTTP on the same functions.

Some commands look into a running container through its cgroup: `pause` (the freezer), `stats`
(stats.py: memory, CPU and pids), `top` (top.py: its pids, shown by the host's ps). What the
engine returns is printed by `--format` templates, a small subset of Go's (gotemplate.py), in the
docker CLI's tables (formatting.py).
"""
