"""The image endpoints: /images/... and /build, over the engine's image/ (and build/) functions.

    GET    /images/json                 list_images (all, filters)         -> [ImageSummary]
    POST   /images/create               pull (fromImage, tag, platform)    -> a stream of JSON messages
    POST   /images/{name}/push          push (tag, X-Registry-Auth)        -> a stream of JSON messages
    POST   /auth                        check login credentials            -> {"Status": "Login Succeeded"}
    POST   /images/{name}/tag           tag (repo, tag)                    -> 201
    DELETE /images/{name}               remove (force)                     -> [{"Untagged"}, {"Deleted"}]
    GET    /images/{name}/json          inspect                            -> ImageInspect
    GET    /images/{name}/history       history                            -> [HistoryResponseItem]
    GET    /images/{name}/get, /images/get?names=   save                   -> a tar stream
    POST   /images/load                 load (a tar body)                  -> {"stream": "Loaded image: …\\n"}
    POST   /images/prune                prune (filters: dangling)          -> {"ImagesDeleted", "SpaceReclaimed"}
    POST   /build                       the builder (a tar context body)   -> {"stream": …} and {"aux": {"ID"}}

dockerd does not draw progress bars: it streams JSON messages, one per line, and the client
(the docker CLI, docker-py) draws them. A pull runs in a thread of its own and its messages
reach the connection through a queue; see docs/07-daemon.md#pull-progress.
"""

import base64
import json
import os
import queue
import threading

from minidocker.daemon.http import ApiError, Request, Response, StreamResponse
from minidocker.daemon.router import route
from minidocker.errors import MinidockerError


# ---------------------------------------------------------------------------------------------
# Small pieces the other object routers share (networks.py, volumes.py)

