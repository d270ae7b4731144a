"""Chapter 08: capabilities. A default container's root keeps Docker's 14 capabilities and no
more, in every set the kernel shows in /proc/self/status; --cap-add, --cap-drop (ALL included)
and --privileged change them as Docker does; the container's processes and its execs get them;
the trace shows the runtime dropping them. docs/08-hardening.md#capabilities.

The sets are read as the kernel reports them: `grep Cap /proc/self/status` in a busybox
container, each line a hex mask, one bit per capability (capabilities(7)).
"""

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.security import capabilities

DOCS = "docs/08-hardening.md#capabilities"
EXERCISE = "docs/08-hardening.md#ex-08-bounding"
RUN = ("run", "--rm", "--network", "none")

# The bit of each capability, from <linux/capability.h>, written out here as the test's own truth.
NUMBERS = {name: bit for bit, name in enumerate([
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE"])}
# Docker's default set (moby's oci/caps/defaults.go): 0xa80425fb, as `docker run` shows it.
DOCKER_DEFAULT = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                  "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}
SETS = ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb")


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


def decode(mask: str) -> set[str]:
    """'00000000a80425fb' -> {"CHOWN", ...}."""
    bits = int(mask, 16)
    return {name for name, bit in NUMBERS.items() if bits >> bit & 1}


def sets_in(text: str) -> dict[str, set[str]]:
    """The five sets of a /proc/PID/status (lines "CapEff:\t000001ffffffffff")."""
    return {key: decode(value) for key, value in re.findall(r"^(Cap\w+):\s*([0-9a-f]+)$", text, re.M)}


def engine_holds() -> set[str]:
    """What this process (root, like the engine) holds: not always all (a VM's root may lack some)."""
    with open("/proc/self/status") as status:
        return sets_in(status.read())["CapEff"]


def container_sets(md, *flags, command="grep Cap /proc/self/status") -> tuple[dict[str, set[str]], str]:
    out = md(*RUN, *flags, "busybox", "sh", "-c", command)
    assert out.returncode == 0, f"{harness.explain(out)} ({EXERCISE})"
    return sets_in(out.stdout), out.stdout


def differences(found: dict[str, set[str]], expected: dict[str, set[str]]) -> str:
    return "; ".join(f"{key}: missing {sorted(expected[key] - found.get(key, set()))}, "
                     f"extra {sorted(found.get(key, set()) - expected[key])}"
                     for key in SETS if found.get(key) != expected[key])


def test_a_default_container_keeps_dockers_14(md):
    found, _ = container_sets(md)
    expected = {"CapBnd": DOCKER_DEFAULT, "CapPrm": DOCKER_DEFAULT, "CapEff": DOCKER_DEFAULT,
                "CapInh": set(), "CapAmb": set()}
    assert found == expected, (f"a default container's root should hold Docker's 14 capabilities in the bounding, "
                               f"permitted and effective sets, and none inheritable or ambient: "
                               f"{differences(found, expected)} ({DOCS})")


def test_a_non_root_user_keeps_only_the_bounding_set(md):
    # The spec lists the 14 for any user, as moby does; execve itself empties a non-root
    # program's permitted and effective sets (it has no file capabilities).
    found, _ = container_sets(md, "--user", "1000:1000")
    expected = {"CapBnd": DOCKER_DEFAULT, "CapPrm": set(), "CapEff": set(), "CapInh": set(), "CapAmb": set()}
    assert found == expected, (f"--user 1000 should run with Docker's bounding set and nothing else: "
                               f"{differences(found, expected)} ({DOCS})")


def test_cap_drop_all_leaves_nothing_and_chown_fails(md):
    found, output = container_sets(md, "--cap-drop", "ALL",
                                   command="grep Cap /proc/self/status; chown 1 /tmp 2>&1; echo chown=$?")
    assert found == dict.fromkeys(SETS, set()), f"--cap-drop ALL should leave every set empty: {found} ({DOCS})"
    assert "Operation not permitted" in output and "chown=1" in output, \
        f"without CAP_CHOWN root may not give a file away, but chown said: {output!r} ({DOCS})"


def test_net_admin_lets_root_change_the_network(md):
    # A veth pair inside the container's own (--network none) namespace: the host's is untouched.
    command = "ip link add mda type veth peer name mdb 2>&1 && echo made"
    without = md(*RUN, "busybox", "sh", "-c", command)
    with_it = md(*RUN, "--cap-add", "net_admin", "busybox", "sh", "-c", command)
    assert "Operation not permitted" in without.stdout, \
        f"without CAP_NET_ADMIN, `ip link add` should fail with EPERM: {harness.explain(without)} ({DOCS})"
    assert with_it.returncode == 0 and "made" in with_it.stdout, \
        f"--cap-add net_admin should let `ip link add` work: {harness.explain(with_it)} ({DOCS})"


def test_privileged_gets_all_the_engine_has_and_no_locked_mounts(md):
    found, output = container_sets(md, "--privileged", command="grep Cap /proc/self/status; cat /proc/mounts")
    held = engine_holds()
    expected = {"CapBnd": held, "CapPrm": held, "CapEff": held, "CapInh": set(), "CapAmb": set()}
    assert found == expected, (f"--privileged should give every capability the engine itself holds (never more: "
                               f"capset would fail): {differences(found, expected)} ({DOCS})")
    sys_options = re.search(r"^sysfs /sys sysfs (\S+)", output, re.M)
    assert sys_options and "rw" in sys_options[1].split(","), \
        f"--privileged mounts /sys read-write, as moby does: {output} (docs/08-hardening.md#privileged)"
    cgroup_options = re.search(r"^\S+ /sys/fs/cgroup \S+ (\S+)", output, re.M)  # cgroup2, or v1's tmpfs
    assert cgroup_options and "rw" in cgroup_options[1].split(","), \
        f"--privileged mounts /sys/fs/cgroup read-write, as moby does: {output} (docs/08-hardening.md#privileged)"
    covered = re.findall(r"^\S+ (/proc/(?:kcore|keys|sys|sysrq-trigger)) ", output, re.M)
    assert not covered, f"--privileged masks no path and makes none read-only, but {covered} are mounted over " \
                        f"(docs/08-hardening.md#privileged)"


def test_unknown_capability_is_refused_and_nothing_made(md):
    before = md("ps", "-a", "-q").stdout
    out = md(*RUN, "--cap-add", "md_no_such", "busybox", "true")
    assert out.returncode == 125 and out.stderr.strip() == \
        'minidocker: invalid CapAdd: unknown capability: "CAP_MD_NO_SUCH" (see capabilities(7) for the names, or ALL)', \
        f"an unknown capability is Docker's engine error, on one line: {harness.explain(out)} ({DOCS})"
    out = md("create", "--cap-drop", "CAP_md_no_such", "busybox", "true")
    assert out.returncode == 125 and 'invalid CapDrop: unknown capability: "CAP_MD_NO_SUCH"' in out.stderr, \
        f"--cap-drop checks its names too: {harness.explain(out)} ({DOCS})"
    missing = sorted(set(NUMBERS) - engine_holds())  # this VM's root lacks SYS_RESOURCE; most hosts lack none
    if missing:
        out = md(*RUN, "--cap-add", missing[0], "busybox", "true")
        assert out.returncode == 125 and "not available in the current environment" in out.stderr, \
            f"the engine cannot give CAP_{missing[0]}, which it lacks itself: {harness.explain(out)} ({DOCS})"
    assert md("ps", "-a", "-q").stdout == before, f"a refused create must leave no container behind ({DOCS})"


def test_exec_gets_the_containers_sets_and_inspect_shows_the_flags(md):
    name = "md-caps-exec"
    out = md("run", "-d", "--network", "none", "--name", name, "--cap-drop", "net_raw", "--cap-add", "CAP_SYS_TIME",
             "busybox", "sleep", "30")
    assert out.returncode == 0, harness.explain(out)
    try:
        outs = [md("exec", name, "cat", "/proc/1/status"), md("exec", name, "grep", "Cap", "/proc/self/status"),
                md("exec", "-u", "1000", name, "grep", "Cap", "/proc/self/status"), md("inspect", name)]
    finally:
        md("rm", "-f", name)
    for out in outs:
        assert out.returncode == 0, f"{harness.explain(out)} ({DOCS})"
    first, execd, as_user = (sets_in(out.stdout) for out in outs[:3])
    host_config = json.loads(outs[3].stdout)[0]["HostConfig"]
    expected = (DOCKER_DEFAULT - {"NET_RAW"}) | {"SYS_TIME"}
    assert first["CapEff"] == expected, f"--cap-drop net_raw --cap-add CAP_SYS_TIME: {first} ({DOCS})"
    assert execd == first, f"an exec'd process should get the container's sets: {execd} vs {first} ({DOCS})"
    assert as_user["CapBnd"] == expected and not as_user["CapEff"] | as_user["CapPrm"], \
        f"exec -u 1000 keeps the bounding set, and execve leaves a non-root user nothing: {as_user} ({DOCS})"
    shown = {key: host_config.get(key) for key in ("CapAdd", "CapDrop", "Privileged")}
    assert shown == {"CapAdd": ["CAP_SYS_TIME"], "CapDrop": ["net_raw"], "Privileged": False}, \
        f"inspect shows HostConfig's CapAdd, CapDrop, Privileged as given: {shown} ({DOCS})"


def test_the_trace_shows_the_bounding_set_dropped_then_capset(md):
    out = md("--trace", *RUN, "--cap-drop", "ALL", "--cap-add", "KILL", "busybox", "true")
    assert out.returncode == 0, harness.explain(out)
    lines = [line.split("] ", 1)[-1] for line in out.stderr.splitlines() if line.startswith("[container")]
    drops = {line for line in lines if line.startswith("prctl(PR_CAPBSET_DROP, ")}
    assert "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN) = 0" in drops and \
           "prctl(PR_CAPBSET_DROP, CAP_KILL) = 0" not in drops, \
        f"the trace should show each capability but KILL dropped from the bounding set: {sorted(drops)} ({EXERCISE})"
    capset = [i for i, line in enumerate(lines) if line.startswith("capset(")]
    execve = [i for i, line in enumerate(lines) if line.startswith("execveat(")]
    assert capset and execve and capset[0] < execve[0] and \
        "effective=CAP_KILL, permitted=CAP_KILL, inheritable=0}) = 0" in lines[capset[0]], \
        f"capset should set the three sets to CAP_KILL, before the execve: {lines} ({DOCS})"


def test_the_runtime_applies_each_set_of_a_bundle_for_a_non_root_user(md, rootfs, tmp_path):
    """An OCI bundle (as runc runs it) may ask what Docker never does: inheritable and ambient
    capabilities, for a non-root user, who then keeps the ambient ones across execve."""
    from minidocker.container import oci_defaults

    spec = {"ociVersion": "1.0.2", "root": {"path": rootfs}, "hostname": "mdcaps",
            "mounts": oci_defaults.default_mounts(),
            "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
            "process": {"args": ["grep", "Cap", "/proc/self/status"], "cwd": "/", "env": ["PATH=/bin"],
                        "user": {"uid": 1000, "gid": 1000},
                        "capabilities": {
                            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"],
                            "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"],
                            "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"],
                            "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
                            # CHOWN is not inheritable: the kernel would refuse it; runc skips it.
                            "ambient": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]}}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    out = md("runtime", "--root", str(tmp_path / "state"), "run", "-b", str(tmp_path), "md-caps-bundle")
    assert out.returncode == 0, f"{harness.explain(out)} (setuid clears the permitted set unless " \
                                f"PR_SET_KEEPCAPS is on: {DOCS})"
    expected = {"CapBnd": {"NET_BIND_SERVICE", "KILL", "CHOWN"}, "CapInh": {"NET_BIND_SERVICE", "KILL"},
                "CapAmb": {"NET_BIND_SERVICE"}, "CapPrm": {"NET_BIND_SERVICE"}, "CapEff": {"NET_BIND_SERVICE"}}
    found = sets_in(out.stdout)
    assert found == expected, (f"uid 1000 keeps across execve only its ambient set (in permitted and effective "
                               f"too): {differences(found, expected)} ({DOCS})")


# --- Docker's merge rules, as a model: hypothesis tries lists of names against it. ---------------

NAMES = st.sampled_from(["CHOWN", "NET_RAW", "KILL", "SETUID", "MKNOD", "NET_ADMIN", "SYS_ADMIN", "SYS_TIME",
                         "SYS_PTRACE", "DAC_READ_SEARCH", "ALL"])


@st.composite
def spelled(draw, names=NAMES):
    """A capability as a user may type it: net_admin, CAP_NET_ADMIN, Cap_Net_Admin, all."""
    name = draw(names)
    if name != "ALL" and draw(st.booleans()):
        name = "CAP_" + name
    return draw(st.sampled_from([name, name.lower(), name.title()]))


def docker_merge(cap_add: list[str], cap_drop: list[str], held: set[str]) -> set[str]:
    """moby's TweakCapabilities, written from its documented rules."""
    add = {n.upper().removeprefix("CAP_") for n in cap_add}
    drop = {n.upper().removeprefix("CAP_") for n in cap_drop}
    if "ALL" in add:
        return held - drop
    if "ALL" in drop:
        return add
    return (DOCKER_DEFAULT - drop) | add


LISTS = st.lists(spelled(), max_size=4)


@given(cap_add=LISTS, cap_drop=LISTS)
@settings(max_examples=200)
def test_tweak_follows_dockers_rules(cap_add, cap_drop):
    held = engine_holds()
    got = {name.removeprefix("CAP_") for name in capabilities.tweak(cap_add, cap_drop, privileged=False)}
    assert got == docker_merge(cap_add, cap_drop, held), \
        f"--cap-add {cap_add} --cap-drop {cap_drop}: {sorted(got)} ({DOCS})"


@given(cap_add=LISTS, cap_drop=LISTS)
@settings(max_examples=4)
def test_cap_add_and_drop_reach_the_container(md, cap_add, cap_drop):
    flags = [f for name in cap_add for f in ("--cap-add", name)] + [f for name in cap_drop for f in ("--cap-drop", name)]
    found, _ = container_sets(md, *flags)
    want = docker_merge(cap_add, cap_drop, engine_holds())
    expected = {"CapBnd": want, "CapPrm": want, "CapEff": want, "CapInh": set(), "CapAmb": set()}
    assert found == expected, f"{' '.join(flags)}: {differences(found, expected)} ({DOCS})"
