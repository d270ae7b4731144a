"""Chapter 03: image references (minidocker/image/reference.py), API-level.

Examples of what Docker does with the names users type, then properties that hypothesis checks
on references it builds from the grammar: what parse() reads, str() writes back unchanged;
normalize() is idempotent and familiar() loses nothing; and every invalid reference, whatever is
wrong with it, is one MinidockerError with a one-line message, never another exception.
"""

import pytest
from hypothesis import given, strategies as st

from minidocker.errors import MinidockerError
from minidocker.image.reference import Reference, normalize, parse, registry_host

DOCS = "docs/03-images.md#references"
EXERCISE = "docs/03-images.md#ex-03-normalize"
HEX64 = "9b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00a"

# What you type, the full reference Docker stores, and what `docker images` shows.
EXAMPLES = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:musl", "docker.io/library/busybox:musl", "busybox:musl"),
    ("user/app:1", "docker.io/user/app:1", "user/app:1"),
    ("library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),  # only one level is official
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
    ("host.name/team/x:v2", "host.name/team/x:v2", "host.name/team/x:v2"),
    ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest", "127.0.0.1:5000/a/b:latest"),
    ("[fc00::1]:5000/x", "[fc00::1]:5000/x:latest", "[fc00::1]:5000/x:latest"),
    ("Registry/x", "Registry/x:latest", "Registry/x:latest"),  # upper case: a domain, not a user
    ("localhost", "docker.io/library/localhost:latest", "localhost:latest"),  # no "/": a name
    ("user/a__b-c--d.e_f", "docker.io/user/a__b-c--d.e_f:latest", "user/a__b-c--d.e_f:latest"),
    ("busybox:Tag_1.x-y", "docker.io/library/busybox:Tag_1.x-y", "busybox:Tag_1.x-y"),
    (f"busybox@sha256:{HEX64}", f"docker.io/library/busybox@sha256:{HEX64}", f"busybox@sha256:{HEX64}"),
    (f"busybox:1@sha256:{HEX64}", f"docker.io/library/busybox:1@sha256:{HEX64}", f"busybox:1@sha256:{HEX64}"),
    (f"docker.io/{HEX64}", f"docker.io/library/{HEX64}:latest", f"{HEX64}:latest"),  # with a domain it is a name
]

