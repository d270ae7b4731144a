"""Chapter 05: -v, --mount and --tmpfs read as the docker CLI reads them, checked as dockerd checks them.

API-level for the parser (minidocker.volume.flags turns flags into the create request, and
minidocker.volume.mounts.plan checks it), with hypothesis against Docker's rules as its
documentation states them; then through the CLI: a refused mount is one line, exit 125, and
nothing is created (docs/05-volumes.md#the-flags).
"""

import os

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.errors import MinidockerError
from minidocker.volume import flags, mounts

DOCS = "docs/05-volumes.md#the-flags"

# The parts a -v value is built from, each with what Docker makes of it.
SOURCES = {"/srv/md-a": "bind", "/srv/md-a/../md-b/": "bind", "md-data": "volume", "md.cache_2": "volume",
           "": "anonymous", "md/sub": "bad name", "..": "bad name", "x": "bad name"}
TARGETS = {"/data": "/data", "/a/b/": "/a/b", "/a//./b": "/a/b", "data": "relative", "/": "root"}
MODES = ["", "ro", "rw", "ro,z", "z,rw", "Z", "rprivate", "ro,rshared", "nocopy", "ro,nocopy", "ro,rw", "bogus",
         "z,Z", "shared,slave"]
VALID_MODES = {"", "ro", "rw", "ro,z", "z,rw", "Z", "rprivate", "ro,rshared", "nocopy", "ro,nocopy"}


def expected(source: str, target: str, mode: str):
    """What Docker does with -v SOURCE:TARGET:MODE, from its documented rules: an error's words or
    the mount point's (Type, Destination, RW)."""
    kind, destination = SOURCES[source], TARGETS[target]
    if kind == "anonymous":
        if mode:  # "/ctr:ro" has a mode but no source; "/ctr:x" is a bind of /ctr on the relative "x"
            return "invalid volume specification" if mode in VALID_MODES else "must be absolute"
        # -v /ctr: an anonymous volume (Config.Volumes), checked like the others
        return {"relative": "must be absolute", "root": "destination can't be '/'"}.get(destination,
                                                                                         ("volume", destination, True))
    if mode not in VALID_MODES:
        return "invalid mode"
    if destination == "root":
        return "destination can't be '/'"
    if destination == "relative":
        return "must be absolute"
    words = mode.split(",")
    if kind == "bind" and "nocopy" in words:
        return "field VolumeOptions must not be specified"  # nocopy is a volume's option
    if kind in ("volume", "bad name") and any(w.endswith(("private", "shared", "slave")) for w in words):
        return "field BindOptions must not be specified"  # a propagation is a bind's
    if kind == "bad name":
        return "includes invalid characters" if len(source) > 1 else "too short"
    return (kind, destination, "ro" not in mode.split(","))


def plan_of(spec: str) -> list[dict]:
    binds, anonymous = flags.volume_flags([spec])
    return mounts.plan({"Volumes": anonymous}, {"Binds": binds})


@settings(max_examples=150)
@given(source=st.sampled_from(sorted(SOURCES)), target=st.sampled_from(sorted(TARGETS)),
       mode=st.sampled_from(MODES))
def test_volume_flag_follows_dockers_rules(source, target, mode):
    spec = ":".join(part for part in (source, target, mode) if part or part is target)
    want = expected(source, target, mode)
    try:
        got = plan_of(spec)
    except MinidockerError as e:
        assert isinstance(want, str), f"-v {spec!r} should be accepted as {want}, but: {e.what} ({DOCS})"
        assert want in e.what, f"-v {spec!r}: Docker says '{want}', we said {e.what!r} ({DOCS})"
        assert e.exit_code == 125, f"-v {spec!r}: a refused mount is exit 125 ({DOCS})"
        return
    assert not isinstance(want, str), f"-v {spec!r} should be refused ('{want}'), but got {got} ({DOCS})"
    (p,) = got
    assert (p["Type"], p["Destination"], p["RW"]) == want, f"-v {spec!r} is {want} in Docker, we made {p} ({DOCS})"
    if p["Type"] == "bind":
        assert p["Source"] == os.path.normpath(source) and p["Propagation"] == (
            "rshared" if "rshared" in mode else "rprivate"), f"-v {spec!r}: {p} ({DOCS})"
    elif SOURCES[source] == "volume":
        assert p["Name"] == source and p["Mode"] == (mode or "z"), f"-v {spec!r}: {p} ({DOCS})"


