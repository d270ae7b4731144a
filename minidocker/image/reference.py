"""Image references: the names `run`, `pull`, `tag` and `push` take, in Docker's grammar.

A reference says where an image lives and which one it is:

    [DOMAIN/]PATH[:TAG][@DIGEST]        e.g.  localhost:5000/team/app:1.0@sha256:5b0b...

- DOMAIN is the registry: a host name or IPv4 address, or an IPv6 address in brackets, with an
  optional port;
- PATH is the repository: lower-case components joined by "/";
- TAG names a version and can move to another image at any time;
- DIGEST is the manifest's hash and names exactly one image, for ever.

Users write short, "familiar" forms. Docker normalises them before it looks anything up, so
`busybox`, `library/busybox` and `docker.io/library/busybox:latest` are one image. minidocker
keeps the full form in its store (index.json) and shows the familiar one, as Docker does.

The rules are those of github.com/distribution/reference, the package Docker itself uses, error
messages included. See docs/03-images.md#references.
"""

import collections
import re

from minidocker.errors import MinidockerError

DEFAULT_DOMAIN = "docker.io"  # where a reference without a domain lives: Docker Hub
LEGACY_DOMAIN = "index.docker.io"  # Docker Hub's old name, still accepted and rewritten
OFFICIAL_PREFIX = "library/"  # Docker Hub's official images: `busybox` is `library/busybox`
DEFAULT_TAG = "latest"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"  # docker.io is a web site; its registry API lives here
NAME_MAX = 255  # the longest repository path (the domain not counted, since distribution v0.6)
DOCS = "see docs/03-images.md#references"

# --8<-- [start:grammar]
# The grammar, piece by piece. Only ASCII classes: Python's \w and \d would also match "é" or "٣".
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"  # one ".", one or two "_", any number of "-"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"  # so a component never starts or ends with one
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"  # a DNS label; upper case is fine
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])"  # a name, an IPv4 or a [IPv6] address
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?")
# --8<-- [end:grammar]
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")  # an image ID without "sha256:"
_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}  # the algorithms go-digest knows


class Reference(collections.namedtuple("Reference", ["domain", "path", "tag", "digest"], defaults=(None, None))):
    """One parsed reference. A part that was not written is None. `path` is the repository: what
    goes into the registry's URLs, /v2/<path>/manifests/<tag>. (A named tuple, immutable and
    comparable, rather than a dataclass: importing dataclasses costs every `run` ~7 ms.)"""

    __slots__ = ()

    @property
    def name(self) -> str:
        """The repository with its domain, "docker.io/library/busybox": no tag, no digest."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        return _format(self.name, self.tag, self.digest)

    def familiar(self) -> str:
        """What Docker shows (FamiliarString): "busybox:latest", "user/app:1", "localhost:5000/x"."""
        return _format(self.familiar_name, self.tag, self.digest)

    @property
    def familiar_name(self) -> str:
        """The name without Docker Hub's defaults: "busybox", "user/app", "localhost:5000/x"."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_PREFIX)
        # Only one level is official: docker.io/library/a/b stays "library/a/b".
        return short if "/" not in short else self.path

    @property
    def registry(self) -> str:
        """The host[:port] to send registry API requests to."""
        return registry_host(self.domain or DEFAULT_DOMAIN)


def _format(name: str, tag: str | None, digest: str | None) -> str:
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def registry_host(domain: str) -> str:
    """Docker Hub's images are named docker.io/..., but its registry answers at another host."""
    return DOCKER_HUB_REGISTRY if domain in (DEFAULT_DOMAIN, LEGACY_DOMAIN) else domain


def parse(text: str) -> Reference:
    """The reference as written, nothing added (distribution's Parse): parse("busybox") has no
    domain and no tag. A reference a user types goes through normalize() instead."""
    if not text:
        raise MinidockerError("repository name must have at least one component", DOCS)
    match = _REFERENCE.fullmatch(text)
    if match is None:
        if text.lower() != text and _REFERENCE.fullmatch(text.lower()):
            raise MinidockerError("repository name must be lowercase", f"{_shown(text)}: {DOCS}")
        raise MinidockerError("invalid reference format", _why(text))
    domain, path, tag, digest = match.groups()
    if len(path) > NAME_MAX:
        raise MinidockerError(f"repository name must not be more than {NAME_MAX} characters",
                              f"this one has {len(path)}")
    if digest:
        _check_digest(digest)
    return Reference(domain, path, tag, digest)


