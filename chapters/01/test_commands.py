"""Chapter 01: the commands Docker users reach for, on real containers: pause and unpause (the
cgroup freezer), stats (the cgroup's counters), top (the host's ps), ps -q / --no-trunc, and
inspect --format (docs/commands.md)."""

import json
import re
import time

import harness


def inspect(md, ref, template=None):
    out = md("inspect", *(["-f", template] if template else []), ref)
    assert out.returncode == 0, out.stderr
    return out.stdout.rstrip("\n") if template else json.loads(out.stdout)[0]


def refused(out, words: str) -> bool:
    return out.returncode == 125 and words in out.stderr and out.stderr.count("\n") == 1


def freezer_says_frozen(pid: int) -> bool:
    """The kernel's own answer, read here without minidocker: is the cgroup of `pid` frozen?
    v1: freezer.state is FROZEN in the freezer hierarchy; v2: cgroup.events says "frozen 1"."""
    mounts = {}  # controller ("" for v2) -> mount point
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fstype, _, options = after.split(" ")[:3]
            if fstype == "cgroup" and "freezer" in options.strip().split(","):
                mounts["freezer"] = before.split(" ")[4]
            elif fstype == "cgroup2":
                mounts.setdefault("", before.split(" ")[4])
    with open(f"/proc/{pid}/cgroup") as f:
        paths = {controllers: path for _, controllers, path in (line.rstrip("\n").split(":", 2) for line in f)}
    for controllers, path in paths.items():
        if "freezer" in controllers.split(",") and "freezer" in mounts:
            with open(f"{mounts['freezer']}{path}/freezer.state") as f:
                return f.read().strip() == "FROZEN"
    with open(f"{mounts['']}{paths['']}/cgroup.events") as f:
        return "frozen 1" in f.read().splitlines()


def test_pause_freezes_the_container_and_unpause_thaws_it(md, container):
    cid = container("sh", "-c", "sleep 300 & exec sleep 301", flags=("--name", "md-frozen"))
    pid = inspect(md, cid)["State"]["Pid"]
    out = md("pause", "md-frozen")
    assert (out.returncode, out.stdout) == (0, "md-frozen\n"), f"pause prints each name it paused: {out}"
    state = inspect(md, cid)["State"]
    assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True), (
        f"a paused container is running and paused, as in Docker: {state}")
    assert freezer_says_frozen(pid), "pause freezes the container's cgroup (docs/commands.md#pause)"
    assert re.search(r"Up .* \(Paused\)", md("ps").stdout), "ps shows Docker's 'Up N seconds (Paused)'"
    assert refused(md("pause", cid), f"container {cid} is already paused")
    assert refused(md("start", cid), "cannot start a paused container, try unpause instead")
    assert refused(md("rm", cid), "container is paused and must be unpaused first")
    assert refused(md("exec", cid, "true"), f"Container {cid} is paused, unpause the container before exec")
    assert md("unpause", cid[:12]).stdout == f"{cid[:12]}\n"
    state = inspect(md, cid)["State"]
    assert (state["Status"], state["Paused"]) == ("running", False) and not freezer_says_frozen(pid)
    assert refused(md("unpause", cid), f"Container {cid} is not paused")


def test_pause_and_unpause_need_a_running_container(md, rootfs):
    cid = md("create", "--rootfs", rootfs, "--", "true", check=True).stdout.strip()
    try:
        assert refused(md("pause", cid), f"container {cid} is not running")
        assert refused(md("unpause", cid), f"Container {cid} is not paused")
        both = md("pause", "md-nobody", cid)  # each one is tried; each failure is one line
        assert both.returncode == 125 and both.stderr.count("\n") == 2 and both.stdout == "", both
    finally:
        md("rm", cid)


def test_stop_reaches_a_paused_container(md, container):
    # Its PID 1 exits with 3 on SIGTERM. A frozen process cannot run its handler, so Docker thaws
    # a paused container once the signal is sent: stop then ends it at once, with the handler's code.
    cid = container("sh", "-c", "trap 'exit 3' TERM; echo ready; while :; do sleep 0.1; done")
    harness.wait_until(lambda: "ready" in md("logs", cid).stdout, "the container to set its trap")
    md("pause", cid, check=True)
    started = time.monotonic()
    assert md("stop", "-t", "20", cid).returncode == 0
    assert time.monotonic() - started < 10, "stop must thaw the paused container, not wait for the timeout"
    state = inspect(md, cid)["State"]
    assert (state["Status"], state["ExitCode"], state["Paused"]) == ("exited", 3, False), state


