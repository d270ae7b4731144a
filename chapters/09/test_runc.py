"""`minidocker-runc`, the runtime with runc's command line, on its own: the flags and words an
engine relies on, the errors in its --log file, pause/update/events/ps, and the OCI hooks.

Black-box through the console script, as containerd's shim and dockerd call it.
See docs/09-runtime.md#the-runc-face and docs/09-runtime.md#oci-hooks.
"""

import json
import os
import re
import subprocess

import pytest

import harness
from minidocker import rootfs as busybox
from minidocker.container import oci_defaults

DOCS = "docs/09-runtime.md"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def runc(tmp_path, runc_binary):
    """runc(*args) runs the console script with --root and --log (JSON) of this test's own."""
    root, log = str(tmp_path / "state"), str(tmp_path / "log.json")

    def run(*args, input=None, json_log=True) -> subprocess.CompletedProcess:
        flags = ["--root", root, "--log", log] + (["--log-format", "json"] if json_log else [])
        # Files, not pipes: a created container inherits our stdio and holds it open, so a pipe
        # would not see its end until the container's command exits.
        with open(tmp_path / "stdout", "w+") as out, open(tmp_path / "stderr", "w+") as err:
            done = subprocess.run([runc_binary, *flags, *args], input=input, stdout=out, stderr=err, text=True, timeout=30,
                                  env=harness.cli_env())
            out.seek(0), err.seek(0)
            done.stdout, done.stderr = out.read(), err.read()
        return done

    run.log, run.binary = log, runc_binary
    return run


def last_log_line(path: str) -> str:
    with open(path) as f:
        return f.read().splitlines()[-1]


