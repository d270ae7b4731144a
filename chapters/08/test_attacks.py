"""Chapter 08: proof by attack. Root in a default container tries what an attacker would (attacks.c:
load a module, read the disk, mount proc and sysfs, write /proc/sysrq-trigger and /proc/sys, read
/proc/kcore, set the clock, make a user namespace, ptrace a process from outside, and the
"shocker" escape) and each attempt must fail, for the right reason: the errno of the lock that
stops it. Under --privileged the same attempts get through, which shows that the defaults, and
nothing else, are what stops them. docs/08-hardening.md#proof-by-attack.

Then CVE-2019-5736's class: a container's `#!/proc/self/exe` script makes the kernel run, inside
the container, the very binary that started it, our host's Python; it must find a sealed copy,
never the host's file. docs/08-hardening.md#cve-2019-5736.

Two containers take all the attacks (one `exec` each: an exec'd process must meet the same locks
as the container's first one), and two more run the CVE's script (by `exec` and by `run`).
"""

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

import harness

DOCS = "docs/08-hardening.md"
F_SEAL_WRITE = 0x0008  # <linux/fcntl.h>


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


def start_container(name: str, *flags) -> int:
    out = harness.run_cli("run", "-d", "--name", name, "--network", "none", *flags, "busybox", "sleep", "60")
    assert out.returncode == 0, harness.explain(out)
    pid = harness.run_cli("inspect", "-f", "{{.State.Pid}}", name)
    assert pid.returncode == 0, harness.explain(pid)
    return int(pid.stdout)


def start_outsider(container_pid: int) -> tuple[subprocess.Popen, int, int]:
    """A host process with every capability, put into the container's PID namespace only (as
    `docker exec`'s runtime enters it, or a debugger with nsenter): the container sees it, but it
    is not the container's. Returns (nsenter, its child's host pid, that child's pid in the container).

    Why not simply "the host's PID 1"? The container has a PID namespace of its own: it cannot
    name a host process at all, and any number we passed would name one of its own processes."""
    nsenter = subprocess.Popen(["nsenter", "--target", str(container_pid), "--pid", "--", "sleep", "60"])
    children = f"/proc/{nsenter.pid}/task/{nsenter.pid}/children"

    def inner_pid():
        with open(children) as f:
            kids = f.read().split()
        if not kids:
            return None
        with open(f"/proc/{kids[0]}/status") as f:
            nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
        return (int(kids[0]), int(nspid[-1])) if len(nspid) == 2 else None

    host_pid, pid_inside = harness.wait_until(inner_pid, "nsenter's sleep in the container's PID namespace")
    return nsenter, host_pid, pid_inside


def stop_outsider(nsenter: subprocess.Popen, host_pid: int) -> None:
    try:
        os.kill(host_pid, 9)
    except ProcessLookupError:
        pass
    nsenter.wait()


