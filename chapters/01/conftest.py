import pytest

import harness


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()  # every chapter 01 test starts real containers


@pytest.fixture
def container(md, rootfs):
    """Start detached containers that are removed after the test: container("sleep", "30")."""
    started = []

    def start(*command, flags=()):
        out = md("run", "-d", *flags, "--rootfs", rootfs, "--", *command)
        assert out.returncode == 0, f"`run -d` failed: {out.stderr}"
        started.append(out.stdout.strip())
        return out.stdout.strip()

    yield start
    for cid in started:
        md("rm", "-f", cid)
