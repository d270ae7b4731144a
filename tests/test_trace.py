"""minidocker.linux's trace: every call through the syscall seam prints one line, in words,
with its result and the process that made it (DESIGN.md, "Trace"). The CLI's --trace is tested
with the CLI; here the seam itself, called directly (as root: some calls are real)."""

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import traceback

import pytest
from hypothesis import given, strategies as st

import harness
from minidocker import cgroups, linux

TABLES = {"CLONE_FLAGS": linux.CLONE_FLAGS, "MOUNT_FLAGS": linux.MOUNT_FLAGS,
          "UMOUNT_FLAGS": linux.UMOUNT_FLAGS}


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: sudo .venv/bin/python -m pytest tests/test_trace.py")


@contextlib.contextmanager
def tracing():
    """Trace into a pipe; the function it gives stops tracing and returns the lines written."""
    was_on = linux.TRACE
    read_end, write_end = os.pipe()
    linux.enable_trace(write_end)
    os.close(write_end)  # the trace holds its own copy: only that one keeps the pipe open

    def lines() -> list[str]:
        linux.disable_trace()  # the last write end (our forked children have exited): EOF follows
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode().splitlines()

    try:
        yield lines
    finally:
        linux.disable_trace()
        os.close(read_end)
        if was_on:
            linux.enable_trace()  # MINIDOCKER_TRACE=1 in the suite's environment: back to stderr


@pytest.fixture
def trace():
    with tracing() as lines:
        yield lines


