"""Chapter 06: the Dockerfile language (minidocker/build/dockerfile.py, words.py), API-level.
Instructions written in every form Docker accepts (exec and shell form, continuation lines,
comments between them, either escape character) must parse back to what was meant; Docker's own
substitution examples must give Docker's results; every malformed line is one error that names
its line."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from minidocker.build import dockerfile, words
from minidocker.errors import MinidockerError

DOCS = "docs/06-build.md"


def parse(text: str) -> dockerfile.Dockerfile:
    return dockerfile.parse(text)


# ---------------------------------------------------------------------------------------------
# Round trips: generate instructions, render them as a person might write them, parse them back

plain_word = st.text(st.sampled_from("abcxyz019_./:-="), min_size=1, max_size=8).filter(lambda w: not w.startswith("-"))  # "--x" is a flag
json_string = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


def render_continued(keyword: str, parts: list[str], escape: str, comments: list[bool]) -> tuple[str, str]:
    """KEYWORD part1 <esc>\\n[# comment\\n]  part2 ...: the text, and the logical line Docker joins."""
    text, joined = keyword, keyword
    for i, part in enumerate(parts):
        if i == 0:
            text += " " + part
            joined += " " + part
            continue
        text += " " + escape + "\n"
        joined += " "
        if comments[i % len(comments)]:
            text += "    # a comment between continuation lines\n"
        text += "  " + part
        joined += "  " + part
    return text, joined


@settings(max_examples=120, deadline=None)
@given(parts=st.lists(plain_word, min_size=1, max_size=5), escape=st.sampled_from(["\\", "`"]),
       comments=st.lists(st.booleans(), min_size=1, max_size=3), lead=st.sampled_from(["", "\n", "# top\n\n"]))
def test_shell_form_round_trip(parts, escape, comments, lead):
    directive = "# escape=`\n" if escape == "`" else ""
    run, joined = render_continued("RUN", parts, escape, comments)
    text = f"{directive}{lead}FROM scratch\n{run}\n"
    df = parse(text)
    got = df.instructions[1]
    assert (got.keyword, got.json, got.args) == ("RUN", False, [joined[len("RUN "):]]), (
        f"continuation lines are joined as Docker joins them (escape and line break dropped, "
        f"comment lines skipped): {text!r} -> {got.args!r}; see {DOCS}#ex-06-continuation")
    assert got.original == joined, f"`Step N/M : ...` shows the joined line; see {DOCS}#the-parser"
    first = directive.count("\n") + lead.count("\n") + 2
    assert (got.line, got.end_line) == (first, text.count("\n")), "line numbers of the instruction's first/last line"


@settings(max_examples=120, deadline=None)
@given(keyword=st.sampled_from(["RUN", "CMD", "ENTRYPOINT", "SHELL"]),
       argv=st.lists(json_string, min_size=1, max_size=4), split=st.booleans())
def test_exec_form_round_trip(keyword, argv, split):
    # A JSON array may be broken over lines too, between its elements (a break inside a string
    # would keep the next line's indentation in it: Docker keeps a continued line's spaces).
    body = "[" + (", \\\n  " if split else ", ").join(json.dumps(a) for a in argv) + "]"
    inst = parse(f"FROM scratch\n{keyword} {body}\n").instructions[1]
    assert (inst.json, inst.args) == (True, argv), f"{keyword} {body}: the exec form's JSON array; see {DOCS}#the-parser"


def test_invalid_json_is_shell_form():
    cases = {"CMD [echo, hi]": ["[echo, hi]"], "CMD ['echo', 'hi']": ["['echo', 'hi']"], 'CMD ["a" "b"]': ['["a" "b"]']}
    for line, args in cases.items():
        inst = parse(f"FROM scratch\n{line}\n").instructions[1]
        assert (inst.json, inst.args) == (False, args), f"{line}: not JSON, so shell form, as Docker ({DOCS}#the-parser)"


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.text("ABCxyz_", min_size=1, max_size=5),
                                st.text(st.sampled_from("ab $\"'\\ =x"), max_size=6)), min_size=1, max_size=4))
