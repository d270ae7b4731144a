"""How long does a container take to start: minidocker next to runc (and docker), in one run.

Run as root: `sudo .venv/bin/python bench/run_vs_runc.py [-n 30]`. Each command starts a
container that runs `true` in the same busybox rootfs, N times, and we print the median and the
90th percentile of the wall time of the whole command, as a user waits for it:

- `minidocker run --rm busybox true`: the same from the busybox image (chapter 03): the image is
  looked up in the store, its config merged, and its layer mounted as an overlay under the
  container's own upper directory;
- `minidocker run --rm --rootfs DIR -- true`: the engine (records, supervisor) and the runtime;
  these two with `--network none`, as runc's bundle has it (a namespace with only `lo`);
- `minidocker run --rm --network bridge busybox true`: on the default bridge (chapter 04): a veth,
  an address and the firewall's rules, set up and torn down around the container;
- `minidocker runtime run`: the runtime alone, on a bundle made by `runc spec`;
- `runc run` on that same bundle: the yardstick;
- `docker run --rm busybox true`, where a Docker engine answers.

The ratios to runc are compared with the goals of issue 8: the runtime alone at most 1.5x runc,
the whole `run` at most 2x; and the image's overlay (issue 10) adds at most ~10 ms to a `run`. All
are medians of this one run, so the machine's mood is shared.
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

import harness  # noqa: E402
from minidocker import rootfs as busybox  # noqa: E402


def timed(commands: dict[str, tuple[list[str], dict | None]], runs: int) -> dict[str, list[float]]:
    """Wall times in ms of each command, `runs` rounds that each run every command once: a busy
    moment of the machine (another process, a cold cache) falls on all of them alike."""
    for command, env in commands.values():
        subprocess.run(command, check=True, capture_output=True, env=env)  # warm the page cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, env) in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def runc_bundle(work: str, rootfs: str, args=("true",), cgroups_path: str | None = None) -> str:
    """A bundle as `runc spec` makes it, on `rootfs`, running `args` (bench/runtime_calls.py too)."""
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["root"] = {"path": rootfs, "readonly": True}
    config["process"].update(args=list(args), terminal=False)
    if cgroups_path:
        config["linux"]["cgroupsPath"] = cgroups_path
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


# The goals of issue 8, as a ratio of medians to runc's.
GOALS = {"minidocker runtime run": 1.5, "minidocker run --rm": 2.0}
IMAGE_OVERHEAD_MS = 10  # issue 10: what running from an image may add to running from a directory


def report(results: dict[str, list[float]], runs: int) -> None:
    runc = statistics.median(results["runc run"]) if "runc run" in results else None
    print(f"{'command':<24} {'median ms':>10} {'p90 ms':>8} {'vs runc':>8}  goal   ({runs} rounds, interleaved)")
    for name, times in results.items():
        median, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
        ratio = f"{median / runc:>7.2f}x" if runc else f"{'-':>8}"
        goal = GOALS.get(name)
        verdict = f"<= {goal}x {'met' if median / runc <= goal else 'MISSED'}" if goal and runc else ""
        print(f"{name:<24} {median:>10.1f} {p90:>8.1f} {ratio}  {verdict}")
    if "minidocker run busybox" in results:
        extra = statistics.median(results["minidocker run busybox"]) - statistics.median(results["minidocker run --rm"])
        verdict = "met" if extra <= IMAGE_OVERHEAD_MS else "MISSED"
        print(f"the image's overlay adds {extra:+.1f} ms to a run (goal <= {IMAGE_OVERHEAD_MS} ms: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root")
    work = tempfile.mkdtemp(prefix="md-bench-")
    try:
        rootfs = busybox.build(os.path.join(work, "rootfs"))
        # Everything under the bench's own temp dir: the engine's state and the runtime's.
        # The tests' environment (bytecode cached, as on a learner's machine, where some sandboxes
        # turn that off at ~20 ms a command).
        env = dict(harness.cli_env(), MINIDOCKER_ROOT=os.path.join(work, "state"),
                   MINIDOCKER_RUNTIME_ROOT=os.path.join(work, "runtime-state"))
        # The command as the docs type it: the venv's `minidocker` script (not `python -m`, whose
        # runpy adds a few ms that no learner waits for).
        minidocker = [os.path.join(os.path.dirname(sys.executable), "minidocker")]
        none = ["run", "--rm", "--network", "none"]
        commands = {"minidocker run --rm": ([*minidocker, *none, "--rootfs", rootfs, "--", "true"], env),
                    # The warm-up run builds the busybox image and unpacks its layer.
                    "minidocker run busybox": ([*minidocker, *none, "busybox", "true"], env),
                    "  ...on the bridge": ([*minidocker, "run", "--rm", "--network", "bridge", "busybox", "true"],
                                           dict(env, MINIDOCKER_BRIDGE="md0-bench"))}
        if shutil.which("runc"):
            bundle = runc_bundle(work, rootfs)
            # The same bundle, the same id, each in its own --root: `run` deletes it on exit.
            commands["minidocker runtime run"] = (
                [*minidocker, "runtime", "--root", os.path.join(work, "md-runtime"), "run", "--bundle", bundle, "md-bench"], env)
            commands["runc run"] = (
                ["runc", "--root", os.path.join(work, "runc-state"), "run", "--bundle", bundle, "md-bench"], None)
        else:
            print("runc: not installed (apt-get install runc); the runtime is not timed")
        if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            subprocess.run(["docker", "pull", "-q", "busybox"], capture_output=True)
            commands["docker run --rm"] = (["docker", "run", "--rm", "busybox", "true"], None)
        else:
            print("docker: no Docker engine answers here; not timed")
        # The floor under any Python command: the interpreter starting and exiting, nothing else.
        commands["python -c pass (floor)"] = ([sys.executable, "-c", "pass"], env)
        results = timed(commands, args.runs)
        report(results, args.runs)
    finally:
        # The default bridge stays once made, as docker0 does: the bench's own goes, rules and all.
        code = ("from minidocker.network import endpoints, firewall, networks; net = networks.get('bridge'); "
                "firewall.network_removed(net); endpoints.host_netlink().delete_link(networks.bridge_name(net))")
        subprocess.run([sys.executable, "-c", code], env=dict(env, MINIDOCKER_BRIDGE="md0-bench"), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
