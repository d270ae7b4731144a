"""Chapter 01: the process in the container — exit codes, signals, argv and env, user, workdir,
stdin, terminals, and what being PID 1 means (docs/01-isolation.md#the-process)."""

import json
import signal
import time

from hypothesis import given, settings, strategies as st

import harness


def run(md, rootfs, *command, flags=(), **kwargs):
    return md("run", "--rm", *flags, "--rootfs", rootfs, "--", *command, **kwargs)


@settings(max_examples=8)
@given(st.integers(0, 255))
def test_exit_codes_come_back_unchanged(md, rootfs, code):
    out = run(md, rootfs, "sh", "-c", f"exit {code}")
    assert out.returncode == code, (
        f"`exit {code}` in the container came back as {out.returncode}: return the container's own code {harness.explain(out)}")


@settings(max_examples=5)
@given(st.sampled_from([signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                        signal.SIGALRM, signal.SIGTERM, signal.SIGKILL]))
def test_a_command_killed_by_signal_n_exits_128_plus_n(md, rootfs, container, sig):
    # With --init, `sleep` is not PID 1: `kill -s` reaches the init, which passes it on.
    cid = container("sleep", "30", flags=("--init",))
    md("kill", "-s", sig.name, cid, check=True)
    waited = md("wait", cid)
    md("rm", cid)
    assert waited.stdout.strip() == str(128 + sig), (
        f"a command killed by {sig.name} ({int(sig)}) should exit {128 + sig}, as in Docker and the shell; "
        f"got {waited.stdout.strip()} (docs/01-isolation.md#exit-codes) {harness.explain(waited)}")


# Awkward but valid: spaces, quotes, newlines, globs, $, unicode, leading dashes; never NUL.
awkward_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=10)
@given(st.lists(awkward_text, max_size=6))
def test_argv_survives_byte_for_byte(md, rootfs, args):
    out = run(md, rootfs, "printf", r"%s\0", *args, binary=True)
    assert out.returncode == 0, harness.explain(out)
    got = out.stdout.split(b"\0")[:-1] if args else []
    assert got == [a.encode() for a in args], "argv changed on its way into the container"


@settings(max_examples=10)
@given(st.dictionaries(st.from_regex(r"MD_[A-Z0-9_]{1,10}", fullmatch=True), awkward_text, max_size=4))
def test_env_survives_byte_for_byte(md, rootfs, env):
    flags = [f for name, value in env.items() for f in ("-e", f"{name}={value}")]
    script = "".join(f'printf "%s\\0" "${name}"; ' for name in env) or "true"
    out = run(md, rootfs, "sh", "-c", script, flags=flags, binary=True)
    assert out.returncode == 0, harness.explain(out)
    assert out.stdout.split(b"\0")[:-1] == [v.encode() for v in env.values()], "-e values changed on the way in"


def test_docker_default_environment(md, rootfs):
    out = run(md, rootfs, "env", flags=("-h", "md-box"))
    assert out.returncode == 0, harness.explain(out)
    env = dict(line.split("=", 1) for line in out.stdout.split())
    assert env.get("PATH") == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env.get("HOSTNAME") == "md-box" and env.get("HOME") == "/root", f"Docker sets PATH, HOSTNAME and HOME: {env}"


def test_missing_command_is_127_and_non_executable_is_126(md, rootfs):
    missing = run(md, rootfs, "md-no-such-command")
    assert missing.returncode == 127 and "md-no-such-command" in missing.stderr, harness.explain(missing)
    assert len(missing.stderr.strip().splitlines()) == 1, f"one line of error, no traceback {harness.explain(missing)}"
    not_executable = run(md, rootfs, "/etc/passwd")
    assert not_executable.returncode == 126, f"a file that is not executable: 126 {harness.explain(not_executable)}"


