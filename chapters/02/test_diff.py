"""Chapter 02: a container's writable layer and `minidocker diff`, with Docker's A / C / D lines
(docs/02-unionfs.md#diff)."""

import importlib
import os
import re
import shutil
import uuid

import harness
from minidocker.unionfs.diff import changes

layertrees = importlib.import_module("chapters.02.layertrees")  # "02" is no Python name
DOCS = "docs/02-unionfs.md#diff"


def test_changes_of_an_upper_directory(tmp_path):
    """API level: the upper directory of a real overlay, after a few changes."""
    harness.need_root()
    image = layertrees.build(str(tmp_path / "image"), {
        "etc/passwd": ("file", 0o644, b"root\n"), "etc/motd": ("file", 0o644, b"hi\n"),
        "bin/vi": ("file", 0o755, b""), "srv/www/index.html": ("file", 0o644, b""),
        "srv/www/old.html": ("file", 0o644, b""), "usr/lib/x": ("file", 0o644, b""),
    })
    upper = str(tmp_path / "upper")
    with layertrees.mounted([image], upper, str(tmp_path / "work"), str(tmp_path / "mnt")) as mnt:
        with open(os.path.join(mnt, "etc/new"), "w") as f:
            f.write("added")
        with open(os.path.join(mnt, "etc/passwd"), "a") as f:
            f.write("more\n")
        os.unlink(os.path.join(mnt, "bin/vi"))
        os.chmod(os.path.join(mnt, "usr/lib/x"), 0o600)  # copies up usr and usr/lib, unchanged
        shutil.rmtree(os.path.join(mnt, "srv/www"))  # replaced: an opaque directory
        os.mkdir(os.path.join(mnt, "srv/www"))
        open(os.path.join(mnt, "srv/www/new.html"), "w").close()
    got = changes(upper, [image])
    assert got == [("C", "/bin"), ("D", "/bin/vi"), ("C", "/etc"), ("A", "/etc/new"), ("C", "/etc/passwd"),
                   ("C", "/srv"), ("D", "/srv/www"), ("A", "/srv/www/new.html"), ("C", "/usr/lib/x")], (
        f"expected Docker's kinds, sorted by path; a directory only copied up on the way is no change, "
        f"a replaced one is D ({DOCS}): {got}")


def test_minidocker_diff(md, rootfs):
    harness.need_root()
    name = f"md-diff-{uuid.uuid4().hex[:8]}"
    script = "echo new > /etc/new && echo x >> /etc/passwd && rm /bin/vi && mkdir /srv && touch /srv/app"
    run = md("run", "--rootfs", f"{rootfs}:O", "--name", name, "--", "sh", "-c", script)
    try:
        assert run.returncode == 0, f"`run --rootfs DIR:O` failed ({run.returncode}): {run.stderr}"
        out = md("diff", name)
        assert out.returncode == 0, f"`minidocker diff` failed: {out.stderr}"
        lines = out.stdout.splitlines()
        assert all(re.fullmatch(r"[ACD] /\S*", line) for line in lines), f"each line is 'KIND /path': {lines}"
        assert lines == sorted(lines, key=lambda line: line[2:]), f"the lines are sorted by path: {lines}"
        ours = [line for line in lines if line[2:].startswith(("/etc", "/bin", "/srv"))]
        assert ours == ["C /bin", "D /bin/vi", "C /etc", "A /etc/new", "C /etc/passwd", "A /srv", "A /srv/app"], (
            f"`minidocker diff` after the container wrote, appended to, deleted and created files ({DOCS}):\n"
            + "\n".join(lines))
        assert os.path.exists(os.path.join(rootfs, "bin", "vi")), "the container's rm must not touch its image"
    finally:
        md("rm", "-f", name)
