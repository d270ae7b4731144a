"""How long does `docker run` take when dockerd runs the container through minidocker's runtime,
next to runc, its own? Both under the same dockerd, in one run.

Run as root: `sudo .venv/bin/python bench/runtime_under_dockerd.py [-n 30]`. It starts a private
dockerd (chapters/09/dockerd.py: its own socket, state, containerd and cgroup parent; nothing of
the host's touched, all removed at the end), loads minidocker's busybox, and times, N rounds
interleaved, the whole command as a user waits for it:

- `docker run --rm --runtime minidocker busybox true`
- `docker run --rm --runtime runc busybox true`

`--trace` instead prints what the shim asks of each runtime in one `docker run --rm`: every call,
its arguments and how long it took (a wrapper script registered as the runtime logs them), the
trace in docs/09-runtime.md#a-trace.

Everything but the runtime is the same: the CLI, dockerd (the container's records, its overlay
rootfs, the `none` network's namespace), containerd and the shim. So the difference is what
minidocker-runc costs over runc: a Python interpreter starting for each of the shim's calls
(create, start, state, delete...) where runc is one Go binary. Issue 16's goal: at most 1.2x runc's
end-to-end time. The medians are of this one run, so the machine's mood is shared.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "chapters", "09"))

import dockerd  # noqa: E402 - chapters/09/dockerd.py, the tests' own fixture
import harness  # noqa: E402

GOAL = 1.2  # issue 16: minidocker's runtime under dockerd, at most 1.2x runc


def timed(engine: dockerd.Dockerd, runtimes: list[str], runs: int) -> dict[str, list[float]]:
    """Wall times in ms, rounds that run each runtime once: a busy moment falls on both alike."""
    commands = {rt: ["docker", "run", "--rm", "--runtime", rt, "busybox", "true"] for rt in runtimes}
    env = engine.client_env()
    for command in commands.values():  # the first run of each warms the caches
        subprocess.run(command, check=True, capture_output=True, env=env)
    times: dict[str, list[float]] = {rt: [] for rt in runtimes}
    for _ in range(runs):
        for rt, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            times[rt].append((time.perf_counter() - start) * 1000)
    return times


def report(times: dict[str, list[float]], runs: int) -> None:
    runc = statistics.median(times["runc"])
    print(f"{'docker run --rm --runtime X busybox true':<44} {'median ms':>10} {'p90 ms':>8} {'vs runc':>8}"
          f"  ({runs} rounds, interleaved)")
    for rt, samples in times.items():
        median, p90 = statistics.median(samples), statistics.quantiles(samples, n=10)[-1]
        verdict = f"  goal <= {GOAL}x {'met' if median / runc <= GOAL else 'MISSED'}" if rt != "runc" else ""
        print(f"{'  --runtime ' + rt:<44} {median:>10.1f} {p90:>8.1f} {median / runc:>7.2f}x{verdict}")


# A runtime that logs each call and runs the real one: what the shim passes, and for how long.
WRAPPER = """#!/bin/sh
start=$(date +%s%N)
{runtime} "$@"
code=$?
echo "$(( ($(date +%s%N) - start) / 1000000 )) ms, exit $code: $*" >> {log}
exit $code
"""


def trace(work: str, runtimes: dict[str, str], env: dict) -> None:
    """One `docker run --rm busybox true` with each runtime behind a logging wrapper."""
    wrapped = {}  # registered as NAME-traced: dockerd reserves the name "runc" for its own
    for name, path in runtimes.items():
        wrapped[f"{name}-traced"] = os.path.join(work, f"{name}-traced")
        with open(wrapped[f"{name}-traced"], "w") as f:
            f.write(WRAPPER.format(runtime=path, log=os.path.join(work, f"{name}.log")))
        os.chmod(wrapped[f"{name}-traced"], 0o755)
    engine = dockerd.Dockerd(os.path.join(work, "dockerd"), runtimes=wrapped, env=env,
                             cgroup_parent=f"/minidocker/bench-{os.getpid()}")
    try:
        engine.load_busybox()
        for name in runtimes:
            subprocess.run(["docker", "run", "--rm", "--runtime", f"{name}-traced", "busybox", "true"], check=True,
                           env=engine.client_env())
            with open(os.path.join(work, f"{name}.log")) as f:
                calls = f.read()
            bundles = os.path.join(engine.exec_root, "containerd", "daemon", "io.containerd.runtime.v2.task", "moby")
            print(f"docker run --rm --runtime {name} busybox true   ($B is {bundles}/ID)")
            calls = re.sub(re.escape(bundles) + r"/[0-9a-f]{64}", "$B", calls)
            print(re.sub(r"[0-9a-f]{64}", "ID", calls))
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--trace", action="store_true", help="print the runtime calls of one run instead")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root")
    runc = os.path.join(os.path.dirname(sys.executable), "minidocker-runc")
    if not os.path.exists(runc) or not shutil.which("runc") or not os.path.exists(dockerd.DOCKERD):
        sys.exit("bench: needs the venv's minidocker-runc, runc and Debian's dockerd (scripts/setup.sh)")
    work = tempfile.mkdtemp(prefix="md-bench-dockerd-")
    env = dict(harness.cli_env(), MINIDOCKER_ROOT=os.path.join(work, "minidocker"))  # bytecode cached, as the tests'
    engine = None
    try:
        if args.trace:
            trace(work, {"minidocker": runc, "runc": shutil.which("runc")}, env)
            return
        engine = dockerd.Dockerd(work, runtimes={"minidocker": runc}, env=env,
                                 cgroup_parent=f"/minidocker/bench-{os.getpid()}")
        print(f"dockerd ({engine.storage_driver}) answered after {engine.start_seconds * 1000:.0f} ms")
        engine.load_busybox()
        report(timed(engine, ["minidocker", "runc"], args.runs), args.runs)
    finally:
        if engine:
            engine.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
