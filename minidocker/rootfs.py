"""The embedded default root filesystem: busybox, built locally from the host's static busybox.

A container's root filesystem is only a directory tree. The smallest useful one is a single
statically linked busybox binary (it needs no shared libraries, so no /lib) plus one symlink per
applet (`sh`, `ls`, `ps`, ...), and the few files programs expect: /etc/passwd and /etc/group so
user names resolve, and empty mount points for /proc, /sys, /dev and /tmp. No network, no registry.
"""

import errno
import os
import shutil
import subprocess
from functools import cache

from minidocker.errors import MinidockerError

BUSYBOX = "/bin/busybox"  # Debian's busybox-static installs it here
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's default PATH

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def is_static(path: str) -> bool:
    """True when the ELF file has no PT_INTERP header, i.e. needs no dynamic loader."""
    with open(path, "rb") as f:
        elf = f.read(4096)
    # A dynamic binary names its loader (e.g. /lib64/ld-linux-x86-64.so.2) in the first page.
    return elf[:4] == b"\x7fELF" and b"/ld-linux" not in elf and b"/ld-musl" not in elf


@cache
def applets() -> tuple[str, ...]:
    """Where busybox wants each applet, e.g. ("bin/sh", "usr/bin/wc", ...)."""
    if not os.path.exists(BUSYBOX):
        raise MinidockerError(f"{BUSYBOX} not found", "install it: apt-get install busybox-static")
    out = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    return tuple(out.stdout.split())


def build(target: str) -> str:
    """Build a busybox rootfs in `target` (made if missing; an existing one is left as it is)."""
    if os.path.exists(os.path.join(target, "bin", "busybox")):
        return target
    busybox_applets = applets()  # first: without a static busybox there is nothing to build
    try:
        _populate(target, busybox_applets)
    except OSError as e:  # EACCES, ENOSPC, a file where a directory should be: one clear line
        hint = "choose a directory you may write to, or run as root" if e.errno in (errno.EACCES, errno.EPERM) \
            else "choose another directory"
        raise MinidockerError(f"cannot build a rootfs in {target}: {e.strerror}", hint) from None
    return target


def _populate(target: str, busybox_applets: tuple[str, ...]) -> None:
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "run", "proc", "sys", "dev"):
        os.makedirs(os.path.join(target, d), exist_ok=True)
    # "/" as every root directory is: 755, or a container's non-root user could not even reach
    # /bin/sh (mkdtemp, for one, makes its directories 700).
    os.chmod(target, 0o755)
    os.makedirs(os.path.join(target, "tmp"), exist_ok=True)
    os.chmod(os.path.join(target, "tmp"), 0o1777)  # sticky and world-writable, as every /tmp
    shutil.copy2(BUSYBOX, os.path.join(target, "bin", "busybox"))
    for applet in busybox_applets:
        link = os.path.join(target, applet)
        if applet != "bin/busybox" and not os.path.lexists(link):
            os.symlink("/bin/busybox", link)  # absolute: resolved inside the container's root
    files = {"etc/passwd": PASSWD, "etc/group": GROUP, "etc/profile": f"export PATH={PATH}\n"}
    for name, text in files.items():
        with open(os.path.join(target, name), "w") as f:
            f.write(text)
