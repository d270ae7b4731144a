"""A client of the registry HTTP API (the OCI distribution spec, Docker's "registry v2").

A registry is a web server with a small, content-addressed API. Everything is under /v2/:

    GET  /v2/                                   ping: 200, or 401 with the auth challenge
    GET  /v2/NAME/manifests/TAG-or-DIGEST       a manifest or index (Accept says which formats)
    HEAD /v2/NAME/blobs/DIGEST                  does the registry have this blob?
    GET  /v2/NAME/blobs/DIGEST                  a config or a layer (may redirect to storage)
    POST /v2/NAME/blobs/uploads/                start an upload -> 202, Location: where to PUT
    POST /v2/NAME/blobs/uploads/?mount=D&from=OTHER   cross-repository mount -> 201 (or 202)
    PUT  LOCATION?digest=D                      the whole blob in one request ("monolithic")
    PUT  /v2/NAME/manifests/TAG                 the manifest, last: it makes the image visible

Errors come as JSON, `{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}`,
which Docker prints as `manifest unknown: manifest unknown`; so do we.

Transport, Docker's rule: plain HTTP only to a registry on this machine (localhost, 127.0.0.0/8,
::1), HTTPS with the system's CA store for every other one. (Docker treats loopback as an
"insecure registry" and still tries HTTPS first; a test registry here speaks only HTTP, so we go
straight to it.) One keep-alive connection per thread: http.client connections are not
thread-safe, and a pull downloads a few layers at once. See docs/03-images.md#registry-api.
"""

import http.client
import ipaddress
import json
import ssl
import threading
import urllib.parse

from minidocker.errors import MinidockerError
from minidocker.image import auth

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"  # docker.io's API host (Docker's DefaultV2Registry)
EXIT_PULL = 1  # docker pull/push/login fail with 1, not the engine's 125


class RegistryError(MinidockerError):
    """An error answer of the registry: HTTP status and the spec's error code (MANIFEST_UNKNOWN...)."""

    def __init__(self, message: str, status: int = 0, code: str = ""):
        super().__init__(message, exit_code=EXIT_PULL)
        self.status, self.code = status, code


