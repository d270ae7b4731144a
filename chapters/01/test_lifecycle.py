"""Chapter 01: the lifecycle — run -d, ps, logs, exec, stop, wait, rm, create/start, inspect —
with state on disk, and recovery when the supervisor or the CLI is SIGKILLed
(docs/01-isolation.md#lifecycle)."""

import json
import os
import re
import signal
import subprocess

import harness


def inspect(md, ref):
    out = md("inspect", ref)
    assert out.returncode == 0, harness.explain(out)
    return json.loads(out.stdout)[0]


def test_detached_container_from_start_to_rm(md, rootfs):
    out = md("run", "-d", "--name", "md-life", "--rootfs", rootfs, "--", "sh", "-c",
             "echo to-stdout; echo to-stderr >&2; exec sleep 30")
    cid = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), f"run -d prints the full 64-hex-digit id, got {out.stdout!r} {harness.explain(out)}"
    ps = md("ps").stdout
    assert cid[:12] in ps and "md-life" in ps and "Up " in ps, f"ps shows running containers by short id:\n{ps}"

    def both_lines():  # in the log once the supervisor has copied them
        logs = md("logs", "md-life")
        return logs if logs.stdout and logs.stderr else None

    logs = harness.wait_until(both_lines, "both lines in `logs md-life`")
    assert (logs.stdout, logs.stderr) == ("to-stdout\n", "to-stderr\n"), "logs keeps stdout and stderr apart"
    assert md("exec", "md-life", "sh", "-c", "echo $$; hostname").stdout.split() == ["2", cid[:12]], (
        "exec runs in the container's namespaces: its PID namespace (pid 2) and UTS namespace (docs/01-isolation.md#ex-01-exec-setns)")
    detached = md("exec", "-d", "md-life", "sh", "-c", "echo out; echo err >&2; touch /md-exec-ran")
    assert (detached.returncode, detached.stdout, detached.stderr) == (0, "", ""), (
        f"exec -d prints nothing, as Docker: {harness.explain(detached)}")
    harness.wait_until(lambda: md("exec", "md-life", "test", "-e", "/md-exec-ran").returncode == 0,
                       "the detached exec to run")
    assert md("exec", "-d", "md-life", "sleep", "31").returncode == 0
    assert "sleep 31" in md("top", "md-life").stdout, (
        "a detached exec outlives the command that started it (its own supervisor is its parent, "
        "not the exiting CLI: docs/01-isolation.md#ex-01-exec-setns)")
    state = inspect(md, "md-life")["State"]
    assert state["Running"] and state["Status"] == "running" and state["Pid"] > 0
    stopped = md("stop", "-t", "0", "md-life")
    assert stopped.returncode == 0, harness.explain(stopped)
    state = inspect(md, cid[:12])["State"]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 137), state
    assert "Exited (137)" in md("ps", "-a").stdout and cid[:12] not in md("ps").stdout
    assert md("rm", "md-life").stdout.strip() == "md-life"
    assert cid[:12] not in md("ps", "-a").stdout
    assert not os.path.exists(os.path.join(os.environ["MINIDOCKER_ROOT"], "containers", cid)), "rm removes the state"


def test_create_then_start_then_logs_follow(md, rootfs):
    cid = md("create", "--rootfs", rootfs, "--", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done",
             check=True).stdout.strip()
    assert inspect(md, cid)["State"]["Status"] == "created"
    assert "Created" in md("ps", "-a").stdout
    started = md("start", cid)
    assert started.returncode == 0, harness.explain(started)
    assert md("logs", "-f", cid).stdout == "1\n2\n3\n", "logs -f follows the output until the container exits"
    assert md("logs", "--tail", "2", cid).stdout == "2\n3\n", "--tail N shows the last N lines"
    stamped = md("logs", "-t", "--tail", "1", cid).stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z 3\n", stamped), f"-t prefixes Docker's RFC 3339 time: {stamped!r}"
    assert md("wait", cid).stdout.strip() == "0"
    md("rm", cid, check=True)


