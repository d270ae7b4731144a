"""The system endpoints: the handshake (/_ping, /version), /info, /events, /system/df.

Before its first real request the docker CLI asks `HEAD /_ping` and reads the answer's headers:
`API-Version` (the newest version this daemon speaks), `Ostype` (linux or windows images?) and
`Docker-Experimental`. It then speaks min(its own newest, ours) in every path: /v1.41/... for
Debian's docker 20.10 (docs/07-daemon.md#the-handshake).
"""

import os
import platform

from minidocker import API_VERSION, __version__
from minidocker.daemon.http import Response
from minidocker.daemon.router import MIN_API_VERSION, route


def identity_headers() -> dict[str, str]:
    """The headers on every answer: which API this is, and for which OS."""
    # --8<-- [start:ex-07-ping]
    return {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux", "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache"}
    # --8<-- [end:ex-07-ping]


@route("GET", "/_ping")
def ping(req):
    return Response(200, b"OK", {"Content-Type": "text/plain; charset=utf-8"})


@route("HEAD", "/_ping")
def ping_head(req):
    return Response(200, b"", {"Content-Type": "text/plain; charset=utf-8"})


@route("GET", "/version")
def version(req):
    uname = os.uname()
    return Response(200, {
        "Platform": {"Name": "minidocker"},
        "Components": [{"Name": "Engine", "Version": __version__,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine),
        "KernelVersion": uname.release, "BuildTime": ""})
