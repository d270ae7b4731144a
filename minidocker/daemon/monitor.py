"""The daemon's monitor: it hears containers exit, and starts again what their restart policy asks.

Who restarts a container? In Docker, dockerd: containerd tells it of every exit (an event from
the shim), and dockerd's restart manager decides (container/restart.py's should_restart is its
rule). Our supervisor plays the shim, and it already writes each exit to state.json; what is left
is for the daemon to notice. Two ways, both used here:

- each running container's supervisor is watched through a **pidfd** (pidfd_open(2)): the fd
  becomes readable the moment that process exits, so an exit is heard at once, with no polling,
  whoever started the container (this daemon, a daemon before it, the daemonless CLI);
- a **scan** of the containers' state every second catches what no pidfd saw: a container that
  started and exited between two scans, or one a pidfd could not be opened for.

An exit is decided once: the monitor remembers the FinishedAt it has decided on. A restart waits
dockerd's back-off (100 ms, doubling, at most a minute), then counts itself in RestartCount.

Why not let the supervisor restart its own container (podman's conmon does, through an exit
command)? It would work with no daemon at all; but Docker's rule is that the daemon restarts,
`stop` must reach whoever decides, and a restart must take the same path as any start (networks,
volumes, a new supervisor). So policies act while a daemon runs, and when a daemon starts
(`restore`): containers whose supervisor died with the machine are marked exited, and those whose
policy says so are started again, as dockerd does at boot. Containers whose supervisor still runs
are simply found: they never stopped (Docker's live-restore).
"""

import os
import select
import sys
import threading
import time

from minidocker.container import lifecycle, records, restart, supervisor
from minidocker.errors import MinidockerError

SCAN_INTERVAL = 1.0


def _policy(c: records.Container) -> dict:
    return c.record.get("HostConfig", {}).get("RestartPolicy") or restart.NONE


def _ran_for(c: records.Container) -> float:
    from minidocker.container.inspect import _since

    try:
        return _since(c.state["StartedAt"]) - _since(c.state["FinishedAt"])
    except (KeyError, ValueError):
        return 0.0


class Monitor:
    def __init__(self):
        self.decided: dict[str, str] = {}  # container id -> the FinishedAt of the exit decided on
        self.delays: dict[str, float] = {}  # container id -> its last back-off delay
        self.due: dict[str, float] = {}  # container id -> when to start it again
        self.watched: dict[int, tuple[str, int]] = {}  # pidfd -> (container id, supervisor pid)
        self.forked: set[int] = set()  # supervisors this monitor forked: ours to reap
        self.stopping = threading.Event()

    # -- at the daemon's start ---------------------------------------------------------------
    def restore(self) -> None:
        """Find every container; start again those a daemon's start starts (`always`, and the
        rest as should_restart says with daemon_starting=True)."""
        for c in lifecycle.all_containers():  # refresh: a dead supervisor's container is exited now
            self.decided[c.id] = c.state.get("FinishedAt", "")
            if c.state["Running"] or c.state["Status"] != "exited":
                continue
            if restart.should_restart(_policy(c), c.state["ExitCode"], c.record.get("RestartCount") or 0,
                                      bool(c.record.get("HasBeenManuallyStopped")), daemon_starting=True):
                try:
                    lifecycle.start(c.id)  # as dockerd: a start like a user's, the count reset
                    self.forked.add(records.find(c.id).state.get("SupervisorPid", 0))
                except MinidockerError as e:
                    log(f"restore: cannot start {c.name}: {e}")

    # -- while the daemon runs -----------------------------------------------------------------
    def run(self) -> None:
        next_scan = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                next_scan = now + SCAN_INTERVAL
            for cid, when in list(self.due.items()):
                if when <= now:
                    del self.due[cid]
                    self.restart(cid)
            timeout = min([next_scan, *self.due.values()]) - time.monotonic()
            ready, _, _ = select.select(list(self.watched), [], [], max(timeout, 0))
            for fd in ready:
                cid, pid = self.watched.pop(fd)
                os.close(fd)
                if pid in self.forked:
                    self.forked.discard(pid)
                    _reap(pid)
                self.exited(cid)

    def scan(self) -> None:
        watching = {cid for cid, _ in self.watched.values()}
        for c in records.all_containers():
            if c.state["Running"]:
                if c.id not in watching:
                    self.watch(c)
            elif c.state["Status"] == "exited" and c.id not in self.due and \
                    self.decided.get(c.id) != c.state.get("FinishedAt"):
                self.exited(c.id)

    def watch(self, c: records.Container) -> None:
        pid = c.state.get("SupervisorPid", 0)
        try:
            if not records.alive(pid, c.state.get("SupervisorStart")):
                raise ProcessLookupError
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            self.exited(c.id)  # its supervisor is gone already: find() records the exit
            return
        self.watched[fd] = (c.id, pid)

    def exited(self, cid: str) -> None:
        """A container's supervisor has ended: decide, once per exit, whether to restart it."""
        try:
            c = lifecycle.find(cid)  # refresh: a SIGKILLed supervisor's container is marked exited
        except MinidockerError:
            return  # removed (`rm`, `--rm`)
        if c.state["Running"] or self.decided.get(cid) == c.state.get("FinishedAt"):
            return
        self.decided[cid] = c.state.get("FinishedAt", "")
        if restart.should_restart(_policy(c), c.state["ExitCode"], c.record.get("RestartCount") or 0,
                                  bool(c.record.get("HasBeenManuallyStopped"))):
            self.delays[cid] = restart.next_delay(self.delays.get(cid, 0), _ran_for(c))
            self.due[cid] = time.monotonic() + self.delays[cid]

    def restart(self, cid: str) -> None:
        try:
            c = lifecycle.find(cid)
        except MinidockerError:
            return
        if c.state["Running"] or c.record.get("HasBeenManuallyStopped"):
            return  # started or stopped by a user while we waited
        restart.count_restart(c)
        try:
            supervisor.start_detached(c)  # not lifecycle.start: that is a user's start, which resets the count
        except MinidockerError as e:
            log(f"cannot restart {c.name}: {e}")
            self.decided.pop(cid, None)  # its state says exited still: the next scan decides again
            return
        c = records.find(cid)
        self.forked.add(c.state.get("SupervisorPid", 0))
        self.watch(c)


def _reap(pid: int) -> None:
    """A supervisor we forked is our child: collect its exit, or it stays a zombie (and a zombie
    looks alive to records.alive). Those that containers.py forks, it reaps itself."""
    try:
        os.waitpid(pid, 0)  # it has exited: the pidfd said so
    except ChildProcessError:
        pass


def log(message: str) -> None:
    print(f"minidocker daemon: {message}", file=sys.stderr, flush=True)


def start() -> Monitor:
    """Restore, then watch in a thread of its own for as long as the daemon runs."""
    monitor = Monitor()
    monitor.restore()
    threading.Thread(target=monitor.run, name="restart-monitor", daemon=True).start()
    return monitor
