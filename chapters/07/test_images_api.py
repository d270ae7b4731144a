"""Chapter 07: images, networks and volumes through the real docker CLI, talking to our daemon.

`docker` here is Debian's docker CLI with DOCKER_HOST=unix://… pointing at the `minidocker
daemon` the fixture started; no dockerd runs. The registry is chapter 03's (Debian's
docker-registry on 127.0.0.1). See docs/07-daemon.md#images, #pull-progress, #networks-and-volumes.
"""

import importlib
import json
import os
import pty
import select
import subprocess

import pytest
from hypothesis import given, strategies as st

import harness

registries = importlib.import_module("chapters.03.registries")
DOCS = "docs/07-daemon.md"


@pytest.fixture(scope="module")
def registry():
    with registries.open_registry() as r:
        yield r


@pytest.fixture(scope="module")
def basic_registry():
    with registries.open_registry(auth="basic") as r:
        yield r


def ok(out: subprocess.CompletedProcess, what: str, section: str = "images") -> str:
    assert out.returncode == 0, f"{what}: docker exited {out.returncode}: {out.stderr or out.stdout} (see {DOCS}#{section})"
    return out.stdout


@pytest.fixture
def busybox(docker):
    """busybox:latest in the daemon's store, through the API: POST /images/create builds it from the
    host's busybox, as `minidocker run` does offline. (Per test: the pull test removes it.)"""
    if docker("image", "inspect", "busybox").returncode != 0:
        ok(docker("pull", "busybox"), "docker pull busybox (built here, not downloaded)")
    return "busybox:latest"