def normalize(text: str) -> Reference:
    """The full reference Docker means by what a user typed (ParseNormalizedNamed, then
    TagNameOnly): normalize("busybox") is docker.io/library/busybox:latest."""
    if not text:
        raise MinidockerError("invalid reference format", "the reference is empty")
    if _IDENTIFIER.fullmatch(text):  # that is an image ID, and would be ambiguous as a name
        raise MinidockerError(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings",
                              "to name an image by its ID, use the ID where an image is expected")
    # --8<-- [start:ex-03-normalize]
    # Split `text` into (domain, remainder): the part before the first "/" is the domain only when
    # it contains "." or ":", is "localhost", or has upper case; otherwise the domain is docker.io.
    # index.docker.io becomes docker.io; on docker.io a name without "/" gets the "library/" prefix.
    # Then parse them with _parse_full(domain, remainder), and add the tag "latest" when the
    # reference has neither a tag nor a digest.
    first, slash, rest = text.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    ref = _parse_full(domain, remainder)
    if ref.tag is None and ref.digest is None:
        ref = ref._replace(tag=DEFAULT_TAG)
    return ref
    # --8<-- [end:ex-03-normalize]


def _parse_full(domain: str, remainder: str) -> Reference:
    """parse("domain/remainder"), after Docker's check for upper case. That check looks at the
    repository up to the first ":", the tag's or, with a digest and no tag, the digest's (a quirk
    we keep: same input, same message as Docker)."""
    repository = remainder.partition(":")[0]
    if repository.lower() != repository:
        raise MinidockerError(f"invalid reference format: repository name ({_shown(repository)}) must be lowercase",
                              "Docker's repository names are lower case; a tag may have upper case")
    ref = parse(f"{domain}/{remainder}")
    if ref.domain != domain:
        # "my_host.example/x": the "." makes the first part a registry, but "_" is no host name's,
        # so the grammar reads the whole as a path with no domain. Docker stores that reference,
        # which no pull or push can use; minidocker refuses it.
        raise MinidockerError("invalid reference format", f"{_shown(domain)!r} is not a registry's host name")
    return ref


def _check_digest(digest: str) -> None:
    """What go-digest checks beyond the grammar: an algorithm it knows, and the hash's exact length
    in lower-case hex (the grammar lets "sha256:ABC..." through to this point)."""
    algorithm, _, hexdigits = digest.partition(":")
    if algorithm not in _HEX_LENGTH:
        raise MinidockerError("unsupported digest algorithm", f"{algorithm!r} is not sha256, sha384 or sha512")
    if len(hexdigits) != _HEX_LENGTH[algorithm]:
        raise MinidockerError("invalid checksum digest length",
                              f"a {algorithm} digest has {_HEX_LENGTH[algorithm]} hex digits, not {len(hexdigits)}")
    if hexdigits.lower() != hexdigits:
        raise MinidockerError("invalid checksum digest format", "a digest's hex digits are lower case")


def _why(text: str) -> str:
    """A hint for "invalid reference format": Docker says no more, a learner deserves to know what."""
    odd = [c for c in text if not (c.isascii() and (c.isalnum() or c in "._-:/@[]+"))]
    if odd:
        return f"{odd[0]!r} cannot appear in a reference"
    name, at, digest = text.partition("@")
    if at and not re.fullmatch(_DIGEST, digest):
        return f"a digest is ALGORITHM:HEX, as sha256:<64 hex digits>, not {_shown(digest)!r}"
    head, colon, tag = name.rpartition(":")
    if colon and "/" not in tag and not re.fullmatch(_TAG, tag):
        return "a tag is 1 to 128 letters, digits, '_', '.' or '-', and does not start with '.' or '-'"
    if "" in name.split("/"):
        return "a name has no empty components (no leading, trailing or double '/')"
    return ("a reference is [HOST[:PORT]/]NAME[:TAG][@DIGEST]; a name's components are lower-case "
            f"letters and digits joined by '.', '_', '__' or '-': {DOCS}")


def _shown(text: str) -> str:
    """User text inside a one-line message: control characters and line breaks escaped."""
    return text if text.isprintable() else repr(text)[1:-1]
