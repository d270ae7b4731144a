"""Chapter 07: docker-py (the `docker` package on PyPI, the Docker SDK for Python) as a client of
our daemon. It speaks the Engine API itself, with its own HTTP code (requests over a unix socket),
so it checks our answers' shapes a second way: JSON fields it reads, the 8-byte log frames it
demultiplexes, the streams of pull and build. See docs/07-daemon.md#docker-py.
"""

import importlib
import io
import tarfile

import docker as docker_py
import pytest


registries = importlib.import_module("chapters.03.registries")
DOCS = "docs/07-daemon.md"


@pytest.fixture(scope="module")
def registry():
    with registries.open_registry() as r:
        yield r


@pytest.fixture
def client(daemon):
    """docker-py's client of our daemon, with busybox:latest in the daemon's store."""
    c = docker_py.DockerClient(base_url=daemon.host, timeout=30)
    c.images.pull("busybox", tag="latest")  # built from the host's busybox, as `minidocker run` does offline
    yield c
    for container in c.containers.list(all=True):
        container.remove(force=True)
    c.close()


def test_run_attached_and_detached(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], network_mode="none",
                                stderr=True, remove=True)
    assert sorted(out.splitlines()) == [b"err", b"out"], \
        f"containers.run() without detach returns the logs (create, start, wait, logs, remove): {out!r} (see {DOCS}#docker-py)"
    c = client.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.3; echo two; sleep 30"],
                              network_mode="none", detach=True, name="md-s2-py")
    assert c.status in ("created", "running") and client.containers.get("md-s2-py").id == c.id
    lines = []
    for chunk in c.logs(stream=True, follow=True):  # docker-py splits the 8-byte frames itself
        lines += chunk.decode().splitlines()
        if "two" in lines:
            break
    assert lines == ["one", "two"], f"logs(stream=True) should follow the output as it comes: {lines} (see {DOCS}#docker-py)"
    code, output = c.exec_run(["sh", "-c", "echo $((6*7)); exit 3"])
    assert (code, output) == (3, b"42\n"), f"exec_run's exit code and output: {(code, output)} (see {DOCS}#docker-py)"
    c.remove(force=True)


def test_images_push_pull_build(client, registry):
    repo = f"{registry.host}/md-s2/py"
    assert client.images.get("busybox").tag(repo, "1"), "Image.tag() answers True on 201"
    events = list(client.images.push(repo, tag="1", stream=True, decode=True))
    assert not [e for e in events if "error" in e], f"push: {events}"
    assert any(e.get("aux", {}).get("Digest", "").startswith("sha256:") for e in events), \
        f"a push ends with an aux message carrying the digest: {events[-2:]} (see {DOCS}#pull-progress)"
    client.images.remove(f"{repo}:1")
    pulled = client.images.pull(repo, tag="1")
    assert f"{repo}:1" in pulled.tags, f"images.pull() reads the pulled image back by name: {pulled.tags}"
    assert pulled.id == client.images.get("busybox").id, "the same image came back from the registry"
    client.images.remove(f"{repo}:1")

    dockerfile = b'FROM busybox\nRUN echo built > /f\nCMD ["cat", "/f"]\n'
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    image, logs = client.images.build(fileobj=context, custom_context=True, tag="md-s2/pybuilt:1",
                                      network_mode="none", labels={"md": "s2"})
    assert "md-s2/pybuilt:1" in image.tags and image.labels == {"md": "s2"}, \
        f"images.build() finds the image by the aux message's ID: {image.tags} {image.labels} (see {DOCS}#build)"
    logs = list(logs)
    assert any("Step 2/4 : RUN" in line.get("stream", "") for line in logs), f"the build's log: {logs}"
    out = client.containers.run("md-s2/pybuilt:1", network_mode="none", remove=True)
    assert out == b"built\n", f"the built image's RUN and CMD: {out!r}"
    client.images.remove("md-s2/pybuilt:1")


def test_networks_and_volumes(client):
    net = client.networks.create("md-s2-pynet", labels={"md": "s2"})
    volume = client.volumes.create("md-s2-pyvol", labels={"md": "s2"})
    try:
        c = client.containers.run("busybox", ["sleep", "30"], detach=True, network_mode="none",
                                  volumes={"md-s2-pyvol": {"bind": "/data", "mode": "rw"}})
        other = client.containers.run("busybox", ["sleep", "30"], detach=True, network="bridge")
        net.connect(other, aliases=["web"])
        net.reload()
        assert [x.id for x in net.containers] == [other.id], \
            f"network.connect() then reload(): the network's Containers: {net.attrs['Containers']} (see {DOCS}#networks-and-volumes)"
        assert [n.name for n in client.networks.list(filters={"label": "md=s2"})] == ["md-s2-pynet"]
        assert [v.name for v in client.volumes.list(filters={"label": "md=s2"})] == ["md-s2-pyvol"], \
            f"volumes.list(filters=) over {{'Volumes': [...]}} (see {DOCS}#networks-and-volumes)"
        assert c.exec_run(["sh", "-c", "echo x > /data/f && cat /data/f"]) == (0, b"x\n")
        net.disconnect(other)
        c.remove(force=True)
        other.remove(force=True)
    finally:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        net.remove()
        volume.remove()
    assert not client.volumes.list(filters={"name": "md-s2-pyvol"}), "volume.remove()"
