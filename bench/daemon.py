"""The daemon's costs: a container through the daemon versus without one, the list endpoint's
rate, and the memory of 100 running containers.

Run as root: `sudo .venv/bin/python bench/daemon.py [-n 20] [--containers 100]`. A daemon is
started on a socket in a temp dir with a MINIDOCKER_ROOT of its own (busybox built there), and:

- `minidocker run --rm --network none busybox true` daemonless, N times (median wall time);
- `docker run --rm --network none busybox true` with DOCKER_HOST at our daemon (the real docker
  CLI: HEAD /_ping, create, attach, wait, start), and the same with `minidocker -H`;
- `docker run` against dockerd is not measured here: no dockerd runs on the lab VM;
- requests per second of GET /containers/json with --containers running (`sleep`), one keep-alive
  connection, for two seconds;
- the daemon's RSS with them running, and their supervisors' (our containerd-shims), summed.
"""

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def timed(argv, env, n):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--containers", type=int, default=100)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="md-bench-daemon-")
    root, sock = os.path.join(work, "root"), os.path.join(work, "d.sock")
    env = dict(os.environ, MINIDOCKER_ROOT=root, MINIDOCKER_RUNTIME_ROOT=os.path.join(work, "run"),
               PYTHONPATH=REPO, PYTHONSAFEPATH="1")
    md = [sys.executable, "-m", "minidocker"]
    subprocess.run(md + ["run", "--rm", "--network", "none", "busybox", "true"], env=env, check=True,
                   stderr=subprocess.DEVNULL)  # busybox into the store
    daemon = subprocess.Popen(md + ["daemon", "-H", f"unix://{sock}"], env=env, stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(sock):
            time.sleep(0.01)
        run = ["run", "--rm", "--network", "none", "busybox", "true"]
        print(f"daemonless  minidocker run --rm busybox true: {timed(md + run, env, args.n) * 1000:6.1f} ms (median of {args.n})")
        denv = dict(env, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(work, "docker"))
        print(f"via daemon  docker run --rm busybox true:     {timed(['docker'] + run, denv, args.n) * 1000:6.1f} ms")
        print(f"via daemon  minidocker -H … run --rm …:       {timed(md + ['-H', f'unix://{sock}'] + run, env, args.n) * 1000:6.1f} ms")
        ids = [subprocess.run(md + ["run", "-d", "--network", "none", "busybox", "sleep", "600"], env=env, check=True,
                              capture_output=True, text=True).stdout.strip() for _ in range(args.containers)]
        conn, count, start = Unix(sock), 0, time.perf_counter()
        while time.perf_counter() - start < 2:
            conn.request("GET", "/v1.43/containers/json")
            conn.getresponse().read()
            count += 1
        print(f"GET /containers/json with {args.containers} running: {count / (time.perf_counter() - start):.1f} requests/s")
        import json
        sups = [json.load(open(os.path.join(root, "containers", cid, "state.json")))["SupervisorPid"] for cid in ids]
        print(f"daemon RSS: {rss_kb(daemon.pid) / 1024:.1f} MiB; {len(sups)} supervisors: "
              f"{sum(rss_kb(p) for p in sups) / 1024:.1f} MiB in all ({sum(rss_kb(p) for p in sups) / 1024 / len(sups):.1f} each)")
        subprocess.run(md + ["rm", "-f", *ids], env=env, stdout=subprocess.DEVNULL)
    finally:
        daemon.terminate()
        daemon.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
