"""Chapter 03: the image commands as Docker has them: images, tag, rmi (untag versus delete),
image inspect, history, image prune (docs/03-images.md#image-commands).

Black-box through the CLI, each test in a store of its own."""

import json
import os
import re
import shutil

import pytest
from hypothesis import given, strategies as st

import harness
from minidocker.container.formatting import human_size

DOCS = "docs/03-images.md#image-commands"
RMI = "docs/03-images.md#rmi"


@pytest.fixture
def mdr(tmp_path):
    """The CLI in a store of its own, with busybox:latest in it; its containers removed after."""
    harness.need_root()
    root = str(tmp_path / "md-root")
    env = {"MINIDOCKER_ROOT": root}

    def run(*args, **kwargs):
        return harness.run_cli(*args, env=env, **kwargs)

    run.root = root
    ok(run("run", "--rm", "busybox", "true"), "run busybox (builds the embedded image)")
    yield run
    ids = run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run("rm", "-f", *ids)
    shutil.rmtree(root, ignore_errors=True)


def ok(out, what: str) -> str:
    assert out.returncode == 0, f"{what}: {harness.explain(out)} ({DOCS})"
    return out.stdout


def image_id(mdr, name: str) -> str:
    return json.loads(ok(mdr("image", "inspect", name), f"image inspect {name}"))[0]["Id"]


def layer_dirs(mdr) -> set[str]:
    return set(os.listdir(os.path.join(mdr.root, "layers"))) - {"ingest"}


def blobs(mdr) -> set[str]:
    return set(os.listdir(os.path.join(mdr.root, "images", "blobs", "sha256")))


def committed(mdr, name: str | None, script: str = "echo x > /md-file") -> str:
    """An image with one more layer than busybox, from a container that is removed again."""
    ok(mdr("run", "--name", "md-maker", "busybox", "sh", "-c", script), "run")
    new = ok(mdr("commit", "md-maker", *([name] if name else [])), "commit").strip()
    ok(mdr("rm", "md-maker"), "rm")
    return new