def filters(req: Request, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """The `filters` query parameter: JSON, {"dangling": ["true"]}, or the older form that the
    docker CLI still sends to old daemons, {"dangling": {"true": true}}. Unknown keys are a 400,
    as dockerd's filters.Validate says them."""
    raw = req.json_arg("filters", {}) or {}
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid filter: want a JSON object of lists")
    found: dict[str, list[str]] = {}
    for key, values in raw.items():
        if key not in allowed:
            raise ApiError(400, f"invalid filter '{key}'")
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ApiError(400, f"invalid filter '{key}': want a list of strings")
        found[key] = values
    return found


def not_found(error: MinidockerError) -> ApiError:
    """The engine's "network x not found", "get x: no such volume": dockerd answers them 404,
    and the docker CLI then says "No such …" itself."""
    return ApiError(404, str(error))


# --8<-- [start:registry-auth]
def registry_auth(req: Request) -> tuple[str, str]:
    """X-Registry-Auth: base64url of {"username", "password", "serveraddress"}, which the client
    read from its own config (the docker CLI's ~/.docker/config.json). A daemon serves many users:
    it never falls back on credentials of its own, so none here means anonymous: ()."""
    header = req.headers.get("X-Registry-Auth")
    if not header:
        return ()
    try:
        config = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        raise ApiError(400, "invalid X-Registry-Auth header: want base64url-encoded JSON") from None
    if not isinstance(config, dict) or not config.get("username"):
        return ()  # "{}" (anonymous), or an identity token, which our registry client does not speak
    return str(config["username"]), str(config.get("password", ""))
# --8<-- [end:registry-auth]


@route("POST", "/auth")
def check_login(req: Request) -> Response:
    """`docker login` through a daemon: the daemon checks the credentials against the registry
    (ping, then a token or Basic, as a pull would) and keeps nothing; the client stores them in
    its own config and sends them with each push or pull (X-Registry-Auth, above)."""
    from minidocker.image import auth
    from minidocker.image.registry import Registry, RegistryError

    body = req.json({})
    host = auth.server_host(body.get("serveraddress"))
    try:
        Registry(host, credentials=(str(body.get("username", "")), str(body.get("password", "")))).authenticate()
    except RegistryError as e:
        raise ApiError(401, e.what) from None
    return Response(200, {"Status": "Login Succeeded", "IdentityToken": ""})


def error_message(error: BaseException) -> dict:
    """How a stream says it failed after it began (the status line is long gone): the docker
    CLI prints `error` and exits 1."""
    text = str(error) if isinstance(error, MinidockerError) else f"{type(error).__name__}: {error}"
    return {"errorDetail": {"message": text}, "error": text}


def json_line(message: dict) -> bytes:
    return (json.dumps(message) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# A worker thread's output as a streamed answer

class _ClientGone(Exception):
    """The client closed the connection: the work stops at its next message (a pull is cancelled,
    as dockerd cancels it when `docker pull` is interrupted)."""


# --8<-- [start:streamed]
def streamed(work, content_type: str = "application/json", on_error=lambda e: json_line(error_message(e)),
             hold: int = 1) -> StreamResponse:
    """Run `work(emit)` in a thread; each `emit(bytes)` becomes one chunk of the answer.

    The status line goes out only when the work has emitted more than `hold` chunks (or ended):
    a failure before that, a bad name or an unknown manifest, is then still an HTTP error
    (404, 400...) as dockerd answers it, and not a 200 with an error inside. The queue is bounded:
    a slow client slows the work down instead of filling the daemon's memory."""
    chunks: queue.Queue = queue.Queue(maxsize=64)
    gone = threading.Event()

    def put(item) -> None:
        while True:
            if gone.is_set():
                raise _ClientGone()
            try:
                return chunks.put(item, timeout=0.5)
            except queue.Full:
                continue

    def run() -> None:
        try:
            work(lambda data: put(("data", data)))
            put(("end", None))
        except _ClientGone:
            pass
        except BaseException as e:  # noqa: BLE001 - whatever it was, the client must hear of it
            try:
                put(("end", e))
            except _ClientGone:
                pass

    threading.Thread(target=run, name="md-api-stream", daemon=True).start()
    held = []
    while len(held) <= hold:
        kind, value = chunks.get()
        if kind == "end":
            if value is not None:
                raise value  # nothing said yet: an HTTP error
            return StreamResponse(200, iter(held), content_type)
        held.append(value)

    def answer():
        try:
            yield from held
            while True:
                kind, value = chunks.get()
                if kind == "end":
                    if value is not None:
                        yield on_error(value)
                    return
                yield value
        finally:
            gone.set()  # ended, or the client went away: a worker still running stops

    return StreamResponse(200, answer(), content_type)
# --8<-- [end:streamed]


class _Chunks:
    """A binary file whose writes are emitted as chunks (what archive.save writes into)."""

    def __init__(self, emit):
        self.emit = emit

    def write(self, data) -> int:
        if data:
            self.emit(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# list, inspect, history

@route("GET", "/images/json")
def list_images(req: Request) -> Response:
    from minidocker.image import inspect

    wanted = filters(req, inspect.FILTERS)
    if req.arg("filter"):  # the old API's ?filter=busybox: a reference filter
        wanted.setdefault("reference", []).append(req.arg("filter"))
    return Response(200, inspect.list_images(all=req.flag("all"), filters=wanted))


@route("GET", "/images/{name:.*}/json")
def inspect_image(req: Request, name: str) -> Response:
    from minidocker.image import inspect

    return Response(200, inspect.inspect(name))


@route("GET", "/images/{name:.*}/history")
def history(req: Request, name: str) -> Response:
    from minidocker.image import inspect

    return Response(200, inspect.history(name))


# ---------------------------------------------------------------------------------------------
# pull and push

def pull_name(from_image: str, tag: str) -> str:
    """?fromImage=busybox&tag=1.36 -> busybox:1.36; the docker CLI sends a digest as the tag
    (fromImage=busybox&tag=sha256:…), which makes busybox@sha256:…"""
    if not tag:
        return from_image
    return f"{from_image}{'@' if ':' in tag else ':'}{tag}"


# --8<-- [start:pull]
@route("POST", "/images/create")
def create_image(req: Request) -> StreamResponse:
    from minidocker.image import builtin, progress, pull, reference

    if req.arg("fromSrc"):
        raise ApiError(400, "importing a root filesystem (fromSrc) is not supported by minidocker")
    if not req.arg("fromImage"):
        raise ApiError(400, "fromImage is required: the image to pull")
    name = pull_name(req.arg("fromImage"), req.arg("tag", ""))
    credentials = registry_auth(req)
    platform = req.arg("platform") or None
    if str(reference.normalize(name)) == builtin.NAME:  # a bad name is a 400 here, before any stream
        return Response(200, b"".join(json_line(m) for m in _builtin_busybox()), {"Content-Type": "application/json"})

    def work(emit) -> None:
        pull.pull(name, platform=platform, credentials=credentials,
                  progress=progress.JSONProgress(lambda message: emit(json_line(message))))

    return streamed(work)
# --8<-- [end:pull]


def _builtin_busybox() -> list[dict]:
    """busybox:latest is built here from the host's busybox, as the daemonless `run` does
    (image/builtin.py): a fresh, offline machine can still `docker run busybox`."""
    from minidocker.image import builtin, layout

    store = layout.Layout()
    try:
        store.image(builtin.NAME)
        fresh = False
    except MinidockerError:
        fresh = True
    image = builtin.busybox(store)
    return [{"status": "latest: Pulling from library/busybox (built from the host's busybox)"},
            {"status": f"Digest: {image.manifest_digest}"},
            {"status": "Status: Downloaded newer image for busybox:latest" if fresh
             else "Status: Image is up to date for busybox:latest"}]


@route("POST", "/images/{name:.*}/push")
def push_image(req: Request, name: str) -> StreamResponse:
    from minidocker.image import layout, progress, push, reference

    tag = req.arg("tag", "")
    if tag:
        names = [pull_name(name, tag)]
    else:  # no tag: every tag of the repository, as `docker push --all-tags`
        repo = reference.normalize(name).name
        names = sorted(n for i in layout.Layout().images() for n in i.names
                       if "@" not in n and reference.parse(n).name == repo) or [name]
    credentials = registry_auth(req)

    def work(emit) -> None:
        for one in names:
            digest = push.push(one, credentials=credentials,
                               progress=progress.JSONProgress(lambda message: emit(json_line(message))))
            size = os.path.getsize(layout.Layout().blob_path(digest))
            emit(json_line({"progressDetail": {}, "aux": {"Tag": reference.normalize(one).tag, "Digest": digest,
                                                          "Size": size}}))

    return streamed(work)


# ---------------------------------------------------------------------------------------------
# tag, remove, prune

@route("POST", "/images/{name:.*}/tag")
def tag_image(req: Request, name: str) -> Response:
    from minidocker.image import remove

    repo = req.arg("repo")
    if not repo:
        raise ApiError(400, "repository name must have at least one component")
    remove.tag(name, pull_name(repo, req.arg("tag", "")))
    return Response(201)


@route("DELETE", "/images/{name:.*}")
def delete_image(req: Request, name: str) -> Response:
    from minidocker.image import remove

    return Response(200, remove.remove(name, force=req.flag("force")))


@route("POST", "/images/prune")
def prune_images(req: Request) -> Response:
    from minidocker.image import remove

    wanted = filters(req, ("dangling", "until", "label"))
    if wanted.get("until") or wanted.get("label"):
        raise ApiError(400, "minidocker prunes by dangling only (no until or label filters)")
    dangling = (wanted.get("dangling") or ["true"])[-1].lower() in ("true", "1")
    return Response(200, remove.prune(all=not dangling))


# ---------------------------------------------------------------------------------------------
# save and load

@route("GET", "/images/get")
def save_images(req: Request) -> StreamResponse:
    return _save(req.query.get("names", []))


@route("GET", "/images/{name:.*}/get")
def save_image(req: Request, name: str) -> StreamResponse:
    return _save([name])


def _save(names: list[str]) -> StreamResponse:
    from minidocker.image import archive, layout

    if not names:
        raise ApiError(400, "no images to save: give ?names=IMAGE")
    images = layout.Layout()
    archive.choose(images, names)  # an unknown name is a 404 now, before the first byte of tar

    # A tar cannot carry an error message: a save that fails half-way just ends, and the
    # client's tar reader fails on the cut-off archive.
    return streamed(lambda emit: archive.save(images, names, _Chunks(emit)), "application/x-tar",
                    on_error=lambda e: b"", hold=0)


@route("POST", "/images/load")
def load_images(req: Request) -> Response:
    from minidocker.image import archive, layout

    lines = archive.load(layout.Layout(), req.body)
    return Response(200, b"".join(json_line({"stream": line + "\n"}) for line in lines),
                    {"Content-Type": "application/json"})