def test_workdir_user_and_read_only_root(md, rootfs):
    pwd = run(md, rootfs, "pwd", flags=("-w", "/md/work"))
    assert pwd.stdout.strip() == "/md/work", f"-w sets (and creates) the cwd {harness.explain(pwd)}"
    ids = run(md, rootfs, "sh", "-c", "id -u; id -g; touch /etc/md 2>/dev/null || echo denied", flags=("-u", "1000:1001"))
    assert ids.stdout.split() == ["1000", "1001", "denied"], (
        f"-u 1000:1001 should run as that user: {ids.stdout!r} {harness.explain(ids)}")
    ro = run(md, rootfs, "sh", "-c", "touch /md 2>&1; touch /dev/shm/md && echo shm-ok", flags=("--read-only",))
    assert "Read-only file system" in ro.stdout and "shm-ok" in ro.stdout, (
        f"--read-only: / read-only, /dev/shm writable: {ro.stdout!r} {harness.explain(ro)}")


def test_stdin_only_with_dash_i(md, rootfs):
    with_i = run(md, rootfs, "cat", flags=("-i",), input="md-hello\n")
    assert with_i.stdout == "md-hello\n", f"-i passes stdin through {harness.explain(with_i)}"
    without = run(md, rootfs, "cat", input="md-hello\n")
    assert without.returncode == 0 and without.stdout == "", (
        f"without -i the container's stdin is empty, as in Docker {harness.explain(without)}")


def test_dash_t_gives_a_terminal_from_the_containers_own_devpts(md, rootfs):
    out = run(md, rootfs, "sh", "-c", "tty; [ -t 1 ] && echo is-a-tty", flags=("-t",))
    assert out.stdout.split() == ["/dev/pts/0", "is-a-tty"], (
        f"with -t the command's stdio is a pty of the container's own /dev/pts: {out.stdout!r} {harness.explain(out)}")


def _orphan_state(md, cid, pid_file) -> str:
    """The orphan's state letter (Z: a zombie), or "gone" once it has been reaped."""
    out = md("exec", cid, "sh", "-c", f"pid=$(cat {pid_file}) && "
             "{ sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' /proc/$pid/status 2>/dev/null || true; }")
    assert out.returncode == 0, f"exec into the container failed: {out.stderr}"
    return out.stdout.strip() or "gone"


def test_pid_1_does_not_reap_orphans_unless_init(md, rootfs, container):
    # The subshell starts `sleep 0.2`, notes its pid and exits: the orphan is re-parented to
    # PID 1, which by then is `sleep 30` (it never calls wait), so when the orphan ends it stays
    # a zombie. With --init, the init reaps it and the orphan is gone.
    # (Both containers share the rootfs directory: each notes its orphan in a file of its own.)
    script = "(sleep 0.2 & echo $! > /tmp/md-orphan-{}); exec sleep 30"
    plain = container("sh", "-c", script.format("plain"))
    with_init = container("sh", "-c", script.format("init"), flags=("--init",))
    for cid, pid_file in ((plain, "/tmp/md-orphan-plain"), (with_init, "/tmp/md-orphan-init")):
        harness.wait_until(lambda: md("exec", cid, "cat", pid_file).stdout.strip(), "the orphan to start")
    harness.wait_until(lambda: _orphan_state(md, plain, "/tmp/md-orphan-plain") not in ("S", "R"), "the orphan to end")
    assert _orphan_state(md, plain, "/tmp/md-orphan-plain") == "Z", (
        "a plain PID 1 leaves the orphan a zombie (docs/01-isolation.md#pid-1)")
    harness.wait_until(lambda: _orphan_state(md, with_init, "/tmp/md-orphan-init") == "gone",
                       "--init to reap the orphan (docs/01-isolation.md#ex-01-init)")


def test_stop_sigkills_a_pid_1_that_ignores_sigterm_and_init_forwards_it(md, rootfs, container):
    plain, with_init = container("sleep", "30"), container("sleep", "30", flags=("--init",))
    started = time.monotonic()
    md("stop", "-t", "1", plain, check=True)
    assert time.monotonic() - started >= 1, "PID 1 has no SIGTERM handler, so the kernel drops SIGTERM: stop must wait"
    assert json.loads(md("inspect", plain).stdout)[0]["State"]["ExitCode"] == 137, "...then SIGKILL: 128+9"
    started = time.monotonic()
    md("stop", "-t", "5", with_init, check=True)
    assert time.monotonic() - started < 3, "with --init, SIGTERM is forwarded to sleep, which dies at once"
    assert json.loads(md("inspect", with_init).stdout)[0]["State"]["ExitCode"] == 143, "killed by SIGTERM: 128+15"