@pytest.fixture(scope="module")
def attacked(attacks_dir):
    """{"default": {attack: result}, "privileged": {...}}: attacks.c run by `exec` in a default
    container and in a --privileged one, each with a ptrace target from outside."""
    names = {"default": "md-attacked", "privileged": "md-attacked-priv"}
    flags = {"default": (), "privileged": ("--privileged",)}
    outsiders, results = [], {}
    try:
        pids = {mode: start_container(names[mode], "-v", f"{attacks_dir}:/md-attacks:ro", *flags[mode]) for mode in names}
        runs = {}
        for mode, name in names.items():
            nsenter, host_pid, inside = start_outsider(pids[mode])
            outsiders.append((nsenter, host_pid))
            runs[mode] = harness.popen_cli("exec", name, "/md-attacks/attacks", "--ptrace", str(inside),
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for mode, run in runs.items():  # both at once: the suite waits for the slower only
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0, f"`exec {names[mode]} /md-attacks/attacks` exited {run.returncode}: {err}"
            results[mode] = {r["attack"]: r for r in map(json.loads, out.splitlines())}
        yield results
    finally:
        for nsenter, host_pid in outsiders:
            stop_outsider(nsenter, host_pid)
        harness.run_cli("rm", "-f", *names.values())


def host_has(path: str) -> bool:
    """Some kernels are built without /proc/kcore or /proc/sysrq-trigger: nothing to mask then."""
    return os.path.exists(path)


# attack -> (the errno a default container must get, the lock that gives it, its docs section)
EXPECTED = {
    "load-module": ("EPERM", "seccomp (finit_module is allowed only with CAP_SYS_MODULE), and no CAP_SYS_MODULE",
                    "#seccomp"),
    "read-block-device": ("EPERM", "the device cgroup: mknod works (CAP_MKNOD is a default), the open of b 8:0 does not",
                          "#the-device-cgroup"),
    "mount-proc": ("EPERM", "no CAP_SYS_ADMIN (and seccomp allows mount only with it)", "#capabilities"),
    "mount-sysfs-rw": ("EPERM", "no CAP_SYS_ADMIN (and seccomp allows mount only with it)", "#capabilities"),
    "write-sysrq-trigger": ("EROFS" if host_has("/proc/sysrq-trigger") else "ENOENT",
                            "the read-only paths: /proc/sysrq-trigger bound read-only over itself", "#read-only-paths"),
    "write-proc-sys": ("EROFS", "the read-only paths: /proc/sys bound read-only over itself", "#read-only-paths"),
    "read-kcore": (None if host_has("/proc/kcore") else "ENOENT",
                   "the masked paths: /dev/null bound over /proc/kcore (the open works, the read finds 0 bytes)",
                   "#masked-paths"),
    "read-timer-list": (None if host_has("/proc/timer_list") else "ENOENT",
                        "the masked paths: /dev/null bound over /proc/timer_list (the read finds 0 bytes)",
                        "#masked-paths"),
    "set-time": ("EPERM", "seccomp (settimeofday only with CAP_SYS_TIME), and no CAP_SYS_TIME", "#seccomp"),
    "unshare-userns": ("EPERM", "seccomp: unshare is allowed only with CAP_SYS_ADMIN (a new user namespace "
                       "needs no capability at all, so seccomp is the only lock here)", "#seccomp"),
    "ptrace-outside": ("EPERM", "no CAP_SYS_PTRACE: the target holds capabilities the container lacks", "#capabilities"),
    "shocker": ("EPERM", "no CAP_DAC_READ_SEARCH (and seccomp allows open_by_handle_at only with it)", "#capabilities"),
}


@pytest.mark.parametrize("attack", EXPECTED)
def test_a_default_container_stops_the_attack_for_the_right_reason(attacked, attack):
    errno, lock, section = EXPECTED[attack]
    result = attacked["default"].get(attack)
    assert result is not None, f"attacks.c did not report {attack}: {attacked['default']}"
    assert not result["ok"], f"{attack} got through a default container: {result} (the lock: {lock}; {DOCS}{section})"
    assert result["errno"] == errno, \
        f"{attack} failed, but for another reason than {lock}: {result['errno']} instead of {errno}: {result} " \
        f"({DOCS}{section})"
    if attack == "read-block-device":
        assert "mknod b 8 0 worked" in result["detail"], \
            f"mknod failed: Docker keeps CAP_MKNOD (images carry device nodes); the device cgroup is the lock: {result} " \
            f"({DOCS}#capabilities)"
    if errno is None:  # masked: opened, nothing read
        assert "read 0 bytes" in result["detail"], f"{attack}: {result} ({DOCS}{section})"


# The attacks that a privileged container cannot make: the file is not on this host's kernel.
ABSENT_ON_THIS_HOST = {a for a, path in (("write-sysrq-trigger", "/proc/sysrq-trigger"), ("read-kcore", "/proc/kcore"),
                                         ("read-timer-list", "/proc/timer_list")) if not host_has(path)}


def kernel_locked_down() -> bool:
    """Lockdown's confidentiality mode (Secure Boot machines may boot with it) refuses /proc/kcore
    to every process, the host's root included: a lock of the host's, not of Docker's."""
    try:
        with open("/sys/kernel/security/lockdown") as f:
            return "[confidentiality]" in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("attack", EXPECTED)
def test_privileged_lets_the_same_attack_through(attacked, attack):
    result = attacked["privileged"].get(attack)
    assert result is not None, f"attacks.c did not report {attack} under --privileged: {attacked['privileged']}"
    if attack in ABSENT_ON_THIS_HOST:
        assert result["errno"] == "ENOENT", f"{attack}: this host's kernel has no such file: {result}"
        return
    if attack == "read-kcore" and kernel_locked_down():
        assert result["errno"] == "EPERM", f"{attack}: this host's kernel is locked down: {result}"
        return
    assert result["ok"], \
        f"{attack} is stopped even under --privileged, so something else than Docker's defaults stops it " \
        f"(--privileged: every capability, no seccomp, all devices, no masked or read-only paths): {result} " \
        f"({DOCS}#privileged)"


def filesystem_of(path: str) -> tuple[str, str, str]:
    """(mount point, the mount's root inside its filesystem, fstype) of the mount that holds path."""
    path, best = os.path.realpath(path), ("", "", "")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, fstype = line.split(" - ")[0].split(), line.split(" - ")[1].split()[0]
            point = fields[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                best = (point, fields[3], fstype)
    return best


def test_shocker_under_privileged_lists_the_hosts_disk(attacked, attacks_dir):
    """What the escape reaches: open_by_handle_at with inode 2 opens the root of the host's disk
    that /md-attacks comes from, and lists it, though no mount in the container shows it."""
    point, root, fstype = filesystem_of(attacks_dir)
    result = attacked["privileged"]["shocker"]
    if fstype not in ("ext2", "ext3", "ext4") or root != "/":
        assert result["errno"] != "EPERM", result  # not an ext4 root: inode 2 is not its root
        return
    listed = set(result["detail"].split(":", 1)[1].split("/")[1:])
    on_host = set(os.listdir(point))
    assert listed and listed <= on_host, \
        f"the handle {{inode 2, generation 0}} should open the root of {point} ({fstype}): listed {sorted(listed)}, " \
        f"the host has {sorted(on_host)} ({DOCS}#the-shocker-escape)"


# ---------------------------------------------------------------------------------------------
# CVE-2019-5736: the runtime's own binary, reached from inside through /proc/self/exe.

PR_GET_DUMPABLE = 3  # <linux/prctl.h>


def test_the_process_that_enters_a_container_is_not_dumpable_until_its_exec():
    """Before its exec, the forked runtime is in the container's PID namespace: the container must
    not ptrace it nor read its /proc/PID/mem, fd or environ. Asked in the fork itself (API level):
    prctl(PR_GET_DUMPABLE) is its exit code."""
    import ctypes

    from minidocker.runtime import spawn

    libc = ctypes.CDLL(None, use_errno=True)
    pid, errors = spawn.fork_with_error_pipe(lambda: os._exit(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)))
    os.close(errors)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, \
        f"the forked runtime is dumpable: root in the container could ptrace it before its exec ({DOCS}#cve-2019-5736)"

EVIL = "#!/proc/self/exe\n"  # the kernel runs, as this script's interpreter, whatever execs it


@pytest.fixture(scope="module")
def evil_script():
    directory = tempfile.mkdtemp(prefix="md-cve-", dir="/var/tmp")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "evil")
    with open(path, "w") as f:
        f.write(EVIL)
    os.chmod(path, 0o755)
    yield directory
    os.unlink(path)
    os.rmdir(directory)