def test_images_lists_as_docker_does(mdr):
    busybox = image_id(mdr, "busybox")
    ok(mdr("tag", "busybox", "localhost:5000/md/tools:v1"), "tag")
    dangling = committed(mdr, None)
    lines = ok(mdr("images"), "images").splitlines()
    assert re.fullmatch(r"REPOSITORY +TAG +IMAGE ID +CREATED +SIZE", lines[0]), f"Docker's columns: {lines[0]!r}"
    rows = [line.split() for line in lines[1:]]
    assert rows[0][:3] == ["<none>", "<none>", dangling[7:19]], (
        f"newest first; an image without a name is <none> <none>, its ID cut to 12 digits ({DOCS}): {lines}")
    assert {tuple(r[:3]) for r in rows[1:]} == {("busybox", "latest", busybox[7:19]),
                                                ("localhost:5000/md/tools", "v1", busybox[7:19])}, (
        f"one row per name, in the familiar form (no docker.io/library/): {lines}")
    assert re.fullmatch(r"\d+(\.\d+)?[kMG]?B", rows[1][-1]) and " ago" in lines[1], f"CREATED '… ago', SIZE in decimal units: {lines}"

    quiet = ok(mdr("images", "-q"), "images -q").split()
    assert quiet == [dangling[7:19]] + [busybox[7:19]] * 2, f"-q: one ID per row: {quiet}"
    assert ok(mdr("images", "-q", "--no-trunc", "--filter", "dangling=true"), "images -f dangling=true").split() == [dangling]
    named = set(ok(mdr("images", "--format", "{{.Repository}}:{{.Tag}}", "-f", "dangling=false"), "images").split())
    assert named == {"busybox:latest", "localhost:5000/md/tools:v1"}, f"dangling=false: the named images: {named}"
    assert ok(mdr("images", "--format", "{{.Repository}}", "busybox"), "images busybox").split() == ["busybox"]
    assert ok(mdr("images", "--format", "{{.Tag}}", "--filter", "reference=*/md/*"), "reference filter").split() == ["v1"], \
        "reference=PATTERN matches as Go's path.Match: * stops at /"

    digests = ok(mdr("images", "--digests", "busybox"), "images --digests").splitlines()
    assert digests[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"], digests
    manifest = json.loads(ok(mdr("image", "inspect", "busybox"), "inspect"))[0]["RepoDigests"][0]
    assert digests[1].split()[2] == manifest.split("@")[1] and manifest.startswith("busybox@sha256:"), (
        f"--digests shows the manifest's digest, which RepoDigests names as busybox@sha256:… ({DOCS}): {digests}")
    bad = mdr("images", "--filter", "dangling=maybe")
    assert bad.returncode == 125 and "invalid filter" in bad.stderr, harness.explain(bad)


def test_tag_untag_and_delete(mdr):
    busybox = image_id(mdr, "busybox")
    ok(mdr("tag", "busybox", "md-second:1"), "tag")
    assert image_id(mdr, "md-second:1") == busybox, "a tag is one more name for the same image (same ID)"

    out = mdr("rmi", busybox[7:19])
    assert out.returncode == 125 and "(must be forced) - image is referenced in multiple repositories" in out.stderr, (
        f"rmi by ID of an image with several names is refused without -f, as Docker ({RMI}): {harness.explain(out)}")
    assert ok(mdr("rmi", "md-second:1"), "rmi NAME") == "Untagged: md-second:1\n", (
        f"removing one of two names only untags ({RMI})")
    assert image_id(mdr, "busybox") == busybox, "the image stays while another name points to it"

    new = committed(mdr, "md-third")
    before_layers, before_blobs = layer_dirs(mdr), blobs(mdr)
    out = ok(mdr("rmi", "md-third"), "rmi the last name")
    assert out.splitlines() == ["Untagged: md-third:latest", f"Deleted: {new}"], f"untag, then delete ({RMI}): {out!r}"
    assert len(before_layers - layer_dirs(mdr)) == 1 and layer_dirs(mdr) < before_layers, (
        f"the deleted image's own unpacked layer is freed, busybox's stays ({RMI})")
    assert {new[7:]} <= before_blobs - blobs(mdr) and len(before_blobs - blobs(mdr)) == 3, (
        f"its config, manifest and layer blobs are freed, nothing else ({RMI})")
    gone = mdr("image", "inspect", "md-third")
    assert gone.returncode != 0 and "No such image: md-third:latest" in gone.stderr, harness.explain(gone)


def test_rmi_is_refused_while_a_container_uses_the_image(mdr):
    ok(mdr("create", "--name", "md-user", "busybox", "true"), "create")
    busybox = image_id(mdr, "busybox")
    out = mdr("rmi", "busybox")
    assert out.returncode == 125 and re.search(
        r'conflict: unable to remove repository reference "busybox" \(must force\) - container [0-9a-f]{12} '
        rf"is using its referenced image {busybox[7:19]}", out.stderr), f"Docker's refusal ({RMI}): {harness.explain(out)}"
    assert ok(mdr("rmi", "-f", "busybox"), "rmi -f") == "Untagged: busybox:latest\n", (
        f"-f untags it; the image stays while a container uses it ({RMI})")
    assert ok(mdr("images", "-aq", "--no-trunc"), "images -a").split() == [busybox], "it stays, as <none>"
    prune = ok(mdr("image", "prune", "-f"), "image prune")
    assert prune == "Total reclaimed space: 0B\n", f"an image a container uses is no garbage: {prune!r}"
    ok(mdr("rm", "md-user"), "rm")
    prune = ok(mdr("image", "prune", "-f"), "image prune").splitlines()
    assert prune[:2] == ["Deleted Images:", f"deleted: {busybox}"] and prune[-1].startswith("Total reclaimed space: "), prune
    assert layer_dirs(mdr) == set() and blobs(mdr) == set(), "prune freed every blob and unpacked layer of the image"


def test_image_prune_asks_first_and_all_removes_unused(mdr):
    committed(mdr, None)
    answer = mdr("image", "prune", input="n\n")
    assert answer.stdout == "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ", (
        f"without -f, Docker asks first: {answer.stdout!r}")
    assert len(ok(mdr("images", "-q", "-f", "dangling=true"), "images").split()) == 1, "an answer other than y deletes nothing"
    out = ok(mdr("image", "prune", input="y\n"), "prune, y")
    assert "deleted: sha256:" in out and not ok(mdr("images", "-q", "-f", "dangling=true"), "images").split()
    assert ok(mdr("images", "-q"), "images").split(), "a named image is no dangling image"
    out = ok(mdr("image", "prune", "-a", "-f"), "prune -a").splitlines()
    assert out[:2] == ["Deleted Images:", "untagged: busybox:latest"], f"-a removes every unused image: {out}"
    assert not ok(mdr("images", "-aq"), "images").split() and layer_dirs(mdr) == set()


def test_inspect_and_history(mdr):
    new = committed(mdr, "md-hist:1")
    info = json.loads(ok(mdr("image", "inspect", "md-hist:1"), "image inspect"))[0]
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Author", "Config",
                "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata"):
        assert key in info, f"Docker's ImageInspect has {key} ({DOCS}): {sorted(info)}"
    assert info["Id"] == new and info["RepoTags"] == ["md-hist:1"] and info["RootFS"]["Type"] == "layers"
    assert ok(mdr("image", "inspect", "-f", "{{.Id}} {{index .RepoTags 0}}", "md-hist:1"), "-f") == f"{new} md-hist:1\n"

    lines = ok(mdr("history", "md-hist:1"), "history").splitlines()
    assert re.fullmatch(r"IMAGE +CREATED +CREATED BY +SIZE +COMMENT", lines[0]), lines[0]
    assert lines[1].startswith(new[7:19]) and "sh -c echo x > /md-file" in lines[1], (
        f"newest step first, with the image it made and the command that made it ({DOCS}): {lines}")
    assert lines[2].startswith(image_id(mdr, "busybox")[7:19]), f"the step below is busybox's own: {lines}"
    assert ok(mdr("history", "-q", "md-hist:1"), "history -q").split() == [new[7:19], image_id(mdr, "busybox")[7:19]]
    raw = ok(mdr("history", "-H=false", "--format", "{{.Size}}", "md-hist:1"), "history -H=false").split()
    assert all(s.isdigit() for s in raw), f"-H=false prints sizes in bytes: {raw}"


