"""What a running container costs the host in memory (issue 11: 200 containers on one bridge).

    sudo .venv/bin/python bench/many_containers.py [COUNT] [--network none|bridge]

Starts COUNT `run -d busybox sleep 600` (default 200, on the default bridge: a /24 holds 253),
then reports per container:
- the host's memory in use (MemTotal - MemAvailable) after minus before, divided by COUNT: every
  cost, kernel included (netns, veths, cgroups, page tables, the overlay mounts);
- the PSS (proportional set size: shared pages divided among their users) of the supervisors
  and of the containers' processes, from /proc/PID/smaps_rollup.
Docker's comparison point: a containerd-shim-runc-v2 is ~10-15 MB RSS per container.
Uses a temporary MINIDOCKER_ROOT and removes every container it made.
"""

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
COUNT = int(ARGS[0]) if ARGS else 200
NETWORK = sys.argv[sys.argv.index("--network") + 1] if "--network" in sys.argv else "bridge"


def used_kib() -> int:
    info = dict(line.split(":") for line in open("/proc/meminfo"))
    return int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def marked(marker: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found


def main() -> None:
    root = tempfile.mkdtemp(prefix="md-bench-many-")
    env = dict(os.environ, MINIDOCKER_ROOT=root, MINIDOCKER_RUNTIME_ROOT=os.path.join(root, "run"), PYTHONPATH=REPO)
    md = [sys.executable, "-m", "minidocker"]
    had_md0 = os.path.exists("/sys/class/net/md0")
    subprocess.run(md + ["run", "--rm", "--network", NETWORK, "busybox", "true"], env=env, check=True, capture_output=True)
    time.sleep(1)
    before = used_kib()
    t = time.perf_counter()

    def start(i: int) -> str:
        return subprocess.run(md + ["run", "-d", "--network", NETWORK, "busybox", "sleep", "600"], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()

    ids = []
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(start, range(COUNT)))
        started = time.perf_counter() - t
        time.sleep(2)  # let the page cache and slabs settle
        after = used_kib()
        supervisors = marked(f"MINIDOCKER_ROOT={root}".encode())
        sup_pss = sum(pss_kib(p) for p in supervisors)
        sup_rss = []
        for p in supervisors:
            try:
                sup_rss.append(int(next(l for l in open(f"/proc/{p}/status") if l.startswith("VmRSS:")).split()[1]))
            except (OSError, StopIteration):
                pass
        print(f"{COUNT} containers (--network {NETWORK}) started in {started:.1f} s "
              f"({started / COUNT * 1000:.0f} ms each, 4 at a time)")
        print(f"  host memory in use: +{(after - before) / 1024:.0f} MiB, {(after - before) / COUNT / 1024:.2f} MiB per container")
        print(f"  {len(supervisors)} minidocker processes (supervisors; DNS responders on a user network):"
              f" PSS {sup_pss / 1024:.0f} MiB in all, {sup_pss / max(len(supervisors), 1) / 1024:.2f} MiB each;"
              f" RSS {sum(sup_rss) / max(len(sup_rss), 1) / 1024:.1f} MiB each (shared pages counted in each)")
    finally:
        for i in range(0, len(ids), 50):
            subprocess.run(md + ["rm", "-f", *ids[i:i + 50]], env=env, capture_output=True)
        if not had_md0:
            remove_default_bridge(env)
        shutil.rmtree(root, ignore_errors=True)


def remove_default_bridge(env: dict) -> None:
    """The default bridge stays once made (as docker0): the bench made it, the bench removes it."""
    code = ("from minidocker.network import endpoints, firewall, networks; net = networks.get('bridge'); "
            "firewall.network_removed(net); endpoints.host_netlink().delete_link(networks.bridge_name(net))")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


if __name__ == "__main__":
    main()
