"""Chapter 03: pull and push against a real registry (Debian's docker-registry on 127.0.0.1),
with no auth, htpasswd Basic auth and Docker's token auth; and a misbehaving fake registry for
what a real one will not do (corrupt and truncated blobs).

Black-box through the CLI (`pull`, `push`, `login`, `logout`); the store is looked at through
its API. Each test has its own MINIDOCKER_ROOT and its own credentials file.
See docs/03-images.md#pull, #push and #registry-auth.
"""

import base64
import gzip
import importlib
import io
import json
import os
import stat
import tarfile
import urllib.request

import pytest
from hypothesis import given, strategies as st

import harness
from minidocker.image import auth, builtin, digest, layers, layout as layouts, media, pull as pulls
from minidocker.image.progress import Progress

registries = importlib.import_module("chapters.03.registries")
DOCS = "docs/03-images.md"


@pytest.fixture(scope="module")
def registry():
    with registries.open_registry() as r:
        yield r


@pytest.fixture(scope="module")
def basic_registry():
    with registries.open_registry(auth="basic") as r:
        yield r


@pytest.fixture(scope="module")
def token_registry():
    with registries.open_registry(auth="token") as r:
        yield r


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A store of this test's own, and a credentials file of its own."""
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(tmp_path / "config"))
    return layouts.Layout()


def _layer(files: dict) -> tuple[bytes, str]:
    """(gzip blob, diff_id) of a layer holding `files` (name -> bytes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue(), 1), digest.of(out.getvalue())


def _image(store, name: str | None, layer_files: list[dict], architecture: str = "amd64"):
    """Store (and name) an image whose layers hold these files; returns its manifest descriptor."""
    with store.writing():
        blobs = [_layer(f) for f in layer_files]
        config = {"architecture": architecture, "os": "linux", "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": [d for _, d in blobs]}}
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                    "config": store.put_json(config, media.OCI_CONFIG),
                    "layers": [store.put(b, media.OCI_LAYER_GZIP) for b, _ in blobs]}
        descriptor = store.put_json(manifest, media.OCI_MANIFEST)
        if name:
            store.tag(name, descriptor)
    return descriptor


def _forget(store, name: str) -> None:
    """`rmi` through the store's API: the name, the image, its blobs."""
    store.remove(store.image(name).manifest_digest)
    store.collect_garbage()


def _ok(out, what: str):
    assert out.returncode == 0, f"{what} failed: {harness.explain(out)} (see {DOCS}#pull)"
    return out


def _one_line_error(out, *words: str, code: int = 1) -> str:
    err = out.stderr.strip()
    assert out.returncode == code and len(err.splitlines()) == 1 and "Traceback" not in err, \
        f"expected one error line and exit {code}: {harness.explain(out)}"
    for word in words:
        assert word in err, f"the error should say {word!r}: {err}"
    return err


def _nothing_visible(store) -> None:
    assert store.entries() == [], f"a failed pull left a name in index.json: {store.entries()} ({DOCS}#pull)"


# -- push, delete, pull back --------------------------------------------------------------------

