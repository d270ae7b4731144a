"""Chapter 08's fixtures: the attacks program, built once for the session.

attacks.c is C, not a shell script: the attacks are system calls (finit_module, mknod, mount,
open_by_handle_at, ptrace...) that busybox has no applet for. It is linked statically because the
busybox image holds no C library, and built into a directory that containers bind-mount
read-only at /md-attacks.

That directory is on the host's disk (/var/tmp), never on a tmpfs: the "shocker" attack reaches
the root of the filesystem its mount comes from, and it is the disk's root that we want it to
find (inode 2 of an ext4; a tmpfs encodes its handles another way).
"""

import os
import shutil
import subprocess
import tempfile

import pytest

import harness

ATTACKS_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attacks.c")


@pytest.fixture(scope="session")
def attacks_dir():
    """A directory on the host's disk holding `attacks`, the static binary of attacks.c; bind it
    into a container with `-v DIR:/md-attacks:ro`."""
    harness.need(shutil.which("gcc") is not None, "gcc and libc6-dev (scripts/setup.sh installs them)")
    directory = tempfile.mkdtemp(prefix="md-attacks-", dir="/var/tmp")
    os.chmod(directory, 0o755)  # mkdtemp makes it 0700: a container's non-root user could not enter
    try:
        built = subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", os.path.join(directory, "attacks"),
                                ATTACKS_SOURCE], capture_output=True, text=True)
        assert built.returncode == 0, f"gcc -static could not build attacks.c (is libc6-dev installed?):\n{built.stderr}"
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
