"""Chapter 06: .dockerignore (minidocker/build/dockerignore.py). Docker's documented examples, and
a property: on random patterns and paths, the matcher agrees with a small model of the rules as
Docker's documentation states them (path segments, `*` and `?` inside one segment, `**` for any
number of directories, a matched directory excludes what is below it, the last matching line
wins)."""

import fnmatch

import pytest
from hypothesis import given, settings, strategies as st

from minidocker.build import dockerignore
from minidocker.errors import MinidockerError

DOCS = "docs/06-build.md"


def excluded(lines: str, path: str) -> bool:
    return dockerignore.Matcher(dockerignore.parse(lines)).excluded(path)


# The Dockerfile reference's examples, then moby/patternmatcher's.
EXAMPLES = [
    ("# comment\n*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "somedir/temp/inner.txt", True),  # below an excluded directory
    ("*/temp*", "temp.txt", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "temp", False),
    ("temp?", "tempab", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c.go", True),
    ("**/*.go", "a/b/c.golden", False),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-public.md", False),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),  # the last match wins
    ("/build/", "build/out.o", True),  # a leading "/" means nothing, a trailing one neither
    ("./a//b/../c", "a/c", True),  # patterns are cleaned
    ("**", "anything/at/all", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir", False),  # "dir/**" is what is below dir, not dir itself
    ("**/file", "file", True),
    ("**/file", "a/b/file", True),
    ("**/file", "a/bfile", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/bb", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[^a]x", "bx", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    (".git", ".git/HEAD", True),
    ("a.b", "aXb", False),  # "." is a dot, not a regex's any-character
    (" # not a comment", "# not a comment", True),  # only a "#" at the start of the line is
    ("node_modules\n!node_modules/keep", "node_modules/keep/x.js", False),
]


@pytest.mark.parametrize("lines,path,want", EXAMPLES)
def test_docker_examples(lines, path, want):
    assert excluded(lines, path) == want, (
        f".dockerignore {lines!r}: {path!r} should be {'left out' if want else 'sent'}; see {DOCS}#dockerignore")


def test_read_and_bad_patterns(tmp_path):
    (tmp_path / ".dockerignore").write_text("\ufeff# c\n\n  *.log  \n!/keep.log\n/a/../b/\n")
    assert dockerignore.read(str(tmp_path)) == ["*.log", "!keep.log", "b"], "comments, blanks, cleaning, a leading /"
    assert dockerignore.read(str(tmp_path / "none")) == [], "no .dockerignore: nothing left out"
    with pytest.raises(MinidockerError, match="illegal exclusion pattern"):
        dockerignore.Matcher(["!"])
    with pytest.raises(MinidockerError, match="syntax error in pattern"):
        dockerignore.Matcher(["a[b"])


# ---------------------------------------------------------------------------------------------
# The model: the rules as the documentation states them, on path segments

def model_segments_match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return len(path) >= 1  # a trailing ** is "everything below": one name at least
        return any(model_segments_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and model_segments_match(rest, path[1:])


def model_excluded(lines: list[str], path: str) -> bool:
    parts = path.split("/")
    result = False
    for line in lines:
        exception = line.startswith("!")
        segments = [s for s in line.lstrip("!").split("/") if s]
        # a pattern that matches the path, or a directory above it
        if any(model_segments_match(segments, parts[:n]) for n in range(1, len(parts) + 1)):
            result = not exception
    return result


segment = st.sampled_from(["a", "b", "ab", "*", "a*", "?", "*b", "**"])
pattern_line = st.builds(
    lambda bang, slash, segs, trailing: ("!" if bang else "") + ("/" if slash else "") + "/".join(segs) + ("/" if trailing else ""),
    st.booleans(), st.booleans(), st.lists(segment, min_size=1, max_size=3), st.booleans())
path = st.lists(st.sampled_from(["a", "b", "ab", "ba", "abb"]), min_size=1, max_size=4).map("/".join)


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(pattern_line, min_size=1, max_size=4), paths=st.lists(path, min_size=1, max_size=6))
def test_matcher_agrees_with_the_documented_rules(lines, paths):
    patterns = dockerignore.parse("\n".join(lines))
    matcher = dockerignore.Matcher(patterns)
    for p in paths:
        assert matcher.excluded(p) == model_excluded(patterns, p), (
            f".dockerignore {lines!r} and {p!r}: the matcher says {'left out' if matcher.excluded(p) else 'sent'}, "
            f"the rules say otherwise; see {DOCS}#dockerignore")