def test_push_then_pull_back(registry, store, md):
    name = f"{registry.host}/md/roundtrip"
    _image(store, f"{name}:latest", [{"etc/hello": b"hello from the registry\n"}, {"data": os.urandom(200_000)}])
    before = store.image(name)

    out = _ok(md("push", name), "push")
    assert out.stdout.startswith(f"The push refers to repository [{name}]\n"), out.stdout
    assert out.stdout.count(": Pushed") == 2, f"two layers should be 'Pushed': {out.stdout}"
    assert out.stdout.rstrip().endswith(f"latest: digest: {before.manifest_digest} size: {before.manifest_size}"), \
        f"push ends with Docker's 'TAG: digest: sha256:… size: N' line: {out.stdout} ({DOCS}#push)"
    again = _ok(md("push", name), "second push")
    assert again.stdout.count("Layer already exists") == 2, f"a blob the registry has is not sent again: {again.stdout}"

    _forget(store, name)
    out = _ok(md("pull", name), "pull")
    lines = out.stdout.splitlines()
    assert lines[0] == "latest: Pulling from md/roundtrip", out.stdout
    assert sum(line.endswith(": Pull complete") for line in lines) == 2, out.stdout
    assert "\x1b[" not in out.stdout and "Downloading" not in out.stdout, \
        f"not a terminal: plain state lines, no progress bars or cursor moves: {out.stdout} ({DOCS}#progress)"
    assert lines[-3:] == [f"Digest: {before.manifest_digest}", f"Status: Downloaded newer image for {name}:latest",
                          f"{name}:latest"], out.stdout
    after = store.image(name)
    assert after.id == before.id and after.manifest_digest == before.manifest_digest, \
        "the pulled image is not the pushed one: the manifest must be stored as received"
    top = layers.directories(after)
    assert os.path.isdir(top[-1]), f"pull unpacks the layers, so that run finds them ready ({DOCS}#pull)"
    with open(os.path.join(top[0], "etc", "hello"), "rb") as f:
        assert f.read() == b"hello from the registry\n"

    out = _ok(md("pull", name), "a second pull")
    assert f"Status: Image is up to date for {name}:latest" in out.stdout, out.stdout
    assert _ok(md("pull", "-q", name), "pull -q").stdout == f"{name}:latest\n", "pull -q prints the full name only"


def test_run_an_image_pulled_from_the_registry(registry, store, md):
    name = f"{registry.host}/md/busybox"
    store.tag(f"{name}:latest", builtin.busybox(store).descriptor())
    _ok(md("push", name), "push of the busybox image")
    _forget(store, name)  # and busybox:latest with it: one manifest, two names
    out = md("run", "--rm", name, "echo", "hi")
    assert out.returncode == 0 and out.stdout == "hi\n", \
        f"run pulls a missing image, then runs it from its unpacked layers: {harness.explain(out)} ({DOCS}#pull)"
    assert "Pull complete" in out.stderr and f"Status: Downloaded newer image for {name}:latest" in out.stderr, \
        f"run's pull shows its progress on stderr: {out.stderr}"


def test_push_mounts_blobs_from_another_repository(registry, store, md):
    first, second = f"{registry.host}/md/mount-a", f"{registry.host}/md/mount-b:v1"
    descriptor = _image(store, f"{first}:latest", [{"a": os.urandom(1000)}])
    _ok(md("push", first), "push")
    store.tag(second, descriptor)
    out = _ok(md("push", second), "push under another name")
    assert "Mounted from md/mount-a" in out.stdout, \
        f"a blob of another repository of the registry is mounted, not uploaded again: {out.stdout} ({DOCS}#push)"


def test_unknown_tag_and_unknown_image(registry, store, md):
    err = _one_line_error(md("pull", f"{registry.host}/md/nothing:nope"), "manifest unknown")
    assert f"manifest for {registry.host}/md/nothing:nope not found" in err, err
    _one_line_error(md("push", f"{registry.host}/md/never-made"), "An image does not exist locally")
    _nothing_visible(store)


def test_platform_from_an_index(registry, store, md):
    name = f"{registry.host}/md/multi"
    amd = _image(store, f"{name}:amd64", [{"arch": b"amd64\n"}], "amd64")
    arm = _image(store, f"{name}:arm64", [{"arch": b"arm64\n"}], "arm64")
    _ok(md("push", f"{name}:amd64"), "push")
    _ok(md("push", f"{name}:arm64"), "push")
    index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
        dict(arm, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        dict(amd, platform={"os": "linux", "architecture": "amd64"})]}
    data = json.dumps(index).encode()
    request = urllib.request.Request(f"http://{registry.host}/v2/md/multi/manifests/latest", data=data, method="PUT",
                                     headers={"Content-Type": media.OCI_INDEX})
    urllib.request.urlopen(request).read()
    for tag in ("amd64", "arm64"):
        _forget(store, f"{name}:{tag}")

    out = _ok(md("pull", "--platform", "linux/arm64", name), "pull --platform linux/arm64")
    assert f"Digest: {digest.of(data)}" in out.stdout, f"Digest: is what the tag resolves to, the index: {out.stdout}"
    image = store.image(name)
    assert image.config["architecture"] == "arm64", \
        f"--platform linux/arm64 should pick the arm64 entry of the index ({DOCS}#ex-03-platform)"
    _ok(md("pull", "--platform", "linux/arm64/v8", name), "pull --platform linux/arm64/v8")
    out = _ok(md("pull", name), "pull for this host's platform")
    assert store.image(name).config["architecture"] == pulls.host_platform()["architecture"], \
        f"by default pull picks the host's platform from an index ({DOCS}#ex-03-platform)"
    _one_line_error(md("pull", "--platform", "linux/s390x", name),
                    "no matching manifest for linux/s390x in the manifest list entries")


