"""Chapter 09: the real dockerd runs its containers through minidocker's runtime.

A dockerd of our own (chapters/09/dockerd.py: private socket, state, cgroup parent and bridge; its
own containerd) has minidocker's runc-compatible face registered as a runtime, `minidocker`,
beside `runc`. The docker CLI then drives it: dockerd -> containerd -> containerd-shim-runc-v2 ->
`minidocker-runc create/start/exec/kill/delete`. Every test runs with `--runtime minidocker`
and, as the control that shows the test itself is right, with `--runtime runc`
(docs/09-runtime.md#docker-run-through-minidocker).
"""

import importlib
import ipaddress
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import given, settings, strategies as st

import harness

dockerd = importlib.import_module("chapters.09.dockerd")

DOCS = "docs/09-runtime.md#docker-run-through-minidocker"
RUNTIMES = ["minidocker", "runc"]


@pytest.fixture(scope="module")
def engine():
    """One dockerd for the module, busybox loaded; stopped with all it made at the end."""
    harness.need_root()
    harness.need(os.path.exists(dockerd.DOCKERD), "Debian's dockerd: apt-get install docker.io (scripts/setup.sh)")
    runc = os.path.join(os.path.dirname(sys.executable), "minidocker-runc")
    harness.need(os.path.exists(runc), "the minidocker-runc console script: pip install -e . (scripts/setup.sh)")
    workdir = tempfile.mkdtemp(prefix="dockerd-", dir=os.environ["MINIDOCKER_ROOT"])
    # The default network on a bridge of ours, in the last /24 of this session's address pool
    # (chapter 04's networks take theirs from its start).
    pool = ipaddress.ip_network(os.environ["MINIDOCKER_DEFAULT_ADDRESS_POOL"])
    subnet = list(pool.subnets(new_prefix=24))[-1]
    bridge = dockerd.Bridge(f"mdd{os.getpid() % 10**6}", f"{subnet[1]}/24", record_dir=workdir)
    try:
        d = dockerd.Dockerd(workdir, runtimes={"minidocker": runc}, bridge=bridge, env=harness.cli_env(),
                            cgroup_parent=f"/{os.environ['MINIDOCKER_CGROUP_PARENT']}/md-dockerd")
    except BaseException:
        bridge.remove()
        raise
    try:
        d.load_busybox()
        yield d
    finally:
        d.close()


def show(out: subprocess.CompletedProcess) -> str:
    return f"[`{' '.join(out.args[1:])}` exited {out.returncode}; stdout: {out.stdout.strip()!r}; " \
           f"stderr: {out.stderr.strip()!r}]"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_output_and_exit_codes(engine, runtime):
    out = engine.docker("run", "--rm", "--runtime", runtime, "busybox",
                        "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "hi\n", "oops\n"), \
        f"docker run should give the container's exit code, stdout and stderr, each on its own {show(out)}; see {DOCS}"
    # dockerd turns the runtime's error (read back by the shim from --log) into Docker's codes:
    # 127 when the command is not found, 126 when it cannot be executed.
    out = engine.docker("run", "--rm", "--runtime", runtime, "busybox", "md-no-such-command")
    assert out.returncode == 127 and "md-no-such-command" in out.stderr, \
        f"a command that is not there: exit 127, and the error names it {show(out)}; " \
        f"see docs/09-runtime.md#errors-through-the-shim"
    out = engine.docker("run", "--rm", "--runtime", runtime, "busybox", "/etc/passwd")
    assert out.returncode == 126, \
        f"a file that is not executable: exit 126 {show(out)}; see docs/09-runtime.md#errors-through-the-shim"
    # --rm: the shim's `delete` removed each container's state from the runtime's --root, the
    # failed ones too (the leak check sees cgroups, mounts and processes; this is the rest).
    state_root = os.path.join(engine.exec_root, "runtime-runc", "moby")
    left = os.listdir(state_root) if os.path.isdir(state_root) else []
    assert not left, f"`delete` should remove a container's state directory under --root {state_root}; " \
                     f"left: {left}; see docs/09-runtime.md#a-trace"


def test_the_security_module_label_is_runcs(engine):
    """Where AppArmor is on (Debian 12's kernel, the lab VM's), dockerd asks for its profile in
    process.apparmorProfile, and the runtime must put it on the command, as runc does. Elsewhere
    both read the same answer (no label at all)."""
    labels = {runtime: engine.docker("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c",
                                     "cat /proc/self/attr/current 2>&1") for runtime in RUNTIMES}
    assert labels["minidocker"].stdout == labels["runc"].stdout, \
        f"the command's AppArmor label should be runc's: {labels}; see docs/09-runtime.md#apparmor"


PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126)