def on_a_terminal(argv: list[str], env: dict) -> tuple[int, str]:
    """Run argv with its stdout and stderr on a pty, as a user at a terminal: (exit code, output)."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sub, stderr=sub, env=env)
    os.close(sub)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 30)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        output += data
    os.close(main)
    return proc.wait(10), output.decode(errors="replace")


# --- the progress messages (exercise ex-07-progress) ---------------------------------------------

@given(id=st.text("0123456789abcdef", min_size=12, max_size=12), status=st.sampled_from(["Downloading", "Pushing"]),
       total=st.integers(1, 10**10), data=st.data())
def test_progress_message_with_bytes(id, status, total, data):
    from minidocker.image.progress import message

    current = data.draw(st.integers(0, total))
    got = message(id, status, current, total)
    assert {k: got.get(k) for k in ("status", "id", "progressDetail")} == \
        {"status": status, "id": id, "progressDetail": {"current": current, "total": total}}, \
        f"a message with a byte count carries it in progressDetail, for the client to draw: {got} (see {DOCS}#ex-07-progress)"
    assert got.get("progress", "").startswith("[") and got["progress"].count("=") <= 50, \
        f"'progress' is the bar as Docker draws it, for old clients: {got} (see {DOCS}#ex-07-progress)"


def test_progress_message_without_bytes():
    from minidocker.image.progress import message

    assert message("0123456789ab", "Pull complete") == {"status": "Pull complete", "progressDetail": {},
                                                        "id": "0123456789ab"}, \
        f"a state change without bytes has an empty progressDetail and no bar (see {DOCS}#ex-07-progress)"


# --- images -----------------------------------------------------------------------------------------

def test_images_tag_rmi(docker, busybox):
    ok(docker("tag", "busybox", "md-s2/tagged:1"), "docker tag")
    listing = ok(docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"), "docker images")
    rows = dict(line.split() for line in listing.splitlines())
    assert "md-s2/tagged:1" in rows and rows["md-s2/tagged:1"] == rows["busybox:latest"], \
        f"docker images should list the new tag with busybox's ID (POST /images/{{name}}/tag): {listing} (see {DOCS}#images)"
    inspected = json.loads(ok(docker("image", "inspect", "md-s2/tagged:1"), "docker image inspect"))
    assert "md-s2/tagged:1" in inspected[0]["RepoTags"], f"inspect's RepoTags: {inspected[0]['RepoTags']}"
    history = ok(docker("history", "--format", "{{.ID}}", "busybox"), "docker history")
    assert history.split()[0] == rows["busybox:latest"], f"history's top step is the image itself: {history}"
    removed = ok(docker("rmi", "md-s2/tagged:1"), "docker rmi")
    assert removed.strip() == "Untagged: md-s2/tagged:1", \
        f"another name remains, so rmi only untags (DELETE /images/{{name}}): {removed!r} (see {DOCS}#images)"
    missing = docker("rmi", "md-s2/nothing")
    assert missing.returncode == 1 and "No such image" in missing.stderr, \
        f"a missing image is a 404 the CLI reports: {missing.returncode} {missing.stderr!r} (see {DOCS}#errors)"


def test_save_and_load(docker, busybox, tmp_path):
    archive = tmp_path / "busybox.tar"
    ok(docker("tag", "busybox", "md-s2/saved:1"), "docker tag")
    ok(docker("save", "-o", archive, "md-s2/saved:1"), "docker save (GET /images/get)")
    assert archive.stat().st_size > 100_000, f"the saved archive is only {archive.stat().st_size} bytes"
    ok(docker("rmi", "md-s2/saved:1"), "docker rmi")
    loaded = ok(docker("load", "-i", archive), "docker load (POST /images/load)")
    assert "Loaded image: md-s2/saved:1" in loaded, f"docker load's output: {loaded!r} (see {DOCS}#images)"
    assert "md-s2/saved:1" in ok(docker("images", "--format", "{{.Repository}}:{{.Tag}}"), "docker images")
    missing = docker("save", "-o", tmp_path / "x.tar", "md-s2/nothing")
    assert missing.returncode == 1 and "No such image" in missing.stderr, \
        f"saving a missing image is an error before any tar is sent: {missing.stderr!r} (see {DOCS}#images)"
    ok(docker("rmi", "md-s2/saved:1"), "docker rmi")


def test_push_then_pull_with_progress(docker, daemon, busybox, registry):
    name = f"{registry.host}/md-s2/busybox:1"
    ok(docker("tag", "busybox", name), "docker tag")
    pushed = ok(docker("push", name), "docker push (POST /images/{name}/push)")
    assert "Pushed" in pushed and "1: digest: sha256:" in pushed, \
        f"docker push prints each layer's state and the digest: {pushed!r} (see {DOCS}#pull-progress)"
    ok(docker("rmi", name, "busybox"), "docker rmi")  # the last names: the layers go too
    assert ok(docker("images", "-q"), "docker images").strip() == "", "the store should be empty before the pull"

    code, screen = on_a_terminal(["docker", "pull", name], daemon.env())
    assert code == 0, f"docker pull exited {code}: {screen}"
    # The docker CLI draws the bar itself from progressDetail {current, total}: on a terminal,
    # with cursor movements. None of that is in the daemon's messages.
    for words in ("1: Pulling from md-s2/busybox", "Pulling fs layer", "Pull complete", "Digest: sha256:",
                  f"Status: Downloaded newer image for {name}", "\x1b["):
        assert words in screen, f"docker pull on a terminal should show {words!r}: {screen!r} (see {DOCS}#pull-progress)"
    again = ok(docker("pull", name), "docker pull, a second time")
    assert f"Status: Image is up to date for {name}" in again, f"{again!r}"
    ok(docker("rmi", name), "docker rmi")


def test_pull_errors(docker, registry):
    unknown = docker("pull", f"{registry.host}/md-s2/nothing:1")
    assert unknown.returncode == 1 and "manifest unknown" in unknown.stderr, \
        f"an unknown image is the daemon's error, said once: {unknown.stderr!r} (see {DOCS}#pull-progress)"
    assert "Pulling from" not in unknown.stdout, \
        f"an error before the first layer is an HTTP error, not a 200 stream: {unknown.stdout!r} (see {DOCS}#pull-progress)"


def test_login_then_push_and_pull_with_credentials(docker, daemon, busybox, basic_registry):
    """`docker login` asks the daemon to check the credentials (POST /auth) and keeps them in the
    CLI's own config; each push or pull then sends them in X-Registry-Auth. The daemon keeps none."""
    name = f"{basic_registry.host}/md-s2/private:1"
    ok(docker("tag", "busybox", name), "docker tag")
    refused = docker("push", name)
    assert refused.returncode == 1, f"a push without credentials should fail: {refused.stdout}"
    wrong = docker("login", "-u", registries.USER, "--password-stdin", basic_registry.host, input="wrong\n")
    assert wrong.returncode == 1 and "Login Succeeded" not in wrong.stdout, (
        f"a wrong password is refused by the registry, through the daemon: {wrong.stdout!r} {wrong.stderr!r} (see {DOCS}#images)")
    ok(docker("login", "-u", registries.USER, "--password-stdin", basic_registry.host, input=registries.PASSWORD + "\n"),
       "docker login (POST /auth)", "images")
    try:
        ok(docker("push", name), "docker push with credentials in X-Registry-Auth", "pull-progress")
        ok(docker("rmi", name), "docker rmi")
        ok(docker("pull", name), "docker pull with credentials in X-Registry-Auth", "pull-progress")
    finally:
        docker("logout", basic_registry.host)
    ok(docker("rmi", name), "docker rmi")