def test_names_are_unique_and_generated(md, rootfs):
    md("create", "--name", "md-twin", "--rootfs", rootfs, "--", "true", check=True)
    again = md("create", "--name", "md-twin", "--rootfs", rootfs, "--", "true")
    assert again.returncode == 125 and "already in use" in again.stderr, "a name can be used once"
    anonymous = md("create", "--rootfs", rootfs, "--", "true").stdout.strip()
    name = inspect(md, anonymous)["Name"]
    assert re.fullmatch(r"/[a-z]+_[a-z]+\d?", name), f"a generated name looks like Docker's adjective_name: {name}"
    md("rm", "md-twin", anonymous, check=True)


def test_rm_refuses_a_running_container_unless_forced(md, rootfs, container):
    cid = container("sleep", "30")
    refused = md("rm", cid)
    assert refused.returncode != 0 and "running" in refused.stderr, harness.explain(refused)
    forced = md("rm", "-f", cid)
    assert forced.returncode == 0 and cid[:12] not in md("ps", "-a").stdout, harness.explain(forced)


def test_run_rm_leaves_nothing(md, rootfs):
    md("run", "--rm", "--name", "md-gone", "--rootfs", rootfs, "--", "true", check=True)
    assert "md-gone" not in md("ps", "-a").stdout


def _supervisor_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])  # field 4: the parent's pid


def test_a_sigkilled_supervisor_is_noticed_and_cleaned_up(md, rootfs, container):
    cid = container("sleep", "30")
    pid = inspect(md, cid)["State"]["Pid"]
    os.kill(_supervisor_of(pid), signal.SIGKILL)
    # PDEATHSIG: the kernel kills the container when its supervisor dies.
    harness.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), "the container to die with its supervisor")
    state = inspect(md, cid)["State"]
    assert not state["Running"] and state["Status"] == "exited", (
        f"after its supervisor was SIGKILLed the next command must see the container as exited: {state}")
    # The leak check (conftest.py) fails this test if the cgroup or a process is left behind.


def test_a_sigkilled_foreground_run_leaves_nothing(md, rootfs):
    cli = harness.popen_cli("run", "--rm", "--name", "md-killed", "--rootfs", rootfs, "--", "sleep", "30",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    harness.wait_until(lambda: "md-killed" in md("ps").stdout, "the container to run")
    cli.kill()
    cli.wait()
    ps = md("ps", "-a").stdout  # this command notices, releases the cgroup, and honours --rm
    assert "md-killed" not in ps, f"a --rm container whose CLI was SIGKILLed must be gone after the next command:\n{ps}"


def test_a_reader_that_leaves_ends_the_container_at_once(md, rootfs):
    # `run ... | head -1`: once head has its line and exits, writing the container's output fails
    # (EPIPE). The run ends, and its container must end with it and release its cgroup now, not
    # when a later command notices (so nothing here runs another minidocker command before looking).
    root = os.environ["MINIDOCKER_ROOT"]
    cli = harness.popen_cli("run", "--name", "md-yes", "--rootfs", rootfs, "--", "yes",
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert cli.stdout.readline() == b"y\n"
    cli.stdout.close()
    cli.wait(timeout=30)

    def on_disk(cid, name):
        with open(os.path.join(root, "containers", cid, name)) as f:
            return json.load(f)

    try:
        [cid] = [c for c in os.listdir(os.path.join(root, "containers"))
                 if not c.startswith(".") and on_disk(c, "container.json")["Name"].lstrip("/") == "md-yes"]
        state = on_disk(cid, "state.json")
        left = [cg for cg in harness._cgroups(os.environ["MINIDOCKER_CGROUP_PARENT"]) if cid in cg]
    finally:
        md("rm", "-f", "md-yes")
    assert state["Status"] == "exited" and not state["Running"], f"the run ended, its container did not: {state}"
    assert not left, f"the container's cgroups outlived its run: {left}"


def test_inspect_has_dockers_shape(md, rootfs):
    cid = md("create", "-m", "64m", "--pids-limit", "50", "-e", "MD=1", "--rootfs", rootfs, "--", "true",
             check=True).stdout.strip()
    info = inspect(md, cid)
    md("rm", cid)
    assert info["Id"] == cid and info["Name"].startswith("/")
    assert {"Status", "Running", "Pid", "ExitCode", "OOMKilled", "StartedAt", "FinishedAt"} <= set(info["State"])
    assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024 and info["HostConfig"]["PidsLimit"] == 50
    assert "MD=1" in info["Config"]["Env"] and info["Config"]["Cmd"] == ["true"]
