"""Chapter 03: `commit CONTAINER [REPOSITORY[:TAG]]`: a container's changes become a new image,
and the image it came from stays as it was (docs/03-images.md#commit).

Black-box through the CLI, each test in a store of its own; the `-c` parser at API level, with
hypothesis."""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile

import pytest
from hypothesis import given, strategies as st

import harness
from minidocker.image.commit import apply_changes

DOCS = "docs/03-images.md#commit"
EXERCISE = "docs/03-images.md#ex-03-commit"


@pytest.fixture
def mdr(tmp_path):
    """The CLI in a store of its own (MINIDOCKER_ROOT); every container it made is removed after."""
    root = str(tmp_path / "md-root")
    env = {"MINIDOCKER_ROOT": root}

    def run(*args, **kwargs):
        return harness.run_cli(*args, env=env, **kwargs)

    run.root = root
    yield run
    ids = run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run("rm", "-f", *ids)
    shutil.rmtree(root, ignore_errors=True)


def ok(out, what: str) -> str:
    assert out.returncode == 0, f"{what}: {harness.explain(out)} ({DOCS})"
    return out.stdout


def inspect_image(mdr, name: str) -> dict:
    return json.loads(ok(mdr("image", "inspect", name), f"image inspect {name}"))[0]


def tree(path: str) -> dict[str, str]:
    """Every file under `path` with a digest of its content (or its link target): a fingerprint."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            real = os.path.join(dirpath, name)
            if os.path.islink(real):
                found[os.path.relpath(real, path)] = "-> " + os.readlink(real)
            elif os.path.isfile(real):
                with open(real, "rb") as f:
                    found[os.path.relpath(real, path)] = hashlib.sha256(f.read()).hexdigest()
            else:
                found[os.path.relpath(real, path)] = f"mode {os.lstat(real).st_mode:o}"
    return found


SCRIPT = "echo new > /md-new && echo more >> /etc/passwd && rm /bin/vi && mkdir -p /srv/www && echo hi > /srv/www/index"


def test_commit_makes_a_new_image_and_leaves_the_old_one_alone(mdr):
    harness.need_root()
    ok(mdr("run", "--name", "md-commit-a", "busybox", "sh", "-c", SCRIPT), "the container that changes files")
    base = inspect_image(mdr, "busybox")
    layers_before = {d: tree(d) for d in base["GraphDriver"]["Data"].values()}
    blobs = os.path.join(mdr.root, "images", "blobs", "sha256")
    blobs_before = {name: os.path.getsize(os.path.join(blobs, name)) for name in os.listdir(blobs)}

    out = mdr("commit", "-m", "md: a message", "-a", "Md Author <md@example.com>", "md-commit-a", "md-committed:v1")
    image_id = ok(out, "commit").strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id), f"commit prints the new image's full ID, as Docker: {out.stdout!r}"

    got = mdr("run", "--rm", "md-committed:v1", "sh", "-c", "cat /md-new; tail -n1 /etc/passwd; cat /srv/www/index; ls /bin/vi")
    assert got.stdout == "new\nmore\nhi\n" and "/bin/vi" in got.stderr, (
        f"the new image holds the container's files, and its deletion (a whiteout) too ({EXERCISE}): {harness.explain(got)}")
    old = mdr("run", "--rm", "busybox", "sh", "-c", "ls /md-new; ls /bin/vi; tail -n1 /etc/passwd")
    assert "/md-new" in old.stderr and "/bin/vi\n" in old.stdout and "more" not in old.stdout, (
        f"the image the container came from must be untouched ({DOCS}): {harness.explain(old)}")
    assert {d: tree(d) for d in layers_before} == layers_before, "the parent's unpacked layers changed"
    assert all(os.path.getsize(os.path.join(blobs, n)) == s for n, s in blobs_before.items()), "a parent's blob changed"

    new = inspect_image(mdr, "md-committed:v1")
    assert new["Id"] == image_id and new["RepoTags"] == ["md-committed:v1"], new
    assert new["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"] and len(new["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1, (
        f"the new image is the parent's layers plus one, the container's changes ({EXERCISE}): {new['RootFS']}")
    assert new["Author"] == "Md Author <md@example.com>" and new["Comment"] == "md: a message", (
        f"-a sets the author, -m the history entry's comment ({EXERCISE})")
    assert new["Parent"] == base["Id"], f"the parent is the image the container was run from: {new['Parent']}"
    assert new["Config"]["Cmd"] == ["sh", "-c", SCRIPT], (
        f"as in Docker, the new image's Config is the container's, so its Cmd is the container's command: {new['Config']}")
    assert not any(e.startswith("HOSTNAME=") for e in new["Config"].get("Env", [])), \
        f"the engine's per-container variables (HOSTNAME) are not the image's: {new['Config']}"


def test_the_layer_is_a_changeset_with_a_whiteout_and_its_diff_id(mdr):
    """The layer blob's digest names the gzip'ed bytes; the diff_id in the config names the tar."""
    harness.need_root()
    ok(mdr("run", "--name", "md-commit-b", "busybox", "sh", "-c", "rm /bin/vi && echo x > /md-x"), "run")
    image_id = ok(mdr("commit", "md-commit-b", "md-layer:1"), "commit").strip()
    blobs = os.path.join(mdr.root, "images", "blobs", "sha256")
    with open(os.path.join(blobs, image_id[7:])) as f:
        config = json.load(f)
    index = json.load(open(os.path.join(mdr.root, "images", "index.json")))
    entry = next(e for e in index["manifests"] if e.get("annotations", {}).get("org.opencontainers.image.ref.name", "").endswith("md-layer:1"))
    manifest = json.load(open(os.path.join(blobs, entry["digest"][7:])))
    layer = manifest["layers"][-1]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", f"a gzip'ed OCI layer: {layer}"
    data = open(os.path.join(blobs, layer["digest"][7:]), "rb").read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"] and len(data) == layer["size"]
    tar = gzip.decompress(data)
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == config["rootfs"]["diff_ids"][-1], (
        f"the config's diff_id is the digest of the *uncompressed* tar ({EXERCISE})")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        names = [m.name for m in t.getmembers()]
    assert "bin/.wh.vi" in names and "md-x" in names, f"the deletion travels as a whiteout file ({DOCS}): {names}"
    step = config["history"][-1]
    assert step["created_by"] == "sh -c rm /bin/vi && echo x > /md-x" and "empty_layer" not in step, (
        f"the history entry names the container's command ({EXERCISE}): {step}")


def test_changes_take_effect_and_nothing_changed_adds_no_layer(mdr):
    harness.need_root()
    ok(mdr("run", "--name", "md-commit-c", "busybox", "true"), "run")
    changes = ["CMD echo $MD_GREETING from $(pwd)", "ENV MD_GREETING=hello MD_OTHER=\"two words\"",
               "WORKDIR /srv", "WORKDIR data", "LABEL md.label=yes", "EXPOSE 8080", "USER 0:0"]
    args = [arg for change in changes for arg in ("-c", change)]
    ok(mdr("commit", *args, "md-commit-c", "md-changed"), "commit -c")
    out = mdr("run", "--rm", "md-changed")
    assert out.stdout == "hello from /srv/data\n", (
        f"-c CMD (shell form), ENV and WORKDIR (relative to the one before) must reach the config ({DOCS}): {harness.explain(out)}")
    new, base = inspect_image(mdr, "md-changed"), inspect_image(mdr, "busybox")
    config = new["Config"]
    assert config["Cmd"] == ["/bin/sh", "-c", "echo $MD_GREETING from $(pwd)"] and "MD_OTHER=two words" in config["Env"], config
    assert config["Labels"] == {"md.label": "yes"} and config["ExposedPorts"] == {"8080/tcp": {}} and config["User"] == "0:0", config
    assert new["RootFS"]["Layers"] == base["RootFS"]["Layers"], (
        f"a container that changed nothing adds no layer, as Docker ({EXERCISE}): {new['RootFS']}")
    history = ok(mdr("history", "--format", "{{.Size}}|{{.CreatedBy}}", "md-changed"), "history").splitlines()
    assert history[0] == "0B|true", f"its history entry is an empty layer of 0B, made by `true`: {history}"


def test_commit_a_running_container_pauses_it_and_lets_it_run_on(mdr):
    harness.need_root()
    ok(mdr("run", "-d", "--name", "md-commit-d", "busybox", "sh", "-c", "echo up > /md-up; exec sleep 30"), "run -d")
    harness.wait_until(lambda: "A /md-up" in mdr("diff", "md-commit-d").stdout, "the container to write /md-up")
    ok(mdr("commit", "md-commit-d", "md-live"), "commit of a running container")
    ok(mdr("commit", "--pause=false", "md-commit-d"), "commit --pause=false (a Go bool flag's value after =)")
    state = json.loads(ok(mdr("inspect", "md-commit-d"), "inspect"))[0]["State"]
    assert state["Running"] and not state["Paused"], f"after the commit it runs on, unpaused ({DOCS}): {state}"
    out = mdr("run", "--rm", "md-live", "cat", "/md-up")
    assert out.stdout == "up\n", harness.explain(out)


def test_what_cannot_be_committed_is_one_line(mdr, rootfs):
    harness.need_root()
    ok(mdr("run", "--name", "md-commit-e", "--rootfs", rootfs, "--", "true"), "run --rootfs")
    ok(mdr("run", "--name", "md-commit-f", "busybox", "true"), "run busybox")
    before = ok(mdr("images", "-aq", "--no-trunc"), "images")
    for args, words in ((["md-commit-e", "md-x"], "--rootfs"), (["md-commit-f", "MD-Upper"], "lowercase"),
                        (["-c", "RUN echo hi", "md-commit-f"], "run is not a valid change command"),
                        (["md-nothing-here"], "No such container")):
        out = mdr("commit", *args)
        assert out.returncode == 125 and out.stderr.count("\n") == 1 and words in out.stderr, (
            f"`commit {' '.join(args)}` is refused in one line saying {words!r}: {harness.explain(out)}")
    assert ok(mdr("images", "-aq", "--no-trunc"), "images") == before, "a refused commit leaves no image behind"


# -- -c/--change, API level ---------------------------------------------------------------------

@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), min_size=1, max_size=4))
def test_exec_form_is_taken_as_written(words):
    for keyword, field in (("CMD", "Cmd"), ("ENTRYPOINT", "Entrypoint")):
        got = apply_changes({}, [f"{keyword} {json.dumps(words)}"])[field]
        assert got == words, f"{keyword} with a JSON array is the exec form, word for word ({DOCS}): {got}"


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1).filter(lambda t: not t.startswith("[")))
def test_shell_form_runs_through_sh(text):
    got = apply_changes({"Cmd": ["old"]}, [f"ENTRYPOINT {text}"])
    assert got["Entrypoint"] == ["/bin/sh", "-c", text], f"the shell form is /bin/sh -c TEXT ({DOCS}): {got}"
    assert got["Cmd"] is None, "as in a Dockerfile, a new ENTRYPOINT drops a Cmd this commit did not set"


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k != "PATH"),
                       st.text(st.characters(whitelist_categories=("L", "N")), max_size=8), min_size=1))
def test_env_pairs(pairs):
    line = "ENV " + " ".join(f'{k}="{v}"' for k, v in pairs.items())
    env = apply_changes({"Env": ["PATH=/bin"]}, [line])["Env"]
    assert env == ["PATH=/bin"] + [f"{k}={v}" for k, v in pairs.items()], f"{line!r} -> {env}"
