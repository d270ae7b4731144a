"""Chapter 09's fixtures: a real containerd of our own, with minidocker's runtime in runc's place.

    ctd = Containerd(workdir)          # containerd on a private socket, root and state
    ctd.ctr("images", "import", TAR)   # the ctr client, pointed at that socket
    ctd.run("c1", "echo", "hi")        # ctr run --runc-binary .venv/bin/minidocker-runc --rm ...
    ctd.close()                        # tasks, shims, mounts, cgroups, files: all gone

Everything containerd would put on the host goes under `workdir` instead: `root` (content store,
snapshots, metadata), `state` (the bundles, where the shim mounts each container's rootfs), the
gRPC and ttrpc sockets, and, for ctr, `--fifo-dir` (the FIFOs of a task's stdio) and
`--runc-root` (the runtime's state: runc's /run/containerd/runc). Each container's cgroup is
`--cgroup /$MINIDOCKER_CGROUP_PARENT/ctr-ID`, inside the session's cgroups, where the leak check
looks. One place cannot move: the shims' sockets, /run/containerd/s; it is removed again at the
end if it was not there before and is empty. See docs/09-runtime.md#containerd-and-ctr.
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest

import harness

CONTAINERD, CTR = "/usr/bin/containerd", "/usr/bin/ctr"
RUNC_FACE = os.path.join(os.path.dirname(sys.executable), "minidocker-runc")
IMAGE = "docker.io/library/busybox:latest"
HOST_DIRS = ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd")

# Plugins a `ctr run` does not need: the Kubernetes CRI (the slowest to start), the snapshotters
# of filesystems we do not have, tracing, and "opt" (it would make /opt/containerd on the host).
DISABLED = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
            "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.opt"]


@pytest.fixture(scope="session")
def runc_binary(tmp_path_factory) -> str:
    """The minidocker-runc under test: the venv's console script, or for a student's copy
    (--impl DIR) a two-line script that runs the same entry point from that copy."""
    harness.need(os.path.exists(RUNC_FACE), "the minidocker-runc script: run scripts/setup.sh (pyproject names it)")
    if harness.IMPL == harness.REPO:
        return RUNC_FACE
    path = str(tmp_path_factory.mktemp("runc-face") / "minidocker-runc")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nPYTHONPATH={harness.IMPL} PYTHONSAFEPATH=1 exec {sys.executable} -m minidocker.cli.runc "$@"\n')
    os.chmod(path, 0o755)
    return path


class Containerd:
    def __init__(self, workdir: str, runc_binary: str = RUNC_FACE, env: dict | None = None):
        self.workdir, self.runc_binary = workdir, runc_binary
        self.socket = os.path.join(workdir, "containerd.sock")
        self.runc_root = os.path.join(workdir, "runc")
        self.fifo_dir = os.path.join(workdir, "fifo")
        self.cgroup_parent = os.environ.get("MINIDOCKER_CGROUP_PARENT", "minidocker")
        self.host_dirs_before = {d for d in HOST_DIRS if os.path.exists(d)}
        config = os.path.join(workdir, "config.toml")
        with open(config, "w") as f:
            f.write(f'version = 2\nroot = "{workdir}/root"\nstate = "{workdir}/state"\n'
                    f'disabled_plugins = {DISABLED!r}\n'.replace("'", '"') +
                    f'[grpc]\n  address = "{self.socket}"\n[ttrpc]\n  address = "{self.socket}.ttrpc"\n')
        self.log = open(os.path.join(workdir, "containerd.log"), "w")
        # Its own session: a ^C at the terminal goes to pytest, not to containerd as well.
        self.process = subprocess.Popen([CONTAINERD, "--config", config], stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        harness.wait_until(lambda: self.process.poll() is not None or self.ctr("version").returncode == 0,
                           "containerd to answer on its socket", timeout=20, interval=0.1)
        assert self.process.poll() is None, f"containerd exited at once:\n{self.read_log()}"

    def read_log(self) -> str:
        with open(self.log.name) as f:
            return f.read()[-4000:]

    def ctr(self, *args, input=None, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run([CTR, "--address", self.socket, *args], input=input, capture_output=True,
                              text=True, timeout=timeout)

    def run_flags(self, container_id: str) -> list[str]:
        """`ctr run`'s flags that put the container on minidocker's runtime and in our places."""
        return ["--runc-binary", self.runc_binary, "--runc-root", self.runc_root, "--fifo-dir", self.fifo_dir,
                "--cgroup", f"/{self.cgroup_parent}/ctr-{container_id}"]

    def run(self, container_id: str, *command: str, flags=(), input=None, timeout=30) -> subprocess.CompletedProcess:
        """ctr run --rm IMAGE ID COMMAND...: in the foreground, with the task's output and exit code."""
        done = self.ctr("run", *self.run_flags(container_id), "--rm", *flags, IMAGE, container_id, *command,
                        input=input, timeout=timeout)
        self.wait_for_shim(container_id)
        return done

    def exec(self, container_id: str, exec_id: str, *command: str, timeout=30) -> subprocess.CompletedProcess:
        """ctr task exec: another process in a running task (runc exec --detach, under the shim)."""
        return self.ctr("task", "exec", "--fifo-dir", self.fifo_dir, "--exec-id", exec_id, container_id, *command,
                        timeout=timeout)

    def task_status(self, container_id: str) -> str | None:
        """RUNNING, PAUSED, STOPPED... as `ctr task ls` shows it; None when there is no task."""
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            words = line.split()
            if words and words[0] == container_id:
                return words[-1]
        return None

    def remove(self, container_id: str) -> None:
        """Kill and delete a task and its container, whatever state they are in."""
        self.ctr("task", "kill", "--all", "--signal", "KILL", container_id)
        harness.wait_until(lambda: self.task_status(container_id) in (None, "STOPPED"),
                           f"task {container_id} to stop", timeout=10)
        self.ctr("task", "delete", "--force", container_id)
        self.ctr("container", "delete", container_id)
        self.wait_for_shim(container_id)

    def wait_for_shim(self, container_id: str) -> None:
        """The shim exits a moment after its task is deleted; after a failed start, containerd runs
        `containerd-shim-runc-v2 delete` itself, later, to unmount the rootfs and remove the bundle.
        Wait for both, so that no test leaves a shim, a mount or a cgroup behind."""
        bundle = os.path.join(self.workdir, "state", "io.containerd.runtime.v2.task", "default", container_id)
        harness.wait_until(lambda: not os.path.exists(bundle) and not self._our_shims(container_id),
                           f"the shim of {container_id} to exit and its bundle to go")

    def close(self) -> None:
        for container_id in self.ctr("container", "ls", "--quiet").stdout.split():
            self.remove(container_id)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        # A shim outlives containerd on purpose (live restore); ours, named by our socket, go too.
        for pid in self._our_shims():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for point in sorted(self._our_mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        for d in HOST_DIRS:
            if d not in self.host_dirs_before:
                try:
                    os.rmdir(d)  # only when empty: another engine may have come meanwhile
                except OSError:
                    pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _our_shims(self, container_id: str | None = None) -> list[int]:
        found = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    words = f.read().split(b"\0")
            except OSError:
                continue
            if os.fsencode(self.socket) in words and entry != str(self.process.pid) and (
                    container_id is None or os.fsencode(container_id) in words):
                found.append(int(entry))
        return found

    def _our_mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if line.split()[4].startswith(self.workdir + "/")]


