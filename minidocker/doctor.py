"""`minidocker doctor`: can this machine run containers? Each check says how to fix what it finds.

Chapter 00's suite runs the same checks, one test each.
"""

import importlib.util
import os
import platform
import shutil
from dataclasses import dataclass

from minidocker import linux, rootfs

MIN_KERNEL = (5, 4)  # overlayfs with many lower layers, cgroup namespaces, cgroup v2 freezer


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def kernel_version(release: str) -> tuple[int, int]:
    """"6.1.0-18-amd64" -> (6, 1)."""
    major, minor = release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def check_root() -> Check:
    ok = os.geteuid() == 0
    return Check("root", ok, f"euid {os.geteuid()}", "run as root: sudo minidocker ... / sudo make test")


def check_kernel() -> Check:
    release = platform.release()
    ok = kernel_version(release) >= MIN_KERNEL
    return Check("kernel", ok, release, f"use a kernel >= {MIN_KERNEL[0]}.{MIN_KERNEL[1]} (Debian 12 has 6.1)")


# The kernel option behind each namespace type (mount namespaces are always built in).
KERNEL_OPTION = {"uts": "CONFIG_UTS_NS", "ipc": "CONFIG_IPC_NS", "pid": "CONFIG_PID_NS",
                 "network": "CONFIG_NET_NS", "cgroup": "CONFIG_CGROUPS", "user": "CONFIG_USER_NS"}


def check_namespace(name: str) -> Check:
    # The kernel lists each namespace type it supports as a file in /proc/self/ns/.
    _, proc_name = linux.NAMESPACES[name]
    ok = os.path.exists(f"/proc/self/ns/{proc_name}")
    option = KERNEL_OPTION.get(name, "a newer kernel")
    return Check(f"namespace {name}", ok, f"/proc/self/ns/{proc_name}",
                 f"enable {option} in the kernel, or use the lab VM (vagrant up)")


def check_overlayfs(filesystems: str = "/proc/filesystems", modules: str | None = None) -> Check:
    """Usable when the kernel has overlayfs now, or loads it on demand.

    /proc/filesystems lists the filesystem types the kernel has *now*: built in, or a module
    already loaded. Debian builds overlayfs as a module, loaded at the first overlay mount (the
    kernel asks modprobe for "fs-overlay"), so a fresh machine does not list it yet; then the
    module's entry in modules.dep, modprobe's index, says it can be loaded.
    """
    with open(filesystems) as f:
        if any(line.split()[-1] == "overlay" for line in f if line.strip()):
            return Check("overlayfs", True, f"listed in {filesystems}")
    modules = modules or f"/lib/modules/{platform.release()}"
    module = overlay_module(modules)
    if module:
        return Check("overlayfs", True, f"module {module}, loaded at the first overlay mount")
    return Check("overlayfs", False, f"not in the kernel, and no overlay module in {modules}",
                 "install your kernel's modules (Ubuntu: apt-get install linux-modules-$(uname -r)), "
                 "or use the lab VM (vagrant up)")


def overlay_module(modules: str) -> str | None:
    """The overlay module's file, as modules.dep lists it ("kernel/fs/overlayfs/overlay.ko.xz:
    DEPENDENCIES"), if it is there; None if not."""
    try:
        with open(os.path.join(modules, "modules.dep")) as f:
            for line in f:
                path = line.split(":", 1)[0]
                if os.path.basename(path).split(".ko")[0] == "overlay" and os.path.exists(os.path.join(modules, path)):
                    return os.path.join(modules, path)
    except FileNotFoundError:  # no modules at all for this kernel (a container's, a VM's own)
        pass
    return None


def check_cgroups() -> Check:
    from minidocker import cgroups

    try:
        driver = cgroups.detect()
    except Exception as e:  # noqa: BLE001 - any failure here is what the check reports
        return Check("cgroups", False, str(e), "mount cgroup2 on /sys/fs/cgroup (or v1 controllers)")
    return Check("cgroups", True, driver.describe())


def check_busybox() -> Check:
    path = rootfs.BUSYBOX
    ok = os.path.exists(path) and rootfs.is_static(path)
    detail = "static" if ok else ("dynamically linked" if os.path.exists(path) else "missing")
    return Check("busybox", ok, f"{path}: {detail}", "apt-get install busybox-static")


def check_module(module: str, package: str) -> Check:
    ok = importlib.util.find_spec(module) is not None
    return Check(module, ok, "importable" if ok else "missing", f"pip install {package} (make setup does it)")


def check_tool(tool: str, package: str) -> Check:
    path = shutil.which(tool)
    return Check(tool, bool(path), path or "missing", f"apt-get install {package}")


def checks() -> list[Check]:
    return [
        check_root(),
        check_kernel(),
        *(check_namespace(n) for n in ("mount", "uts", "ipc", "pid", "network", "cgroup", "user")),
        check_overlayfs(),
        check_cgroups(),
        check_busybox(),
        check_module("pyroute2", "pyroute2"),
        check_tool("ip", "iproute2"),
        check_tool("iptables", "iptables"),
    ]


def main() -> int:
    results = checks()
    width = max(len(c.name) for c in results)
    for c in results:
        line = f"{c.name:<{width}}  {'ok  ' if c.ok else 'FAIL'}  {c.detail}"
        print(line + ("" if c.ok else f"  -> {c.fix}"))
    return 0 if all(c.ok for c in results) else 1
