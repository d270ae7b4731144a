"""Chapter 03: `run IMAGE [CMD...]`: the image's config gives the defaults, its layers the rootfs.

Black-box through the CLI. The images with other configs are made from the busybox image with the
store's API (a new config, the same layer), as `commit -c` would. See docs/03-images.md#run-image.
"""

import hashlib
import json
import os
import stat

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.container import records
from minidocker.image import builtin, layout as layouts, media

DOCS = "docs/03-images.md#run-image"
EXERCISE = "docs/03-images.md#ex-03-image-defaults"


def image_with(config: dict) -> str:
    """A one-layer image: busybox's layer under `config` (the image config's `config` object).
    Named by its config, so the same config is the same image."""
    store = layouts.Layout()
    base = builtin.busybox(store)
    config_descriptor = store.put_json({**base.config, "config": config}, media.OCI_CONFIG)
    manifest = store.put_json({**base.manifest, "config": config_descriptor}, media.OCI_MANIFEST)
    name = f"md-run-image:{config_descriptor['digest'][7:19]}"
    store.tag(f"docker.io/library/{name}", manifest)
    return name


def ran(out) -> str:
    assert out.returncode == 0, f"the container did not run: {harness.explain(out)} ({DOCS})"
    return out.stdout


def inspect(md, ref) -> dict:
    out = md("inspect", ref)
    assert out.returncode == 0, harness.explain(out)
    return json.loads(out.stdout)[0]


def test_busybox_runs_on_a_fresh_machine(md, tmp_path):
    # A store of its own: nothing pulled, nothing built, no network. busybox:latest is built here.
    env = {"MINIDOCKER_ROOT": str(tmp_path / "md-root"), "MINIDOCKER_RUNTIME_ROOT": str(tmp_path / "md-run")}
    first = md("run", "--rm", "busybox", "echo", "hi", env=env)
    assert ran(first) == "hi\n", f"`run --rm busybox echo hi` should print hi ({DOCS})"
    assert "Unable to find image 'busybox:latest' locally" in first.stderr, \
        f"a missing image is announced on stderr, in Docker's words: {first.stderr!r}"
    again = md("run", "--rm", "busybox", "echo", "hi", env=env)
    assert ran(again) == "hi\n" and again.stderr == "", f"the second run finds the image: {again.stderr!r}"


# -- Entrypoint and Cmd: Docker's rules (docs/03-images.md#ex-03-image-defaults) ----------------

def expected_argv(image_entrypoint, image_cmd, entrypoint_flag, words):
    """What Docker runs, written as its documentation tells it: an --entrypoint replaces the
    image's Entrypoint and drops its Cmd ("" means none at all); words after IMAGE replace the Cmd."""
    if entrypoint_flag is None:
        return (image_entrypoint or []) + (words or image_cmd or [])
    return ([entrypoint_flag] if entrypoint_flag else []) + words


@settings(max_examples=10)
@given(image_entrypoint=st.sampled_from([None, ["echo", "md-ep"]]),
       image_cmd=st.sampled_from([None, ["echo", "md-cmd"], ["md-arg"]]),
       entrypoint_flag=st.sampled_from([None, "", "echo"]),
       words=st.sampled_from([[], ["echo", "md-word"], ["md-a", "md-b"]]))
def test_entrypoint_and_cmd_combine_as_in_docker(md, image_entrypoint, image_cmd, entrypoint_flag, words):
    config = {k: v for k, v in (("Entrypoint", image_entrypoint), ("Cmd", image_cmd)) if v}
    flags = [] if entrypoint_flag is None else [f"--entrypoint={entrypoint_flag}"]
    out = md("run", "--rm", *flags, image_with(config), *words)
    argv = expected_argv(image_entrypoint, image_cmd, entrypoint_flag, words)
    case = f"image {config}, flags {flags}, words {words}"
    if not argv:
        assert out.returncode == 125 and "no command specified" in out.stderr, \
            f"{case}: nothing to run is Docker's 'no command specified': {harness.explain(out)} ({EXERCISE})"
    elif argv[0] != "echo":
        assert out.returncode == 127, f"{case}: should run {argv} (no such program): {harness.explain(out)} ({EXERCISE})"
    else:
        assert ran(out) == " ".join(argv[1:]) + "\n", f"{case}: should run {argv} ({EXERCISE})"


# -- Env, WorkingDir, User ---------------------------------------------------------------------

NAMES = ["MD_A", "MD_B", "MD_C"]
env_lists = st.lists(st.tuples(st.sampled_from(NAMES), st.from_regex(r"[a-z]{0,4}", fullmatch=True)),
                     max_size=3, unique_by=lambda item: item[0])
# User as written -> (uid, gid, HOME) in busybox's /etc/passwd and /etc/group.
USERS = {"": (0, 0, "/root"), "0": (0, 0, "/root"), "nobody": (65534, 65534, "/nonexistent"),
         "nobody:root": (65534, 0, "/nonexistent"), "1000:1000": (1000, 1000, "/")}


@settings(max_examples=8)
@given(image_env=env_lists, flag_env=env_lists,
       image_workdir=st.sampled_from(["", "/tmp"]), flag_workdir=st.sampled_from([None, "/etc"]),
       image_user=st.sampled_from(["", "nobody", "1000:1000"]), flag_user=st.sampled_from([None, "0", "nobody:root"]))
