"""Chapter 07: the real docker CLI drives minidocker's daemon (the container commands).

`docker` is the docker CLI with DOCKER_HOST pointing at the daemon the fixture started; no
dockerd runs. See docs/07-daemon.md.
"""

import json
import os
import pty
import select
import subprocess
import time

import harness

DOCS = "docs/07-daemon.md"
NONE = ("--network", "none")


def ok(out, what: str, section: str = "docker-run-as-requests") -> str:
    assert out.returncode == 0, f"{what}: docker exited {out.returncode}: {out.stderr or out.stdout} (see {DOCS}#{section})"
    return out.stdout


def test_run_rm_passes_output_and_exit_code(docker, busybox):
    out = docker("run", "--rm", *NONE, busybox, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert out.returncode == 3, f"`docker run` exits with the container's code (3), got {out.returncode}: {out.stderr} (see {DOCS}#docker-run-as-requests)"
    assert out.stdout == "out\n" and out.stderr == "err\n", (
        f"stdout and stderr arrive apart, through the 8-byte frames: {out!r} (see {DOCS}#the-stream-framing)")
    assert ok(docker("ps", "-aq"), "docker ps -aq") == "", "--rm: the container is gone after it exits"


def test_run_stdin_without_tty(docker, busybox):
    piped = docker("run", "--rm", "-i", *NONE, busybox, "sh", "-c", "tr a-z A-Z; echo done", input="data\n")
    assert ok(piped, "docker run -i") == "DATA\ndone\n", (
        f"the hijacked connection carries stdin in, and its EOF ends the container's input: {piped!r} (see {DOCS}#the-hijack)")


def test_detached_lifecycle(docker, busybox):
    cid = ok(docker("run", "-d", "--name", "md-s1-web", *NONE, busybox, "sh", "-c", "echo started; sleep 60"),
             "docker run -d").strip()
    try:
        assert len(cid) == 64, f"`docker run -d` prints the full id, got {cid!r}"
        rows = ok(docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"), "docker ps").splitlines()
        assert any(r.startswith(cid[:12] + " md-s1-web Up") for r in rows), f"docker ps lists it running: {rows}"
        harness.wait_until(lambda: docker("logs", cid).stdout == "started\n", "the container's first line in docker logs")
        fmt = ok(docker("inspect", "--format", "{{.State.Status}} {{.Name}} {{.Config.Image}}", "md-s1-web"), "inspect")
        assert fmt == "running /md-s1-web busybox\n", f"inspect --format reads our ContainerJSON: {fmt!r}"
        ex = docker("exec", "md-s1-web", "sh", "-c", "echo in; echo oops >&2; exit 4")
        assert (ex.returncode, ex.stdout, ex.stderr) == (4, "in\n", "oops\n"), (
            f"docker exec: framed output and the exec's exit code (from /exec/ID/json): {ex!r} (see {DOCS}#exec)")
        ok(docker("stop", "-t", "0", "md-s1-web"), "docker stop")  # sh as PID 1 ignores SIGTERM: no grace
        state = json.loads(ok(docker("inspect", cid), "docker inspect"))[0]["State"]
        assert state["Status"] == "exited" and not state["Running"], f"stopped: {state}"
        ok(docker("rm", "md-s1-web"), "docker rm")
        gone = docker("inspect", cid)
        assert gone.returncode == 1 and "No such" in gone.stderr, f"after rm, inspect finds nothing: {gone!r} (see {DOCS}#errors)"
    finally:
        docker("rm", "-f", cid)


def test_logs_follow_ends_with_the_container(docker, busybox):
    cid = ok(docker("run", "-d", *NONE, busybox, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"),
             "docker run -d").strip()
    try:
        out = docker("logs", "-f", cid, timeout=20)
        assert ok(out, "docker logs -f") == "line1\nline2\nline3\n", f"logs -f streams until the container exits: {out!r}"
    finally:
        docker("rm", "-f", cid)


def test_events_shows_the_lifecycle(daemon, docker, busybox):
    since = str(int(time.time()) - 1)
    ok(docker("run", "--rm", "--name", "md-s1-ev", *NONE, busybox, "true"), "docker run --rm")
    out = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                 "--filter", "container=md-s1-ev", "--format", "{{.Action}}", timeout=20)
    actions = ok(out, "docker events", "events").split()
    for action in ("create", "start", "die", "destroy"):
        assert action in actions, f"docker events shows {action}: {actions} (see {DOCS}#events)"


def _read_until(fd: int, wanted: bytes, timeout: float = 10) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_run_it_through_a_pty_with_resize(daemon, busybox):
    """`docker run -it`: the CLI's terminal goes raw through the hijack to the container's pty."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("docker", ["docker", "run", "--rm", "-it", *NONE, busybox, "sh"], daemon.env())
    try:
        assert b"#" in _read_until(fd, b"# "), f"a shell prompt through the pty (see {DOCS}#the-hijack)"
        os.write(fd, b"echo $((6*7))\r")
        assert b"42" in _read_until(fd, b"42"), "what we type reaches the shell, its answer comes back"
        import fcntl, struct, termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.kill(pid, 28)  # SIGWINCH: the CLI asks the daemon to resize
        time.sleep(0.5)
        os.write(fd, b"stty size\r")
        assert b"33 101" in _read_until(fd, b"33 101"), f"resize reaches the container's pty (see {DOCS}#the-hijack)"
        os.write(fd, b"exit 5\r")
        _read_until(fd, b"\x00", timeout=3)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5, "docker run -it exits with the shell's code"


def test_exec_it(daemon, docker, busybox):
    cid = ok(docker("run", "-d", *NONE, busybox, "sleep", "60"), "docker run -d").strip()
    try:
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe("docker", ["docker", "exec", "-it", cid, "sh"], daemon.env())
        os.write(fd, b"echo $((6*7)); exit 6\r")
        assert b"42" in _read_until(fd, b"42"), f"docker exec -it: a shell through the pty (see {DOCS}#exec)"
        _read_until(fd, b"\x00", timeout=3)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 6, "docker exec -it exits with the shell's code"
    finally:
        docker("rm", "-f", cid)


def test_cp_both_ways(docker, busybox, tmp_path):
    cid = ok(docker("run", "-d", *NONE, busybox, "sleep", "60"), "docker run -d").strip()
    try:
        src = tmp_path / "hello.txt"
        src.write_text("hi from the host\n")
        ok(docker("cp", str(src), f"{cid}:/tmp/hello.txt"), "docker cp into", "archive")
        inside = docker("exec", cid, "cat", "/tmp/hello.txt")
        assert inside.stdout == "hi from the host\n", f"docker cp put the file inside: {inside!r} (see {DOCS}#archive)"
        ok(docker("cp", f"{cid}:/etc/passwd", str(tmp_path / "passwd")), "docker cp out of", "archive")
        assert (tmp_path / "passwd").read_text().startswith("root:"), "docker cp brought /etc/passwd out"
    finally:
        docker("rm", "-f", cid)


def test_export_is_the_merged_filesystem_without_mounts(daemon, docker, busybox, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret").write_text("a volume's file\n")
    cid = ok(docker("run", "-d", *NONE, "-v", f"{data}:/data", busybox, "sh", "-c",
                    "echo new > /made; rm /bin/vi; sleep 60"), "docker run -d").strip()
    try:
        harness.wait_until(lambda: docker("exec", cid, "cat", "/made").stdout == "new\n", "the container's writes")
        out = subprocess.run(["docker", "export", cid], capture_output=True, env=daemon.env())  # bytes: a tar
        assert out.returncode == 0, f"docker export: {out.stderr!r} (see {DOCS}#export)"
        names = subprocess.run(["tar", "t"], input=out.stdout, capture_output=True).stdout.decode().split()
        assert "made" in names and "bin/sh" in names and "bin/vi" not in names, (
            f"export is the image's layers with the container's changes on top, whiteouts applied (see {DOCS}#export)")
        inside_mounts = [n for n in names if n.startswith(("proc/", "data/")) and n not in ("proc/", "data/")]
        assert not inside_mounts, (f"export leaves out what is mounted on top, /proc's files and the volume's, "
                                   f"but keeps the mount points (see {DOCS}#export): {inside_mounts[:5]}")
    finally:
        docker("rm", "-f", cid)


def test_attach_to_a_running_container_with_stdin(daemon, docker, busybox):
    # -i without a client: the stdin stays open (a shell waits for it), fed by whoever attaches.
    cid = ok(docker("run", "-di", *NONE, busybox, "sh"), "docker run -di").strip()
    try:
        assert docker("inspect", "-f", "{{.State.Running}}", cid).stdout == "true\n", (
            f"a -d -i container keeps its stdin open: its shell must still be waiting (see {DOCS}#attach)")
        first = subprocess.Popen(["docker", "attach", "--sig-proxy=false", cid], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=daemon.env())
        first.stdin.write(b"echo first\n")
        first.stdin.flush()
        answered = select.select([first.stdout], [], [], 10)[0] and first.stdout.readline()
        # `docker attach` stays until the container ends: this client is stopped from outside.
        first.kill()
        first.wait()
        assert answered == b"first\n", f"a client that attaches later writes to the running shell (see {DOCS}#attach)"
        done = docker("attach", cid, input="echo second; exit 3\n")
        assert done.stdout == "second\n" and done.returncode == 3, (
            f"the stdin stays open after a client leaves (the container was not made with StdinOnce), and "
            f"attach ends with the container's exit code (see {DOCS}#attach): {done!r}")
    finally:
        docker("rm", "-f", cid)
