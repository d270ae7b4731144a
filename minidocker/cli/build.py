"""`build`: the docker CLI's classic build (DOCKER_BUILDKIT=0).

The client's half of a build is small, and it is all here: read .dockerignore, pack the context
directory as a tar (minidocker/build/context.py), say how big it is ("Sending build context to
Docker daemon  2.048kB"), and send it with the options as POST /build's query. The engine's half
(minidocker/build/builder.py) unpacks it and runs the steps. Until the daemon (chapter 07) the
"sending" is a temporary file handed to the engine function in the same process.
"""

import os
import sys
import tempfile

from minidocker.errors import MinidockerError


def human_size(size: float) -> str:
    """go-units' HumanSize: decimal units, four significant digits: 2.048kB, 112.6MB, 64B."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def _go_tar_size(tar) -> int:
    """The context's size as the docker CLI counts it. Go's archive/tar ends a tar with two zero
    blocks; Python's tarfile then pads it to a 10240-byte record, which Go does not (so an almost
    empty context is "2.048kB" there, 10.24kB here). The size counts up to the two zero blocks."""
    end = tar.tell()
    tail_start = max(0, end - 10240 - 1024)
    tar.seek(tail_start)
    tail = tar.read()
    last = max((i for i in range(0, len(tail), 512) if tail[i:i + 512].strip(b"\0")), default=None)
    return end if last is None else tail_start + last + 512 + 1024


def _key_values(items: list[str], flag: str, from_env: bool) -> dict:
    """--build-arg K=V (K alone: its value from our environment, as the docker CLI; unset: no
    value at all), --label k=v."""
    found = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise MinidockerError(f"invalid argument {item!r} for {flag}", f"{flag} NAME=VALUE")
        found[key] = value if eq else (os.environ.get(key) if from_env else "")
    return found


def cmd_build(args) -> int:
    from minidocker.build import builder, context
    from minidocker.image import reference

    for tag in args.tag:  # the CLI checks the names before it sends anything
        try:
            reference.normalize(tag)
        except MinidockerError as e:
            raise MinidockerError(f"invalid argument {tag!r} for \"-t, --tag\" flag: {e.what}", "NAME[:TAG]") from None
    dockerfile_text = None
    if args.file == "-":
        if args.context == "-":
            raise MinidockerError("invalid argument: can't use stdin for both build context and dockerfile", "give a directory")
        dockerfile_text = sys.stdin.buffer.read()
    with tempfile.TemporaryFile(prefix="md-context-") as tar:
        if args.context == "-":  # a tar of the context on stdin, sent as it is
            while chunk := sys.stdin.buffer.read(1 << 20):
                tar.write(chunk)
            name = args.file or "Dockerfile"
        else:
            dockerfile = None if args.file in (None, "-") else os.path.abspath(args.file)
            if dockerfile and not os.path.isfile(dockerfile):
                raise MinidockerError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                      f"lstat {dockerfile}: no such file or directory", "-f names a file, from the current directory")
            name = context.pack(args.context, dockerfile, tar, dockerfile=dockerfile_text)
        size = _go_tar_size(tar)
        tar.seek(0)
        out = sys.stdout.buffer
        if not args.quiet:
            out.write(f"Sending build context to Docker daemon  {human_size(size):>7}\n".encode())
            out.flush()
        options = {"t": args.tag, "dockerfile": name, "q": args.quiet, "nocache": args.no_cache,
                   "target": args.target, "networkmode": args.network,
                   "buildargs": _key_values(args.build_arg, "--build-arg", from_env=True),
                   "labels": _key_values(args.label, "--label", from_env=False)}
        image_id = builder.build(tar, options, out)
    if args.quiet:
        print(image_id)
    return 0


def add_commands(sub, words=()) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile (the classic builder)")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="name the image (repeatable)")
    p.add_argument("-f", "--file", metavar="FILE", help="the Dockerfile (default: CONTEXT/Dockerfile; - for stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build-time variable")
    p.add_argument("--target", metavar="STAGE", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the cache")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="set a label on the image")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("--network", default="default", metavar="MODE", help="the network of RUN steps")
    p.add_argument("--rm", default="true", help=argparse_suppress())
    p.add_argument("--force-rm", action="store_true", help=argparse_suppress())
    p.add_argument("context", metavar="CONTEXT", help="the context directory, or - for a tar on stdin")
    p.set_defaults(func=cmd_build)


def argparse_suppress():
    """--rm and --force-rm are accepted for scripts' sake: intermediate containers are always
    removed, a failed step's too (nothing half-made is left)."""
    import argparse

    return argparse.SUPPRESS
