"""A real dockerd of our own, for chapter 09's tests and bench: Debian's docker.io (20.10) started on
a private socket, state and cgroup parent, with minidocker's runtime registered beside runc.

    d = Dockerd(workdir, runtimes={"minidocker": "/…/.venv/bin/minidocker-runc"},
                cgroup_parent="/minidocker/test-123/md-dockerd", env=env, bridge=Bridge("mdd123", "10.213.143.1/24"))
    d.docker("run", "--rm", "--runtime", "minidocker", "busybox", "echo", "hi")
    d.close()    # containers, dockerd, its containerd and shims, mounts, cgroups, the bridge: all gone

Everything dockerd would put on the host goes under `workdir` instead (docs/09-runtime.md#a-private-dockerd):

- `-H unix://…/d.sock`, `--data-root` (images, layers, containers), `--exec-root` (runtime state,
  the netns files, the socket of the containerd that dockerd starts itself when no --containerd is
  given: it lives and dies with dockerd), `--pidfile`, and `--config-file`: a daemon.json of ours,
  so that the host's /etc/docker/daemon.json cannot change the test; in it `deprecated-key-path`,
  or 20.10 writes its trust key to /etc/docker/key.json;
- `--iptables=false --ip6tables=false --ip-forward=false`: no NAT rules, no FORWARD policy, no
  sysctl: the host's firewall and routing are not ours to change;
- `--bridge=none`, or a bridge that the Bridge below makes (md-prefixed, so the leak check sees it)
  and removes: dockerd uses a bridge it is given as it finds it, and makes docker0 only when none is;
- `--cgroup-parent`: with the cgroupfs driver every container's cgroup is PARENT/ID in every
  hierarchy; the parent is made here before the first container (or the runtime makes it, and
  leaves it) and removed at the end. The cgroupfs driver is asked for (`native.cgroupdriver`):
  on a booted systemd host with cgroup v2 (the lab VM) dockerd would pick systemd's, which wants a
  parent named like "x.slice", and minidocker-runc, like many runtimes, has no systemd driver;

Two places outside `workdir` cannot be moved: containerd's shims put their sockets in
/run/containerd/s, and dockerd makes /run/docker/plugins for plugin discovery. Whichever of them
was not there before is removed again (when empty: another engine may be using it).
"""

import json
import os
import signal
import subprocess
import sys
import time

import harness

DOCKERD = "/usr/sbin/dockerd"
HOST_DIRS = ("/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker")


def storage_driver(directory: str) -> str:
    """overlay2 where the kernel can put an overlay on `directory`'s filesystem (ext4, xfs: yes;
    overlayfs itself or some tmpfs setups: no), else vfs, which copies each layer whole."""
    probe = os.path.join(directory, "overlay-probe")
    parts = [os.path.join(probe, p) for p in ("lower", "upper", "work", "merged")]
    for p in parts:
        os.makedirs(p, exist_ok=True)
    lower, upper, work, merged = parts
    ok = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                         f"lowerdir={lower},upperdir={upper},workdir={work}", merged],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", merged], check=True)
    subprocess.run(["rm", "-rf", probe], check=True)
    return "overlay2" if ok else "vfs"


class Bridge:
    """A Linux bridge with an address, for `dockerd --bridge NAME`: dockerd takes the bridge's
    subnet as the default network's and its address as the gateway. Made and removed by us.

    Other test sessions on this machine count any md* link that no store records as their own
    leak, and delete it: so the bridge is recorded first, as a minidocker store records its
    networks (`record_dir`/networks/NAME/network.json, record_dir a /tmp/md-* directory), and the
    record goes only after the link (see harness._others_resources)."""

    def __init__(self, name: str, address: str, record_dir: str):
        self.name, self.address = name, address  # e.g. "mdd123", "10.213.143.1/24"
        self.gateway = address.split("/")[0]
        self.record = os.path.join(record_dir, "networks", name, "network.json")
        os.makedirs(os.path.dirname(self.record), exist_ok=True)
        with open(self.record, "w") as f:
            json.dump({"Id": name, "Name": name, "Options": {"com.docker.network.bridge.name": name}}, f)
        subprocess.run(["ip", "link", "del", name], capture_output=True)  # a killed run's
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)

    def remove(self) -> None:
        """Once or twice alike (Dockerd.close and a fixture's own cleanup may both call it)."""
        subprocess.run(["ip", "link", "del", self.name], capture_output=True)
        if os.path.exists(self.record):
            os.unlink(self.record)
            os.rmdir(os.path.dirname(self.record))


