"""Words and variables in a Dockerfile: Docker's small shell-like lexer.

Docker does not run a shell to read `ENV PATH=$PATH:/opt/bin` or `COPY ${SRC:-.} /app`: it has
its own lexer, which understands a little of sh (see docs/06-build.md#substitution):

- `$VAR` and `${VAR}`; `${VAR:-default}` / `${VAR-default}` (a default when unset, or empty
  with the colon); `${VAR:+alt}` / `${VAR+alt}` (alt when set); `${VAR:?message}` (an error);
  `${VAR#pattern}`, `${VAR%pattern}` (and `##`, `%%`): a prefix or suffix cut off;
- single quotes: everything literal, no substitution; double quotes: substitution, and the
  escape character escapes only `"`, `$` and itself;
- the escape character (`\\`, or `` ` `` after `# escape=`) makes the next character literal.

Quotes and escapes are removed from the result, as a shell would. Unset variables expand to "".
It runs only in the instructions Docker lists (dockerfile.EXPANDS); in RUN, the shell in the
container does its own, with the container's environment.
"""

import re

from minidocker.errors import MinidockerError

SPECIAL = set("@*#?-$!0")  # $@, $#...: sh's special parameters, always empty here
HINT = "see docs/06-build.md#substitution"


def split(text: str, escape: str = "\\") -> list[str]:
    """Docker's parser splits ENV, LABEL and ARG lists at blanks outside quotes. The quotes and
    escapes stay in each word (words.expand removes them later): `a="x y" b=1` is
    ['a="x y"', 'b=1']."""
    out, word, quote, has_word = [], [], "", False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == len(text):
                    break  # an escape at the very end is dropped
                word.append(ch)  # kept, with the character it escapes
                i += 1
                ch = text[i]
            word.append(ch)
        elif ch.isspace():
            if has_word:
                out.append("".join(word))
            word, has_word = [], False
        else:
            has_word = True
            if ch in "'\"":
                quote = ch
            elif ch == escape:
                if i + 1 == len(text):
                    break  # an escape at the very end is dropped
                word.append(ch)
                i += 1
                ch = text[i]
            word.append(ch)
        i += 1
    if has_word:
        out.append("".join(word))
    return out


def expand(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """`text` with its variables substituted and its quotes and escapes removed, as Docker's
    ProcessWord: expand('"$A"-${B:-b}', {"A": "x y"}) == "x y-b"."""
    return _Lexer(text, env, escape).run()[0]


def expand_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """Substitute, then split into words at blanks outside quotes (Docker's ProcessWords, for
    EXPOSE and VOLUME's words): with PORTS="80 443", `EXPOSE $PORTS` is two ports."""
    return _Lexer(text, env, escape).run()[1]


class _Words:
    """The words of a result: a blank from plain text or a variable's value separates words;
    a blank in quotes, or escaped, does not."""

    def __init__(self):
        self.words, self.word, self.started = [], "", False

    def add(self, text: str, raw: bool) -> None:
        for ch in text:
            if raw or not ch.isspace():
                self.word += ch
                self.started = True
            elif self.started and self.word:
                self.words.append(self.word)
                self.word, self.started = "", False

    def done(self) -> list[str]:
        return self.words + ([self.word] if self.word else [])


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str):
        self.text, self.pos, self.env, self.escape = text, 0, env, escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def fail(self, message: str) -> MinidockerError:
        return MinidockerError(f'failed to process "{self.text}": {message}', HINT)

    def run(self) -> tuple[str, list[str]]:
        return self.until("")

    def until(self, stop: str, raw_escapes: bool = False) -> tuple[str, list[str]]:
        """Read up to `stop` ("" for the end of the text); the result and its words."""
        result, words = [], _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.done()
            if ch == "$":
                value = self.dollar()
                words.add(value, raw=False)  # a variable's blanks split words
            elif ch == "'":
                value = self.single_quoted()
                words.add(value, raw=True)
            elif ch == '"':
                value = self.double_quoted()
                words.add(value, raw=True)
            else:
                self.next()
                if ch == self.escape:
                    value = ch if raw_escapes else ""  # kept for ${VAR#pattern}: it escapes * there
                    if not self.peek():
                        break  # a trailing escape is dropped
                    value += self.next()
                    words.add(value, raw=True)
                else:
                    value = ch
                    words.add(value, raw=False)
            result.append(value)
        if stop:
            raise self.fail("syntax error: missing '}'")
        return "".join(result), words.done()

    def single_quoted(self) -> str:
        self.next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise self.fail("unexpected end of statement while looking for matching single-quote")
        value, self.pos = self.text[self.pos:end], end + 1
        return value

    def double_quoted(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.next()  # only these can be escaped in double quotes: "\n" stays \n
            elif ch == self.escape and not self.peek():
                continue
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        if self.peek().isdigit():
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.pos]
        if self.peek() and self.peek() in SPECIAL:
            return self.next()
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start:self.pos]

    # --8<-- [start:dollar]
    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"  # "$" alone, or "$/", stays a dollar
        self.next()
        if not self.peek():
            raise self.fail("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise self.fail("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if not op:
            raise self.fail("syntax error: missing '}'")
        if op == "}":
            return self.env.get(name, "")
        colon = op == ":"  # with the colon, an empty value counts as unset
        if colon:
            op = self.next()
        if op not in ("-", "+", "?", "#", "%"):
            raise self.fail(f"unsupported modifier ({':' if colon else ''}{op}) in substitution")
        word, _ = self.until("}", raw_escapes=op in "#%")
        is_set = name in self.env and not (colon and self.env[name] == "")
        value = self.env.get(name, "")
        if op == "-":
            return value if is_set else word
        if op == "+":
            return word if is_set else ""
        if op == "?":
            if not is_set:
                why = word or ("is not allowed to be unset" if name not in self.env else "is not allowed to be empty")
                raise self.fail(f"{name}: {why}")
            return value
        return _cut(value, word, op)
    # --8<-- [end:dollar]


def _cut(value: str, pattern: str, op: str) -> str:
    """${VAR#pat} / ${VAR##pat}: the shortest / longest prefix matching pat cut off;
    ${VAR%pat} / ${VAR%%pat}: the same for a suffix. Patterns know `*` and `?` only."""
    greedy = pattern.startswith(op)
    if greedy:
        pattern = pattern[1:]
    regex = _pattern(pattern, greedy)
    if op == "#":
        m = re.match(regex, value, re.S)
        return value[m.end():] if m else value
    # a suffix: try the cuts from the end inwards (shortest) or from the start (longest)
    starts = range(len(value) + 1) if greedy else range(len(value), -1, -1)
    for start in starts:
        if re.fullmatch(regex, value[start:], re.S):
            return value[:start]
    return value


def _pattern(pattern: str, greedy: bool) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)
