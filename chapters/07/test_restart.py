"""Chapter 07: a daemon that can restart, and restart policies (docs/07-daemon.md#live-restore,
#restart-policies).

Containers keep running when the daemon stops or is SIGKILLed (each has its own supervisor, as
containerd's shims do), and a daemon that starts finds them again. `--restart` is the daemon's to
honour: while it runs (its monitor hears each exit) and when it starts (as dockerd at boot).
The daemon here shares the session's MINIDOCKER_ROOT, so the daemonless CLI sees its containers.
"""

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

import harness

DOCS = "docs/07-daemon.md"


class Daemon:
    """`minidocker daemon -H unix://…` on the session's store; start(), kill(), and restart."""

    def __init__(self, workdir):
        self.sock = os.path.join(workdir, "md.sock")
        self.host = f"unix://{self.sock}"
        self.log = os.path.join(workdir, "daemon.log")
        self.process = None

    def start(self):
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "minidocker", "daemon", "-H", self.host],
                                            env=harness.cli_env(), stdout=log, stderr=subprocess.STDOUT)
        harness.wait_until(lambda: os.path.exists(self.sock) or self.process.poll() is not None,
                           "the daemon's socket", timeout=15)
        assert self.process.poll() is None, f"the daemon did not start: {open(self.log).read()[-2000:]}"

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        if sig == signal.SIGKILL and os.path.exists(self.sock):
            os.unlink(self.sock)  # a SIGKILLed daemon leaves its socket file: the next one replaces it anyway


@pytest.fixture
def daemon(tmp_path, md):
    d = Daemon(str(tmp_path))
    d.start()
    yield d
    d.stop()
    for cid in md("ps", "-aq").stdout.split():
        md("rm", "-f", cid)


def state(md, cid: str) -> tuple[int, str, int]:
    """(RestartCount, State.Status, ExitCode) as inspect shows them, daemonless."""
    out = md("inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}", cid)
    count, status, code = out.stdout.split()
    return int(count), status, int(code)


def run_d(md, *flags_and_command) -> str:
    out = md("run", "-d", "--network", "none", *flags_and_command)
    assert out.returncode == 0, harness.explain(out)
    return out.stdout.strip()


# --- the flag ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--restart", "bogus"], "invalid restart policy: unknown policy 'bogus'"),
    (["--restart", "always:3"], "maximum retry count can only be used with 'on-failure'"),
    (["--restart", "on-failure:-1"], "maximum retry count cannot be negative"),
    (["--restart", ":3"], "invalid restart policy format: no policy provided before colon"),
    (["--restart", "on-failure:x"], "maximum retry count must be an integer"),
    (["--rm", "--restart", "always"], "cannot specify both --restart and --rm"),
])
def test_bad_restart_policies_are_refused_in_dockers_words(md, flags, words):
    before = md("ps", "-aq", "--no-trunc").stdout.split()  # another test's leftovers are not ours to judge
    out = md("create", "--network", "none", *flags, "busybox", "true")
    assert out.returncode == 125 and words in out.stderr, \
        f"`create {' '.join(flags)}` should be refused with {words!r} ({DOCS}#restart-policies) {harness.explain(out)}"
    assert md("ps", "-aq", "--no-trunc").stdout.split() == before, "a refused create must leave no container behind"


def test_the_policy_is_in_hostconfig(md):
    cid = md("create", "--network", "none", "--restart", "on-failure:3", "busybox", "true").stdout.strip()
    try:
        out = md("inspect", "-f", "{{json .HostConfig.RestartPolicy}} {{.RestartCount}}", cid).stdout.split()
        assert out == ['{"MaximumRetryCount":3,"Name":"on-failure"}', "0"] or \
            out == ['{"Name":"on-failure","MaximumRetryCount":3}', "0"], out
    finally:
        md("rm", "-f", cid)


# --- the rule (the exercise) --------------------------------------------------------------------

