"""Archives on the command line: `save` and `load` (an image's, in image/archive.py's formats;
cli/image.py registers them, and `image save`, `image load`, with the flags below) and `export`
(a container's filesystem, container/export.py's): where the archive comes from and goes to."""

import os
import sys
import tempfile

from minidocker.errors import MinidockerError


def save_flags(p) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write to a file, instead of STDOUT")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="an image's name, ID or ID prefix")


def cmd_save(args) -> int:
    from minidocker.image import archive, layout

    images = layout.Layout()
    write_archive(args.output, lambda out: archive.save(images, args.images, out))
    return 0


def write_archive(output: str | None, write) -> None:
    """Call write(file) on FILE (-o) or on stdout, as the docker CLI writes an archive."""
    if not output:
        if sys.stdout.isatty():  # Docker's words: a tar is no sight for a terminal
            raise MinidockerError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        write(sys.stdout.buffer)
        return
    # As the docker CLI does: write a temporary file beside FILE and rename it at the end, so a
    # save that fails leaves no half archive under FILE's name (and an older FILE stays whole).
    target = os.path.abspath(output)
    fd, tmp = tempfile.mkstemp(prefix=".minidocker_temp_", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is stricter than a file the user asks for
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def load_flags(p) -> None:
    p.add_argument("-i", "--input", metavar="FILE", help="read from a tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")


def cmd_load(args) -> int:
    from minidocker.image import archive, layout

    if args.input:
        try:
            source = open(args.input, "rb")
        except OSError as e:
            raise MinidockerError(f"open {args.input}: {e.strerror.lower()}", "give an archive written by `save`") from None
    elif sys.stdin.isatty():
        raise MinidockerError("requested load from stdin, but stdin is empty", "use -i FILE or a redirect")
    else:
        source = sys.stdin.buffer
    with source:
        lines = archive.load(layout.Layout(), source)
    # Docker's -q hides the progress bars; the "Loaded image" lines are printed either way.
    for line in lines:
        print(line)
    return 0


def cmd_export(args) -> int:
    from minidocker.container.export import export

    def write(out):
        for chunk in export(args.container):
            out.write(chunk)

    write_archive(args.output, write)
    return 0


def add_commands(sub, words=()) -> None:
    p = sub.add_parser("export", help="export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", metavar="FILE", help="write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_export)