class Dockerd:
    def __init__(self, workdir: str, runtimes: dict[str, str], cgroup_parent: str, env: dict | None = None,
                 bridge: Bridge | None = None, timeout: float = 20):
        self.dir = workdir
        self.sock = os.path.join(workdir, "d.sock")
        self.host = f"unix://{self.sock}"
        self.data_root, self.exec_root = os.path.join(workdir, "data"), os.path.join(workdir, "exec")
        self.cgroup_parent, self.bridge = cgroup_parent, bridge
        self.env = dict(env if env is not None else os.environ)
        self.host_dirs_before = {d for d in HOST_DIRS if os.path.exists(d)}
        os.makedirs(self.data_root, exist_ok=True)
        self.storage_driver = storage_driver(self.data_root)
        # The parent, and each of its ancestors that is not there yet: ours to remove at the end.
        self.cgroups_made = []
        for hierarchy in harness.cgroup_roots():
            path = os.path.join(hierarchy, cgroup_parent.lstrip("/"))
            while not os.path.isdir(path):
                self.cgroups_made.append(path)
                path = os.path.dirname(path)
            os.makedirs(os.path.join(hierarchy, cgroup_parent.lstrip("/")), exist_ok=True)
        config = os.path.join(workdir, "daemon.json")
        with open(config, "w") as f:
            json.dump({"deprecated-key-path": os.path.join(workdir, "key.json"),
                       "runtimes": {name: {"path": path} for name, path in runtimes.items()}}, f)
        self.log = open(os.path.join(workdir, "dockerd.log"), "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [DOCKERD, "-H", self.host, "--config-file", config, "--data-root", self.data_root,
             "--exec-root", self.exec_root, "--pidfile", os.path.join(workdir, "dockerd.pid"),
             "--storage-driver", self.storage_driver, "--cgroup-parent", cgroup_parent,
             "--exec-opt", "native.cgroupdriver=cgroupfs",
             "--iptables=false", "--ip6tables=false", "--ip-forward=false",
             "--bridge", bridge.name if bridge else "none"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self, timeout: float) -> None:
        """Until the API answers: the socket appears before the daemon has finished loading."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.process.returncode}:\n{self.read_log()}")
            if os.path.exists(self.sock):
                try:  # the whole wait's time left: on an emulated machine one answer takes seconds
                    if self.docker("version", timeout=max(1.0, deadline - time.monotonic())).returncode == 0:
                        return
                except subprocess.TimeoutExpired:
                    break
            time.sleep(0.05)
        raise RuntimeError(f"dockerd did not answer in {timeout} s:\n{self.read_log()}")

    def read_log(self, tail: int = 4000) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()[-tail:]

    def client_env(self, extra: dict | None = None) -> dict:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return dict(clean, DOCKER_HOST=self.host, DOCKER_CONFIG=os.path.join(self.dir, "docker-config"),
                    **(extra or {}))

    def docker(self, *args, input=None, timeout=60, **kwargs) -> subprocess.CompletedProcess:
        """The docker CLI (the first on PATH) against this daemon."""
        return subprocess.run(["docker", *map(str, args)], input=input, capture_output=True, text=True,
                              env=self.client_env(), timeout=timeout, **kwargs)

    def load_busybox(self, python: str = sys.executable) -> str:
        """`minidocker save busybox | docker load`: minidocker's embedded busybox image (no network)
        in dockerd's store, through the same docker-save tar format that Docker writes."""
        env = dict(self.env, MINIDOCKER_ROOT=os.path.join(self.dir, "minidocker-store"))
        subprocess.run([python, "-c", "from minidocker.image import builtin, layout; builtin.busybox(layout.Layout())"],
                       env=env, check=True, capture_output=True)
        save = subprocess.Popen([python, "-m", "minidocker", "save", "busybox"], env=env, stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "load"], stdin=save.stdout, capture_output=True, text=True,
                              env=self.client_env())
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"minidocker save busybox | docker load failed: {load.stderr}")
        return "busybox"

    # --8<-- [start:stop-dockerd]
    def close(self) -> None:
        """Stop everything and leave the host as it was. The order matters: containers first (each
        takes its shim and its mounts with it), then dockerd (which stops its containerd), then
        whatever a crash left: processes, mounts, cgroups, the bridge, the host directories."""
        if self.process.poll() is None:
            ids = self.docker("ps", "-aq", timeout=30).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, timeout=60)
            self.process.send_signal(signal.SIGTERM)  # dockerd's graceful shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self._leftover_pids():  # containerd and shims: found by their pid files
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._unmount_all()
        self._remove_cgroups()
        if self.bridge:
            self.bridge.remove()
        for d in HOST_DIRS:  # deepest first: /run/containerd/s before /run/containerd
            if d not in self.host_dirs_before:
                try:
                    os.rmdir(d)
                except OSError:
                    pass  # gone already, or not empty: someone else's engine uses it
        self.log.close()
    # --8<-- [end:stop-dockerd]

    def _leftover_pids(self) -> list[int]:
        """What a dockerd that died leaves running: its containerd and the containers' first
        processes (their pid files), and the shims (each was started with our containerd's
        socket in its command line: `-address EXEC_ROOT/containerd/containerd.sock`)."""
        pids = []
        for dirpath, _, files in os.walk(self.exec_root):
            for name in files:
                if name in ("containerd.pid", "init.pid"):
                    try:
                        with open(os.path.join(dirpath, name)) as f:
                            pids.append(int(f.read().strip()))
                    except (OSError, ValueError):
                        pass
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if (self.exec_root + "/").encode() in f.read():
                        pids.append(int(entry))
            except (OSError, ValueError):
                pass
        return [p for p in pids if p > 1 and p != os.getpid() and os.path.exists(f"/proc/{p}")]

    def _unmount_all(self) -> None:
        """Mounts dockerd made under our directory (overlay rootfs, netns files, shm): all ours."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted({p for p in points if p.startswith(self.dir + "/")}, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)

    def _remove_cgroups(self) -> None:
        """The containers' cgroups a crash left under our parent, then the parent itself and the
        ancestors we made for it."""
        below = []
        for hierarchy in harness.cgroup_roots():
            top = os.path.join(hierarchy, self.cgroup_parent.lstrip("/"))
            below += [dirpath for dirpath, _, _ in os.walk(top) if dirpath != top]
        for dirpath in sorted(below + self.cgroups_made, key=len, reverse=True):
            harness.remove_cgroup(dirpath)
