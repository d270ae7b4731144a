""".dockerignore: which files of the build context the client leaves out, by Docker's rules.

`docker build` sends the whole context directory to the engine before the first step runs; a
`node_modules/` or a `.git/` left in it costs seconds on every build, and a secret left in it ends
up inside the engine (and, with `COPY . .`, in the image). The rules, as the docker CLI applies
them (moby/patternmatcher; see docs/06-build.md#dockerignore):

- one pattern a line; a line starting with `#` is a comment; blanks around a pattern are cut;
- a pattern is a path, cleaned (`./a//b/` is `a/b`), relative to the context: a leading `/`
  means nothing;
- `*` is any run of characters but `/`, `?` one character but `/`, `[a-z]` a class, `\\` escapes
  the next character, and `**` any number of directories, none included;
- a pattern that matches a directory excludes everything below it;
- `!pattern` is an exception: it puts back what an earlier line left out. Lines are read in
  order, and the last line that matches a path decides.
"""

import os
import re

from minidocker.errors import MinidockerError

HINT = "see docs/06-build.md#dockerignore"
EXACT, PREFIX, SUFFIX, REGEX = "exact", "prefix", "suffix", "regex"
ESCAPED = set(".+()|{}$")  # special in a regex, plain in a path pattern


def read(context_dir: str) -> list[str]:
    """The patterns of `context_dir/.dockerignore` (none when there is no such file), read as
    the CLI reads them: comments and empty lines dropped, each pattern cleaned."""
    try:
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return parse(text)


def parse(text: str) -> list[str]:
    patterns = []
    for line in text.removeprefix("\ufeff").splitlines():
        if line.startswith("#"):  # only at the very start: " #x" is a pattern
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def clean(path: str) -> str:
    """Go's filepath.Clean: no "//", no "." parts, ".." folded in, no trailing "/"."""
    cleaned = os.path.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned  # normpath keeps a leading "//"


class Pattern:
    def __init__(self, text: str):
        self.exclusion = text.startswith("!")
        self.text = text[1:] if self.exclusion else text
        if self.exclusion and not self.text:
            raise MinidockerError('illegal exclusion pattern: "!"', HINT)
        self.kind, self.regex = _compile(self.text)

    def matches(self, path: str) -> bool:
        """Does the pattern match the cleaned, /-separated `path`?"""
        # --8<-- [start:ex-06-match]
        # Compare as patternmatcher does, by the pattern's kind: EXACT the same string, PREFIX
        # what starts with "dir/", SUFFIX what ends with "/name" (or is "name"), REGEX the regex.
        if self.kind == EXACT:
            return path == self.text
        if self.kind == PREFIX:  # "dir/**": everything below dir/
            return path.startswith(self.text[:-2])
        if self.kind == SUFFIX:  # "**/name": name at any depth, the top included
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self.regex.match(path) is not None
        # --8<-- [end:ex-06-match]


def _compile(pattern: str) -> tuple[str, "re.Pattern | None"]:
    """The pattern as a regex, and the simpler test that does when it has no wildcard (as
    patternmatcher does: the kind decides how a path is compared)."""
    regex, kind, i = "^", EXACT, 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            at_start = i == 0
            i += 2
            if pattern.startswith("/", i):
                i += 1  # "**/" is "**": it may match no directory at all
            if i == len(pattern):  # a trailing "**": anything below
                if kind == EXACT:
                    kind = PREFIX
                else:
                    regex, kind = regex + ".*", REGEX
            else:
                regex, kind = regex + "(.*/)?", REGEX
            if at_start:
                kind = SUFFIX  # stays so unless a wildcard follows: "**/name" is a suffix test
            continue
        if ch == "*":
            regex, kind = regex + "[^/]*", REGEX
        elif ch == "?":
            regex, kind = regex + "[^/]", REGEX
        elif ch in ESCAPED:
            regex += "\\" + ch
        elif ch == "\\":
            if i + 1 < len(pattern):
                i += 1
                regex, kind = regex + re.escape(pattern[i]), REGEX
            else:
                regex += "\\\\"
        elif ch in "[]":
            regex, kind = regex + ch, REGEX
        else:
            regex += ch  # as Go's regexp reads it: "^" stays an anchor, "[a-z]" a class
        i += 1
    if kind != REGEX:
        return kind, None
    try:
        return kind, re.compile(regex + "$", re.S)
    except re.error as e:
        raise MinidockerError(f"syntax error in pattern {pattern!r}: {e}", HINT) from None


class Matcher:
    """The patterns of a .dockerignore, in order."""

    def __init__(self, patterns: list[str]):
        self.patterns = []
        for text in patterns:
            text = text.strip()
            if text:
                self.patterns.append(Pattern(clean(text)))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """Is `path` (relative to the context, /-separated) left out of the context? The last
        pattern that matches the path, or a directory above it, decides."""
        path = clean(path)
        if path == ".":
            return False  # the context itself is never left out
        parents = _parents(path)
        excluded = False
        for pattern in self.patterns:
            if pattern.exclusion != excluded:
                continue  # this line could not change the answer
            if pattern.matches(path) or any(pattern.matches(p) for p in parents):
                excluded = not pattern.exclusion
        return excluded

    def may_include_below(self, directory: str) -> bool:
        """Could an exception put back something below the excluded `directory`? If not, the
        CLI does not even look inside it (its walk skips the whole directory)."""
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