@settings(max_examples=4)
@given(args=st.lists(st.text(PRINTABLE, min_size=1, max_size=8), max_size=3), value=st.text(PRINTABLE, max_size=8),
       user=st.sampled_from([("0", "0"), ("65534", "65534"), ("1000:1000", "1000")]),
       workdir=st.sampled_from(["/", "/tmp", "/md-new/dir"]), code=st.integers(0, 255))
def test_process_round_trip(engine, args, value, user, workdir, code):
    """What dockerd writes into config.json's `process` (args, env, user, cwd) is what the
    container's process gets, and its exit code comes back."""
    out = engine.docker("run", "--rm", "--runtime", "minidocker", "-e", f"MD_VAR={value}", "-u", user[0],
                        "-w", workdir, "busybox",
                        "sh", "-c", f'echo "$MD_VAR"; id -u; pwd; for a; do echo "[$a]"; done; exit {code}', "sh", *args)
    expected = f"{value}\n{user[1]}\n{workdir}\n" + "".join(f"[{a}]\n" for a in args)
    assert (out.returncode, out.stdout) == (code, expected), \
        f"args, env (-e), user (-u) and working directory (-w) should reach the container's process " \
        f"unchanged, and its exit code come back: expected {expected!r} and {code} {show(out)}; see {DOCS}"


