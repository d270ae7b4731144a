"""Chapter 01: cgroup limits, enforced and measured through `minidocker run`
(docs/01-isolation.md#cgroups). Each assertion shows the CLI's stderr: when an exercise is still
blank, that is where its hint is."""

import json
import os

import pytest

import harness
from minidocker import cgroups

LIMITS = "docs/01-isolation.md#ex-01-cgroup-limits"


def ran(out, *expected_codes: int) -> None:
    """Fail with how the command ended and its stderr, and no more, when it exited otherwise."""
    if out.returncode not in expected_codes:
        pytest.fail(f"expected exit {' or '.join(map(str, expected_codes))} {harness.explain(out)}", pytrace=False)


def test_memory_limit_oom_kills_with_137_and_inspect_says_so(md, rootfs):
    # `tail` keeps the current line in memory; /dev/zero has no newline, so it grows forever.
    out = md("run", "--name", "md-oom", "-m", "16m", "--rootfs", rootfs, "--", "tail", "/dev/zero")
    try:
        ran(out, 137)  # the OOM killer's SIGKILL is 128 + 9
        inspect = md("inspect", "md-oom")
        ran(inspect, 0)
    finally:
        md("rm", "-f", "md-oom")
    assert json.loads(inspect.stdout)[0]["State"]["OOMKilled"] is True, (
        "inspect must report OOMKilled: read the cgroup's OOM kill counter")


def test_pids_limit_contains_a_fork_bomb(md, rootfs, container):
    # `exec sleep`: PID 1 must not need a fork of its own once the bomb has used every pid.
    cid = container("sh", "-c", "bomb() { bomb | bomb & }; bomb 2>/dev/null; exec sleep 30", flags=("--pids-limit", "20"))
    group = cgroups.for_container(cid)

    def refused() -> int:  # pids.events' "max": the forks the kernel refused because of pids.max
        with open(group.file("pids", "pids.events")) as f:
            return int(dict(line.split() for line in f)["max"])

    def hit():  # the bomb fills the cgroup up to its limit; under load it may also burn out there
        pids = group.stats()["pids"]
        return (pids, refused()) if pids is not None and (pids >= 10 or refused() > 0) else None

    pids, refusals = harness.wait_until(hit, "the fork bomb to fill the cgroup", timeout=30)
    assert pids <= 20 and refusals > 0, (
        f"--pids-limit 20: the bomb should be held at 20 processes, the cgroup has {pids} and the kernel "
        f"refused {refusals} forks — see {LIMITS}")
    inspect = md("inspect", cid)
    ran(inspect, 0)
    assert json.loads(inspect.stdout)[0]["State"]["Running"], "the container itself must survive its bomb"
    ran(md("ps"), 0)  # the host stays responsive


def test_cpus_half_a_cpu_is_measured_not_assumed(md, rootfs):
    # Spin for one second of wall time, then read how much CPU the spinning took: fields 16 and
    # 17 of PID 1's /proc stat are its children's user and system time, in 1/100 s.
    script = 'timeout 1 sh -c "while :; do :; done" 2>/dev/null; cut -d" " -f16,17 /proc/1/stat'
    out = md("run", "--rm", "--cpus", "0.5", "--rootfs", rootfs, "--", "sh", "-c", script)
    ran(out, 0)
    used = sum(int(t) for t in out.stdout.split()) / os.sysconf("SC_CLK_TCK")
    assert used < 0.7, f"--cpus 0.5 allows 0.5 s of CPU per second; the loop used {used:.2f} s — see {LIMITS}"
    assert used > 0.2, f"the loop barely ran ({used:.2f} s of CPU): is the quota too small? see {LIMITS}"