def test_env_workdir_and_user_round_trip(md, image_env, flag_env, image_workdir, flag_workdir, image_user, flag_user):
    config = {"Env": [f"{k}={v}" for k, v in image_env], "WorkingDir": image_workdir, "User": image_user}
    flags = [arg for k, v in flag_env for arg in ("-e", f"{k}={v}")]
    flags += ["-w", flag_workdir] if flag_workdir else []
    flags += ["-u", flag_user] if flag_user is not None else []
    out = ran(md("run", "--rm", *flags, image_with(config), "sh", "-c", "pwd; id -u; id -g; env"))
    pwd, uid, gid, *env_lines = out.splitlines()
    env = dict(line.split("=", 1) for line in env_lines if "=" in line)
    case = f"image {config}, flags {flags}"
    expected = {**dict(image_env), **dict(flag_env)}  # -e wins, NAME by NAME
    assert {k: env.get(k) for k in NAMES if k in env} == expected, \
        f"{case}: the environment should be the image's, overridden by -e name by name ({EXERCISE})"
    assert pwd == (flag_workdir or image_workdir or "/"), f"{case}: -w, else the image's WorkingDir ({EXERCISE})"
    want_uid, want_gid, want_home = USERS[flag_user if flag_user is not None else image_user]
    assert (int(uid), int(gid)) == (want_uid, want_gid), \
        f"{case}: -u, else the image's User, looked up in its /etc/passwd and /etc/group ({EXERCISE})"
    assert env.get("HOME") == want_home, f"{case}: HOME comes from the user's /etc/passwd entry ({DOCS})"


# -- The rootfs: an overlay of the image's layers under the container's own upper directory -----

def tree(top: str) -> dict:
    """Every entry under `top`: its type, mode, owner, size, time, link target and content hash."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, content)
    return found


def test_the_image_is_never_changed_and_its_layers_are_shared(md):
    image = image_with({"Cmd": ["sh"], "Env": ["PATH=/bin"]})
    md("create", "--name", "md-writer", image, "sh", "-c",
       "echo new > /etc/md-new && echo md-appended >> /etc/passwd && rm /bin/ls", check=True)
    writer = inspect(md, "md-writer")
    # The first lower directory is the container's own init layer (Docker's <id>-init: the empty
    # files its /etc/hosts... are mounted over); the image's layers come after it.
    lower = writer["GraphDriver"]["Data"]["LowerDir"].split(":")[1:]
    before = {d: tree(d) for d in lower}
    try:
        assert md("start", "-a", "md-writer").returncode == 0
        assert {d: tree(d) for d in lower} == before, f"the container changed its image's layer {lower} ({DOCS})"
        upper = writer["GraphDriver"]["Data"]["UpperDir"]
        assert open(os.path.join(upper, "etc/md-new")).read() == "new\n", \
            f"a new file lands in the container's upper directory {upper} ({DOCS})"
        assert "md-appended" in open(os.path.join(upper, "etc/passwd")).read(), "a changed file is copied up"
        whiteout = os.lstat(os.path.join(upper, "bin/ls"))
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0, "a deleted file leaves a whiteout (chapter 02)"
        # A second container of the same image stands on the very same layer directories...
        md("create", "--name", "md-reader", image, "sh", "-c", "cat /etc/md-new; ls /bin/ls", check=True)
        reader = inspect(md, "md-reader")
        assert reader["GraphDriver"]["Data"]["LowerDir"].split(":")[1:] == lower, \
            f"two containers of one image share its unpacked layers ({DOCS})"
        assert reader["GraphDriver"]["Data"]["UpperDir"] != upper, "each container has its own upper directory"
        # ...and sees none of the first one's changes.
        out = md("start", "-a", "md-reader")
        assert "No such file" in out.stderr and out.stdout == "/bin/ls\n", \
            f"the other container's changes must not show: {harness.explain(out)} ({DOCS})"
        # What the engine says: the image's ID, the name as typed, and the names in `ps`.
        assert writer["Image"] == reader["Image"] and writer["Image"].startswith("sha256:"), \
            f"inspect's Image is the image's ID (its config's digest): {writer['Image']!r}"
        assert writer["Config"]["Image"] == image, "Config.Image is the image as the user typed it"
        shown = md("ps", "-a", "--format", "{{.Names}} {{.Image}}").stdout.split("\n")
        assert f"md-writer {image}" in shown, f"ps shows the image as typed: {shown}"
        # What `rmi` and the layers' garbage collection ask before they delete anything.
        assert writer["Image"] in records.images_in_use(), "records.images_in_use() must name the image"
        assert set(lower) <= records.layers_in_use(), "records.layers_in_use() must name the layers"
    finally:
        md("rm", "md-writer", "md-reader")


# -- What cannot run ----------------------------------------------------------------------------

def one_line_125(out, words):
    assert out.returncode == 125, f"expected Docker's engine-error code 125: {harness.explain(out)}"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidocker: ") and words in lines[0], \
        f"one line `minidocker: <what> (<hint>)` saying {words!r}: {out.stderr!r}"


@pytest.mark.parametrize("argv, words", [
    (["--pull", "never", "md-missing"], "No such image: md-missing:latest"),
    (["md-Upper"], "must be lowercase"),
    (["md//x"], "invalid reference format"),
    (["-u", "md-nobody", "busybox"], "unable to find user md-nobody"),
])
def test_what_cannot_run_is_one_line(md, argv, words):
    builtin.busybox(layouts.Layout())
    containers = os.path.join(os.environ["MINIDOCKER_ROOT"], "containers")
    os.makedirs(containers, exist_ok=True)
    before = os.listdir(containers)
    one_line_125(md("run", "--rm", *argv, "true"), words)
    assert os.listdir(containers) == before, "a refused run leaves no container behind"