# What you type and Docker's error message (the hint in parentheses is minidocker's own).
ERRORS = [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("docker.io/library/Busybox:latest", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App", "invalid reference format: repository name (user/App) must be lowercase"),
    ("localhost:5000/App", "invalid reference format: repository name (App) must be lowercase"),
    (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
    ("", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("busybox:.tag", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busy..box", "invalid reference format"),
    ("busy___box", "invalid reference format"),
    ("user//app", "invalid reference format"),
    ("user/", "invalid reference format"),
    ("bus box", "invalid reference format"),
    ("https://host/x", "invalid reference format"),
    ("[fc00::1]:5000", "invalid reference format"),
    ("fc00::1:5000/x", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "a" * 32, "invalid checksum digest length"),
    ("busybox@sha256:" + HEX64.upper(), "invalid checksum digest format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("x" * 248, "repository name must not be more than 255 characters"),  # library/ makes it 256
    # Docker accepts this one, as a reference with no registry at all (the "_" makes "my_host.a"
    # no host name, so the grammar reads a path); minidocker refuses it.
    ("my_host.a/x", "invalid reference format"),
    ("host.name/" + "x" * 256, "repository name must not be more than 255 characters"),
]


def _error(call, text: str) -> MinidockerError:
    """The error call(text) raises; it must be exactly a MinidockerError with a one-line message."""
    try:
        result = call(text)
    except MinidockerError as e:
        assert len(str(e).splitlines()) == 1, f"{call.__name__}({text!r}): the message is not one line: {str(e)!r}"
        return e
    except Exception as e:  # noqa: BLE001 - anything else is the bug this test is about
        raise AssertionError(f"{call.__name__}({text!r}) raised {type(e).__name__}: {e}; "
                             f"bad input must be one MinidockerError, see {DOCS}") from e
    raise AssertionError(f"{call.__name__}({text!r}) accepted an invalid reference: {result!r} (see {DOCS})")


@pytest.mark.parametrize("text, full, familiar", EXAMPLES)
def test_normalize_as_docker_does(text, full, familiar):
    ref = normalize(text)
    assert str(ref) == full, f"normalize({text!r}) is {str(ref)!r}, Docker says {full!r} (see {EXERCISE})"
    assert ref.familiar() == familiar, f"{full!r}.familiar() is {ref.familiar()!r}, Docker shows {familiar!r} (see {DOCS})"


@pytest.mark.parametrize("text, message", ERRORS)
def test_invalid_references_as_docker_says(text, message):
    error = _error(normalize, text)
    assert error.what == message, f"normalize({text!r}) says {error.what!r}, Docker says {message!r} (see {DOCS})"


def test_parts_and_registry():
    ref = normalize("busybox")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("docker.io", "library/busybox", "latest", None), \
        f"normalize('busybox') has the wrong parts: {ref!r} (see {EXERCISE})"
    assert (ref.name, ref.familiar_name) == ("docker.io/library/busybox", "busybox"), f"{ref!r}: name or familiar_name"
    # Docker Hub's images are called docker.io/..., its registry API answers at registry-1.docker.io.
    assert ref.registry == registry_host("docker.io") == "registry-1.docker.io", f"see {DOCS}"
    assert normalize("localhost:5000/a/b:1").registry == "localhost:5000", "other registries are their domain"
    # A tag with a digest keeps both; a digest alone gets no :latest (TagNameOnly).
    assert normalize(f"x@sha256:{HEX64}").tag is None, f"a reference with a digest gets no tag (see {EXERCISE})"


def test_parse_takes_the_reference_as_written():
    assert parse("busybox") == Reference(None, "busybox"), f"parse adds nothing: no domain, no tag (see {DOCS})"
    # parse knows no Docker Hub: a first component that fits the domain grammar is the domain.
    assert parse("user/app:1") == Reference("user", "app", "1"), f"parse('user/app:1'): see {DOCS}"
    assert parse(HEX64).path == HEX64, "parse itself accepts a hex name; only normalize refuses it"
    assert _error(parse, "Busybox").what == "repository name must be lowercase", f"see {DOCS}"


# -------------------------------------------------------------------------------------------
# References built from the grammar.

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=5)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
_component = st.tuples(_alnum, st.lists(st.tuples(_separator, _alnum), max_size=3)).map(
    lambda t: t[0] + "".join(s + a for s, a in t[1]))
_path = st.lists(_component, min_size=1, max_size=4).map("/".join)
_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).flatmap(
    lambda a: st.sampled_from([f"[{a.compressed}]", f"[{a.exploded}]"]))
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    _ipv6,
    st.just("localhost"),
)
_domain = st.tuples(_host, st.none() | st.integers(0, 65535)).map(
    lambda t: t[0] if t[1] is None else f"{t[0]}:{t[1]}")
_tag = st.tuples(st.sampled_from("aZ9_"), st.text("abcXYZ019_.-", max_size=127)).map("".join)
_digest = st.sampled_from([("sha256", 32), ("sha384", 48), ("sha512", 64)]).flatmap(
    lambda a: st.binary(min_size=a[1], max_size=a[1]).map(lambda b: f"{a[0]}:{b.hex()}"))
_references = st.builds(Reference, domain=_domain, path=_path, tag=st.none() | _tag, digest=st.none() | _digest)
# Strings as users write them: any valid reference, with or without a domain.
_written_refs = st.builds(Reference, domain=st.none() | _domain, path=_path, tag=st.none() | _tag,
                          digest=st.none() | _digest)
_written = _written_refs.map(str)
# ... less those normalize refuses: a first component with a "." that is no host name (my_host.a/x).
_typed = _written_refs.filter(lambda r: r.domain or "/" not in r.path or "." not in r.path.split("/")[0]).map(str)


@given(_references)
def test_parse_then_format_is_the_identity(ref):
    text = str(ref)
    assert parse(text) == ref, f"parse({text!r}) is {parse(text)!r}, not {ref!r} (see {DOCS})"


@given(_written)
def test_format_then_parse_gives_the_same_text(text):
    assert str(parse(text)) == text, f"str(parse({text!r})) is {str(parse(text))!r} (see {DOCS})"


@given(_typed)
def test_normalize_is_idempotent_and_familiar_round_trips(text):
    ref = normalize(text)
    assert ref.domain and (ref.tag or ref.digest), f"normalize({text!r}) = {ref!r} is not a full reference ({EXERCISE})"
    assert normalize(str(ref)) == ref, f"normalize is not idempotent on {text!r}: {ref!r} (see {EXERCISE})"
    assert normalize(ref.familiar()) == ref, \
        f"familiar() of {str(ref)!r} is {ref.familiar()!r}, which normalizes to something else (see {DOCS})"
    assert normalize(ref.familiar_name) == normalize(ref.name), f"familiar_name of {ref!r} (see {DOCS})"


# -------------------------------------------------------------------------------------------
# Invalid references, spoiled on purpose, each in one way.

def _upper_case(ref: Reference):
    """An upper-case letter in the last path component (in the first, it could make a domain)."""
    head, slash, last = ref.path.rpartition("/")
    at = next(i for i, c in enumerate(last) if c.isalpha())
    spoiled = Reference(ref.domain, head + slash + last[:at] + last[at].upper() + last[at + 1:], ref.tag, ref.digest)
    return "must be lowercase", str(spoiled)


@st.composite
def _spoiled(draw):
    ref = draw(st.builds(Reference, domain=st.none() | _domain, path=_path,
                         tag=st.none() | _tag, digest=st.none() | _digest).filter(lambda r: any(c.isalpha() for c in r.path.rpartition('/')[2])))
    text = str(ref)
    how = draw(st.sampled_from(["upper", "char", "long", "empty", "digest", "tag"]))
    if how == "upper":
        return _upper_case(ref)
    if how == "char":
        at = draw(st.integers(0, len(text)))
        bad = draw(st.sampled_from([" ", "\n", "\t", "\x00", "!", "#", "$", "\\", "é", "\u2028", "Ｂ"]))
        return "invalid reference format", text[:at] + bad + text[at:]
    if how == "long":
        path = "/".join([ref.path] + ["x" * 60] * 5)[:draw(st.integers(256, 300))].rstrip("/._-")
        return "must not be more than 255", str(Reference(ref.domain or "host.name", path.ljust(256, "x")))
    if how == "empty":
        where = draw(st.sampled_from(["//", "/:", "/@sha256:" + "a" * 64, "/"]))
        return "invalid reference format", str(Reference(ref.domain, ref.path)) + where
    if how == "digest":
        digest = draw(st.sampled_from(["sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha256:" + "g" * 64,
                                       "md5:" + "a" * 32, "sha256:", ":" + "a" * 64, "sha256:" + "a" * 65]))
        return "digest", str(Reference(ref.domain, ref.path, ref.tag)) + "@" + digest
    tag = draw(st.sampled_from([".x", "-x", "", "x" * 129, "a:b", "a/b"]))
    return "invalid reference format", str(Reference(ref.domain, ref.path)) + ":" + tag


@given(_spoiled())
def test_every_invalid_reference_is_one_clear_error(case):
    expected, text = case
    for call in (parse, normalize):
        error = _error(call, text)
        if expected != "digest":  # go-digest's messages vary: length, format, algorithm
            assert expected in error.what, f"{call.__name__}({text!r}) says {error.what!r}, expected {expected!r} ({DOCS})"


@given(st.text(max_size=40) | st.text("abAB09._-:/@[]+ ", max_size=40))
def test_any_text_is_a_reference_or_one_error(text):
    for call in (parse, normalize):
        try:
            ref = call(text)
        except MinidockerError as e:
            assert len(str(e).splitlines()) == 1, f"{call.__name__}({text!r}): a message of more than one line: {e!r}"
            continue
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"{call.__name__}({text!r}) raised {type(e).__name__}: {e} (see {DOCS})") from e
        assert parse(str(ref)) == ref, f"{call.__name__}({text!r}) = {ref!r} does not parse back (see {DOCS})"
