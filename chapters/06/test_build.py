"""Chapter 06: `build` as Docker's classic builder (docs/06-build.md): each step an image, RUN in a
container, COPY/ADD as layers written from the context, metadata steps as empty-layer history
entries; multi-stage builds; ARG scoping; a failing RUN. Black-box through the CLI, each test in a
store of its own; the built images are run and inspected. The COPY layer's copy at API level."""

import importlib
import io
import os
import stat
import tarfile

import harness

lab = importlib.import_module("chapters.06.buildlab")
mdr = lab.mdr  # the fixture
DOCS = lab.DOCS

DOCKERFILE = """\
FROM busybox
LABEL org.example.kind="a test" version=1
ENV APP=/srv/app GREETING="hello world"
WORKDIR $APP
COPY hello.txt data/ ./
RUN echo "$GREETING from $(pwd)" > made.txt && cat hello.txt
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["env", "-u", "UNSET"]
CMD cat made.txt hello.txt
EXPOSE 8080 53/udp
VOLUME /srv/data
USER 1000:1000
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=2 CMD test -f made.txt
"""


def test_a_dockerfile_becomes_an_image_one_step_at_a_time(mdr, tmp_path):
    harness.need_root()
    ctx = lab.context(tmp_path, {"Dockerfile": DOCKERFILE, "hello.txt": "hi from the context\n",
                                 "data/one": "1\n", "data/sub/two": "2\n"})
    out = lab.build(mdr, ctx, "-t", "md-built:v1", "-t", "md-built:latest")
    lines = out.splitlines()
    assert lines[0].startswith("Sending build context to Docker daemon  ") and lines[0].endswith("kB"), (
        f"the client says first how much context it sends, as the docker CLI: {lines[0]!r} ({DOCS}#output)")
    found = lab.steps(out)
    assert [s["text"] for s in found] == [line for line in DOCKERFILE.splitlines()], (
        f"one 'Step N/M : INSTRUCTION' per instruction, as written: {[s['text'] for s in found]} ({DOCS}#output)")
    assert all(s["of"] == 14 and s["id"] for s in found), f"every step ends with ' ---> <id>':\n{out} ({DOCS}#output)"
    run_step = found[5]
    container = run_step["lines"][0].removeprefix(" ---> Running in ")
    assert len(container) == 12 and run_step["lines"][1:] == [
        "hi from the context", f"Removing intermediate container {container}", f" ---> {run_step['id']}"], (
        f"RUN runs a container, streams its output, removes it: {run_step['lines']} ({DOCS}#output)")
    assert not any("Running in" in line for s in found if s is not run_step for line in s["lines"]), (
        f"only RUN runs a container: COPY and WORKDIR write their layer from files ({DOCS}#copy-and-add)")
    image_id = lab.built_id(out)
    assert lines[-2:] == ["Successfully tagged md-built:v1", "Successfully tagged md-built:latest"], lines[-3:]
    assert found[-1]["id"] == image_id

    # What the image holds, and how it runs.
    run = mdr("run", "--rm", "md-built:v1")
    assert run.stdout == "hello world from /srv/app\nhi from the context\n", (
        f"ENTRYPOINT + CMD from the Dockerfile, WORKDIR the ENV's $APP: {harness.explain(run)} {run.stdout!r} ({DOCS}#metadata-steps)")
    listing = mdr("run", "--rm", "--entrypoint", "", "md-built:v1", "sh", "-c",
                  "ls -n /srv/app | sort -k9 | awk '{print $1, $3, $9}'; cat /srv/app/sub/two")
    assert listing.stdout.split("\n")[1:] == ["-rw-r--r-- 0 hello.txt", "-rw-r--r-- 0 made.txt", "-rw-r--r-- 0 one",
                                              "drwxr-xr-x 0 sub", "2", ""], (
        f"COPY a file and a directory's contents into ./ (the WORKDIR), owned by root: {listing.stdout!r} ({DOCS}#copy-and-add)")

    config = lab.inspect(mdr, "md-built:v1")["Config"]
    expected = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP=/srv/app",
                "GREETING=hello world"],
        "Labels": {"org.example.kind": "a test", "version": "1"},
        "WorkingDir": "/srv/app", "Shell": ["/bin/sh", "-ec"],
        "Entrypoint": ["env", "-u", "UNSET"],
        "Cmd": ["/bin/sh", "-ec", "cat made.txt hello.txt"],  # the shell form, run by the SHELL of its time
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Volumes": {"/srv/data": {}},
        "User": "1000:1000", "StopSignal": "SIGINT",
        "Healthcheck": {"Test": ["CMD-SHELL", "test -f made.txt"], "Interval": 30_000_000_000, "Retries": 2},
    }
    assert {k: config.get(k) for k in expected} == expected, (
        f"the image's Config is what Docker's classic builder makes of this Dockerfile: {config} ({DOCS}#metadata-steps)")

    full = lab.image_config(mdr, image_id)
    history = full["history"][1:]  # after busybox's own
    assert [h.get("empty_layer", False) for h in history] == [True, True, False, False, False] + [True] * 8, (
        f"WORKDIR (a new directory), COPY and RUN add layers; every other step only an empty_layer "
        f"history entry: {history} ({DOCS}#metadata-steps)")
    assert history[0]["created_by"] == '/bin/sh -c #(nop)  LABEL org.example.kind=a test version=1', history[0]
    assert history[3]["created_by"].startswith("/bin/sh -c #(nop) COPY multi:") and history[3]["created_by"].endswith(" in ./ "), history[3]
    assert history[4]["created_by"] == '/bin/sh -c echo "$GREETING from $(pwd)" > made.txt && cat hello.txt', history[4]
    assert history[7]["created_by"] == '/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "cat made.txt hello.txt"]', history[7]
    assert len(full["rootfs"]["diff_ids"]) == 4

    assert mdr("ps", "-aq").stdout == "", f"no container is left after a build ({DOCS}#output)"
    dangling = mdr("images", "-a", "--filter", "dangling=true", "-q").stdout.split()
    assert len(dangling) == 12, (
        f"each step's image stays, unnamed (what the cache finds next time): {dangling} ({DOCS}#the-cache)")


