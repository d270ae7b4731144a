"""How fast is a fully cached rebuild? The goal (issue 13): a ten-step Dockerfile, every step from the
cache, in at most 0.2 s, with the same image ID.

A ten-step Dockerfile (FROM, ARG, ENV, WORKDIR, two COPYs, two RUNs, LABEL, CMD) is built once in a
fresh store, then rebuilt ROUNDS times; each rebuild is `python -m minidocker build -q` as a user
types it (so Python's start-up and the context's tar count), and, separately, the engine function
alone (builder.build with the context already packed). The best time counts; the ID must not move.
Run as root: `sudo .venv/bin/python bench/build_cache.py`.
"""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
ROUNDS = 7

DOCKERFILE = """\
FROM busybox
ARG VERSION=1
ENV APP=/srv/app
WORKDIR $APP
COPY app/ ./
COPY README /README
RUN echo "version $VERSION" > version.txt
RUN wc -l *.py > lines.txt
LABEL org.example.bench=yes
CMD ["cat", "version.txt"]
"""


def main() -> None:
    root = tempfile.mkdtemp(prefix="md-bench-build-")
    env = dict(os.environ, MINIDOCKER_ROOT=root, PYTHONPATH=REPO)
    os.environ["MINIDOCKER_ROOT"] = root
    try:
        ctx = os.path.join(root, "ctx")
        os.makedirs(os.path.join(ctx, "app"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE)
        with open(os.path.join(ctx, "README"), "w") as f:
            f.write("a bench\n")
        for i in range(20):
            with open(os.path.join(ctx, "app", f"m{i}.py"), "w") as f:
                f.write("print('hello')\n" * (i + 1))
        cli = [sys.executable, "-m", "minidocker", "build", "-q", ctx]
        start = time.perf_counter()
        first = subprocess.run(cli, env=env, capture_output=True, text=True, check=True).stdout.strip()
        print(f"first build (2 RUN containers):        {time.perf_counter() - start:.3f} s  {first[:19]}")

        times, ids = [], set()
        for _ in range(ROUNDS):
            start = time.perf_counter()
            ids.add(subprocess.run(cli, env=env, capture_output=True, text=True, check=True).stdout.strip())
            times.append(time.perf_counter() - start)
        print(f"cached rebuild, the CLI (best of {ROUNDS}):     {min(times):.3f} s  (median {sorted(times)[ROUNDS // 2]:.3f} s)")

        from minidocker.build import builder, context

        engine = []
        for _ in range(ROUNDS):
            tar = io.BytesIO()
            name = context.pack(ctx, None, tar)
            tar.seek(0)
            start = time.perf_counter()
            ids.add(builder.build(tar, {"dockerfile": name, "q": True}, io.BytesIO()))
            engine.append(time.perf_counter() - start)
        print(f"cached rebuild, the engine alone (best): {min(engine):.3f} s")
        print(f"same image ID every time: {ids == {first}}")
        if ids != {first}:
            sys.exit("the cached rebuild gave another image")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
