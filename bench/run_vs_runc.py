"""How long does `minidocker run --rm --rootfs DIR -- true` take, next to runc and docker?

Run as root: `sudo .venv/bin/python bench/run_vs_runc.py [-n 30]`. Each tool starts a container
that runs `true` in the same busybox rootfs, N times; we print the median and the 90th
percentile of the wall time of the whole command, as a user waits for it. runc and docker are
timed only where they are installed and working (Debian packages: runc, docker.io).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from minidocker import rootfs as busybox  # noqa: E402


def timed(command: list[str], runs: int, env=None) -> list[float]:
    subprocess.run(command, check=True, capture_output=True, env=env)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return times


def runc_bundle(work: str, rootfs: str) -> str:
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["root"] = {"path": rootfs, "readonly": True}
    config["process"].update(args=["true"], terminal=False)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root")
    work = tempfile.mkdtemp(prefix="md-bench-")
    try:
        rootfs = busybox.build(os.path.join(work, "rootfs"))
        env = dict(os.environ, MINIDOCKER_ROOT=os.path.join(work, "state"))
        # A learner's machine caches bytecode; some sandboxes turn that off, which costs ~20 ms.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        minidocker = [sys.executable, "-m", "minidocker"]
        results = {"minidocker run --rm": timed([*minidocker, "run", "--rm", "--rootfs", rootfs, "--", "true"], args.runs, env)}
        if shutil.which("runc"):
            bundle = runc_bundle(work, rootfs)
            state = os.path.join(work, "runc-state")
            results["runc run"] = timed(["runc", "--root", state, "run", "--bundle", bundle, "md-bench"], args.runs)
        if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            subprocess.run(["docker", "pull", "-q", "busybox"], capture_output=True)
            results["docker run --rm"] = timed(["docker", "run", "--rm", "busybox", "true"], args.runs)
        else:
            print("docker: no Docker engine answers here; not timed")
        base = statistics.median(results["minidocker run --rm"])
        print(f"{'command':<22} {'median ms':>10} {'p90 ms':>8} {'vs minidocker':>14}   ({args.runs} runs each)")
        for name, times in results.items():
            p90 = statistics.quantiles(times, n=10)[-1]
            print(f"{name:<22} {statistics.median(times):>10.1f} {p90:>8.1f} {statistics.median(times) / base:>13.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
