"""What a container's network costs (issue 11: set-up under 20 ms).

    sudo .venv/bin/python bench/network_setup.py [ROUNDS]

1. imports, each in a fresh interpreter: pyroute2 (the package), pyroute2's IPRoute, and what we
   load (netlink.py: pyroute2's message classes only);
2. the set-up steps in one process, on a network made for the bench: netns file, veth + address +
   route (endpoints.setup), teardown, with the firewall and DNS hooks stubbed;
3. `minidocker run --rm busybox true` with --network none and on the default bridge, and `runc run`
   when runc is installed: interleaved round by round.
Uses a temporary MINIDOCKER_ROOT; removes what it made.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def ms(samples):
    return f"median {statistics.median(samples) * 1000:6.1f} ms  (min {min(samples) * 1000:.1f})"


def import_cost(statement: str) -> list[float]:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                                 env=dict(os.environ, PYTHONPATH=REPO)).stdout) for _ in range(ROUNDS)]


def main() -> None:
    root = tempfile.mkdtemp(prefix="md-bench-")
    os.environ.update(MINIDOCKER_ROOT=root, MINIDOCKER_RUNTIME_ROOT=os.path.join(root, "run"))
    sys.path.insert(0, REPO)
    print("imports (fresh interpreter each):")
    print("  import pyroute2                      ", ms(import_cost("import pyroute2")))
    print("  from pyroute2 import IPRoute         ", ms(import_cost("from pyroute2 import IPRoute")))
    print("  netlink.Netlink() (messages + socket)", ms(import_cost("from minidocker.network.netlink import Netlink; Netlink()")))
    from minidocker.network import endpoints, netns, networks

    had_md0 = os.path.exists("/sys/class/net/md0")
    firewall = endpoints.firewall
    real = (firewall.network_removed,)
    networks.all()
    # N2's and N3's hooks want a real container record: stubbed here, so this measures the core.
    for module, names in ((endpoints.firewall, ("endpoint_up", "endpoint_down", "network_created", "network_removed")),
                          (endpoints.dns, ("container_started", "container_stopped"))):
        for name in names:
            setattr(module, name, lambda *args: None)
    record = {"Name": "/bench", "HostConfig": {"NetworkMode": "bridge"}, "NetworkingConfig": {}}
    steps = {"netns file": [], "endpoint (veth, address, route)": [], "teardown": []}
    for i in range(ROUNDS):
        cid = f"{i:02d}" + "b" * 62
        t0 = time.perf_counter()
        _, inside = netns.create(cid)
        t1 = time.perf_counter()
        fd = os.open(netns.path_of(cid), os.O_RDONLY)
        endpoints.attach(cid, record, networks.get("bridge"), 0, {}, fd, inside)
        t2 = time.perf_counter()
        os.close(fd)
        inside.close()
        endpoints.teardown(cid, record)
        t3 = time.perf_counter()
        steps["netns file"].append(t1 - t0)
        steps["endpoint (veth, address, route)"].append(t2 - t1)
        steps["teardown"].append(t3 - t2)
    print("set-up steps in one process (netlink already imported; the first round makes md0):")
    for name, samples in steps.items():
        print(f"  {name:38s}", ms(samples))
    print("whole commands (interleaved):")
    md = [sys.executable, "-m", "minidocker"]
    runs = {"run --rm --network none busybox true": md + ["run", "--rm", "--network", "none", "busybox", "true"],
            "run --rm busybox true (default bridge)": md + ["run", "--rm", "busybox", "true"]}
    subprocess.run(runs["run --rm busybox true (default bridge)"], cwd=REPO, capture_output=True)  # builds busybox
    times = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, argv in runs.items():
            t = time.perf_counter()
            subprocess.run(argv, cwd=REPO, capture_output=True, check=True)
            times[name].append(time.perf_counter() - t)
    for name, samples in times.items():
        print(f"  {name:40s}", ms(samples))
    if not had_md0:  # the default bridge stays once made (as docker0): the bench made it, it goes
        real[0](networks.get("bridge"))
        endpoints.host_netlink().delete_link("md0")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
