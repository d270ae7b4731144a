"""containerd runs minidocker's runtime where runc would stand: `ctr run --runc-binary minidocker-runc`.

containerd starts a shim (containerd-shim-runc-v2) per container; the shim runs our runtime's
command line exactly as it runs runc's (create, start, state, exec, kill, delete, ps, pause...),
hands it the task's stdio or a console socket, reaps the container's process itself, and reads
our errors back from the --log file. Each test here goes through that whole chain. The fixture
(conftest.py) starts containerd on a private socket and imports `minidocker save busybox`.
See docs/09-runtime.md#containerd-and-ctr.
"""

import json
import os
import pty
import subprocess

from hypothesis import given, settings, strategies as st

import harness

DOCS = "docs/09-runtime.md"


def test_ctr_run_gives_the_output_and_the_exit_code(containerd):
    # One container for several checks: the command's output on ctr's stdout and stderr, its
    # exit code as ctr's, its own PID namespace, and its cgroup where ctr's --cgroup put it.
    out = containerd.run("mdc-run", "sh", "-c", "echo hello; echo oops >&2; echo pid=$$; cat /proc/self/cgroup; exit 7")
    assert out.returncode == 7, (f"ctr run should exit with the command's code 7, got {out.returncode}: "
                                 f"{out.stderr} (the shim reaps the process and reports its status: "
                                 f"{DOCS}#create-start-and-the-shim)")
    assert "hello" in out.stdout and "oops" in out.stderr, (
        f"the command's stdout/stderr should reach ctr through the shim's pipes (create passes its "
        f"stdio to the container): stdout={out.stdout!r} stderr={out.stderr!r}")
    assert "pid=1" in out.stdout, f"the command should be PID 1 of its own PID namespace: {out.stdout!r}"
    assert "ctr-mdc-run" in out.stdout, (f"the container should be in the cgroup that ctr's --cgroup names "
                                          f"(linux.cgroupsPath): {out.stdout!r}")
    assert containerd.ctr("container", "ls", "--quiet").stdout.split() == [], "ctr run --rm should leave no container"
    assert os.listdir(os.path.join(containerd.runc_root, "default")) == [], (
        f"`delete` should remove the runtime's state under --root: {DOCS}#the-runc-face")


def test_a_task_through_its_life(containerd):
    cid = "mdc-life"
    started = containerd.ctr("run", *containerd.run_flags(cid), "--detach", "docker.io/library/busybox:latest", cid,
                             "sleep", "1000")
    try:
        assert started.returncode == 0, f"ctr run --detach failed: {started.stderr} (see {DOCS}#the-runc-face)"
        assert containerd.task_status(cid) == "RUNNING", "after create and start the task should be RUNNING"
        with open(os.path.join(containerd.runc_root, "default", cid, "state.json")) as f:
            assert "pidStart" in json.load(f), "the state under --runc-root should be minidocker's (runc-binary ignored?)"
        pid = int(containerd.ctr("task", "ls").stdout.split(cid)[1].split()[0])

        ps = containerd.ctr("task", "ps", cid)
        assert str(pid) in ps.stdout, f"`runc ps --format json` should list the task's pid {pid}: {ps.stdout}"

        for action, expected in (("pause", "PAUSED"), ("resume", "RUNNING")):
            done = containerd.ctr("task", action, cid)
            assert done.returncode == 0 and containerd.task_status(cid) == expected, (
                f"ctr task {action} should leave the task {expected}: {done.stderr} "
                f"(runc pause/resume, and `state` saying paused: {DOCS}#pause-and-resume)")

        missing = containerd.exec(cid, "e-missing", "nope")
        assert missing.returncode != 0 and 'exec: "nope": executable file not found' in missing.stderr, (
            f"an exec of a missing command should fail with runc's words, read back from the --log file: "
            f"{missing.stderr!r} ({DOCS}#errors-go-to-the-log)")

        metrics = containerd.ctr("task", "metrics", cid)
        assert "pids.current" in metrics.stdout, f"ctr task metrics should read the task's cgroup: {metrics.stdout}"

        killed = containerd.ctr("task", "kill", "--signal", "KILL", cid)
        assert killed.returncode == 0, f"ctr task kill failed: {killed.stderr}"
        harness.wait_until(lambda: containerd.task_status(cid) == "STOPPED", "the killed task to be STOPPED")
        deleted = containerd.ctr("task", "delete", cid)
        assert deleted.returncode == 0 and "137" in deleted.stderr, (
            f"ctr task delete should report exit code 137 (128 + SIGKILL): {deleted.stderr!r}")
        assert not os.path.exists(os.path.join(containerd.runc_root, "default", cid)), \
            "runc delete should remove the container's state dir"
    finally:
        containerd.remove(cid)


def test_exec_exit_codes_come_back_through_the_shim(containerd):
    cid = "mdc-exec"
    started = containerd.ctr("run", *containerd.run_flags(cid), "--detach", "docker.io/library/busybox:latest",
                             cid, "sleep", "1000")
    assert started.returncode == 0, f"ctr run --detach failed: {started.stderr}"

    @settings(max_examples=3)
    @given(code=st.integers(0, 255))
    def exec_exits_with(code):
        out = containerd.exec(cid, f"e{code}", "sh", "-c", f"echo in-$$; exit {code}")
        assert out.returncode == code, (f"`ctr task exec` should exit {code}, the process's code; got "
                                        f"{out.returncode} {out.stderr!r} (runc exec --detach: the shim reaps "
                                        f"the process: {DOCS}#exec)")
        assert out.stdout.startswith("in-"), f"the exec'd process's output should reach ctr: {out.stdout!r}"

    try:
        exec_exits_with()
    finally:
        containerd.remove(cid)


def test_a_terminal_through_the_console_socket(containerd):
    # ctr -t: the shim listens on a console socket, the runtime sends it the pty's master side.
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(["ctr", "--address", containerd.socket, "run", *containerd.run_flags("mdc-tty"),
                                 "--rm", "-t", "docker.io/library/busybox:latest", "mdc-tty", "sh", "-c",
                                 "tty; test -t 0 && echo stdin-is-a-tty; exit 3"],
                                stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: ctr has exited and closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    containerd.wait_for_shim("mdc-tty")
    text = b"".join(chunks).decode(errors="replace")
    assert "/dev/pts/" in text and "stdin-is-a-tty" in text, (
        f"with -t the process should have a pty as stdin/stdout: {text!r} (--console-socket: "
        f"{DOCS}#terminals)")
    assert code == 3, f"ctr run -t should exit with the command's code 3, got {code}: {text!r}"


def test_a_failed_start_is_reported_and_leaves_nothing(containerd):
    out = containerd.run("mdc-nope", "/no/such/program")
    assert out.returncode != 0 and "no such file or directory" in out.stderr.lower() + out.stdout.lower(), (
        f"ctr should print the runtime's error, which the shim read from --log: {out.stderr!r} "
        f"({DOCS}#errors-go-to-the-log)")
    assert containerd.task_status("mdc-nope") is None, "no task should be left after a failed start"
    assert os.listdir(os.path.join(containerd.runc_root, "default")) == [], "no runtime state should be left"
