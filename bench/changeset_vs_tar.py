"""How fast are minidocker's changesets next to GNU tar, on the same files?

- create: an upper directory -> a layer tar. minidocker: changeset.create (it also translates
  whiteouts and opaque directories). GNU tar: `tar --xattrs --format=pax -cf`.
- apply: that layer tar -> a fresh directory. minidocker: changeset.apply (it checks every entry
  first and never follows a symlink out). GNU tar: `tar --xattrs -xf`.
- unpack: the same, as an image's layer is unpacked (chapter 03): changeset.apply with markers,
  whiteouts kept as overlayfs's devices and xattrs.

Each is timed five times on warm caches, after a sync; the best time counts. Run as root (whiteouts are device
nodes): `sudo .venv/bin/python bench/changeset_vs_tar.py [FILES]`.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minidocker.unionfs import changeset  # noqa: E402
from minidocker.unionfs.model import OPAQUE_XATTR, make_whiteout  # noqa: E402

ROUNDS = 5


def make_upper(root: str, files: int) -> int:
    """An upper directory like a build step leaves: nested directories, files of mixed sizes,
    symlinks, a few whiteouts and an opaque directory. Returns the number of bytes of data."""
    rng = random.Random(2)
    total = 0
    for i in range(files):
        d = os.path.join(root, f"usr/lib/pkg{i % 40}/sub{i % 7}")
        os.makedirs(d, exist_ok=True)
        size = rng.choice([0, 100, 1000, 4000, 16000, 64000])
        with open(os.path.join(d, f"file{i}"), "wb") as f:
            f.write(rng.randbytes(size))
        total += size
        if i % 10 == 0:
            os.symlink(f"file{i}", os.path.join(d, f"link{i}"))
        if i % 50 == 0:
            make_whiteout(os.path.join(d, f"gone{i}"))
    os.setxattr(os.path.join(root, "usr/lib/pkg0"), OPAQUE_XATTR, b"y")
    return total


def best(fn) -> float:
    times = []
    for _ in range(ROUNDS):
        os.sync()  # start each round without the previous one's dirty pages still being written
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root: whiteouts are device nodes, and opaque markers are trusted.* xattrs")
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    work = tempfile.mkdtemp(prefix="md-bench-")
    try:
        upper, layer = os.path.join(work, "upper"), os.path.join(work, "layer.tar")
        size = make_upper(upper, files)

        def ours_create():
            with open(layer, "wb") as f:
                changeset.create(upper, f)

        def tar_create():
            subprocess.run(["tar", "--xattrs", "--format=pax", "-C", upper, "-cf", os.path.join(work, "gnu.tar"), "."],
                           check=True)

        def extract(fn):
            def run():
                target = tempfile.mkdtemp(dir=work)
                fn(target)
                shutil.rmtree(target)  # counted in both, the same work
            return run

        def ours_apply(target):
            with open(layer, "rb") as f:
                changeset.apply(f, target)

        def ours_unpack(target):
            with open(layer, "rb") as f:
                changeset.apply(f, target, markers=True)

        def tar_apply(target):
            subprocess.run(["tar", "--xattrs", "-C", target, "-xf", layer], check=True)

        ours_create()  # the layer both extract
        results = [("create", best(ours_create), best(tar_create)),
                   ("apply", best(extract(ours_apply)), best(extract(tar_apply))),
                   ("unpack", best(extract(ours_unpack)), best(extract(tar_apply)))]
        print(f"{files} files, {size / 1e6:.1f} MB of data, layer tar {os.path.getsize(layer) / 1e6:.1f} MB, "
              f"best of {ROUNDS}")
        print(f"{'':8}{'minidocker':>12}{'GNU tar':>12}{'speed':>8}")
        for name, ours, gnu in results:  # speed: GNU tar's time / ours (1.0 = as fast as tar)
            print(f"{name:8}{ours:>11.3f}s{gnu:>11.3f}s{gnu / ours:>7.2f}x")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
