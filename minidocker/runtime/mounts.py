"""The spec's `mounts`, one entry at a time, as runc mounts them; device nodes; masked paths.

An OCI mount entry is {"destination", "type", "source", "options"}. `options` mixes two kinds
of words, as mount(8) does: flags the kernel takes as bits in mount(2)'s `flags` argument
("ro", "nosuid", "rbind", "rprivate") and words it passes on to the filesystem as the `data`
string ("mode=755", "size=65536k", "newinstance"). `parse_options` splits them the way runc does.
See docs/01-isolation.md#ex-01-proc.
"""

import errno
import os
import stat

from minidocker import linux
from minidocker.errors import EXIT_ENGINE
from minidocker.runtime.process import StartError

# Flags that minidocker.linux has no name for (they matter little to a container, but runc knows them).
MS_MANDLOCK, MS_SILENT, MS_POSIXACL, MS_I_VERSION, MS_LAZYTIME = 64, 1 << 15, 1 << 16, 1 << 23, 1 << 25

# option -> (clear?, bit): "ro" sets MS_RDONLY, "rw" clears it. The same table as runc's.
FLAGS = {
    "defaults": (False, 0), "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "nosuid": (False, linux.MS_NOSUID), "suid": (True, linux.MS_NOSUID),
    "nodev": (False, linux.MS_NODEV), "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC), "exec": (True, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS), "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC), "remount": (False, linux.MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "noatime": (False, linux.MS_NOATIME), "atime": (True, linux.MS_NOATIME),
    "nodiratime": (False, linux.MS_NODIRATIME), "diratime": (True, linux.MS_NODIRATIME),
    "relatime": (False, linux.MS_RELATIME), "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME), "nostrictatime": (True, linux.MS_STRICTATIME),
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "silent": (False, MS_SILENT), "loud": (True, MS_SILENT),
    "acl": (False, MS_POSIXACL), "noacl": (True, MS_POSIXACL),
    "iversion": (False, MS_I_VERSION), "noiversion": (True, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
}
# Propagation is a separate mount(2) call on the mount point, after the mount itself: the kernel
# refuses MS_PRIVATE and the like mixed with other flags.
PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}


def parse_options(options) -> tuple[int, list[int], str]:
    """["nosuid", "ro", "mode=755"] -> (MS_NOSUID|MS_RDONLY, [propagation...], "mode=755").

    Words are applied in order, so a later "rw" undoes an earlier "ro", as in mount(8).
    """
    flags, propagation, data = 0, [], []
    for option in options or ():
        if option in FLAGS:
            clear, bit = FLAGS[option]
            flags = flags & ~bit if clear else flags | bit
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        else:
            data.append(option)  # the filesystem's own: mode=, size=, newinstance, gid=...
    return flags, propagation, ",".join(data)


def secure_join(root: str, path: str) -> str:
    """`root` + `path`, with every symlink on the way resolved *inside* root.

    A rootfs is untrusted: /proc in an image could be a symlink to /etc on the host, and a
    plain os.path.join would then mount over the host's /etc. Each component is resolved by
    hand, a symlink's target read relative to root, and ".." stops at root.
    """
    parts, resolved, hops = [p for p in path.split("/") if p], "", 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = f"{resolved}/{part}"
        try:
            target = os.readlink(root + candidate)
        except OSError:  # not a symlink, or not there yet: both are fine
            resolved = candidate
            continue
        hops += 1
        if hops > 40:
            raise OSError(errno.ELOOP, f"too many symlinks in {path}")
        if target.startswith("/"):
            resolved = ""
        parts = [p for p in target.split("/") if p] + parts
    return root + resolved if resolved else root