def test_inspect_finds_a_container_first_then_an_image(mdr):
    ok(mdr("create", "--name", "md-both", "busybox"), "create")
    container, image = (json.loads(ok(mdr("inspect", *args), "inspect"))[0]
                        for args in (["md-both"], ["busybox"]))
    assert "State" in container and image["Id"] == image_id(mdr, "busybox"), (
        f"`inspect NAME` is Docker's: a container of that name, else an image ({DOCS})")
    assert ok(mdr("inspect", "--type", "image", "-f", "{{.Id}}", "busybox"), "--type image").strip() == image["Id"]
    nothing = mdr("inspect", "md-nothing")
    assert (nothing.returncode, nothing.stderr.count("\n")) == (1, 1) and "No such object: md-nothing" in nothing.stderr, (
        f"neither: one line and the docker CLI's exit code 1 ({DOCS}): {harness.explain(nothing)}")


# Docker's own examples of its image sizes (go-units HumanSizeWithPrecision(size, 3)).
@pytest.mark.parametrize("size, shown", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1234, "1.23kB"),
                                          (4261550, "4.26MB"), (77800000, "77.8MB"), (1.5e9, "1.5GB")])
def test_size_units(size, shown):
    assert human_size(size) == shown, f"SIZE is written in decimal units with 3 digits, as Docker: {human_size(size)}"


@given(st.integers(min_value=1, max_value=10**15))
def test_size_keeps_three_digits(size):
    text = human_size(size)
    number, unit = re.fullmatch(r"([\d.e+]+)([kMGTP]?B)", text).groups()
    value = float(number) * 1000 ** "BkMGTP".index(unit[0] if unit != "B" else "B")
    assert abs(value - size) <= size * 0.005 + 0.5, f"{size} shown as {text}"
