"""Chapter 01: the lifecycle — run -d, ps, logs, exec, stop, wait, rm, create/start, inspect —
with state on disk, and recovery when the supervisor or the CLI is SIGKILLed
(docs/01-isolation.md#lifecycle)."""

import json
import os
import re
import signal
import subprocess
import time

import harness


def inspect(md, ref):
    out = md("inspect", ref)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def test_detached_container_from_start_to_rm(md, rootfs):
    out = md("run", "-d", "--name", "md-life", "--rootfs", rootfs, "--", "sh", "-c",
             "echo to-stdout; echo to-stderr >&2; exec sleep 30")
    cid = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), f"run -d prints the full 64-hex-digit id, got {out.stdout!r} {out.stderr}"
    ps = md("ps").stdout
    assert cid[:12] in ps and "md-life" in ps and "Up " in ps, f"ps shows running containers by short id:\n{ps}"
    time.sleep(0.2)
    logs = md("logs", "md-life")
    assert (logs.stdout, logs.stderr) == ("to-stdout\n", "to-stderr\n"), "logs keeps stdout and stderr apart"
    assert md("exec", "md-life", "sh", "-c", "echo $$; hostname").stdout.split() == ["2", cid[:12]], (
        "exec runs in the container's namespaces: its PID namespace (pid 2) and UTS namespace (docs/01-isolation.md#ex-01-exec-setns)")
    state = inspect(md, "md-life")["State"]
    assert state["Running"] and state["Status"] == "running" and state["Pid"] > 0
    assert md("stop", "-t", "0", "md-life").returncode == 0
    state = inspect(md, cid[:12])["State"]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 137), state
    assert "Exited (137)" in md("ps", "-a").stdout and cid[:12] not in md("ps").stdout
    assert md("rm", "md-life").stdout.strip() == "md-life"
    assert cid[:12] not in md("ps", "-a").stdout
    assert not os.path.exists(os.path.join(os.environ["MINIDOCKER_ROOT"], "containers", cid)), "rm removes the state"


def test_create_then_start_then_logs_follow(md, rootfs):
    cid = md("create", "--rootfs", rootfs, "--", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done").stdout.strip()
    assert inspect(md, cid)["State"]["Status"] == "created"
    assert "Created" in md("ps", "-a").stdout
    assert md("start", cid).returncode == 0
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
    assert refused.returncode != 0 and "running" in refused.stderr
    assert md("rm", "-f", cid).returncode == 0 and cid[:12] not in md("ps", "-a").stdout


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
    for _ in range(50):  # PDEATHSIG: the kernel kills the container when its supervisor dies
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.02)
    state = inspect(md, cid)["State"]
    assert not state["Running"] and state["Status"] == "exited", (
        f"after its supervisor was SIGKILLed the next command must see the container as exited: {state}")
    # The leak check (conftest.py) fails this test if the cgroup or a process is left behind.


def test_a_sigkilled_foreground_run_leaves_nothing(md, rootfs):
    cli = harness.popen_cli("run", "--rm", "--name", "md-killed", "--rootfs", rootfs, "--", "sleep", "30",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if "md-killed" in md("ps").stdout:
            break
        time.sleep(0.05)
    cli.kill()
    cli.wait()
    time.sleep(0.1)
    ps = md("ps", "-a").stdout  # this command notices, releases the cgroup, and honours --rm
    assert "md-killed" not in ps, f"a --rm container whose CLI was SIGKILLed must be gone after the next command:\n{ps}"


def test_inspect_has_dockers_shape(md, rootfs):
    cid = md("create", "-m", "64m", "--pids-limit", "50", "-e", "MD=1", "--rootfs", rootfs, "--", "true").stdout.strip()
    info = inspect(md, cid)
    md("rm", cid)
    assert info["Id"] == cid and info["Name"].startswith("/")
    assert {"Status", "Running", "Pid", "ExitCode", "OOMKilled", "StartedAt", "FinishedAt"} <= set(info["State"])
    assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024 and info["HostConfig"]["PidsLimit"] == 50
    assert "MD=1" in info["Config"]["Env"] and info["Config"]["Cmd"] == ["true"]