def make_mountpoint(target: str, directory: bool = True) -> None:
    """mkdir -p the mount point; a file bind-mounted needs a file to land on."""
    if directory:
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def mount_entry(root: str, entry: dict, bundle: str, cgroup=None) -> None:
    """Mount one entry of the spec's `mounts` under `root` (before pivot_root). `cgroup`: the
    container's (a minidocker.cgroups.Cgroup), for a `cgroup` entry."""
    flags, propagation, data = parse_options(entry.get("options"))
    kind = entry.get("type") or ("bind" if flags & linux.MS_BIND else "")
    if kind == "bind" or flags & linux.MS_BIND:
        mount_bind(root, entry, os.path.join(bundle, entry["source"]), flags, propagation)  # relative: the bundle's
        return
    target = secure_join(root, entry["destination"])
    if kind == "cgroup":
        mount_cgroup(target, flags, cgroup)
    elif kind == "sysfs" and not owns_network_namespace():
        bind_host_sys(target, flags)
    else:
        # --8<-- [start:ex-01-proc]
        # Make the mount point, then mount a fresh filesystem there: mount(source, target, type,
        # flags, data). For /proc: type "proc", flags MS_NOSUID|MS_NODEV|MS_NOEXEC.
        #
        # A fresh procfs shows the PID namespace of whoever mounts it: ours, where we are PID 1.
        # The same call makes /dev (tmpfs), /dev/pts (devpts), /dev/mqueue, /sys (sysfs).
        make_mountpoint(target)
        linux.mount(entry.get("source") or kind, target, kind, flags, data or None)
        # --8<-- [end:ex-01-proc]
    for change in propagation:
        linux.mount(None, target, None, change)


def owns_network_namespace() -> bool:
    """Does our user namespace own our network namespace? Not when we joined one of the engine's
    (chapter 04), made by the host's root, from a user namespace of our own (chapter 08)."""
    with open("/proc/self/uid_map") as f:
        if f.read().split() == ["0", "0", "4294967295"]:
            return True  # the host's user namespace (every id itself): it owns every namespace
    ours = os.stat("/proc/self/ns/user")
    try:
        return linux.owning_user_namespace("/proc/self/ns/net") == (ours.st_dev, ours.st_ino)
    except PermissionError:  # its owner is above ours: the kernel will not even show it
        return False


def bind_host_sys(target: str, flags: int) -> None:
    """/sys when a fresh sysfs is refused: the kernel lets only a network namespace's owner mount
    one (sysfs shows the namespace's interfaces). Bind the host's /sys instead, read-only, as runc
    does: what it shows of the network is the host's, but nothing in it can be changed.
    Recursively: in a user namespace the kernel refuses (EINVAL) a bind that would uncover what
    the host mounted below /sys (its cgroup tree...); mount_cgroup() covers that one."""
    make_mountpoint(target)
    linux.mount("/sys", target, None, linux.MS_BIND | linux.MS_REC)
    linux.mount(None, target, None, flags | linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


# --8<-- [start:mount-bind]
def mount_bind(root: str, entry: dict, source: str, flags: int, propagation: list[int]) -> None:
    """A bind mount (a volume, a host directory) onto its destination inside `root`, safely.

    The destination is looked up in the container's own tree, which the image (and any other
    container sharing a volume with it) controls: /data may be a symlink to /etc, or become one
    between our check and our mount (runc's CVE-2021-30465). So no path string is ever handed to
    mount(2): the destination is opened, inside the root, as an O_PATH fd, and mount(2) is given
    /proc/self/fd/N, which the kernel follows to exactly the directory we opened. See
    docs/05-volumes.md#the-safe-mount.
    """
    check_proc_mount(entry["destination"])
    # A bind ignores every flag but MS_REC on its first call: ro, nosuid... only take effect on a
    # remount of the bind (as `mount -o bind,ro` does in two steps), then propagation, each its own call.
    steps = [(source, linux.MS_BIND | (flags & linux.MS_REC))]
    if flags & ~(linux.MS_BIND | linux.MS_REC):
        steps.append((None, flags | linux.MS_BIND | linux.MS_REMOUNT))
    steps += [(None, change) for change in propagation]
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for step_source, step_flags in steps:
            # Opened again for each step: the remount must reach the bind just made on top, and
            # an fd opened before the bind would still name the directory underneath.
            fd = open_in_root(root_fd, entry["destination"], os.path.isdir(source))
            try:
                linux.mount(step_source, f"/proc/self/fd/{fd}", None, step_flags)
            finally:
                os.close(fd)
    except OSError as e:
        raise StartError(EXIT_ENGINE, f'error mounting "{source}" to rootfs at "{entry["destination"]}": '
                                      f"{e.strerror or e}") from None
    finally:
        os.close(root_fd)
# --8<-- [end:mount-bind]


def open_in_root(root_fd: int, destination: str, directory: bool = True) -> int:
    """An O_PATH fd on `destination`, resolved inside the root open as `root_fd`; what is missing
    is made first (directories, or an empty file as the last part when `directory` is False).

    The destination is walked one component at a time. Each prefix is opened with openat2(root_fd,
    prefix, O_PATH, RESOLVE_IN_ROOT): the kernel resolves every symlink as if root_fd were "/", so
    nothing leads out. A missing component is made in its parent (opened the same way): mkdirat,
    or an empty file (openat2 with O_CREAT) for the last part of a file's bind."""
    parts = [part for part in destination.split("/") if part not in ("", ".")]
    done, hops = [], 0  # the components walked so far, as written: openat2 resolves them each time
    while parts:
        part = parts.pop(0)
        try:
            os.close(linux.openat2(root_fd, "/".join(done + [part]), os.O_PATH, 0, linux.RESOLVE_IN_ROOT))
            done.append(part)
            continue
        except FileNotFoundError:
            pass
        parent = linux.openat2(root_fd, "/".join(done) or "/", os.O_PATH | os.O_DIRECTORY, 0, linux.RESOLVE_IN_ROOT)
        try:
            try:
                link = linux.readlinkat(parent, part)
            except OSError:
                link = None  # not a symlink: simply missing
            if link is not None:
                # --8<-- [start:ex-05-safe-target]
                # `part` is a symlink to a path that does not exist yet (the kernel could not
                # open it), e.g. /data -> /etc/app. Follow it by hand, inside the root: its
                # target's components take its place in `parts`, and walking restarts from the
                # container's root (`done` emptied) when the target is absolute. Count the hops:
                # after 40, fail with ELOOP, as the kernel does.
                #
                # Never mkdir the target on the host's path: that is how runc's CVE-2021-30465
                # (and many before it) escaped.
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, f"too many symlinks in {destination}")
                parts = [p for p in link.split("/") if p not in ("", ".")] + parts
                done = [] if link.startswith("/") else done
                continue
                # --8<-- [end:ex-05-safe-target]
            if not parts and not directory:
                os.close(linux.openat2(parent, part, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644,
                                       linux.RESOLVE_BENEATH))
            else:
                linux.mkdirat(parent, part, 0o755)
            done.append(part)
        finally:
            os.close(parent)
    return linux.openat2(root_fd, destination, os.O_PATH, 0, linux.RESOLVE_IN_ROOT)