def test_build(docker, busybox, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nARG WHO=nobody\nCOPY greeting /greeting\nRUN echo \"from $WHO\" >> /greeting\n"
        'LABEL md.part=s2\nCMD ["cat", "/greeting"]\n')
    (tmp_path / "greeting").write_text("hello\n")
    (tmp_path / ".dockerignore").write_text("secret\n")
    (tmp_path / "secret").write_text("not sent\n")
    built = ok(docker("build", "--network", "none", "--build-arg", "WHO=docker", "-t", "md-s2/built:1", tmp_path),
               "docker build (POST /build)", "build")
    for words in ("Step 1/6 : FROM busybox", "Step 4/6 : RUN", "Successfully built", "Successfully tagged md-s2/built:1"):
        assert words in built, f"docker build should print {words!r} from the {{stream}} messages: {built!r} (see {DOCS}#build)"
    ran = ok(docker("run", "--rm", "--network", "none", "md-s2/built:1"), "docker run of the built image")
    assert ran == "hello\nfrom docker\n", f"the built image's CMD, COPY and RUN: {ran!r} (see {DOCS}#build)"
    quiet = ok(docker("build", "-q", "--network", "none", "--build-arg", "WHO=docker", tmp_path), "docker build -q")
    labels = ok(docker("image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", "md-s2/built:1"), "inspect")
    assert labels.split(" ", 1) == [quiet.strip(), '{"md.part":"s2"}\n'], \
        f"build -q prints the ID (from the aux message); the cache gives the same image: {quiet!r} {labels!r}"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    failed = docker("build", "--network", "none", tmp_path)
    assert failed.returncode == 7 and "returned a non-zero code: 7" in failed.stderr, \
        f"a failing RUN's code is the CLI's exit code (errorDetail.code): {failed.returncode} {failed.stderr!r} (see {DOCS}#build)"
    ok(docker("rmi", "md-s2/built:1"), "docker rmi")


# --- networks and volumes ------------------------------------------------------------------------------