def test_kill_and_rm_f_reach_a_paused_container(md, container):
    killed, removed = container("sleep", "300"), container("sleep", "301")
    md("pause", killed, removed, check=True)
    assert md("kill", killed).returncode == 0
    assert inspect(md, killed, "{{.State.Status}} {{.State.ExitCode}} {{.State.Paused}}") == "exited 137 false"
    assert md("rm", "-f", removed).returncode == 0 and removed[:12] not in md("ps", "-a").stdout


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_stats_reads_the_cgroup(md, container):
    busy = ("sh", "-c", "while :; do :; done")
    container(*busy, flags=("--name", "md-busy", "-m", "64m"))
    container(*busy, flags=("--name", "md-still"))
    md("pause", "md-still", check=True)
    out = md("stats", "--no-stream", "md-busy", "md-still")  # both sampled together: one second
    assert out.returncode == 0, out.stderr
    header, row, paused = out.stdout.splitlines()
    assert cells(header) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                             "BLOCK I/O", "PIDS"], f"Docker's columns: {header}"
    short_id, name, cpu, memory, _, network, _, pids = cells(row)
    assert (len(short_id), name, network, pids) == (12, "md-busy", "0B / 0B", "1"), row
    assert memory.endswith(" / 64MiB"), f"the limit is -m's 64 MiB: {row}"
    # A busy loop keeps one CPU busy: Docker's CPU % counts one busy CPU as 100% (docs/commands.md#stats).
    assert float(cpu.rstrip("%")) > 20, f"a busy container's CPU % is measured over two samples: {row}"
    assert cells(paused)[1:3] == ["md-still", "0.00%"], f"a frozen container uses no CPU: {paused}"


def test_stats_without_running_containers_prints_nothing(md):
    out = md("stats", "--no-stream")
    assert (out.returncode, out.stdout) == (0, ""), "docker stats --no-stream prints not even a header then"


def test_top_shows_the_containers_processes_with_host_pids(md, container):
    cid = container("sh", "-c", "sleep 301 & exec sleep 302")
    pid = inspect(md, cid)["State"]["Pid"]
    lines = harness.wait_until(lambda: [l for l in md("top", cid).stdout.splitlines() if "sleep" in l] and
                               md("top", cid).stdout.splitlines(), "both sleeps to show in top")
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], lines[0]
    processes = {line.split(None, 7)[7]: int(line.split()[1]) for line in lines[1:]}
    assert processes.get("sleep 302") == pid, f"top shows host pids: PID 1 inside is {pid} here: {lines}"
    assert "sleep 301" in processes, lines
    custom = md("top", cid, "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and len(custom) == 3, f"ps's options pass through: {custom}"
    assert refused(md("top", cid, "-o", "user=PID"), 'specifying "user=PID" is not allowed')
    assert refused(md("top", cid, env={"PATH": "/md-no-such-dir"}), "ps: not found on this host")
    md("stop", "-t", "0", cid, check=True)
    assert refused(md("top", cid), f"container {cid} is not running")


def test_ps_quiet_and_no_trunc(md, rootfs, container):
    exited = md("run", "-d", "--rootfs", rootfs, "--", "true", check=True).stdout.strip()
    harness.wait_until(lambda: inspect(md, exited, "{{.State.Status}}") == "exited", "the short container to exit")
    running = container("sh", "-c", "echo the command is longer than twenty; exec sleep 300")
    try:
        assert md("ps", "-q").stdout == f"{running[:12]}\n", "ps -q: the running containers' short ids"
        assert md("ps", "-a", "-q").stdout == f"{running[:12]}\n{exited[:12]}\n", "ps -a -q: all, newest first"
        assert md("ps", "-q", "--no-trunc").stdout == f"{running}\n"
        row = md("ps", "--no-trunc").stdout.splitlines()[1]
        assert row.startswith(running) and '"sh -c echo the command is longer than twenty; exec sleep 300"' in row
        assert '"sh -c echo the comm…"' in md("ps").stdout, "without --no-trunc, 19 characters and an ellipsis"
    finally:
        md("rm", exited)


def test_inspect_format(md, rootfs, container):
    cid = container("sleep", "300", flags=("--name", "md-fmt"))
    info = inspect(md, cid)
    assert inspect(md, "md-fmt", "{{.State.Pid}}") == str(info["State"]["Pid"])
    assert inspect(md, "md-fmt", "{{.Id}} {{.Name}} {{.State.Running}}") == f"{cid} /md-fmt true"
    assert json.loads(inspect(md, "md-fmt", "{{json .Config}}")) == info["Config"]
    assert json.loads(inspect(md, "md-fmt", "{{json .}}")) == info
    assert inspect(md, "md-fmt", "[{{.NetworkSettings.IPAddress}}]") == "[]", "no network before chapter 04"
    assert inspect(md, "md-fmt", "{{range .Config.Cmd}}<{{.}}>{{end}} {{join .Config.Cmd \",\"}}") == "<sleep><300> sleep,300"
    done = md("run", "-d", "--rootfs", rootfs, "--", "sh", "-c", "exit 3", check=True).stdout.strip()
    try:
        harness.wait_until(lambda: inspect(md, done, "{{.State.Status}}") == "exited", "the container to exit")
        assert md("inspect", "-f", "{{.State.ExitCode}}", done, "md-fmt").stdout == "3\n0\n", "one line per container"
    finally:
        md("rm", done)
    assert refused(md("inspect", "-f", "{{.State.Nope}}", "md-fmt"), 'map has no entry for key "Nope"')