def test_stages_copy_from_each_other_and_target_stops_early(mdr, tmp_path):
    harness.need_root()
    ctx = lab.context(tmp_path, {"Dockerfile": """\
FROM busybox AS builder
RUN mkdir -p /out && echo built > /out/artifact && chown 7:8 /out/artifact
FROM builder AS tested
LABEL stage=tested
FROM busybox
COPY --from=builder /out/artifact /app/
COPY --from=1 --chown=5:6 /out/artifact /app/renamed
LABEL stage=final
"""})
    out = lab.build(mdr, ctx, "-t", "md-stages")
    run = mdr("run", "--rm", "md-stages", "sh", "-c", "cat /app/artifact; stat -c '%u:%g %n' /app/artifact /app/renamed")
    assert run.stdout == "built\n7:8 /app/artifact\n5:6 /app/renamed\n", (
        f"COPY --from a stage, by name and by number: its files and (without --chown) their owners: "
        f"{harness.explain(run)} {run.stdout!r} ({DOCS}#multi-stage)")
    final = lab.image_config(mdr, "md-stages")
    assert len(final["rootfs"]["diff_ids"]) == 3 and final["config"]["Labels"] == {"stage": "final"}, (
        f"the result is the last stage: busybox and its two COPY layers, nothing of the builder's ({DOCS}#multi-stage)")
    assert "Using cache" not in out

    target = lab.build(mdr, ctx, "--target", "tested", "-q")
    tested = lab.image_config(mdr, target.strip())
    assert tested["config"]["Labels"] == {"stage": "tested"} and len(tested["rootfs"]["diff_ids"]) == 2, (
        f"--target tested: the build ends with that stage, a FROM of the stage before ({DOCS}#multi-stage)")
    assert target.strip().startswith("sha256:") and len(target.split()) == 1, f"-q prints only the ID: {target!r}"


def test_build_args_are_scoped_as_docker_scopes_them(mdr, tmp_path):
    harness.need_root()
    ctx = lab.context(tmp_path, {"Dockerfile": """\
ARG BASE=busybox
ARG WHO=meta
FROM $BASE AS first
ARG WHO
ARG V=default
ENV SHADOWED=env
ARG SHADOWED=arg
LABEL who=$WHO v=$V shadowed=$SHADOWED base=x$BASE
RUN echo "run sees V=$V" > /v
FROM busybox
LABEL v=x$V
"""})
    out = lab.build(mdr, ctx, "-t", "md-args", "--build-arg", "V=given", "--build-arg", "UNUSED=1", "--target", "first")
    labels = lab.inspect(mdr, "md-args")["Config"]["Labels"]
    assert labels == {"who": "meta", "v": "given", "shadowed": "env", "base": "x"}, (
        f"ARG before FROM is for FROM lines (redeclared, ARG WHO takes its value); --build-arg beats a "
        f"default; ENV beats ARG: {labels} ({DOCS}#build-args)")
    run = mdr("run", "--rm", "md-args", "sh", "-c", "cat /v; env | grep -c '^V=' || true")
    assert run.stdout == "run sees V=given\n0\n", (
        f"a RUN sees the args in its environment; the image's Env never holds them: {run.stdout!r} ({DOCS}#build-args)")
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in out, out

    full = lab.build(mdr, ctx, "-q", "--build-arg", "V=given")
    assert lab.inspect(mdr, full.strip())["Config"]["Labels"] == {"v": "x"}, (
        f"a new stage forgets the args of the one before ({DOCS}#build-args)")


