"""Registry authentication: the WWW-Authenticate challenge, Bearer tokens, Basic, and the
credentials that `login` keeps.

A registry answers an unauthenticated request with `401 Unauthorized` and a challenge header
(RFC 7235), which says how to authenticate:

    WWW-Authenticate: Basic realm="basic-realm"
    WWW-Authenticate: Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
                      scope="repository:library/busybox:pull"

- **Basic**: send `Authorization: Basic base64(user:pass)` with every request.
- **Bearer** (Docker's token auth, which Docker Hub uses): ask the *realm*, a separate token
  server, for a token: `GET realm?service=S&scope=repository:NAME:pull,push`, with Basic
  credentials when we have some, anonymously otherwise. The answer is JSON with a signed token (a
  JWT) that grants some actions on some repositories; send it as `Authorization: Bearer TOKEN`.
  A token is good for one scope and a limited time, so we keep one per scope until it expires.

Credentials live where Docker keeps them, in the same format: `config.json` in
~/.minidocker (or $MINIDOCKER_CONFIG, as $DOCKER_CONFIG for Docker), mode 0600,
`{"auths": {"127.0.0.1:5000": {"auth": base64("user:pass")}}}`. Docker Hub's key is not a host
name but the historical `https://index.docker.io/v1/`. See docs/03-images.md#registry-auth.
"""

import base64
import json
import os
import re
import threading
import time
import urllib.parse

from minidocker.errors import MinidockerError

DOCKER_HUB = "docker.io"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # the key Docker's config.json uses for Hub

# --8<-- [start:challenge]
# auth-param = token "=" ( token / quoted-string ), RFC 7235; a quoted string may hold \" and \\.
_PARAM = re.compile(r'\s*([A-Za-z0-9_.~+/-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.~+-]*)(?:\s+|$)")


def parse_challenges(header: str) -> list[tuple[str, dict]]:
    """`Bearer realm="r",service="s"` -> [("bearer", {"realm": "r", "service": "s"})].

    One header may hold several challenges (`Basic realm="a", Bearer realm="b"`): a word that is
    not followed by `=` starts the next one. Scheme and parameter names are case-insensitive."""
    challenges, pos = [], 0
    while pos < len(header):
        scheme = _SCHEME.match(header, pos)
        if not scheme:
            break
        params, pos = {}, scheme.end()
        while (param := _PARAM.match(header, pos)) and param.group(1):
            quoted, plain = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append((scheme.group(1).lower(), params))
    return challenges
# --8<-- [end:challenge]


def format_challenge(scheme: str, params: dict) -> str:
    """The header a registry would send (what the tests parse back)."""
    quoted = (k + '="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in params.items())
    return f"{scheme.capitalize()} {','.join(quoted)}".rstrip()


# ---------------------------------------------------------------------------------------------
# Stored credentials (Docker's config.json)

def server_host(server: str | None) -> str:
    """`login [SERVER]`: a host[:port], or a URL as Docker also takes (https://host/v1/).
    None is Docker Hub."""
    if not server:
        return DOCKER_HUB
    if "://" in server:
        server = urllib.parse.urlsplit(server).netloc
    server = server.split("/")[0]
    return DOCKER_HUB if server in ("index.docker.io", "registry-1.docker.io") else server


def config_path() -> str:
    base = os.environ.get("MINIDOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".minidocker")
    return os.path.join(base, "config.json")


def config_key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io") else registry


def _read_config() -> dict:
    try:
        with open(config_path()) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise MinidockerError(f"{config_path()}: not valid JSON: {e}", "fix or remove the file")


def _write_config(config: dict) -> None:
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # Written 0600 from the start (not chmod after): the file holds passwords, barely hidden.
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent="\t")
    os.replace(tmp, path)


def credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) stored for `registry` by `login`, or None."""
    entry = _read_config().get("auths", {}).get(config_key(registry))
    if not entry or not entry.get("auth"):
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return user, password


def store_credentials(registry: str, user: str, password: str) -> None:
    config = _read_config()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.setdefault("auths", {})[config_key(registry)] = {"auth": auth}
    _write_config(config)


def remove_credentials(registry: str) -> bool:
    config = _read_config()
    if config.get("auths", {}).pop(config_key(registry), None) is None:
        return False
    _write_config(config)
    return True


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# Tokens, cached per scope

class TokenCache:
    """Bearer tokens by (realm, service, scopes), each until it expires. Thread-safe: the
    download threads of one pull share it, and only one of them asks the token server."""

    def __init__(self):
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, fetch) -> str:
        with self._lock:
            token, expires = self._tokens.get(key, (None, 0.0))
            if token is None or time.monotonic() >= expires:
                token, lifetime = fetch()
                # A little early: a token that expires while a request travels is refused.
                self._tokens[key] = token, time.monotonic() + max(lifetime - 10, 1)
            return token

    def forget(self, key: tuple) -> None:
        with self._lock:
            self._tokens.pop(key, None)


def parse_token_response(body: bytes) -> tuple[str, int]:
    """The token server's JSON: `token` (or OAuth2's `access_token`), `expires_in` seconds
    (60 when absent, the spec's minimum)."""
    try:
        answer = json.loads(body)
        token = answer.get("token") or answer.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not token:
        raise MinidockerError("the token server sent no token", "is the realm of its challenge a token server?",
                              exit_code=1)
    return token, int(answer.get("expires_in") or 60)