# The files under /proc that runc lets a bind cover (lxcfs emulates them); anything else there
# could hide or fake the kernel's view (/proc/self/attr, /proc/sys/...), so runc refuses it.
PROC_MOUNT_ALLOWED = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                      "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                      "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled"}


def check_proc_mount(destination: str) -> None:
    """runc's rule: a bind never covers /proc itself, nor anything inside it but a few files."""
    path = os.path.normpath("/" + destination)
    if path == "/proc":
        raise StartError(EXIT_ENGINE, f'"{path}" cannot be mounted because it is not of type proc')
    if path.startswith("/proc/") and path not in PROC_MOUNT_ALLOWED:
        raise StartError(EXIT_ENGINE, f'"{path}" cannot be mounted because it is inside /proc')


def mount_cgroup(target: str, flags: int, cgroup) -> None:
    """/sys/fs/cgroup inside: the container's own cgroup as the root of what it sees.

    Mounted from inside the new cgroup namespace, a cgroup filesystem shows the namespace's
    root, which is the container's cgroup, never its parent's. The shape follows the host:
    - pure v2: one cgroup2 mount, as on the host;
    - v1 or hybrid (this lab VM): a tmpfs, then one `cgroup` mount per v1 hierarchy with the
      same options (memory, "cpu,cpuacct"...), and the links cpu -> cpu,cpuacct that the host
      has. Only the hierarchies the container has a cgroup of its own in: in any other (runc
      joins cpuset, blkio and name=systemd too; we do not) the container would see the
      host's cgroup, and the whole tree below it. Not the hybrid's `unified` cgroup2 either: runc
      leaves it out too, and the first cgroup2 mount in a namespace waits for an RCU grace period
      of the kernel (~10 ms).
    A read-only entry ("ro") makes the whole tree read-only; the tmpfs is remounted last.
    """
    from minidocker.cgroups.base import cgroup_mounts  # only for a spec that asks for it

    hierarchies = [(p, t, o) for p, t, o in cgroup_mounts() if p.startswith("/sys/fs/cgroup")]
    if any(p == "/sys/fs/cgroup" and t == "cgroup2" for p, t, _ in hierarchies):
        make_mountpoint(target)
        try:
            linux.mount("cgroup2", target, "cgroup2", flags)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            # /sys is the host's, bound with the host's cgroup2 mount on it (bind_host_sys), and
            # the kernel refuses a filesystem mounted again on its own mount point. A tmpfs in
            # between makes the mount point another filesystem's; it also hides the host's tree.
            linux.mount("tmpfs", target, "tmpfs", flags, "mode=755")
            linux.mount("cgroup2", target, "cgroup2", flags)
        return
    hierarchies = [(p, t, o) for p, t, o in hierarchies if t == "cgroup"]  # v1's, as runc
    make_mountpoint(target)
    linux.mount("tmpfs", target, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
    # Our cgroup in each hierarchy, from /proc/self/cgroup ("4:pids:/minidocker/ID"). Inside a new
    # cgroup namespace every path reads "/" and a fresh mount shows just our cgroup; without one
    # (a `runc spec` bundle has none) a fresh mount would show the host's whole tree, so we
    # bind-mount our own cgroup's directory instead, as runc does.
    with open("/proc/self/cgroup") as f:
        own = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
    for point, fstype, options in hierarchies:
        if cgroup is None or os.path.join(point, cgroup.path) not in cgroup.dirs():
            continue  # not one of the container's hierarchies
        name = point.removeprefix("/sys/fs/cgroup/")
        sub = os.path.join(target, name)
        make_mountpoint(sub)
        path = next(p for key, p in own.items() if key and set(key.split(",")) <= options)
        if path != "/":
            linux.mount(point + path, sub, None, linux.MS_BIND)
            linux.mount(None, sub, None, flags | linux.MS_BIND | linux.MS_REMOUNT)
        else:
            data = ",".join(sorted(options - {"rw", "ro"})) or None
            linux.mount("cgroup", sub, "cgroup", flags, data)
        for controller in name.split(",") if "," in name else ():
            link = os.path.join(target, controller)
            if not os.path.lexists(link):
                os.symlink(name, link)  # "cpu" -> "cpu,cpuacct", as on the host
    if flags & linux.MS_RDONLY:
        linux.mount(None, target, None, flags | linux.MS_REMOUNT)


# The device nodes runc makes in every container: (name, major, minor). Never the host's disks.
DEFAULT_DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0)]
DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def make_devices(root: str, devices: list[dict]) -> None:
    """The default nodes, the spec's `linux.devices`, and the usual links, in the rootfs's /dev."""
    # --8<-- [start:mount-dev]
    dev = secure_join(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    nodes = [{"path": f"/dev/{name}", "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
             for name, major, minor in DEFAULT_DEVICES]
    for node in nodes + list(devices or ()):
        path = secure_join(root, node["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kind = DEVICE_TYPES[node["type"]]
        try:
            os.mknod(path, kind | 0o600, os.makedev(node.get("major", 0), node.get("minor", 0)))
        except FileExistsError:
            continue  # the rootfs has it already (runc keeps it too)
        except PermissionError:  # in a user namespace: only the host's root may make device nodes
            bind_host_device(node["path"], path)
            continue
        os.chmod(path, node.get("fileMode", 0o666) & 0o7777)  # mknod's mode is filtered by our umask
        os.chown(path, node.get("uid", 0), node.get("gid", 0))
    # /dev/ptmx must be the container's own devpts's, not the host's: a link into /dev/pts.
    ptmx = os.path.join(dev, "ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
    links = [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2")]
    if os.path.exists("/proc/kcore"):
        links.append(("core", "/proc/kcore"))
    for link, target in links:
        if not os.path.lexists(os.path.join(dev, link)):
            os.symlink(target, os.path.join(dev, link))
    # --8<-- [end:mount-dev]


def bind_host_device(host_path: str, path: str) -> None:
    """The host's own node, bound on an empty file, as runc does in a user namespace: the same
    device, with the host's owner and mode (never chmod it: that would change the host's)."""
    make_mountpoint(path, directory=False)
    linux.mount(host_path, path, None, linux.MS_BIND)


# --8<-- [start:masked-paths]
def mask_paths(paths) -> None:
    """linux.maskedPaths, after pivot_root: hide a file under /dev/null, a directory under an
    empty read-only tmpfs (/proc/kcore, /proc/keys, /sys/firmware: host secrets and knobs)."""
    for path in paths or ():
        try:
            if os.path.isdir(path):
                linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
            else:
                linux.mount("/dev/null", path, None, linux.MS_BIND)
        except FileNotFoundError:
            continue  # this kernel has no such file: nothing to hide


def readonly_paths(paths) -> None:
    """linux.readonlyPaths: bind each on itself, then remount the bind read-only."""
    for path in paths or ():
        try:
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        except FileNotFoundError:
            continue
        linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC)
# --8<-- [end:masked-paths]
