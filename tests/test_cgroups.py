"""Project tests for minidocker/cgroups/ that need no kernel: detect() on synthetic mount tables,
that no limit code runs when no limit is asked for, and both drivers on a fake cgroup tree in a
temp directory (a hybrid host's unified hierarchy has no memory/pids/cpu controller, so there
the real-kernel suite in chapters/01 can only check that V2 refuses those limits). Which file
takes which limit is chapter 01's exercise, tested in chapters/01/test_cgroups.py."""

import os
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidocker import cgroups
from minidocker.errors import MinidockerError
from minidocker.runtime import resources as resources_module

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
# The limits: only those asked for (the translation itself is chapters/01/test_cgroups.py's)

class NoLimitsHere(cgroups.V1):
    def set_limits(self, resources):
        raise AssertionError(f"set_limits({resources}) ran, for a spec that asks for no limit")


@pytest.mark.parametrize("resources", [{}, {"memory": {}, "pids": None, "cpu": {}},
                                       {"devices": [{"allow": False, "access": "rwm"}]}])
def test_no_limit_asked_no_limit_code_runs(resources):
    """`run` without -m, --pids-limit or --cpus: a lab whose limits exercise is still blank must
    start containers all the same."""
    resources_module.apply(NoLimitsHere("md/x", mountinfo(HYBRID)), resources)


def test_limit_writes_refuses_swap_below_memory():
    for version in (1, 2):
        with pytest.raises(MinidockerError) as e:
            cgroups.limit_writes(version, {"memory": {"limit": 64 * MiB, "swap": 32 * MiB}})
        assert "memory+swap" in str(e.value)


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
        group.set_limits({"memory": {"limit": 32 * MiB}, "cpu": {"quota": 50_000, "period": 100_000}})
    assert "cpu" in str(e.value) and "--cpus" in str(e.value)
    assert _read(f"{root}/md/abc/memory.max") == "max\n", "a refused flag must leave no limit half-set"
    group.set_limits({"memory": {"limit": 32 * MiB, "swap": 64 * MiB}})
    assert _read(f"{root}/md/abc/memory.max") == str(32 * MiB)
    assert _read(f"{root}/md/abc/memory.swap.max") == str(32 * MiB)


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
    # No memsw file (a kernel without swap accounting): the memory limit alone.
    group.set_limits({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}, "pids": {"limit": 100},
                      "cpu": {"quota": 25_000, "period": 100_000}})
    assert _read(f"{root}/memory/md/abc/memory.limit_in_bytes") == str(64 * MiB)
    assert _read(f"{root}/pids/md/abc/pids.max") == "100"
    assert _read(f"{root}/cpu,cpuacct/md/abc/cpu.cfs_quota_us") == "25000"
    with pytest.raises(MinidockerError) as e:
        group.freeze()
    assert "freezer" in str(e.value)


@pytest.mark.parametrize("version", [1, 2])
def test_freezing_a_cgroup_that_vanishes_meanwhile_does_not_wait(tmp_path, monkeypatch, version):
    # A paused container killed: its supervisor removes the cgroup while thaw() waits to see
    # THAWED. A missing file means nothing is left to thaw, not "wait 5 s and fail".
    root = str(tmp_path)
    if version == 1:
        text = SYSTEM + f"80 22 0:80 / {root}/freezer rw - cgroup cgroup rw,freezer\n"
        group, module = cgroups.V1("md/abc", mountinfo(text)), cgroups.v1
        _files_in(f"{root}/freezer/md/abc", {"freezer.state": "FROZEN\n"})
    else:
        text = SYSTEM + f"70 22 0:70 / {root} rw - cgroup2 cgroup2 rw\n"
        group, module = cgroups.V2("md/abc", mountinfo(text)), cgroups.v2
        _files_in(f"{root}/md/abc", {"cgroup.freeze": "1\n", "cgroup.events": "populated 1\nfrozen 1\n"})
    real_write = module.write

    def write_then_vanish(path, value):
        real_write(path, value)
        for name in os.listdir(os.path.dirname(path)):  # the kernel takes the whole directory away
            os.unlink(os.path.join(os.path.dirname(path), name))

    monkeypatch.setattr(module, "write", write_then_vanish)
    group.thaw()  # before the fix: MinidockerError after 5 s of waiting
