"""What each runtime call costs: minidocker-runc next to runc, call by call, as containerd's shim makes them.

Run as root: `sudo .venv/bin/python bench/runtime_calls.py [-n 20]`. For one `runc spec` bundle
(busybox, `sleep 1000`), each round runs, with each runtime in turn, the calls of a container's
life under the shim: `create`, `start`, `state`, `kill ID 9`, `delete`, `delete --force` (of the
container already gone, as the shim's cleanup does), and then `--version`. We print the median
wall time of each call, and the floor under any Python command: `python -c pass`.

runtime_under_dockerd.py times the whole `docker run`; this one shows where minidocker's share of
it goes. Every minidocker-runc call is a Python interpreter starting and importing what the
command needs, so a call that only reads the state dir (`state`) should cost little more than
the floor: that is what keeps `start`, `state`, `kill` and `delete` away from the create path's
imports (runtime/lifecycle.py's docstring). Nothing else of the machine's is touched: the state
dirs and the cgroups (`/minidocker/bench-PID`) are the bench's own, removed at the end.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import harness  # noqa: E402
from minidocker import linux  # noqa: E402
from minidocker import rootfs as busybox  # noqa: E402
from run_vs_runc import runc_bundle  # noqa: E402 - bench/, this script's own directory

CALLS = ["create", "start", "state", "kill", "delete", "delete --force", "--version"]


def one_life(runtime: list[str], root: str, bundle: str, container_id: str, env, times: dict) -> None:
    """A container's calls, each timed; the bench plays the shim (a subreaper: it reaps the process)."""
    def call(name: str, *args: str) -> None:
        # The container's process inherits create's stdio: /dev/null, or we would wait for its EOF.
        start = time.perf_counter()
        subprocess.run([*runtime, "--root", root, *args], check=True, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.setdefault(name, []).append((time.perf_counter() - start) * 1000)

    pid_file = os.path.join(os.path.dirname(root), f"{container_id}.pid")
    call("create", "create", "--bundle", bundle, "--pid-file", pid_file, container_id)
    with open(pid_file) as f:
        pid = int(f.read())
    call("start", "start", container_id)
    call("state", "state", container_id)
    call("kill", "kill", container_id, "9")
    os.waitpid(pid, 0)  # the shim reaps its container's process, then deletes it
    call("delete", "delete", container_id)
    call("delete --force", "delete", "--force", container_id)
    call("--version", "--version")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc"):
        sys.exit("bench: run as root, with runc installed (scripts/setup.sh)")
    minidocker_runc = os.path.join(os.path.dirname(sys.executable), "minidocker-runc")
    work = tempfile.mkdtemp(prefix="md-bench-calls-")
    cgroup = f"minidocker/bench-{os.getpid()}"
    env = harness.cli_env()  # the tests' environment: bytecode cached, as on a learner's machine
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # the created processes are ours to reap, as the shim's
    try:
        # one container at a time: the same cgroup path for each
        bundle = runc_bundle(work, busybox.build(os.path.join(work, "rootfs")), ["sleep", "1000"], f"/{cgroup}/c")
        runtimes = {"minidocker-runc": [minidocker_runc], "runc": ["runc"]}
        times: dict[str, dict[str, list[float]]] = {name: {} for name in runtimes}
        floor = []
        for round_ in range(args.runs + 1):  # round 0 warms the caches and is not counted
            for name, runtime in runtimes.items():
                one_life(runtime, os.path.join(work, f"{name}-state"), bundle, f"md-bench-{round_}", env,
                         times[name] if round_ else {})
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
            if round_:
                floor.append((time.perf_counter() - start) * 1000)
        print(f"{'call':<16} {'minidocker-runc':>16} {'runc':>8} {'difference':>11}  "
              f"(median ms of {args.runs} rounds, interleaved)")
        for call in CALLS:
            ours, theirs = statistics.median(times["minidocker-runc"][call]), statistics.median(times["runc"][call])
            print(f"{call:<16} {ours:>16.1f} {theirs:>8.1f} {ours - theirs:>+11.1f}")
        print(f"{'python -c pass':<16} {statistics.median(floor):>16.1f}   (the floor under any Python command)")
    finally:
        # Every container is deleted by now; their parent stays, in each hierarchy that either
        # runtime joined (runc joins more v1 hierarchies than we do).
        for root in harness.cgroup_roots():
            for dirpath, _, _ in os.walk(os.path.join(root, cgroup), topdown=False):
                harness.remove_cgroup(dirpath)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