def test_select_platform_variants():
    entries = [{"digest": "v6", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
               {"digest": "v7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
               {"digest": "win", "platform": {"os": "windows", "architecture": "amd64"}},
               {"digest": "amd", "platform": {"os": "linux", "architecture": "amd64"}}]
    pick = lambda text: pulls.select_platform(entries, pulls.parse_platform(text))["digest"]  # noqa: E731
    assert pick("linux/arm/v7") == "v7" and pick("linux/arm/v6") == "v6", f"the variant counts ({DOCS}#ex-03-platform)"
    assert pick("linux/amd64") == "amd", f"os and architecture must both match ({DOCS}#ex-03-platform)"
    assert pick("linux/arm") == "v6", "with no variant wanted, the first arm entry"


# -- authentication -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["basic", "token"])
def test_login_push_pull_logout(kind, basic_registry, token_registry, store, md):
    registry = basic_registry if kind == "basic" else token_registry
    name = f"{registry.host}/md/private-{kind}"
    _image(store, f"{name}:latest", [{"secret": os.urandom(5000)}])

    err = _one_line_error(md("push", name), "unauthorized")
    assert "login" in err, f"an anonymous push to a registry that wants auth is refused: {err}"
    err = _one_line_error(md("login", "-u", registries.USER, "--password-stdin", registry.host, input="wrong\n"))
    assert "unauthorized" in err.lower(), f"a wrong password is refused in one line: {err} ({DOCS}#registry-auth)"
    assert not os.path.exists(auth.config_path()), "a refused login stores nothing"

    out = _ok(md("login", "-u", registries.USER, "--password-stdin", registry.host, input=registries.PASSWORD + "\n"),
              "login")
    assert out.stdout == "Login Succeeded\n", out.stdout
    mode = stat.S_IMODE(os.stat(auth.config_path()).st_mode)
    assert mode == 0o600, f"config.json holds passwords: mode 0600, not {mode:o} ({DOCS}#registry-auth)"
    with open(auth.config_path()) as f:
        stored = json.load(f)["auths"][registry.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{registries.USER}:{registries.PASSWORD}", \
        "Docker's format: auths[host].auth = base64(user:password)"

    _ok(md("push", name), "push when logged in")
    _forget(store, name)
    _ok(md("pull", name), "pull when logged in")
    if kind == "token":
        scopes = [s for r in registry.token_server.requests if r["user"] for s in r["scope"]]
        assert f"repository:md/private-{kind}:pull,push" in scopes and f"repository:md/private-{kind}:pull" in scopes, \
            f"tokens are asked for per scope, with the credentials: {scopes} ({DOCS}#registry-auth)"

    out = _ok(md("logout", registry.host), "logout")
    assert out.stdout == f"Removing login credentials for {registry.host}\n", out.stdout
    _forget(store, name)
    err = _one_line_error(md("pull", name), "pull access denied")
    _nothing_visible(store)


# -- bad registries, killed pulls, concurrent pulls ---------------------------------------------

def _served_image(store, size=300_000):
    """An image made in a scratch store, served by a fake registry: (manifest bytes, blobs, layer digest)."""
    blob, diff_id = _layer({"payload": os.urandom(size)})
    config = media.to_json({"architecture": "amd64", "os": "linux",
                            "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    layer = {"mediaType": media.OCI_LAYER_GZIP, "digest": digest.of(blob), "size": len(blob)}
    manifest = media.to_json({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "layers": [layer],
                              "config": {"mediaType": media.OCI_CONFIG, "digest": digest.of(config),
                                         "size": len(config)}})
    return manifest, {digest.of(blob): blob, digest.of(config): config}, digest.of(blob)


@pytest.mark.parametrize("fault, words", [("corrupt", "digest mismatch"), ("truncated", "unexpected EOF"),
                                          ("missing", "blob unknown")])
def test_a_bad_blob_stores_nothing(fault, words, store, md):
    manifest, blobs, layer = _served_image(store)
    with registries.FakeRegistry(manifest, media.OCI_MANIFEST, blobs, fault, layer) as fake:
        _one_line_error(md("pull", f"{fake.host}/md/bad"), words)
    _nothing_visible(store)
    assert not store.has_blob(layer), f"a blob that failed verification must never be in blobs/ ({DOCS}#pull)"
    assert os.listdir(store.ingest_dir) == [], "a failed download's ingest file is deleted"


def test_a_killed_pull_leaves_no_image(store, md):
    manifest, blobs, layer = _served_image(store, 2_000_000)
    with registries.FakeRegistry(manifest, media.OCI_MANIFEST, blobs, "stall", layer) as fake:
        proc = harness.popen_cli("pull", f"{fake.host}/md/killed", stdout=-1, stderr=-1)
        try:
            assert fake.stalled.wait(20), "the pull never reached the layer"
            harness.wait_until(lambda: os.listdir(store.ingest_dir), "the layer's ingest file")
        finally:
            proc.kill()
            proc.communicate()
    _nothing_visible(store)
    assert not store.has_blob(layer), "a killed pull's half layer is never in blobs/"
    with registries.FakeRegistry(manifest, media.OCI_MANIFEST, blobs) as fake:
        _ok(md("pull", f"{fake.host}/md/killed"), "the next pull")
    assert os.listdir(store.ingest_dir) == [], f"the next command cleans what a killed pull left in ingest/ ({DOCS}#pull)"


def test_two_pulls_at_once(registry, store, md):
    name = f"{registry.host}/md/twice"
    _image(store, f"{name}:latest", [{"one": os.urandom(300_000)}, {"two": os.urandom(300_000)}])
    _ok(md("push", name), "push")
    _forget(store, name)
    procs = [harness.popen_cli("pull", name, stdout=-1, stderr=-1, text=True) for _ in range(2)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert all(code == 0 for _, _, code in results), f"both pulls should succeed: {results}"
    entries = [e for e in store.entries() if e.get("annotations", {}).get(media.IMAGE_NAME) == f"{name}:latest"]
    assert len(entries) == 1, f"one name, one entry: {store.entries()}"
    assert len(os.listdir(store.blobs)) == 4, "manifest, config and two layers, each stored once"


# -- small pieces -------------------------------------------------------------------------------

_values = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)


@given(scheme=st.sampled_from(["Bearer", "Basic"]),
       params=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), _values, max_size=4))
def test_challenge_round_trip(scheme, params):
    header = auth.format_challenge(scheme, params)
    assert auth.parse_challenges(header) == [(scheme.lower(), params)], \
        f"parsing {header!r} should give back what it says ({DOCS}#registry-auth)"


def test_challenges_as_registries_send_them():
    hub = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'
    assert auth.parse_challenges(hub) == [("bearer", {"realm": "https://auth.docker.io/token",
                                                      "service": "registry.docker.io",
                                                      "scope": "repository:library/busybox:pull"})]
    two = auth.parse_challenges('Basic realm="a b", Bearer realm="t",error="invalid_token"')
    assert two == [("basic", {"realm": "a b"}), ("bearer", {"realm": "t", "error": "invalid_token"})]


def test_progress_redraws_in_place_on_a_terminal():
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress.update("aaaaaaaaaaaa", "Pulling fs layer")
    progress.update("bbbbbbbbbbbb", "Pulling fs layer")
    progress.update("aaaaaaaaaaaa", "Download complete")
    assert out.getvalue().endswith("\x1b[2A\x1b[2K\raaaaaaaaaaaa: Download complete\r\x1b[2B"), \
        f"on a terminal a layer's line is redrawn where it is: up 2, clear, write, down 2 ({DOCS}#progress)"