def test_a_failing_run_stops_the_build_and_leaves_nothing_running(mdr, tmp_path):
    harness.need_root()
    ctx = lab.context(tmp_path, {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo before; exit 3\nLABEL never=reached\n"})
    out = mdr("build", "-t", "md-failed", ctx)
    assert out.returncode == 3, f"the build fails with the RUN's exit code: {harness.explain(out)} ({DOCS}#output)"
    assert "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3" in out.stderr, out.stderr
    assert "before" in out.stdout and "Step 4/4" not in out.stdout, out.stdout
    assert mdr("ps", "-aq").stdout == "", f"the failed step's container is removed too ({DOCS}#output)"
    assert mdr("image", "inspect", "md-failed").returncode != 0, "a failed build names no image"


def test_onbuild_add_and_stdin(mdr, tmp_path):
    harness.need_root()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("pkg/a.txt", b"A\n"), ("pkg/b.txt", b"B\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ctx = lab.context(tmp_path, {"Dockerfile": "FROM busybox\nONBUILD ADD stuff.tgz /opt/\nONBUILD LABEL child=yes\n",
                                 "stuff.tgz": archive.getvalue(), "plain.txt": "p\n"})
    lab.build(mdr, ctx, "-t", "md-onbuild-base")
    assert lab.inspect(mdr, "md-onbuild-base")["Config"]["OnBuild"] == ["ADD stuff.tgz /opt/", "LABEL child=yes"]

    child = mdr("build", "-t", "md-onbuild-child", "-f", "-", ctx, input="FROM md-onbuild-base\nADD plain.txt /opt/\n")
    out = lab.ok(child, "build -f - (the Dockerfile on stdin)")
    assert "# Executing 2 build triggers" in out, out
    config = lab.inspect(mdr, "md-onbuild-child")["Config"]
    assert config.get("OnBuild") in (None, []) and config["Labels"] == {"child": "yes"}, (
        f"the base's triggers ran first, and are not inherited further: {config} ({DOCS}#onbuild)")
    run = mdr("run", "--rm", "md-onbuild-child", "sh", "-c", "cat /opt/pkg/a.txt /opt/pkg/b.txt /opt/plain.txt")
    assert run.stdout == "A\nB\np\n", f"ADD unpacks a local tar, copies a plain file: {run.stdout!r} ({DOCS}#copy-and-add)"

    url = mdr("build", "-f", "-", ctx, input="FROM busybox\nADD http://example.com/x /x\n")
    assert url.returncode == 125 and url.stderr.count("\n") == 1 and "ADD" in url.stderr, (
        f"ADD of a URL is refused in one line (no network here): {harness.explain(url)}")


def test_copy_tree_keeps_modes_times_and_links(tmp_path):
    """The copy of exercise ex-06-copy-layer, at API level."""
    harness.need_root()
    from minidocker.build import layer

    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(src / "bin" / "tool", 0o750)
    os.symlink("bin/tool", src / "link")
    os.chmod(src / "bin", 0o711)
    os.utime(src / "bin" / "tool", ns=(1_000_000_000, 1_500_000_000_000_000_000))
    os.utime(src / "bin", ns=(1_000_000_000, 1_600_000_000_000_000_000))
    os.chown(src / "bin" / "tool", 1234, 1234)
    layer.copy_tree(str(src), str(tmp_path / "staged"), (0, 0))
    staged = tmp_path / "staged"
    tool, bindir = os.lstat(staged / "bin" / "tool"), os.lstat(staged / "bin")
    where = f"({DOCS}#ex-06-copy-layer)"
    assert (staged / "bin" / "tool").read_text() == "#!/bin/sh\n", f"the file's bytes are copied {where}"
    assert stat.S_IMODE(tool.st_mode) == 0o750 and stat.S_IMODE(bindir.st_mode) == 0o711, f"modes are kept {where}"
    assert tool.st_uid == 0 and tool.st_gid == 0, f"the owner is the one asked for (root for the context) {where}"
    assert os.readlink(staged / "link") == "bin/tool", f"a symlink stays a symlink {where}"
    assert tool.st_mtime_ns == 1_500_000_000_000_000_000 and bindir.st_mtime_ns == 1_600_000_000_000_000_000, (
        f"times are kept, a directory's too (set after its children are written) {where}")
    layer.copy_tree(str(src / "bin" / "tool"), str(tmp_path / "kept"), None)
    assert os.lstat(tmp_path / "kept").st_uid == 1234, f"owner None keeps the source's owner (COPY --from) {where}"
