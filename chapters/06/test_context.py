"""Chapter 06: the build context (minidocker/build/context.py). What the client packs (filtered by
.dockerignore, the Dockerfile always in, owners 0:0, links as links, the same bytes every time),
and what the engine unpacks: the same tree back, and a hostile tar refused whole."""

import io
import os
import stat
import tarfile

import pytest

from minidocker.build import context
from minidocker.errors import MinidockerError

DOCS = "docs/06-build.md"


def make_context(root) -> None:
    (root / "src").mkdir()
    (root / "src/app.py").write_text("print('hi')\n")
    (root / "src/run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "src/run.sh", 0o751)
    (root / "node_modules/dep").mkdir(parents=True)
    (root / "node_modules/dep/index.js").write_text("x")
    (root / "node_modules/keep.txt").write_text("k")
    (root / "secret.env").write_text("TOKEN=1")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / ".dockerignore").write_text("node_modules\n!node_modules/keep.txt\n*.env\nDockerfile\n.dockerignore\n")
    os.symlink("/etc/passwd", root / "src/link")
    os.link(root / "src/app.py", root / "src/hard.py")


def packed(root, dockerfile_path=None, **kw) -> tuple[bytes, str]:
    out = io.BytesIO()
    name = context.pack(str(root), dockerfile_path, out, **kw)
    return out.getvalue(), name


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_pack_as_the_cli_sends_it(tmp_path):
    make_context(tmp_path)
    data, name = packed(tmp_path)
    got = members(data)
    assert name == "Dockerfile"
    assert sorted(got) == [".dockerignore", "Dockerfile", "node_modules/keep.txt", "src", "src/app.py",
                           "src/hard.py", "src/link", "src/run.sh"], (
        f"the context tar holds {sorted(got)}: .dockerignore's patterns and exceptions applied, and the Dockerfile "
        f"and .dockerignore sent even when listed; see {DOCS}#the-context")
    assert all(m.uid == 0 and m.gid == 0 for m in got.values()), "the CLI sends every entry as 0:0"
    assert stat.S_IMODE(got["src/run.sh"].mode) == 0o751, "modes are kept"
    assert got["src/link"].issym() and got["src/link"].linkname == "/etc/passwd", "a symlink is sent as a symlink, never followed"
    assert got["src/hard.py"].islnk() or got["src/app.py"].islnk(), "a hard link is sent as a link"
    assert data == packed(tmp_path)[0], "the same directory gives the same tar, byte for byte"


def test_dockerfile_outside_or_from_stdin(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a")
    (tmp_path / "Other.dockerfile").write_text("FROM scratch\n")
    data, name = packed(ctx, str(tmp_path / "Other.dockerfile"))
    assert name.startswith(".dockerfile.") and name in members(data), "a Dockerfile outside the context is added to it"
    data, name = packed(ctx, None, dockerfile=b"FROM scratch\n")
    tar = tarfile.open(fileobj=io.BytesIO(data))
    assert tar.extractfile(name).read() == b"FROM scratch\n", "-f -: the Dockerfile's text goes into the tar"


def test_unpack_gives_the_tree_back(tmp_path):
    (tmp_path / "ctx").mkdir()
    make_context(tmp_path / "ctx")
    data, _ = packed(tmp_path / "ctx")
    dest = tmp_path / "dest"
    dest.mkdir()
    context.unpack(io.BytesIO(data), str(dest))
    assert (dest / "src/app.py").read_text() == "print('hi')\n"
    assert os.readlink(dest / "src/link") == "/etc/passwd" and stat.S_IMODE(os.stat(dest / "src/run.sh").st_mode) == 0o751
    assert os.stat(dest / "src/hard.py").st_ino == os.stat(dest / "src/app.py").st_ino
    assert not (dest / "secret.env").exists() and (dest / "node_modules/keep.txt").exists()


def hostile(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
            data = b"owned\n" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


FILE, DIR, SYM, LINK, CHR = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE
HOSTILE = {
    "dot-dot": [("ok", FILE, ""), ("../escaped", FILE, "")],
    "inner dot-dot": [("a/../../escaped", FILE, "")],
    "absolute": [("/tmp/escaped", FILE, "")],
    "through a symlink": [("a", SYM, "/tmp"), ("a/escaped", FILE, "")],
    "through a relative symlink": [("d", DIR, ""), ("d/up", SYM, "../.."), ("d/up/escaped", FILE, "")],
    "symlink out": [("up", SYM, "../../../etc")],
    "hard link out": [("h", LINK, "/etc/passwd")],
    "hard link climbing": [("h", LINK, "../../etc/passwd")],
    "device": [("null", CHR, "")],
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_context_refused_whole(tmp_path, case):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(MinidockerError) as e:
        context.unpack(hostile(*HOSTILE[case]), str(dest))
    assert "\n" not in str(e.value) and "refusing build context entry" in str(e.value), f"one line: {e.value}"
    assert os.listdir(dest) == [], f"{case}: a refused context leaves nothing behind; see {DOCS}#the-context"
    assert not os.path.exists("/tmp/escaped") and not (tmp_path / "escaped").exists()


def test_not_a_tar(tmp_path):
    with pytest.raises(MinidockerError, match="not a readable tar"):
        context.unpack(io.BytesIO(b"not a tar at all" * 100), str(tmp_path))