@pytest.fixture
def bundle(rootfs, tmp_path):
    """A bundle: the rootfs fixture and a config.json written from keyword overrides."""
    harness.need_root()
    path = str(tmp_path / "bundle")
    os.makedirs(path)
    os.symlink(rootfs, os.path.join(path, "rootfs"))
    parent = os.environ["MINIDOCKER_CGROUP_PARENT"]

    def write(container_id, args, **changes):
        spec = {"ociVersion": "1.0.2",
                "process": {"args": args, "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "root": {"path": "rootfs"}, "hostname": "mdrunc", "mounts": oci_defaults.default_mounts(),
                "linux": {"cgroupsPath": f"/{parent}/{container_id}",
                          "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]},
                **changes}
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(spec, f)
        return path

    write.rootfs = rootfs
    return write


def test_version_features_and_the_words_the_shim_reads(runc):
    version = subprocess.run([runc.binary, "--version"], capture_output=True, text=True, env=harness.cli_env())
    lines = version.stdout.splitlines()
    assert version.returncode == 0 and re.fullmatch(r"\S*minidocker\S* version \S+", lines[0]), (
        f"--version's first line should be runc's shape, 'NAME version X', naming minidocker: {lines!r}")
    assert "spec: 1.0.2" in lines, f"--version should name the runtime spec's version: {lines!r} ({DOCS}#the-runc-face)"

    features = json.loads(runc("features").stdout)
    assert set(features["hooks"]) >= {"prestart", "createRuntime", "createContainer", "startContainer",
                                      "poststart", "poststop"}, f"features should list the hooks: {features['hooks']}"
    assert features["linux"]["cgroup"]["systemd"] is False, "features should say: no systemd cgroups"

    refused = subprocess.run([runc.binary, "--systemd-cgroup", "state", "x"], capture_output=True, text=True,
                             env=harness.cli_env())
    assert refused.returncode == 1 and "systemd" in refused.stderr and len(refused.stderr.splitlines()) == 1, (
        f"--systemd-cgroup should be refused in one line, exit 1, as a runc without systemd does: "
        f"{refused.returncode} {refused.stderr!r}")

    missing = runc("state", "mdrunc-none")
    entry = json.loads(last_log_line(runc.log))
    assert missing.returncode == 1 and entry["level"] == "error" and "does not exist" in entry["msg"], (
        f"an error should exit 1 and be the last line of --log, as JSON {{level, msg, time}}: {entry} "
        f"({DOCS}#errors-go-to-the-log)")
    assert RFC3339.match(entry["time"]), f"the log's time should be RFC 3339: {entry['time']!r}"
    assert "does not exist" in missing.stderr, (
        f"the error should be on stderr too (go-runc puts runc's output into its error, and the shim "
        f"looks there for 'does not exist'): {missing.stderr!r}")
    runc("state", "mdrunc-none", json_log=False)
    assert re.match(r'time="[^"]+" level=error msg=".*does not exist', last_log_line(runc.log)), (
        f"--log-format text (the default) should write logrus's text lines: {last_log_line(runc.log)!r}")


def test_pause_update_events_ps_kill(runc, bundle):
    cid = "mdrunc-ops"
    path = bundle(cid, ["sleep", "1000"])
    created = runc("create", "--bundle", path, cid)
    assert created.returncode == 0, f"create failed: {created.stderr} {last_log_line(runc.log)}"
    try:
        assert runc("start", cid).returncode == 0
        pid = json.loads(runc("state", cid).stdout)["pid"]
        assert json.loads(runc("ps", "--format", "json", cid).stdout) == [pid], \
            "ps --format json should print the container's host pids as a JSON array"

        assert runc("pause", cid).returncode == 0
        assert json.loads(runc("state", cid).stdout)["status"] == "paused", (
            f"state should say paused while the cgroup is frozen ({DOCS}#pause-and-resume)")
        assert runc("resume", cid).returncode == 0
        assert json.loads(runc("state", cid).stdout)["status"] == "running", "state should say running after resume"

        updated = runc("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 42}}))
        assert updated.returncode == 0, f"update --resources - failed: {updated.stderr}"
        limit = _cgroup_file(os.environ["MINIDOCKER_CGROUP_PARENT"] + "/" + cid, "pids.max")
        assert limit == "42", f"update should write pids.max: {limit!r} ({DOCS}#update)"

        event = json.loads(runc("events", "--stats", cid).stdout)
        assert event["type"] == "stats" and event["id"] == cid and event["data"]["pids"]["current"] >= 1, (
            f"events --stats should print one runc stats event: {event} ({DOCS}#events)")

        assert runc("kill", cid, "KILL").returncode == 0
        harness.wait_until(lambda: json.loads(runc("state", cid).stdout)["status"] == "stopped", "the kill")
        again = runc("kill", cid, "9")
        assert again.returncode == 1 and "container not running" in again.stderr, (
            f"killing a stopped container should say runc's words, which the shim takes as 'already "
            f"finished': {again.stderr!r}")
    finally:
        runc("delete", "--force", cid)


def _cgroup_file(path: str, name: str) -> str:
    """The file NAME of cgroup PATH in whichever hierarchy has it (v1: pids/, v2: the one)."""
    for root in harness.cgroup_roots():
        if os.path.exists(os.path.join(root, path, name)):
            with open(os.path.join(root, path, name)) as f:
                return f.read().strip()
    return ""


def test_hooks_run_in_order_where_the_spec_says(runc, bundle, tmp_path):
    cid = "mdrunc-hooks"
    out = tmp_path / "hooks"
    out.mkdir()
    # Host-side hooks append their name, their stdin and their network namespace to a host file.
    host = {"path": "/bin/sh", "args": ["sh", "-c", f'{{ echo "$0"; cat; echo; readlink /proc/self/ns/net; }} >> {out}/log']}
    # In-container hooks write into the rootfs dir, which the test reads. createContainer runs
    # before pivot_root, as runc's: it still sees the host's files, the rootfs at its host path
    # (after the pivot that path would not be there, and the hook would fail). startContainer
    # runs after it: the container's own / is the rootfs.
    record = '{ echo "$0"; cat; echo; hostname; readlink /proc/self/ns/net; } >> '
    inside = {"path": busybox.BUSYBOX, "env": ["PATH=/bin"]}
    hooks = {phase: [{**spec, "args": [*spec["args"], phase]}]
             for phase, spec in (("prestart", host), ("createRuntime", host),
                                 ("createContainer", {**inside, "args": ["sh", "-c", record + f"{bundle.rootfs}/hooks.log"]}),
                                 ("startContainer", {**inside, "args": ["sh", "-c", record + "/hooks.log"]}),
                                 ("poststart", host), ("poststop", host))}
    path = bundle(cid, ["sh", "-c", "echo command >> /hooks.log"], hooks=hooks)
    created = runc("create", "--bundle", path, "--pid-file", str(tmp_path / "pid"), cid)
    assert created.returncode == 0, f"create with hooks failed: {last_log_line(runc.log)} ({DOCS}#oci-hooks)"
    pid = int((tmp_path / "pid").read_text())
    container_net = os.readlink(f"/proc/{pid}/ns/net")
    try:
        assert runc("start", cid).returncode == 0, last_log_line(runc.log)
        harness.wait_until(lambda: json.loads(runc("state", cid).stdout)["status"] == "stopped", "the command")
    finally:
        runc("delete", "--force", cid)
    host_log = (out / "log").read_text().split("\n")
    inside_log = open(os.path.join(bundle.rootfs, "hooks.log")).read().split("\n")
    assert [host_log[i] for i in (0, 3, 6, 9)] == ["prestart", "createRuntime", "poststart", "poststop"], (
        f"the runtime's hooks should run in the spec's order: {host_log} ({DOCS}#oci-hooks)")
    states = {host_log[i]: json.loads(host_log[i + 1]) for i in (0, 3, 6, 9)}
    assert [states[p]["status"] for p in ("prestart", "createRuntime", "poststart", "poststop")] == \
        ["creating", "creating", "running", "stopped"], f"each hook's stdin should be the state at its time: {states}"
    assert states["prestart"]["pid"] == pid and states["prestart"]["id"] == cid, \
        f"the state should name the container's host pid {pid} (dockerd's network hook needs it): {states}"
    assert host_log[2] != container_net and host_log[2] == os.readlink("/proc/self/ns/net"), \
        "prestart should run in the runtime's namespaces, not the container's"
    assert inside_log[0:1] == ["createContainer"] and inside_log[4:5] == ["startContainer"] \
        and inside_log[8:9] == ["command"], f"createContainer, startContainer, then the command: {inside_log}"
    assert inside_log[2] == "mdrunc" and inside_log[3] == container_net, (
        f"createContainer should run in the container's namespaces (its hostname, its network): {inside_log}")


def test_a_failing_prestart_hook_fails_create_and_leaves_nothing(runc, bundle, tmp_path):
    cid = "mdrunc-badhook"
    path = bundle(cid, ["true"], hooks={"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no-network >&2; exit 3"]}]})
    created = runc("create", "--bundle", path, cid)
    entry = json.loads(last_log_line(runc.log))
    assert created.returncode == 1 and "prestart" in entry["msg"] and "no-network" in entry["msg"], (
        f"a failing prestart hook should fail create, with the hook's words in the log: {entry} ({DOCS}#oci-hooks)")
    state = runc("state", cid)
    assert state.returncode == 1, f"a failed create should leave no container behind: {state.stdout}"