def cgroup_value(pid: int, controller: str, v1_file: str, v2_file: str) -> str:
    """A limit as the kernel holds it, in the cgroup the process really is in (/proc/PID/cgroup)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if controller in controllers.split(","):  # v1: this controller's own hierarchy
            with open(f"/sys/fs/cgroup/{controllers}{path}/{v1_file}") as f:
                return f.read().strip()
    path = next(p for n, c, p in lines if n == "0")  # v2: the one unified hierarchy
    with open(f"/sys/fs/cgroup{path}/{v2_file}") as f:
        return f.read().strip()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_logs_limits_pause_exec_network_stop(engine, runtime):
    """One long-running container, checked every way: logs, exec, its cgroup's limits (set, then
    updated), pause, its network (dockerd's, made through the runtime's prestart hook), a
    graceful stop."""
    script = 'echo started; trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done'
    out = engine.docker("run", "-d", "--runtime", runtime, "--network", "bridge", "-m", "64m", "--pids-limit", "40",
                        "busybox", "sh", "-c", script)
    assert out.returncode == 0, f"docker run -d failed {show(out)}; see {DOCS}"
    cid = out.stdout.strip()
    try:
        harness.wait_until(lambda: "started" in engine.docker("logs", cid).stdout, "the container's first output")
        state = json.loads(engine.docker("inspect", cid).stdout)[0]
        pid = state["State"]["Pid"]
        assert state["State"]["Running"] and pid > 0, f"docker inspect should show it running, with its pid: {state['State']}"
        assert cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20), \
            "-m 64m: the runtime must write linux.resources.memory.limit to the container's cgroup; " \
            "see docs/09-runtime.md#limits-from-docker"
        assert cgroup_value(pid, "pids", "pids.max", "pids.max") == "40", \
            "--pids-limit 40: pids.max of the container's cgroup; see docs/09-runtime.md#limits-from-docker"
        out = engine.docker("update", "--pids-limit", "50", cid)
        assert out.returncode == 0 and cgroup_value(pid, "pids", "pids.max", "pids.max") == "50", \
            f"docker update --pids-limit 50 reaches the runtime as `update --resources -`: pids.max should " \
            f"be 50 now {show(out)}; see docs/09-runtime.md#limits-from-docker"
        out = engine.docker("pause", cid)
        assert out.returncode == 0 and cgroup_value(pid, "freezer", "freezer.state", "cgroup.freeze") in ("FROZEN", "1"), \
            f"docker pause is the runtime's `pause`: the container's cgroup should be frozen {show(out)}; " \
            "see docs/09-runtime.md#limits-from-docker"
        out = engine.docker("unpause", cid)
        assert out.returncode == 0 and cgroup_value(pid, "freezer", "freezer.state", "cgroup.freeze") in ("THAWED", "0"), \
            f"docker unpause is the runtime's `resume`: the cgroup should be thawed {show(out)}"

        gateway = engine.bridge.gateway
        out = engine.docker("exec", cid, "sh", "-c", f"ip -4 -o addr show eth0; ping -c1 -W2 {gateway} >/dev/null; exit 7")
        assert out.returncode == 7, f"docker exec should give its process's exit code (7) {show(out)}; see {DOCS}"
        address = out.stdout.split("inet ")[1].split()[0] if "inet " in out.stdout else ""
        assert address and ipaddress.ip_interface(address).network == ipaddress.ip_interface(engine.bridge.address).network, \
            f"--network bridge: eth0 should have an address on dockerd's bridge {engine.bridge.address}; " \
            f"dockerd sets it up in the prestart hook, which the runtime must run {show(out)}; " \
            "see docs/09-runtime.md#networking-through-a-hook"
        out = engine.docker("exec", cid, "ping", "-c1", "-W2", gateway)
        assert out.returncode == 0, f"the container should reach the bridge's gateway {gateway} {show(out)}"

        out = engine.docker("stop", "-t", "10", cid)
        assert out.returncode == 0, f"docker stop failed {show(out)}"
        state = json.loads(engine.docker("inspect", cid).stdout)[0]["State"]
        logs = engine.docker("logs", cid).stdout
        assert (state["ExitCode"], logs) == (0, "started\nbye\n"), \
            f"docker stop sends SIGTERM first: the trap should run and the container exit 0; state {state}, " \
            f"logs {logs!r}; see docs/09-runtime.md#kill-and-stop"
    finally:
        engine.docker("rm", "-f", cid)


def run_in_pty(args: list[str], env: dict, replies: dict[bytes, bytes], timeout: float = 30) -> tuple[int, bytes]:
    """Run a command with a terminal as its stdin/stdout/stderr, as a user at a shell would; when
    the output shows a key of `replies`, type its value. Returns (exit code, all output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every process holding the terminal has closed it
                    break
                if not chunk:
                    break
                output += chunk
                for prompt, answer in list(replies.items()):
                    if prompt in output:
                        os.write(master, answer)
                        del replies[prompt]
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(1, deadline - time.monotonic())), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_interactive_terminal(engine, runtime):
    """`docker run -it`: the runtime makes the pty and hands its master to the shim over the
    console socket; the shim copies it to docker's terminal, through dockerd."""
    code, output = run_in_pty(
        ["docker", "run", "-it", "--rm", "--runtime", runtime, "busybox",
         "sh", "-c", 'tty; printf "name? "; read name; echo "hello $name"; exit 5'],
        engine.client_env(), {b"name? ": b"md\r"})
    text = output.decode(errors="replace")
    assert "/dev/pts/0" in text, \
        f"-t: the container's stdin should be a terminal, /dev/pts/0 (the runtime sends its master " \
        f"over --console-socket); got {text!r}; see docs/09-runtime.md#a-terminal"
    assert "hello md" in text and code == 5, \
        f"-i: what is typed should reach the container, and its exit code (5) come back; got {code}, " \
        f"{text!r}; see docs/09-runtime.md#a-terminal"