@pytest.mark.parametrize("spec, words", [
    ("", "invalid empty volume spec"), ("a::b", "empty section between colons"),
    ("/a:/b:ro:z", "too many colons"), ("/x:ro", "invalid volume specification: '/x:ro'")])
def test_volume_flag_shapes_the_docker_cli_refuses(spec, words):
    with pytest.raises(MinidockerError) as e:
        plan_of(spec)
    assert words in e.value.what, f"-v {spec!r}: the docker CLI says '{words}', we said {e.value.what!r} ({DOCS})"


def test_dot_slash_is_made_absolute_by_the_client():
    binds, _ = flags.volume_flags(["./md-here:/x:ro"])
    assert binds == [os.path.abspath("md-here") + ":/x:ro"], f"-v ./dir is sent as an absolute path: {binds} ({DOCS})"


@settings(max_examples=60)
@given(kind=st.sampled_from(["bind", "volume", "tmpfs"]), ro=st.sampled_from([None, "readonly", "ro=true", "ro=0"]),
       extra=st.sampled_from([None, "volume-nocopy", "tmpfs-size=64m", "tmpfs-mode=1770", "bind-propagation=rslave"]),
       target_key=st.sampled_from(["target", "dst", "destination"]))
def test_mount_flag_keys_and_mixing_rules(kind, ro, extra, target_key):
    fields = [f"type={kind}", f"{target_key}=/md"] + (["src=/tmp"] if kind == "bind" else [])
    fields += [f for f in (ro, extra) if f]
    text = ",".join(fields)
    extra_kind = extra.split("-")[0] if extra else kind
    try:
        spec = flags.mount_flag(text)
    except MinidockerError as e:
        assert extra_kind != kind, f"--mount {text} is valid in Docker: {e.what} ({DOCS})"
        assert f"cannot mix '{extra_kind}-*' options with mount type '{kind}'" in e.what, e.what
        return
    assert extra_kind == kind, f"--mount {text}: Docker refuses to mix {extra_kind}-* into type {kind} ({DOCS})"
    assert spec["Type"] == kind and spec["Target"] == "/md", spec
    assert spec.get("ReadOnly", False) == (ro in ("readonly", "ro=true")), f"--mount {text}: ReadOnly {spec} ({DOCS})"
    if kind == "volume" and ro in ("readonly", "ro=true"):
        with pytest.raises(MinidockerError, match="must not set ReadOnly mode when using anonymous volumes"):
            mounts.plan({}, {"Mounts": [spec]})
        return
    (p,) = mounts.plan({}, {"Mounts": [spec]})
    if extra == "tmpfs-size=64m":
        assert "size=64m" in mounts.oci_mounts([p], None)[0]["options"], f"tmpfs-size=64m: {p} ({DOCS})"
    if extra == "volume-nocopy":
        assert not mounts.copy_ups([{**p, "Name": "x"}]), "volume-nocopy: no copy-up ({DOCS})"


def test_mount_refuses_a_missing_bind_source_and_unknown_keys():
    spec = flags.mount_flag("type=bind,source=/md-no-such-dir,target=/x")
    with pytest.raises(MinidockerError) as e:
        mounts.plan({}, {"Mounts": [spec]})
    assert e.value.what == 'invalid mount config for type "bind": bind source path does not exist: /md-no-such-dir', \
        f"--mount never creates a bind source; Docker's words: {e.value.what!r} ({DOCS})"
    with pytest.raises(MinidockerError, match="unexpected key 'colour' in 'colour=red'"):
        flags.mount_flag("type=tmpfs,target=/x,colour=red")
    with pytest.raises(MinidockerError, match="target is required"):
        flags.mount_flag("type=tmpfs")