def test_should_restart_is_dockers_rule():
    restart = importlib.import_module("minidocker.container.restart")
    rule = restart.should_restart
    on_failure_2 = {"Name": "on-failure", "MaximumRetryCount": 2}
    cases = [  # (policy, exit code, restarts so far, stopped by a user, a daemon starting) -> restart?
        ({"Name": "no"}, 1, 0, False, False, False),
        ({"Name": ""}, 1, 0, False, True, False),
        ({"Name": "always"}, 0, 5, False, False, True),
        ({"Name": "always"}, 137, 0, True, False, False),
        ({"Name": "always"}, 137, 0, True, True, True),
        ({"Name": "unless-stopped"}, 0, 0, False, False, True),
        ({"Name": "unless-stopped"}, 143, 0, True, True, False),
        (on_failure_2, 0, 0, False, False, False),
        (on_failure_2, 1, 0, False, False, True),
        (on_failure_2, 1, 1, False, False, True),
        (on_failure_2, 1, 2, False, False, False),
        ({"Name": "on-failure", "MaximumRetryCount": 0}, 3, 100, False, False, True),
        (on_failure_2, 137, 0, True, False, False),
    ]
    for policy, code, count, stopped, starting, expected in cases:
        got = rule(policy, code, count, stopped, daemon_starting=starting)
        assert got is expected, (f"should_restart({policy}, exit {code}, {count} restarts, stopped={stopped}, "
                                 f"daemon starting={starting}) gave {got} ({DOCS}#ex-07-restart-policy)")


# --- the daemon honours them ------------------------------------------------------------------

def test_on_failure_restarts_at_most_n_times_while_the_daemon_runs(md, daemon):
    # Both at once: the one that succeeds waits out its (wrong) restart while the other fails.
    ok = run_d(md, "--restart", "on-failure", "busybox", "true")
    cid = run_d(md, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    harness.wait_until(lambda: state(md, cid) == (2, "exited", 3), "RestartCount 2 and exited (3)", timeout=8)
    time.sleep(0.6)  # the back-off after two restarts is 400 ms: a third would have come by now
    assert state(md, cid) == (2, "exited", 3), \
        f"on-failure:2 restarts twice and no more ({DOCS}#restart-policies)"
    assert state(md, ok)[:2] == (0, "exited"), "on-failure must not restart a container that exited 0"


def test_a_stopped_always_container_waits_for_the_next_daemon(md, daemon):
    always = run_d(md, "--restart", "always", "busybox", "sleep", "100")
    unless = run_d(md, "--restart", "unless-stopped", "busybox", "sleep", "100")
    quick = run_d(md, "--restart", "always", "busybox", "true")
    for cid in (always, unless):
        assert md("stop", "-t", "0", cid).returncode == 0  # busybox's sleep as PID 1 ignores SIGTERM
    stopped = time.monotonic()
    # `always` restarts whatever the exit code, and counts each restart.
    harness.wait_until(lambda: state(md, quick)[0] >= 2, "the always container that exits to be restarted")
    time.sleep(max(0.0, stopped + 0.3 - time.monotonic()))  # a restart's first back-off is 100 ms
    assert state(md, always)[1] == "exited" and state(md, unless)[1] == "exited", \
        f"a `stop` is not undone by the policy while the daemon runs ({DOCS}#restart-policies)"
    daemon.stop(signal.SIGKILL)
    daemon.start()
    harness.wait_until(lambda: state(md, always)[1] == "running", "the always container started by the new daemon")
    assert state(md, unless)[1] == "exited", \
        f"unless-stopped stays stopped after a `stop`, even when a daemon starts ({DOCS}#restart-policies)"


def test_containers_outlive_a_sigkilled_daemon(md, daemon):
    cid = run_d(md, "busybox", "sleep", "100")
    pid = int(md("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    daemon.stop(signal.SIGKILL)
    assert os.path.exists(f"/proc/{pid}"), f"the container died with the daemon ({DOCS}#live-restore)"
    assert state(md, cid)[1] == "running"
    daemon.start()
    out = md("-H", daemon.host, "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", cid)
    assert out.stdout.split() == ["running", str(pid)], \
        f"a restarted daemon finds the container running, the same process ({DOCS}#live-restore) {harness.explain(out)}"
    # And its supervisor still records the exit: stopped through the new daemon, it is exited.
    assert md("-H", daemon.host, "stop", "-t", "0", cid).returncode == 0
    assert state(md, cid)[1] == "exited", "the supervisor records the exit of a container it outlived the daemon with"
