"""Chapter 07: the minidocker CLI as a client of the daemon (docs/07-daemon.md#the-cli-as-a-client).

`minidocker -H unix://… CMD` (or $MINIDOCKER_HOST) sends the requests the docker CLI sends and
prints what the daemonless command prints: one engine, two ways in. The daemonless side here runs
on the daemon's own store (MINIDOCKER_ROOT=daemon.root), so both look at the same containers.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness

DOCS = "docs/07-daemon.md#the-cli-as-a-client"


@pytest.fixture
def both(daemon, busybox):
    """(remote, local): the CLI through the daemon, and daemonless on the daemon's store."""
    def remote(*args, **kw):
        return harness.run_cli("-H", daemon.host, *args, **kw)

    def local(*args, **kw):
        return harness.run_cli(*args, env={"MINIDOCKER_ROOT": daemon.root}, **kw)
    yield remote, local
    ids = local("ps", "-aq").stdout.split()
    if ids:
        remote("rm", "-f", *ids)


def test_run_attached_through_the_daemon(both, daemon):
    remote, local = both
    try:
        out = remote("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run through the daemon did not end; the daemon's log: {daemon.read_log()}")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n"), \
        f"run through the daemon: the output on the right streams and the exit code ({DOCS}) {harness.explain(out)}"
    assert local("ps", "-aq").stdout == "", "run --rm through the daemon must leave no container"
    piped = remote("run", "-i", "--rm", "--network", "none", "busybox", "cat", input="typed\n")
    assert piped.stdout == "typed\n", f"-i gives the container our stdin ({DOCS}) {harness.explain(piped)}"
    missing = remote("run", "--rm", "--network", "none", "busybox", "nosuchcmd")
    assert missing.returncode == 127, f"a missing command is 127, as docker run's {harness.explain(missing)}"


def test_the_same_output_with_and_without_the_daemon(both, daemon):
    remote, local = both
    cid = remote("run", "-d", "--network", "none", "--name", "md-client", "busybox", "sh", "-c",
                 "echo hello; echo oops >&2; sleep 100").stdout.strip()
    assert len(cid) == 64, f"run -d prints the id {cid!r}"
    harness.wait_until(lambda: "hello" in local("logs", cid).stdout, "the container's first line")
    for args in (["ps", "--no-trunc"], ["ps", "-a", "--format", "{{.ID}} {{.Names}} {{.State}}"],
                 ["inspect", "-f", "{{.Id}} {{.Name}} {{.State.Pid}} {{json .Config.Cmd}}", "md-client"],
                 ["logs", "md-client"], ["images"]):
        # Both at once: half the time. `ps` prints times ("1 second ago", "Up Less than a second"):
        # a pair that straddles a second's edge differs there, so a pair that differs runs again.
        for _ in range(3):
            with ThreadPoolExecutor(2) as pool:
                r, l = pool.map(lambda run: run(*args), (remote, local))
            if (r.returncode, r.stdout, r.stderr) == (l.returncode, l.stdout, l.stderr):
                break
        assert (r.returncode, r.stdout, r.stderr) == (l.returncode, l.stdout, l.stderr), \
            f"`minidocker -H … {' '.join(args)}` must print what the daemonless command prints ({DOCS})"
    ex = remote("exec", "md-client", "sh", "-c", "echo in; exit 5")
    assert (ex.returncode, ex.stdout) == (5, "in\n"), f"exec through the daemon {harness.explain(ex)}"
    env_host = harness.run_cli("stop", "-t", "0", "md-client", env={"MINIDOCKER_HOST": daemon.host})
    assert env_host.returncode == 0, f"$MINIDOCKER_HOST works as -H {harness.explain(env_host)}"
    assert local("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"
    assert remote("rm", "md-client").returncode == 0 and local("ps", "-aq").stdout == ""


def test_errors_through_the_daemon_are_one_line(both, daemon):
    remote, _ = both
    out = remote("inspect", "md-nothing-here")
    assert out.returncode != 0 and "No such" in out.stderr and len(out.stderr.splitlines()) == 1, harness.explain(out)
    out = remote("stats")
    assert out.returncode == 125 and "does not go through a daemon" in out.stderr, \
        f"a command the client does not serve is refused, not run on the local store {harness.explain(out)}"
    out = harness.run_cli("-H", "unix:///nonexistent/md.sock", "ps")
    assert out.returncode == 125 and "Cannot connect to the minidocker daemon" in out.stderr, harness.explain(out)


def test_without_h_the_client_is_not_imported():
    code = ("import sys; from minidocker import cli; p = cli.build_parser('run'); "
            "p.parse_args(['run', '--rootfs', '/x', '--', 'true']); "
            "print('minidocker.daemon.client' in sys.modules, 'http.client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=harness.cli_env())
    assert out.stdout.split() == ["False", "False"], \
        f"`minidocker run` without -H must not import the client (start-up time) ({DOCS}): {out.stdout}{out.stderr}"


def test_attach_without_the_daemon(both):
    """`minidocker attach` is the engine's side of `docker attach`: the log followed, and the
    input to the stdin FIFO of a container started with -i (docs/07-daemon.md#attach)."""
    _, local = both
    cid = local("run", "-di", "--network", "none", "busybox", "sh").stdout.strip()
    done = local("attach", cid, input="echo attached; exit 4\n", timeout=20)
    assert (done.returncode, done.stdout) == (4, "attached\n"), (
        f"attach sends its input to the running shell and ends with its exit code "
        f"(docs/07-daemon.md#attach) {harness.explain(done)}")
    again = local("attach", cid)
    assert again.returncode == 125 and "You cannot attach to a stopped container" in again.stderr, harness.explain(again)
