"""The route table: which engine function answers `POST /v1.43/containers/web/start`.

A route is a method and a pattern, "/containers/{id}/start". A request's path may begin with the
API version the client speaks (/v1.41/...): the docker CLI always sends one, curl users often don't,
and both reach the same handler; the handler learns the version from `req.version`.

Handlers live in containers.py, system.py, images.py...; each registers itself with @route, as
moby's routers list their routes (api/server/router/*). A handler takes the Request and the
pattern's parameters, and returns a Response, a StreamResponse or a Hijack. It raises
MinidockerError (the engine's errors) or ApiError; `dispatch` turns either into Docker's error
answer: {"message": "..."} with a status (docs/07-daemon.md#errors).
"""

import re
import traceback
from urllib.parse import unquote

from minidocker import API_VERSION
from minidocker.daemon.http import ApiError, Request, Response, error_message, status_of
from minidocker.errors import MinidockerError

MIN_API_VERSION = "1.24"  # the oldest version dockerd 24 still accepts

# (method, the pattern as a regular expression, handler)
ROUTES: list[tuple[str, "re.Pattern", object]] = []


def route(method: str, pattern: str):
    """Register `handler(req, **params)` for METHOD and a pattern like "/containers/{id}/json".
    `{name}` matches one path segment; `{name:.*}` matches one or more, slashes included, as image
    names need (/images/library/busybox:latest/json)."""
    def register(handler):
        ROUTES.append((method, compile_pattern(pattern), handler))
        return handler
    return register


_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def split_version(path: str) -> tuple[str | None, str]:
    """"/v1.41/containers/json" -> ("1.41", "/containers/json"); "/_ping" -> (None, "/_ping")."""
    m = _VERSIONED.match(path)
    return (m.group(1), m.group(2)) if m else (None, path)


def compile_pattern(pattern: str) -> "re.Pattern":
    """"/containers/{id}/json" -> a regex whose named groups are the parameters:
    ^/containers/(?P<id>[^/]+)/json$. The literal parts are escaped ("." in "/_ping" is no wildcard)."""
    # --8<-- [start:ex-07-route]
    # Walk the pattern's literal parts and {parameters}: escape each literal, make each {name} a
    # named group of one segment ([^/]+), or of one or more ({name:.*}: .+); anchor both ends.
    regex = ""
    for literal, name, rest in re.findall(r"([^{]*)(?:\{(\w+)(:\.\*)?\})?", pattern):
        regex += re.escape(literal)
        if name:
            # one segment, or (for {name:.*}) several; never an empty one: "/containers//json" names nothing
            regex += f"(?P<{name}>.+)" if rest else f"(?P<{name}>[^/]+)"
    return re.compile(f"^{regex}$")
    # --8<-- [end:ex-07-route]


def match(pattern: "re.Pattern", path: str) -> dict[str, str] | None:
    """The pattern's parameters if the (unversioned, still %-encoded) path fits it, else None.
    Each parameter is decoded after matching: "%2F" inside a name must not split a segment."""
    m = pattern.match(path)
    return {k: unquote(v) for k, v in m.groupdict().items()} if m else None


def _version_tuple(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


def resolve(method: str, path: str):
    """(handler, params, version) for a request, or raise ApiError 404/405/400 as dockerd does."""
    version, rest = split_version(path)
    if version is not None:
        if _version_tuple(version) > _version_tuple(API_VERSION):
            raise ApiError(400, f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
        if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
            raise ApiError(400, f"client version {version} is too old. Minimum supported API version is "
                                f"{MIN_API_VERSION}, please upgrade your client to a newer version")
    segments = [unquote(s) for s in rest.split("/")]
    # "/containers/../../etc": a path is a name, never a walk. dockerd's router cleans such a path
    # and answers with a redirect; we refuse it, so no handler ever sees a ".." it might join.
    if any(s in (".", "..") or "\0" in s for s in segments):
        raise ApiError(400, f"invalid path: {path}")
    allowed = False
    for m, pattern, handler in ROUTES:
        params = match(pattern, rest)
        if params is None:
            continue
        if m == method or (method == "HEAD" and m == "GET" and not _has_head(pattern)):
            return handler, params, version
        allowed = True
    if allowed:
        raise ApiError(405, f"method {method} not allowed on {rest}")
    raise ApiError(404, "page not found")


def _has_head(pattern: list[str]) -> bool:
    return any(m == "HEAD" and p == pattern for m, p, _ in ROUTES)


def error_response(status: int, message: str) -> Response:
    return Response(status, {"message": message})


def dispatch(req: Request, debug: bool = False):
    """Route a request to its handler; the handler's errors become Docker's error answers."""
    try:
        handler, params, req.version = resolve(req.method, req.path)
        return handler(req, **params)
    except ApiError as e:
        return error_response(e.status, e.message)
    except MinidockerError as e:
        return error_response(status_of(e), error_message(e))
    except Exception as e:  # a bug, or an OS error the engine did not expect: 500, and the daemon lives on
        if debug:
            traceback.print_exc()
        return error_response(500, f"{type(e).__name__}: {e}")