def fill(fifo: int) -> None:
    """Fill a non-blocking FIFO to the brim: a blocking write to it will now wait."""
    try:
        while True:
            os.write(fifo, b"x" * 4096)
    except BlockingIOError:
        pass


def drain(fifo: int) -> None:
    try:
        while os.read(fifo, 65536):
            pass
    except BlockingIOError:
        pass


def blocked_interpreter(cmdline: bytes, deadline: float) -> int:
    """The pid of the process whose command line is `cmdline`, once it shows up."""
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        return int(pid)
            except OSError:
                continue  # gone meanwhile
        time.sleep(0.02)
    raise AssertionError(f"no process ran {cmdline!r}")


def test_a_proc_self_exe_script_finds_a_sealed_binary(md, evil_script):
    """The process that execs a container's command is ours until the exec. A script whose
    interpreter is /proc/self/exe makes the kernel run *that* binary inside the container, where
    root can write it through /proc/PID/exe once it is idle. It must be the sealed stub: neither
    the host's Python nor the stub's file on disk, and on a read-only mount or sealed.

    To look at it while it runs, the test holds it: the stub, run as the script's interpreter,
    gets ["/proc/self/exe", "/md-cve/evil", "/md-cve/nowhere", "x"], so it takes fd 0 for its error
    pipe (atoi of the script's path), fails to exec /md-cve/nowhere, and blocks writing the error
    to its stdin: a FIFO the test filled. Then the test opens /proc/PID/exe, as root inside could."""
    from minidocker import exeseal

    on_disk = {(st.st_dev, st.st_ino) for st in (os.stat(sys.executable), os.stat(exeseal.STUB))}
    fifo = os.path.join(evil_script, "stdin")
    os.mkfifo(fifo)
    stdin = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # read-write: the stub may write to its stdin
    name = "md-cve-2019-5736"
    try:
        volume = ("-v", f"{evil_script}:/md-cve:ro")
        out = md("run", "-d", "--name", name, "--network", "none", *volume, "busybox", "sleep", "60")
        assert out.returncode == 0, harness.explain(out)
        for how, argv in (("exec", ("exec", "-i", name)), ("run", ("run", "--rm", "-i", "--network", "none", *volume, "busybox"))):
            fill(stdin)
            os.set_blocking(stdin, True)  # the flag is the open file's, shared with the stub: it must wait
            command = harness.popen_cli(*argv, "/md-cve/evil", "/md-cve/nowhere", "x",
                                        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                pid = blocked_interpreter(b"/proc/self/exe\0/md-cve/evil\0/md-cve/nowhere\0x\0", time.monotonic() + 30)
                exe = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    info = os.fstat(exe)
                    try:
                        seals = fcntl.fcntl(exe, fcntl.F_GET_SEALS)
                    except OSError:
                        seals = 0  # not a memfd: no seals at all
                    read_only_mount = bool(os.fstatvfs(exe).f_flag & os.ST_RDONLY)
                finally:
                    os.close(exe)
            finally:
                os.set_blocking(stdin, False)
                drain(stdin)  # the stub's write now goes through, and it exits
                command.communicate(timeout=30)
                drain(stdin)  # what it wrote
            assert (info.st_dev, info.st_ino) not in on_disk, \
                f"`{how}`: a container's #!/proc/self/exe ran a file of the host (its Python, or the stub's own file), " \
                f"which root in the container could write through /proc/PID/exe " \
                f"({DOCS}#cve-2019-5736)"
            assert read_only_mount or seals & F_SEAL_WRITE, \
                f"`{how}`: /proc/self/exe is a copy, but neither on a read-only mount nor sealed against writes " \
                f"({DOCS}#cve-2019-5736)"
            assert command.returncode == 127, f"`{how}`: the stub could not exec /md-cve/nowhere: 127, not {command.returncode}"
    finally:
        md("rm", "-f", name)
        os.close(stdin)
        os.unlink(fifo)