def in_child(body) -> int:
    """Run body() in a forked child; return its exit code (0: body returned)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = body() or 0
        except BaseException:  # noqa: BLE001 - show it, and never return into pytest's code
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# ---------------------------------------------------------------------------------------------
# Numbers in words

def test_flags_in_words():
    assert linux.flag_names(linux.CLONE_NEWPID | linux.CLONE_NEWNS, linux.CLONE_FLAGS) == "CLONE_NEWNS|CLONE_NEWPID"
    assert linux.flag_names(linux.MS_PRIVATE | linux.MS_REC, linux.MOUNT_FLAGS) == "MS_REC|MS_PRIVATE"
    assert linux.flag_names(linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY, linux.MOUNT_FLAGS) == \
        "MS_RDONLY|MS_REMOUNT|MS_BIND"
    assert linux.flag_names(linux.MNT_DETACH, linux.UMOUNT_FLAGS) == "MNT_DETACH"
    assert linux.flag_names(0, linux.MOUNT_FLAGS) == "0"
    assert linux.flag_names(linux.MS_BIND | 1 << 31, linux.MOUNT_FLAGS) == "MS_BIND|0x80000000", \
        "a bit without a name must still be shown, as a number"
    assert linux.flag_names(0x80, linux.CLONE_FLAGS) == "0x80"


def test_every_constant_is_in_its_table():
    assert set(linux.CLONE_FLAGS) == {f"CLONE_NEW{n}" for n in ("NS", "CGROUP", "UTS", "IPC", "USER", "PID", "NET")}
    assert linux.MOUNT_FLAGS["MS_STRICTATIME"] == linux.MS_STRICTATIME
    assert linux.PRCTL_OPTIONS["PR_SET_PDEATHSIG"] == 1
    for table in TABLES.values():
        bits = list(table.values())
        assert all(bin(b).count("1") == 1 for b in bits) and len(set(bits)) == len(bits), "one bit each"


def _words_back(words: str, table: dict[str, int]) -> int:
    value = 0
    for word in words.split("|"):
        value |= table[word] if word in table else int(word, 16)
    return value


@given(st.sampled_from(sorted(TABLES)), st.data())
def test_known_flags_round_trip(name, data):
    table = TABLES[name]
    chosen = data.draw(st.sets(st.sampled_from(sorted(table))))
    value = 0
    for flag in chosen:
        value |= table[flag]
    words = linux.flag_names(value, table)
    assert _words_back(words, table) == value
    assert set(words.split("|")) == (chosen or {"0"}), "known bits are named, never shown as numbers"


@given(st.sampled_from(sorted(TABLES)), st.integers(0, 2**64 - 1))
def test_any_value_round_trips(name, value):
    table = TABLES[name]
    words = linux.flag_names(value, table)
    assert _words_back(words, table) == value
    assert len(words.split("|")) == len(set(words.split("|")))


# ---------------------------------------------------------------------------------------------
# Traced calls

def test_a_failing_call_is_traced_and_still_raises(trace):
    need_root()  # else mount answers EPERM before it looks at the paths
    with pytest.raises(OSError) as raised:
        linux.mount("/nonexistent-md", "/nonexistent-md2", None, linux.MS_BIND)
    assert raised.value.errno == errno.ENOENT
    lines = trace()
    assert lines == [f'[minidocker {os.getpid()}] mount("/nonexistent-md", "/nonexistent-md2", NULL, MS_BIND, NULL)'
                     " = -1 ENOENT (No such file or directory)"], "one line: the call in words and its errno"


def test_off_means_silent(trace):
    linux.disable_trace()
    with pytest.raises(OSError):
        linux.umount2("/nonexistent-md", linux.MNT_DETACH)
    assert trace() == []


def test_a_lost_trace_fd_does_not_break_the_call(trace):
    # The runtime closes every fd but stdio before exec; a lost trace must not fail the syscall.
    def failing_call_without_trace_fd():
        os.close(linux.trace_fd())
        try:
            linux.umount2("/nonexistent-md", linux.MNT_DETACH)
        except OSError as e:
            return 0 if e.errno in (errno.ENOENT, errno.EINVAL, errno.EPERM) else 3
        return 4

    assert in_child(failing_call_without_trace_fd) == 0, "the call's own error, not EBADF from the trace"
    assert trace() == []


def test_the_trace_fd_is_closed_at_exec(trace):
    # O_CLOEXEC: the container's command must not inherit our stderr.
    assert os.get_inheritable(linux.trace_fd()) is False


def test_setns_shows_the_namespace(trace):
    need_root()
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
    try:
        linux.setns(fd, linux.CLONE_NEWUTS)  # into the namespace we are in: changes nothing
        inode = os.readlink("/proc/self/ns/uts")
    finally:
        os.close(fd)
    assert trace() == [f"[minidocker {os.getpid()}] setns({fd} -> {inode}, CLONE_NEWUTS) = 0"]


def test_a_container_process_is_named_with_both_its_pids(trace):
    """As the runtime does it: unshare (PID namespace for the next child), fork, set_role."""
    need_root()
    host_pid_read, host_pid_write = os.pipe()

    def runtime():
        linux.unshare(linux.CLONE_NEWPID | linux.CLONE_NEWUTS | linux.CLONE_NEWNS)

        def container():
            linux.set_role("container")
            linux.sethostname("md-trace")
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # in its own mount ns
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)

        pid = os.fork()  # by hand, to learn its pid as seen from outside its PID namespace
        if pid == 0:
            code = 1
            try:
                container()
                code = 0
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            finally:
                os._exit(code)
        os.write(host_pid_write, str(pid).encode())
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    assert in_child(runtime) == 0
    os.close(host_pid_write)
    container_pid = int(os.read(host_pid_read, 64))
    os.close(host_pid_read)
    lines = trace()
    first = re.fullmatch(r"\[minidocker (\d+)\] unshare\(CLONE_NEWNS\|CLONE_NEWUTS\|CLONE_NEWPID\) = 0", lines[0])
    assert first, f"the forked runtime traces under its own pid: {lines[0]}"
    assert int(first[1]) != os.getpid()
    who = f"[container pid 1 (host {container_pid})]"
    assert lines[1:] == [f'{who} sethostname("md-trace", 8) = 0',
                         f'{who} mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0',
                         f"{who} prctl(PR_SET_PDEATHSIG, SIGKILL) = 0"]


def test_fexecve_is_traced_before_the_exec(trace):
    true = os.open(shutil.which("true"), os.O_PATH | os.O_CLOEXEC)

    def exec_true():
        linux.set_role("container")
        linux.fexecve(true, ["true"], {"PATH": "/usr/bin:/bin"})

    assert in_child(exec_true) == 0, "the command ran and exited 0"
    os.close(true)
    lines = trace()
    # One line: after a successful exec, the process is `true`, and nothing of ours runs again.
    assert len(lines) == 1 and lines[0].endswith(
        f' execveat({true} -> {os.path.realpath(shutil.which("true"))}, "", ["true"], /* 1 vars */, AT_EMPTY_PATH) ...'), lines
    assert lines[0].startswith("[container ")


def test_a_failing_fexecve_says_why(trace, tmp_path):
    text = tmp_path / "not-a-program"
    text.write_text("no #! line, no ELF header\n")
    text.chmod(0o755)
    fd = os.open(text, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError):
            linux.fexecve(fd, ["not-a-program", "a b"], {})
    finally:
        os.close(fd)
    call = f'execveat({fd} -> {text}, "", ["not-a-program", "a b"], /* 0 vars */, AT_EMPTY_PATH)'
    assert [line.split("] ", 1)[1] for line in trace()] == [
        f"{call} ...", f"{call} = -1 ENOEXEC (Exec format error)"]


# ---------------------------------------------------------------------------------------------
# write_file: one write(2) of the whole value, as cgroupfs wants

def test_write_file_writes_once_and_is_traced(trace, tmp_path):
    path = tmp_path / "pids.max"
    path.write_text("")
    assert linux.write_file(str(path), 20) == 2
    assert path.read_text() == "20"
    assert trace() == [f'[minidocker {os.getpid()}] write("{path}", "20") = 2']


def test_write_file_failures_name_the_path_and_the_value(trace, tmp_path):
    missing = str(tmp_path / "no-cgroup" / "cgroup.procs")
    with pytest.raises(FileNotFoundError) as raised:  # the open fails: no such cgroup
        linux.write_file(missing, 1234)
    assert f"write({missing!r}, 1234)" in str(raised.value)
    with pytest.raises(OSError) as raised:  # the open works, the kernel refuses the value
        linux.write_file("/proc/self/oom_score_adj", "md-not-a-number")
    assert raised.value.errno == errno.EINVAL
    assert "'/proc/self/oom_score_adj', 'md-not-a-number'" in str(raised.value)
    assert [line.split("] ", 1)[1] for line in trace()] == [
        f'write("{missing}", "1234") = -1 ENOENT (No such file or directory)',
        'write("/proc/self/oom_score_adj", "md-not-a-number") = -1 EINVAL (Invalid argument)']


@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_one_call_is_one_line_whatever_its_arguments(tmp_path_factory, value):
    # Each call must be exactly one line (one write), even with newlines or quotes in a value.
    path = tmp_path_factory.getbasetemp() / "md-trace-value"
    path.write_bytes(b"")  # write_file neither creates nor truncates: a cgroup's files are there
    with tracing() as trace:
        linux.write_file(str(path), value)
        lines = trace()
    assert path.read_bytes() == value.encode()
    assert len(lines) == 1
    shown = lines[0].split(", ", 1)[1].rsplit(") = ", 1)[0]  # "the value", as C would write it
    assert shown[0] == shown[-1] == '"' and shown.isascii()
    assert shown[1:-1].encode().decode("unicode_escape") == value, "the escapes give the value back"


def test_the_environment_turns_it_on_at_import():
    package_root = os.path.abspath(os.path.join(os.path.dirname(linux.__file__), "..", ".."))  # holds minidocker/
    code = "from minidocker import linux\ntry:\n    linux.umount2('/nonexistent-md', linux.MNT_DETACH)\nexcept OSError:\n    pass"
    env = {**os.environ, "MINIDOCKER_TRACE": "1", "PYTHONPATH": package_root}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert re.fullmatch(r'\[minidocker \d+\] umount2\("/nonexistent-md", MNT_DETACH\) = -1 E\w+ \(.*\)\n', done.stderr), \
        done.stderr


def test_the_trace_of_a_run_shows_the_kernel_at_work_in_order(md, rootfs):
    """`minidocker --trace run --rm ... true`: the calls of chapter 01, in the order they happen."""
    proc = md("--trace", "run", "--rm", "--rootfs", rootfs, "--", "true")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    join = "/tasks" if cgroups.detect().VERSION == 1 else "/cgroup.procs"  # see cgroups/v1.py
    expected = ["unshare(CLONE_NEWPID)", f'{join}", "0")', "sethostname(", "MS_REC|MS_PRIVATE",
                '"proc"', "pivot_root(", 'umount2(".", MNT_DETACH)', 'execveat(']
    where = 0
    for call in expected:
        found = next((i for i in range(where, len(lines)) if call in lines[i]), None)
        assert found is not None, f"no {call} after line {where} in the trace:\n{proc.stderr}"
        where = found + 1
    assert '"/bin/true", "true"]' in lines[where - 1], f"the exec (through the sealed stub) runs true: {lines[where - 1]}"
    assert any(line.startswith("[container pid 1") for line in lines), "the container's own calls say who made them"


@pytest.mark.parametrize("flags", [(), ("--init",)])
def test_a_traced_detached_run_lets_go_of_the_callers_stderr(md, rootfs, flags):
    # `run -d` returns at once; a trace must not keep its stderr open for the container's life.
    proc = harness.popen_cli("--trace", "run", "-d", *flags, "--rootfs", rootfs, "--", "sleep", "30",
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=20)  # EOF on both pipes: nobody holds them any more
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert md("rm", "-f", out.strip()).returncode == 0