def test_network_create_connect_inspect(docker, busybox):
    ok(docker("network", "create", "md-s2-front"), "docker network create", "networks-and-volumes")
    ok(docker("network", "create", "--subnet", "10.213.250.0/24", "md-s2-back"), "docker network create --subnet")
    try:
        listing = ok(docker("network", "ls", "--filter", "name=md-s2-", "--format", "{{.Name}}"), "docker network ls")
        assert sorted(listing.split()) == ["md-s2-back", "md-s2-front"], f"network ls --filter name=: {listing!r}"
        cid = ok(docker("run", "-d", "--network", "md-s2-front", "--name", "md-s2-web", "busybox", "sleep", "30"),
                 "docker run -d --network").strip()
        ok(docker("network", "connect", "--ip", "10.213.250.7", "md-s2-back", "md-s2-web"), "docker network connect")
        shown = ok(docker("network", "inspect", "md-s2-back", "--format", "{{json .Containers}}"), "network inspect")
        assert cid in json.loads(shown) and json.loads(shown)[cid]["IPv4Address"].startswith("10.213.250.7/"), \
            f"the connected container is in the network's Containers with its --ip: {shown} (see {DOCS}#networks-and-volumes)"
        busy = docker("network", "rm", "md-s2-back")
        assert busy.returncode == 1 and "active endpoints" in busy.stderr, \
            f"a network in use cannot be removed: {busy.stderr!r} (see {DOCS}#networks-and-volumes)"
        ok(docker("network", "disconnect", "md-s2-back", "md-s2-web"), "docker network disconnect")
        ok(docker("rm", "-f", "md-s2-web"), "docker rm -f")
    finally:
        docker("rm", "-f", "md-s2-web")
        docker("network", "rm", "md-s2-front", "md-s2-back")
    missing = docker("network", "inspect", "md-s2-front")
    assert missing.returncode == 1 and "md-s2-front" in missing.stderr, f"{missing.stderr!r}"


def test_volume_create_ls_and_run_with_v(docker, daemon, busybox):
    ok(docker("volume", "create", "--label", "md=s2", "md-s2-data"), "docker volume create", "networks-and-volumes")
    try:
        listing = ok(docker("volume", "ls", "--filter", "label=md=s2", "--format", "{{.Name}} {{.Driver}}"), "volume ls")
        assert listing.split() == ["md-s2-data", "local"], f"volume ls --filter label=: {listing!r}"
        ok(docker("run", "--rm", "--network", "none", "-v", "md-s2-data:/data", "busybox",
                  "sh", "-c", "echo kept > /data/f"), "docker run -v VOLUME:/data")
        read = ok(docker("run", "--rm", "--network", "none", "-v", "md-s2-data:/data:ro", "busybox", "cat", "/data/f"),
                  "docker run -v VOLUME:/data:ro")
        assert read.strip() == "kept", f"a named volume outlives its container: {read!r} (see {DOCS}#networks-and-volumes)"
        status, _, usage = daemon.api("GET", "/system/df")
        volume = [v for v in usage.get("Volumes") or [] if v["Name"] == "md-s2-data"] if status == 200 else []
        assert volume and volume[0]["UsageData"] == {"Size": 5, "RefCount": 0}, (
            f"/system/df: the volume's 5 bytes, used by no container: {status} {usage} (see {DOCS}#system-df)")
        assert "Local Volumes" in ok(docker("system", "df"), "docker system df", "system-df")
    finally:
        ok(docker("volume", "rm", "md-s2-data"), "docker volume rm")
    missing = docker("volume", "inspect", "md-s2-data")
    assert missing.returncode == 1 and "no such volume" in missing.stderr.lower(), f"{missing.stderr!r}"


def test_run_with_published_port(docker, busybox):
    cid = ok(docker("run", "-d", "-p", "127.0.0.1::8080", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"),
             "docker run -d -p", "networks-and-volumes").strip()
    try:
        port = ok(docker("port", cid, "8080"), "docker port").strip()
        assert port.startswith("127.0.0.1:"), f"docker port: {port!r}"
        body = harness.wait_until(lambda: _get(f"http://{port}/hostname"), "the published port to answer")
        assert body.strip(), f"the container's httpd answers through the published port (see {DOCS}#networks-and-volumes)"
    finally:
        docker("rm", "-f", cid)


def _get(url: str):
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=1).read().decode()
    except OSError:
        return None
