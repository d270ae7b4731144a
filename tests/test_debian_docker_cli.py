"""Chapter 07's acceptance suite with the docker CLI that Debian ships (docker.io, 20.10 on
Debian 12: API 1.41), which the issue names, whatever newer `docker` comes first on PATH.

The chapter's own suite uses the first `docker` on PATH (a learner's, or a newer static one, as on
our CI machines, whose Engine API is newer than ours: it negotiates down). Here the same tests run
again, in a pytest of their own, with Debian's CLI first on PATH.
"""

import os
import subprocess
import sys

import harness

DEBIAN_CLI = "/usr/bin/docker"


def test_chapter_07_with_debians_docker_cli():
    owner = subprocess.run(["dpkg-query", "-S", DEBIAN_CLI], capture_output=True, text=True).stdout
    harness.need(owner.startswith("docker.io:"), "Debian's docker.io package: sudo bash scripts/setup.sh")
    env = dict(os.environ, PATH=f"{os.path.dirname(DEBIAN_CLI)}:{os.environ['PATH']}")
    version = subprocess.run(["docker", "--version"], capture_output=True, text=True, env=env).stdout
    assert version.startswith("Docker version"), version
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "chapters/07/test_docker_cli.py", "chapters/07/test_images_api.py",
                           "chapters/07/test_api.py::test_docker_version_negotiates"],
                          capture_output=True, text=True, env=env, timeout=600)
    tail = "\n".join(done.stdout.splitlines()[-25:])
    assert done.returncode == 0, f"chapter 07 with {version.strip()} ({DEBIAN_CLI}):\n{tail}\n{done.stderr[-2000:]}"