def test_a_hook_that_outlives_its_timeout_is_killed_and_fails_create(runc, bundle):
    cid = "mdrunc-slowhook"
    path = bundle(cid, ["true"], hooks={"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]})
    created = runc("create", "--bundle", path, cid)
    entry = json.loads(last_log_line(runc.log))
    assert created.returncode == 1 and "createRuntime" in entry["msg"] and "within 1s" in entry["msg"], (
        f"a hook past its `timeout` should be killed and fail create: {entry} ({DOCS}#oci-hooks)")
    assert runc("state", cid).returncode == 1, "a failed create should leave no container behind"


def test_a_command_that_cannot_start_leaves_no_state(runc, bundle):
    cid = "mdrunc-nocmd"
    path = bundle(cid, ["md-no-such-command"])
    created = runc("create", "--bundle", path, cid)
    entry = json.loads(last_log_line(runc.log))
    # runc looks the command up before create returns: the shim hears of it at create.
    assert created.returncode == 1 and 'exec: "md-no-such-command": executable file not found in $PATH' \
        in entry["msg"], f"create should fail with runc's words, which dockerd turns into 127: {entry}"
    assert runc("state", cid).returncode == 1, (
        f"as after runc's failed create, no state should be left ({DOCS}#errors-go-to-the-log)")
