"""Chapter 01: cgroup limits, enforced and measured through `minidocker run`
(docs/01-isolation.md#cgroups)."""

import json
import os
import time

from minidocker import cgroups


def test_memory_limit_oom_kills_with_137_and_inspect_says_so(md, rootfs):
    # `tail` keeps the current line in memory; /dev/zero has no newline, so it grows forever.
    out = md("run", "--name", "md-oom", "-m", "16m", "--rootfs", rootfs, "--", "tail", "/dev/zero")
    state = json.loads(md("inspect", "md-oom").stdout)[0]["State"]
    md("rm", "md-oom")
    assert out.returncode == 137, f"the OOM killer's SIGKILL is exit code 137, got {out.returncode} (docs/01-isolation.md#ex-01-cgroup-limits)"
    assert state["OOMKilled"] is True, "inspect must report OOMKilled: read the cgroup's OOM kill counter"


def test_pids_limit_contains_a_fork_bomb(md, rootfs, container):
    # `exec sleep`: PID 1 must not need a fork of its own once the bomb has used every pid.
    cid = container("sh", "-c", "bomb() { bomb | bomb & }; bomb 2>/dev/null; exec sleep 30", flags=("--pids-limit", "20"))
    time.sleep(1)
    assert json.loads(md("inspect", cid).stdout)[0]["State"]["Running"], "the container itself must survive its bomb"
    pids = cgroups.for_container(cid).stats()["pids"]
    assert pids is not None and 10 <= pids <= 20, f"--pids-limit 20: the bomb should be held at 20 processes, the cgroup has {pids}"
    assert md("ps").returncode == 0, "the host must stay responsive"


def test_cpus_half_a_cpu_is_measured_not_assumed(md, rootfs):
    # Spin for one second of wall time, then read how much CPU the spinning took: fields 16 and
    # 17 of PID 1's /proc stat are its children's user and system time, in 1/100 s.
    script = 'timeout 1 sh -c "while :; do :; done" 2>/dev/null; cut -d" " -f16,17 /proc/1/stat'
    out = md("run", "--rm", "--cpus", "0.5", "--rootfs", rootfs, "--", "sh", "-c", script)
    ticks = sum(int(t) for t in out.stdout.split())
    clock = os.sysconf("SC_CLK_TCK")
    assert ticks / clock < 0.7, f"--cpus 0.5 allows 0.5 s of CPU per second; the loop used {ticks / clock:.2f} s"
    assert ticks / clock > 0.2, f"the loop barely ran ({ticks / clock:.2f} s of CPU): is the quota too small?"
