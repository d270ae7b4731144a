"""How fast does `minidocker pull` bring an image from a registry, next to `skopeo copy`?

The bench builds a ~50 MB image of 5 layers of incompressible data (random bytes: gzip cannot make
them smaller, so the bytes on the wire are the bytes of the image), pushes it with `minidocker push`
to a local docker-registry on 127.0.0.1 (chapters/03/registries.py), then times, 3 times each and
the median counted:

- `minidocker pull -q 127.0.0.1:PORT/bench/big` into a fresh MINIDOCKER_ROOT: manifest, config and
  layers (3 at a time, each verified as it streams), then the layers unpacked (so that `run` finds
  them ready), then the name;
- `skopeo copy --src-tls-verify=false docker://127.0.0.1:PORT/bench/big oci:DIR`: the same blobs
  into a fresh OCI layout, also verified; skopeo does not unpack the layers.

So minidocker does more work; the bench also prints its pull without the unpack (a process that
calls pull.pull with layers.unpack left out) to compare like with like. Throughput is the image's compressed size over
the wall-clock time. Run as root: `sudo .venv/bin/python bench/pull_vs_skopeo.py [MB]`.
"""

import gzip
import importlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ROUNDS = 3
LAYERS = 5


def build_image(name: str, megabytes: int) -> int:
    """Store the image under $MINIDOCKER_ROOT; returns its compressed size in bytes."""
    from minidocker.image import digest, layout as layouts, media

    store = layouts.Layout()
    per_layer = megabytes * 1_000_000 // LAYERS
    descriptors, diff_ids = [], []
    with store.writing():
        for i in range(LAYERS):
            out = io.BytesIO()
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for j in range(4):  # a few files a layer, as real layers have
                    data = os.urandom(per_layer // 4)
                    info = tarfile.TarInfo(f"layer{i}/file{j}")
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
            raw = out.getvalue()
            descriptors.append(store.put(gzip.compress(raw, 1), media.OCI_LAYER_GZIP))
            diff_ids.append(digest.of(raw))
        config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                    "config": store.put_json(config, media.OCI_CONFIG), "layers": descriptors}
        store.tag(name, store.put_json(manifest, media.OCI_MANIFEST))
    return sum(d["size"] for d in descriptors)


def cli(*args, env=None) -> None:
    subprocess.run([sys.executable, "-m", "minidocker", *args], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))


def timed(run, rounds=ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        fresh = tempfile.mkdtemp(prefix="md-bench-")
        try:
            start = time.perf_counter()
            run(fresh)
            times.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(fresh)
    return statistics.median(times)


def pull_without_unpack(root: str, name: str) -> None:
    """minidocker's pull in-process, the unpack left out: download and verification alone."""
    os.environ["MINIDOCKER_ROOT"] = root
    from minidocker.image import layers, pull

    unpack, layers.unpack = layers.unpack, lambda layout, image: []
    try:
        pull.pull(name, quiet=True)
    finally:
        layers.unpack = unpack


def main() -> None:
    if sys.argv[1:2] == ["--bare"]:  # one timed run of the pull without the unpack, in its own process
        return pull_without_unpack(sys.argv[2], sys.argv[3])
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    registries = importlib.import_module("chapters.03.registries")
    home = tempfile.mkdtemp(prefix="md-bench-home-")
    policy = os.path.join(home, "policy.json")
    with open(policy, "w") as f:
        f.write('{"default": [{"type": "insecureAcceptAnything"}]}')
    try:
        with registries.open_registry() as registry:
            name = f"{registry.host}/bench/big:latest"
            os.environ["MINIDOCKER_ROOT"] = os.path.join(home, "root")
            size = build_image(name, megabytes)
            cli("push", name)
            print(f"image: {LAYERS} layers, {size / 1e6:.1f} MB compressed, pushed to {registry.host}")

            ours = timed(lambda root: cli("pull", "-q", name, env={"MINIDOCKER_ROOT": root}))
            bare = timed(lambda root: subprocess.run([sys.executable, __file__, "--bare", root, name], check=True))
            skopeo = timed(lambda d: subprocess.run(
                ["skopeo", "--policy", policy, "copy", "-q", "--src-tls-verify=false",
                 f"docker://{name}", f"oci:{d}/layout:latest"], check=True, stdout=subprocess.DEVNULL))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    mb = size / 1e6
    print(f"minidocker pull (download + verify + unpack): {ours:6.2f} s  {mb / ours:7.1f} MB/s")
    print(f"minidocker pull without the unpack:           {bare:6.2f} s  {mb / bare:7.1f} MB/s")
    print(f"skopeo copy docker:// -> oci: (no unpack):    {skopeo:6.2f} s  {mb / skopeo:7.1f} MB/s")
    print(f"minidocker / skopeo throughput: {skopeo / ours:.2f}x with unpack, {skopeo / bare:.2f}x without")


if __name__ == "__main__":
    main()