def is_loopback(host: str) -> bool:
    """host[:port] names this machine: Docker's registries that may speak plain HTTP."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def error_message(status: int, body: bytes) -> tuple[str, str]:
    """(message, code) from an error answer: the spec's JSON errors, as Docker words them."""
    try:
        errors = json.loads(body)["errors"]
        parts = [f"{e['code'].lower().replace('_', ' ')}: {e.get('message', '')}" for e in errors]
        return "; ".join(parts), errors[0]["code"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return f"{status} {http.client.responses.get(status, '')}".strip(), ""


class Registry:
    """One registry (host[:port]); requests for one repository at a time carry its scope."""

    def __init__(self, host: str, credentials: tuple[str, str] | None = None):
        self.host = host
        self.endpoint = DOCKER_HUB_ENDPOINT if host == auth.DOCKER_HUB else host
        self.secure = not is_loopback(self.endpoint)
        self.scheme = "https" if self.secure else "http"
        self.credentials = credentials if credentials is not None else auth.credentials(host)
        self.tokens = auth.TokenCache()
        self._challenge: tuple[str, dict] | None = None  # learned by ping()
        self._pinged = False
        self._local = threading.local()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.endpoint}{path}"

    # -- transport ------------------------------------------------------------------------------

    def _connect(self, netloc: str, secure: bool) -> http.client.HTTPConnection:
        if secure:
            return http.client.HTTPSConnection(netloc, timeout=60, context=ssl.create_default_context())
        return http.client.HTTPConnection(netloc, timeout=60)

    def _send(self, method: str, url: str, headers: dict, body=None) -> http.client.HTTPResponse:
        """One request on this thread's connection to the registry (a fresh one elsewhere)."""
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        ours = parts.netloc == self.endpoint
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None) if ours else None
            fresh = conn is None
            if fresh:
                conn = self._connect(parts.netloc, parts.scheme == "https")
                if ours:
                    self._local.conn = conn
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                self._local.conn = None
                # A kept-alive connection the server closed meanwhile: once more on a new one,
                # if the body can be sent again (a file half-read cannot).
                if fresh or attempt == 2 or not (body is None or isinstance(body, bytes)):
                    raise RegistryError(f'{method} "{url}": {e or type(e).__name__}') from None
            except OSError as e:
                conn.close()
                self._local.conn = None
                reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
                raise RegistryError(f'{method} "{url}": dial tcp {parts.netloc}: {reason.lower()}') from None
        raise AssertionError("unreachable")

    # -- authentication -------------------------------------------------------------------------

    def ping(self) -> http.client.HTTPResponse:
        """GET /v2/: learn whether and how this registry wants us to authenticate."""
        response = self._send("GET", self.url("/v2/"), {})
        response.read()
        if response.status == 401:
            self._challenge = self._pick(response.headers.get_all("WWW-Authenticate") or [])
        elif response.status != 200:
            raise RegistryError(f'GET "{self.url("/v2/")}": {response.status} {response.reason}', response.status)
        self._pinged = True
        return response

    @staticmethod
    def _pick(headers: list[str]) -> tuple[str, dict] | None:
        challenges = [c for h in headers for c in auth.parse_challenges(h)]
        for wanted in ("bearer", "basic"):  # Docker prefers a token to sending the password each time
            for scheme, params in challenges:
                if scheme == wanted:
                    return scheme, params
        return None

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        if not self._pinged:
            self.ping()
        if self._challenge is None:
            return None
        scheme, params = self._challenge
        if scheme == "basic":
            return auth.basic(*self.credentials) if self.credentials else None
        key = (params.get("realm"), params.get("service"), scopes)
        return "Bearer " + self.tokens.get(key, lambda: self._fetch_token(params, scopes))

    # --8<-- [start:token]
    def _fetch_token(self, params: dict, scopes: tuple[str, ...]) -> tuple[str, int]:
        """Ask the challenge's realm for a token: GET realm?service=S&scope=A&scope=B, with our
        Basic credentials if we logged in (then the token grants what the account may do),
        anonymously otherwise (public images only)."""
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{self.host}: a Bearer challenge without a realm")
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in scopes]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not is_loopback(parts.netloc):
            raise RegistryError(f"token server {realm}: not HTTPS (the password would travel in clear)")
        headers = {"Authorization": auth.basic(*self.credentials)} if self.credentials else {}
        response = self._send("GET", url, headers)
        body = response.read()
        if response.status != 200:
            message, code = error_message(response.status, body)
            if response.status == 401:
                message = "unauthorized: incorrect username or password" if self.credentials else message
            raise RegistryError(f'Get "{realm}": {message}', response.status, code or "UNAUTHORIZED")
        return auth.parse_token_response(body)
    # --8<-- [end:token]

    def authenticate(self, scopes: tuple[str, ...] = ()) -> None:
        """What `login` checks: the credentials are accepted (a token is issued, or /v2/ lets us in)."""
        header = self._authorization(scopes)
        if self._challenge and self._challenge[0] == "basic":
            response = self._send("GET", self.url("/v2/"), {"Authorization": header} if header else {})
            body = response.read()
            if response.status != 200:
                message, _ = error_message(response.status, body)
                if response.status == 401:  # Docker's words for a refused Basic login
                    raise RegistryError(f"login attempt to {self.url('/v2/')} failed with status: 401 Unauthorized",
                                        401, "UNAUTHORIZED")
                raise RegistryError(f'Get "{self.url("/v2/")}": {message}', response.status)

    # -- requests -------------------------------------------------------------------------------

    def request(self, method: str, path_or_url: str, *, scopes: tuple[str, ...], headers: dict | None = None,
                body=None, ok: tuple[int, ...] = (200,), follow: bool = False) -> http.client.HTTPResponse:
        """A request with the right Authorization for `scopes`; an answer not in `ok` raises
        RegistryError (its body read). The caller reads a good answer's body to the end, so that
        the connection can carry the next request."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        for attempt in (1, 2):
            all_headers = dict(headers or {})
            authorization = self._authorization(scopes)
            if authorization:
                all_headers["Authorization"] = authorization
            response = self._send(method, url, all_headers, body)
            if response.status == 401 and attempt == 1 and (body is None or isinstance(body, bytes)):
                # The token expired early or the registry wants a new challenge: learn it, retry once.
                response.read()
                self._challenge = self._pick(response.headers.get_all("WWW-Authenticate") or []) or self._challenge
                if self._challenge and self._challenge[0] == "bearer":
                    self.tokens.forget((self._challenge[1].get("realm"), self._challenge[1].get("service"), scopes))
                continue
            break
        hops = 0
        while follow and response.status in (301, 302, 303, 307, 308) and hops < 5:
            # Blob storage elsewhere (S3, a CDN): the Location is signed; our token stays home.
            response.read()
            url = urllib.parse.urljoin(url, response.headers["Location"])
            response = self._send(method, url, dict(headers or {}))
            hops += 1
        if response.status not in ok:
            raise self._error(method, url, response, scopes)
        return response

    def _error(self, method: str, url: str, response, scopes) -> RegistryError:
        body = response.read() if method != "HEAD" else b""
        message, code = error_message(response.status, body)
        if response.status in (401, 403) and not code:
            code = "UNAUTHORIZED" if response.status == 401 else "DENIED"
            message = "unauthorized: authentication required" if response.status == 401 else "denied"
        return RegistryError(message, response.status, code)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn:
            conn.close()
            self._local.conn = None


def scope(repository: str, *actions: str) -> str:
    """A token scope: `repository:library/busybox:pull,push` (Docker's token spec)."""
    return f"repository:{repository}:{','.join(actions)}"