def test_env_pairs_round_trip(pairs):
    """ENV k="v" ...: each value written in double quotes, with Docker's escapes, comes back."""
    def quote(v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
    line = "ENV " + " ".join(f"{k}={quote(v)}" for k, v in pairs)
    inst = parse(f"FROM scratch\n{line}\n").instructions[1]
    got = list(zip(inst.values[::2], [words.expand(v, {}) for v in inst.values[1::2]]))
    assert got == pairs, f"{line!r}: ENV's key=value list, quotes and escapes removed; see {DOCS}#substitution"


def test_directives_and_comments():
    df = parse("# Syntax = docker/dockerfile:1\n#ESCAPE=`\nFROM scratch\n# escape=\\\nRUN a `\n b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}, "directives: case-insensitive keys, at the top"
    assert df.instructions[1].args == ["a  b"], "the backtick escape continues lines; a later '# escape=' is a comment"
    late = parse("# hello\n# escape=`\nFROM scratch\nRUN a \\\n b\n")
    assert late.directives == {} and late.instructions[1].args == ["a  b"], \
        f"after a comment, '# escape=' is only a comment ({DOCS}#the-parser)"
    blank = parse("\n# escape=`\nFROM scratch\n")
    assert blank.directives == {}, "an empty line ends the directives too"


def test_empty_continuation_lines_and_flags():
    df = parse("FROM scratch AS b\nCOPY --from=b --chown=1:2 --link \\\n\n  a /x\n")
    copy = df.instructions[1]
    assert copy.flags == {"from": "b", "chown": "1:2", "link": "true"} and copy.values == ["a", "/x"]
    assert df.warnings and "Empty continuation line" in df.warnings[0], "Docker warns about empty continuation lines"


def test_every_instruction_parses():
    text = """ARG BASE=busybox
FROM $BASE AS build
MAINTAINER someone
RUN ["true"]
LABEL a=b "c d"="e f"
EXPOSE 80/tcp 53/udp
ENV A=1
ADD --chown=0:0 a.tar /
COPY a /b/
ENTRYPOINT ["/bin/sh"]
VOLUME ["/data", "/logs"]
USER 1000:1000
WORKDIR /app
ONBUILD COPY . /src
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost
SHELL ["/bin/sh", "-eu", "-c"]
CMD echo done
"""
    df = parse(text)
    keywords = [i.keyword for i in df.instructions]
    assert keywords == [line.split()[0] for line in text.splitlines()], "every instruction Docker knows"
    assert df.instructions[4].values == ["a", "b", '"c d"', '"e f"'], "LABEL keeps the quotes for expand"
    assert df.instructions[13].trigger.keyword == "COPY" and df.instructions[13].args == ["COPY . /src"]
    assert df.instructions[15].values == ["CMD", "wget -q localhost"] and not df.instructions[15].json
    assert dockerfile.parse_duration(df.instructions[15].flags["interval"]) == 30 * 10**9


# ---------------------------------------------------------------------------------------------
# Malformed input: one error, with the line number, in Docker's words

MALFORMED = [
    ("FROM scratch\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("FROM scratch\n\nENV =x\n", 3, "ENV names can not be blank"),
    ("FROM scratch\nENV A\n", 2, "ENV must have two arguments"),
    ("FROM scratch\nENV A=1 B\n", 2, "can't find = in \"B\""),
    ("FROM scratch\nLABEL\n", 2, "LABEL requires at least one argument"),
    ("FROM scratch\nARG =1\n", 2, "ARG names can not be blank"),
    ("FROM scratch\nARG\n", 2, "ARG requires at least one argument"),
    ("FROM scratch\nCOPY a\n", 2, "COPY requires at least two arguments"),
    ("FROM scratch\nADD \\\n  a\n", 2, "ADD requires at least two arguments"),
    ("FROM\n", 1, "FROM requires either one or three arguments"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", 1, "invalid name for build stage"),
    ("FROM scratch\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM scratch\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM scratch\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM scratch\nVOLUME [\"\"]\n", 2, "VOLUME specified can not be an empty string"),
    ("FROM scratch\nSHELL /bin/sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM scratch\nCMD [\"a\", 1]\n", 2, "arrays must be comprised of strings only"),
    ("FROM scratch\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD"),
    ("FROM scratch\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM scratch\nHEALTHCHECK FOO x\n", 2, "Unknown type \"FOO\" in HEALTHCHECK"),
    ("FROM scratch\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM scratch\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM scratch\nHEALTHCHECK --interval=1x CMD true\n", 2, "invalid duration"),
    ("FROM scratch\nHEALTHCHECK --retries=0 CMD true\n", 2, "--retries must be at least 1"),
    ("FROM scratch\nCOPY --nope=1 a b\n", 2, "unknown flag: nope"),
    ("FROM scratch\nCOPY --from a b\n", 2, "missing a value on flag: --from"),
    ("FROM scratch\nCOPY --from=a --from=b a b\n", 2, "duplicate flag specified: --from"),
    ("FROM scratch\nRUN --mount=type=cache x\n", 2, "unknown flag: mount"),
    ("FROM scratch\nRUN <<EOF\necho\nEOF\n", 2, "heredocs"),
    ("# escape=x\nFROM scratch\n", 1, "invalid escape token"),
    ("# escape=`\n# escape=\\\nFROM scratch\n", 2, "only one escape parser directive"),
    ("RUN true\n", 1, "no build stage in current context"),
]


@pytest.mark.parametrize("text,line,words_", MALFORMED, ids=[m[2][:30] for m in MALFORMED])
def test_malformed_is_one_error_with_its_line(text, line, words_):
    with pytest.raises(MinidockerError) as e:
        parse(text)
    message = str(e.value)
    assert message.startswith(f"Dockerfile:{line}: ") and words_ in message and "\n" not in message, (
        f"{text!r} should fail on line {line} with {words_!r}, got {message!r}; see {DOCS}#the-parser")


def test_empty_dockerfile():
    for text in ("", "\n\n", "# only a comment\n"):
        with pytest.raises(MinidockerError, match="file with no instructions"):
            parse(text)


# ---------------------------------------------------------------------------------------------
# Substitution: Docker's examples (the Dockerfile reference, and moby's lexer tests)

ENV = {"PWD": "/home", "EMPTY": "", "HOST": "a b", "X": "x"}
EXPANSIONS = [
    ("hello", "hello"), ("$PWD", "/home"), ("${PWD}", "/home"), ("${PWD}/x", "/home/x"),
    ("$PWD/x", "/home/x"), ("\\$PWD", "$PWD"), ("'$PWD'", "$PWD"), ('"$PWD"', "/home"),
    ('"\\$PWD"', "$PWD"), ("$NOPE", ""), ("${NOPE:-def}", "def"), ("${EMPTY:-def}", "def"),
    ("${EMPTY-def}", ""), ("${PWD:-def}", "/home"), ("${NOPE:+alt}", ""), ("${PWD:+alt}", "alt"),
    ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${NOPE:-$PWD/y}", "/home/y"),
    ('${NOPE:-"a b"}', "a b"), ("a\\ b", "a b"), ('"a\\b"', "a\\b"), ("'a\\b'", "a\\b"),
    ("$", "$"), ("$/", "$/"), ("${X}${X}", "xx"), ("foo$PWD$X", "foo/homex"), ("$1", ""),
    ("${PWD#/}", "home"), ("${HOST%% *}", "a"), ("a\\", "a"),
]


@pytest.mark.parametrize("text,want", EXPANSIONS)
def test_substitution_like_docker(text, want):
    got = words.expand(text, ENV)
    assert got == want, f"expand({text!r}) = {got!r}, Docker gives {want!r}; see {DOCS}#substitution"


def test_substitution_with_backtick_escape_and_words():
    assert words.expand("`$PWD", ENV, "`") == "$PWD" and words.expand("a\\b", ENV, "`") == "a\\b"
    assert words.expand_words("$HOST 'c d'", ENV) == ["a", "b", "c d"], "a variable's blanks split words, quotes do not"


@pytest.mark.parametrize("text,why", [("${", "missing '}'"), ("${}", "bad substitution"), ("${X", "missing '}'"),
                                      ("'abc", "single-quote"), ('"abc', "double-quote"), ("${X:=y}", "unsupported modifier"),
                                      ("${NOPE:?must be set}", "NOPE: must be set"), ("${EMPTY:?}", "not allowed to be empty")])
def test_substitution_errors(text, why):
    with pytest.raises(MinidockerError, match=why.replace("?", r"\?")):
        words.expand(text, ENV)


def test_split_keeps_quotes_for_expand():
    assert words.split('a="x y" b=1 c=d\\ e') == ['a="x y"', "b=1", "c=d\\ e"]
    assert words.split("'a b' \"\"") == ["'a b'", '""'], "an empty quoted word is still a word"