def test_tmpfs_options_merge_over_dockers_defaults():
    (entry,) = mounts.oci_mounts([], {"/run": "exec,size=1m,size=2m,mode=1777"})
    assert entry["type"] == "tmpfs" and entry["destination"] == "/run"
    options = entry["options"]
    assert "exec" in options and "noexec" not in options, f"--tmpfs /run:exec overrides Docker's noexec: {options}"
    assert {"nosuid", "nodev", "rprivate", "size=2m", "mode=1777"} <= set(options) and "size=1m" not in options, \
        f"Docker's tmpfs defaults with the last size= winning: {options} ({DOCS})"
    with pytest.raises(MinidockerError, match="invalid tmpfs option"):
        mounts.plan({}, {"Tmpfs": {"/run": "colour=red"}})


def test_duplicates_and_proc_targets_are_refused():
    for host_config in ({"Binds": ["/tmp:/x", "md-v:/x"]}, {"Binds": ["/tmp:/x"], "Tmpfs": {"/x/": ""}},
                        {"Binds": ["/tmp:/x"], "Mounts": [flags.mount_flag("type=tmpfs,dst=/x")]}):
        with pytest.raises(MinidockerError, match="Duplicate mount point: /x"):
            mounts.plan({}, host_config)
    with pytest.raises(MinidockerError, match='"/proc/sys" cannot be mounted because it is inside /proc'):
        mounts.plan({}, {"Binds": ["/tmp:/proc/sys"]})
    with pytest.raises(MinidockerError, match='"/sys" cannot be mounted because it is not of type sysfs'):
        mounts.plan({}, {"Mounts": [flags.mount_flag("type=tmpfs,dst=/sys")]})


# -- through the CLI: one line, exit 125, nothing created -----------------------------------------

@pytest.mark.parametrize("args, words", [
    (["-v", "md-ok:/a", "-v", "md/bad:/b"], '"md/bad" includes invalid characters for a local volume name'),
    (["-v", "md-ok:/a", "-v", "../md-up:/b"], "includes invalid characters"),
    (["-v", "md-ok:/a", "--mount", "type=bind,src=/md-missing,dst=/b"], "bind source path does not exist: /md-missing"),
    (["-v", "md-ok:/a", "-v", "/tmp:b"], "mount path must be absolute"),
    (["-v", "md-ok:/a", "-v", "/tmp:/"], "destination can't be '/'"),
    (["-v", "md-ok:/a", "-v", "/tmp/md-new-src:/a"], "Duplicate mount point: /a"),
    (["-v", "md-ok:/a", "--tmpfs", "/proc/kcore"], "cannot be mounted because it is inside /proc"),
])
def test_refused_mounts_leave_nothing_behind(md, args, words):
    harness.need_root()
    volumes, containers = md("volume", "ls", "-q").stdout, md("ps", "-aq").stdout
    out = md("create", *args, "busybox", "true")
    assert out.returncode == 125, f"a refused mount exits 125: {harness.explain(out)} ({DOCS})"
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("minidocker: ") and words in lines[-1], \
        f"one line with Docker's words ('{words}'): {out.stderr!r} ({DOCS})"
    assert "Traceback" not in out.stderr
    assert md("volume", "ls", "-q").stdout == volumes, \
        f"nothing is created when a later mount is refused: `volume ls` shows a volume ({DOCS})"
    assert not os.path.exists("/tmp/md-new-src"), "-v made its bind source although the request was refused"
    assert md("ps", "-aq").stdout == containers, "a refused create left a container"