@pytest.fixture(scope="module")
def containerd(runc_binary):
    """A containerd of our own with minidocker's busybox imported (as `minidocker save` exports it)."""
    harness.need_root()
    harness.need(os.path.exists(CONTAINERD) and os.path.exists(CTR), "containerd and ctr: scripts/setup.sh installs docker.io")
    # Under the session's MINIDOCKER_ROOT: the leak check sees the mounts made there.
    workdir = os.path.join(os.environ["MINIDOCKER_ROOT"], f"containerd-{os.getpid()}")
    os.makedirs(workdir)
    # cli_env: the shim's minidocker-runc then imports the package under test, from cached
    # bytecode (without a cache, every call compiles the runtime again: ~0.1 s each, 5 a container).
    ctd = Containerd(workdir, runc_binary, env=harness.cli_env())
    try:
        from minidocker.image import builtin, layout

        builtin.busybox(layout.Layout())
        archive = os.path.join(workdir, "busybox.tar")
        saved = harness.run_cli("save", "busybox", "-o", archive)
        assert saved.returncode == 0, f"minidocker save busybox failed: {harness.explain(saved)}"
        imported = ctd.ctr("images", "import", archive)
        assert imported.returncode == 0, (f"ctr could not import `minidocker save`'s archive (see "
                                          f"docs/03-images.md#save-and-load): {imported.stderr}")
        yield ctd
    finally:
        ctd.close()
