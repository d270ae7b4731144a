"""Project tests for minidocker/cgroups/ that need no kernel: detect() on synthetic mount tables,
the values written for Docker's flags, and both drivers on a fake cgroup tree in a temp directory
(this host's unified hierarchy has no memory/pids/cpu controller, so the real-kernel suite in
chapters/01 can only check that V2 refuses those limits)."""

import os
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidocker import cgroups
from minidocker.errors import MinidockerError

MiB = 1024 * 1024

SYSTEM = """\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
"""
PURE_V2 = SYSTEM + """\
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
HYBRID = SYSTEM + """\
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
LEGACY = SYSTEM + """\
24 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
27 24 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
29 24 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
30 24 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
"""


_files: list[str] = []


def mountinfo(text: str) -> str:
    """Write a mount table to a temp file and return its path (the fixture below removes it).
    Not tmp_path: hypothesis runs many examples in one call of a test function."""
    fd, path = tempfile.mkstemp(prefix="md-mountinfo-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    _files.append(path)
    return path


@pytest.fixture(autouse=True, scope="module")
def _remove_mountinfo_files():
    yield
    for path in _files:
        os.unlink(path)


# ---------------------------------------------------------------------------------------------
# detect()

@pytest.mark.parametrize("text, driver", [(PURE_V2, cgroups.V2), (HYBRID, cgroups.V1), (LEGACY, cgroups.V1)],
                         ids=["pure-v2", "hybrid", "legacy"])
def test_detect_known_layouts(text, driver):
    assert cgroups.detect(mountinfo(text)) is driver


def test_detect_without_cgroups_says_how_to_fix():
    with pytest.raises(MinidockerError) as e:
        cgroups.detect(mountinfo(SYSTEM))
    assert "mount -t cgroup2" in e.value.hint


def test_detect_cgroup2_elsewhere_and_v1_without_memory():
    text = SYSTEM + ("50 22 0:40 / /run/md\\040cg rw - cgroup2 none rw\n"
                     "51 22 0:41 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n")
    assert cgroups.detect(mountinfo(text)) is cgroups.V2
    assert cgroups.V2("a/b", mountinfo(text)).dir == "/run/md cg/a/b"  # "\040" is a space


V1_SETS = st.sets(st.sampled_from(["cpu", "cpuacct", "memory", "pids", "freezer", "blkio", "name=systemd"]))
V2_AT = st.sampled_from([None, "/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/run/md cg"])
OPTIONAL = st.lists(st.sampled_from(["shared:4", "master:1", "propagate_from:2", "unbindable"]), max_size=3)


@given(v1=V1_SETS, v2_at=V2_AT, optional=OPTIONAL, v2_first=st.booleans())
def test_detect_follows_the_rule(v1, v2_at, optional, v2_first):
    """Pure v2 -> V2; else a v1 memory controller -> V1; else any cgroup2 -> V2; else an error."""
    opt = " ".join(optional) + " " if optional else ""
    v1_lines = [f"{40 + i} 22 0:{40 + i} / /sys/fs/cgroup/{c} rw {opt}- cgroup cgroup rw,{c}\n"
                for i, c in enumerate(sorted(v1))]
    point = (v2_at or "").replace(" ", "\\040")  # mountinfo escapes a space as \040
    v2_lines = [f"60 22 0:60 / {point} rw {opt}- cgroup2 cgroup2 rw\n"] if v2_at else []
    text = SYSTEM + "".join(v2_lines + v1_lines if v2_first else v1_lines + v2_lines)
    if v2_at == "/sys/fs/cgroup":
        expected = cgroups.V2
    elif "memory" in v1:
        expected = cgroups.V1
    elif v2_at:
        expected = cgroups.V2
    else:
        with pytest.raises(MinidockerError):
            cgroups.detect(mountinfo(text))
        return
    assert cgroups.detect(mountinfo(text)) is expected


def test_for_container_uses_the_parent(monkeypatch):
    monkeypatch.setenv("MINIDOCKER_CGROUP_PARENT", "mdparent/session")
    group = cgroups.for_container("abc123")
    assert group.path == "mdparent/session/abc123" and type(group) is cgroups.detect()
    monkeypatch.delenv("MINIDOCKER_CGROUP_PARENT")
    assert cgroups.for_container("abc123").path == "minidocker/abc123"


@pytest.mark.parametrize("path", ["", "/abs", "../escape", "minidocker/../x", "a//b", "a/./b", "a/"])
def test_paths_that_would_escape_the_hierarchy_are_refused(path):
    with pytest.raises(MinidockerError):
        cgroups.V1(path, mountinfo(HYBRID))


def test_describe():
    assert cgroups.V1.describe(mountinfo(HYBRID)) == (
        "v1: memory pids cpu cpuacct freezer at /sys/fs/cgroup/<controller> "
        "(v2 unified hierarchy beside them at /sys/fs/cgroup/unified)")
    legacy = cgroups.V1.describe(mountinfo(LEGACY))
    assert "cpu=/sys/fs/cgroup/cpu,cpuacct" in legacy and "(missing: pids freezer)" in legacy


# ---------------------------------------------------------------------------------------------
# The values written for Docker's flags

@given(st.floats(min_value=0.01, max_value=float(os.cpu_count() or 1)))
def test_cpus_become_a_cfs_quota(cpus):
    quota, period = cgroups.cpu_quota(cpus)
    assert period == 100_000
    assert quota >= 1000, "the kernel refuses a CFS quota below 1 ms"
    assert abs(quota - cpus * period) <= 1  # --cpus 0.5 -> 50000 us per 100000 us


@given(st.one_of(st.floats(max_value=0.0099), st.floats(min_value=(os.cpu_count() or 1) + 0.001),
                 st.just(float("nan"))))
def test_cpus_out_of_range_are_refused(cpus):
    with pytest.raises(MinidockerError):
        cgroups.cpu_quota(cpus)


@given(old_limit=st.integers(6 * MiB, 1 << 40), old_swap=st.integers(0, 1 << 40),
       memory=st.integers(6 * MiB, 1 << 40))
def test_v1_memory_writes_keep_the_kernels_order(old_limit, old_swap, memory):
    """v1 refuses any write that would leave limit_in_bytes > memsw.limit_in_bytes. From any valid
    old pair, the writes must each be accepted and end at memory and Docker's memory+swap = 2x."""
    files = {"memory.limit_in_bytes": old_limit, "memory.memsw.limit_in_bytes": old_limit + old_swap}
    for controller, name, value in cgroups.V1("md/x", mountinfo(HYBRID)).limit_files(memory=memory):
        assert controller == "memory"
        files[name] = float("inf") if value == "-1" else int(value)
        assert files["memory.limit_in_bytes"] <= files["memory.memsw.limit_in_bytes"], \
            f"the kernel would refuse {name}={value} with EINVAL"
    assert files == {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": 2 * memory}


@given(memory=st.integers(6 * MiB, 1 << 40), pids=st.integers(-1, 1 << 22),
       cpus=st.sampled_from([0.01, 0.5, 1.0]))
def test_v2_limit_files(memory, pids, cpus):
    writes = cgroups.V2("md/x", mountinfo(PURE_V2)).limit_files(memory=memory, pids=pids, cpus=cpus)
    assert {name: value for _, name, value in writes} == {
        "memory.max": str(memory),
        "memory.swap.max": str(memory),  # v2 counts swap alone: Docker's 2x total is swap = memory
        "pids.max": str(pids) if pids > 0 else "max",  # --pids-limit 0 or -1: unlimited
        "cpu.max": f"{round(cpus * 100_000)} 100000",
    }


@given(st.integers(max_value=6 * MiB - 1))
def test_memory_below_dockers_minimum_is_refused(memory):
    for driver, text in ((cgroups.V1, HYBRID), (cgroups.V2, PURE_V2)):
        with pytest.raises(MinidockerError):
            driver("md/x", mountinfo(text)).limit_files(memory=memory)


# ---------------------------------------------------------------------------------------------
# Both drivers on a fake tree: plain directories and files where the kernel's would be

def _files_in(directory: str, files: dict[str, str]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(content)


def _read(path) -> str:
    with open(path) as f:
        return f.read()


def test_v2_create_enables_only_needed_and_available_controllers(tmp_path):
    root = str(tmp_path)
    _files_in(root, {"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.subtree_control": ""})
    _files_in(f"{root}/md", {"cgroup.controllers": "cpu memory pids\n", "cgroup.subtree_control": "pids\n"})
    group = cgroups.V2("md/abc", mountinfo(SYSTEM + f"70 22 0:70 / {root} rw - cgroup2 cgroup2 rw\n"))
    group.create()
    assert os.path.isdir(f"{root}/md/abc")
    assert _read(f"{root}/cgroup.subtree_control") == "+memory +pids +cpu"  # not cpuset, not io
    assert _read(f"{root}/md/cgroup.subtree_control").startswith("+memory +cpu")  # pids was on


def test_v2_missing_controller_is_named_and_nothing_is_written(tmp_path):
    root = str(tmp_path)
    _files_in(f"{root}/md/abc", {"cgroup.controllers": "memory pids\n", "memory.max": "max\n",
                                 "memory.swap.max": "max\n"})
    group = cgroups.V2("md/abc", mountinfo(SYSTEM + f"70 22 0:70 / {root} rw - cgroup2 cgroup2 rw\n"))
    with pytest.raises(MinidockerError) as e:
        group.set_limits(memory=32 * MiB, cpus=0.5)
    assert "cpu" in str(e.value) and "--cpus" in str(e.value)
    assert _read(f"{root}/md/abc/memory.max") == "max\n", "a refused flag must leave no limit half-set"
    group.set_limits(memory=32 * MiB)
    assert _read(f"{root}/md/abc/memory.max") == str(32 * MiB)


def test_v1_comounted_cpu_cpuacct_share_a_directory(tmp_path):
    root = str(tmp_path)
    text = SYSTEM + "".join(f"{80 + i} 22 0:{80 + i} / {root}/{h} rw - cgroup cgroup rw,{h}\n"
                            for i, h in enumerate(["memory", "cpu,cpuacct", "pids"]))
    group = cgroups.V1("md/abc", mountinfo(text))
    group.create()
    assert group.dirs() == [f"{root}/memory/md/abc", f"{root}/pids/md/abc", f"{root}/cpu,cpuacct/md/abc"]
    for directory in group.dirs():
        _files_in(directory, {name: "" for name in ("memory.limit_in_bytes", "pids.max",
                                                    "cpu.cfs_period_us", "cpu.cfs_quota_us")})
    group.set_limits(memory=64 * MiB, pids=100, cpus=0.25)  # no memsw file: limits memory only
    assert _read(f"{root}/memory/md/abc/memory.limit_in_bytes") == str(64 * MiB)
    assert _read(f"{root}/pids/md/abc/pids.max") == "100"
    assert _read(f"{root}/cpu,cpuacct/md/abc/cpu.cfs_quota_us") == "25000"
    with pytest.raises(MinidockerError) as e:
        group.freeze()
    assert "freezer" in str(e.value)
