"""Chapter 03's fixtures: `tmp_path` on the session's tmpfs.

Most tests here make a store of their own under tmp_path: the busybox layer unpacked (~270
symlinks), blobs, containers' upper directories. On a VM's ext4 every one of those files costs
journaling, ~0.25 s a store; on a tmpfs next to nothing: the suite runs ~5 s faster. (Only this
chapter's: chapter 02 sets user.* xattrs, which a tmpfs takes only from Linux 6.6 on.)
"""

import pathlib
import re
import tempfile

import pytest


@pytest.fixture
def tmp_path(rootfs_area, request) -> pathlib.Path:
    """A new directory for this test on the session's tmpfs (conftest.py's rootfs_area); it goes
    with the tmpfs at the session's end."""
    name = re.sub(r"\W", "_", request.node.name)[:30]
    return pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=rootfs_area))
