"""The Dockerfile parser: text in, a list of instructions out, as Docker's parser reads it.

Docker reads a Dockerfile in two passes, and so do we (see docs/06-build.md#the-parser):

1. lines: parser directives at the very top (`# escape=`, `# syntax=`), comments dropped, and
   continuation lines (a line ending in the escape character) joined into one logical line;
2. instructions: each logical line is split into its keyword, its `--flags` and the rest, and the
   rest is read by the keyword's own rule: JSON (exec) form or shell form, `key=value` lists,
   whitespace-separated words, or a whole string.

Variables are *not* substituted here: that needs the build's ENV and ARG values, which only the
builder knows step by step (words.expand). Every error is one MinidockerError that names the
file's line, in Docker's words where Docker has them.
"""

import json
import re
from dataclasses import dataclass, field

from minidocker.build import words
from minidocker.errors import MinidockerError

# Every instruction Docker knows, with how the rest of its line is read (Docker's dispatch table).
JSON_OR_STRING = "json-or-string"  # RUN CMD ENTRYPOINT SHELL: exec form, or the line as one string
JSON_OR_WORDS = "json-or-words"  # ADD COPY VOLUME: exec form, or whitespace-separated words
WORDS = "words"  # FROM EXPOSE: whitespace-separated words
STRING = "string"  # MAINTAINER USER WORKDIR STOPSIGNAL: the rest of the line, as it is
NAME_VALUE = "name-value"  # ENV LABEL: key=value pairs, or the old `KEY name value`
NAME_OR_NAME_VALUE = "name-or-name-value"  # ARG: name, or name=value, words
HEALTH = "health"  # HEALTHCHECK: a type (CMD, NONE), then like CMD
SUB = "sub-instruction"  # ONBUILD: another instruction
RULES = {
    "ADD": JSON_OR_WORDS, "ARG": NAME_OR_NAME_VALUE, "CMD": JSON_OR_STRING, "COPY": JSON_OR_WORDS,
    "ENTRYPOINT": JSON_OR_STRING, "ENV": NAME_VALUE, "EXPOSE": WORDS, "FROM": WORDS,
    "HEALTHCHECK": HEALTH, "LABEL": NAME_VALUE, "MAINTAINER": STRING, "ONBUILD": SUB,
    "RUN": JSON_OR_STRING, "SHELL": JSON_OR_STRING, "STOPSIGNAL": STRING, "USER": STRING,
    "VOLUME": JSON_OR_WORDS, "WORKDIR": STRING,
}
# The --flags each instruction takes (the classic builder's; BuildKit's RUN --mount is not here).
# --link is accepted and has no effect: it asks BuildKit for a layer independent of the ones
# below, and the classic builder's layers are always made on top of the previous step.
FLAGS = {
    "ADD": {"chown", "chmod", "link"}, "COPY": {"chown", "chmod", "from", "link"},
    "FROM": {"platform"}, "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
BOOL_FLAGS = {"link"}
# Docker substitutes variables in these instructions only (the classic builder's
# replaceEnvAllowed); FROM too, but with the ARGs declared before the first FROM only. The builder
# calls words.expand on their words; RUN, CMD and ENTRYPOINT are left to the shell in the container.
EXPANDS = {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
DIRECTIVES = ("escape", "syntax")
DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
HEREDOC = re.compile(r"^<<-?(['\"]?)[A-Za-z_][A-Za-z0-9_]*\1$")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
HINT = "see docs/06-build.md#the-dockerfile-language"


@dataclass
class Instruction:
    keyword: str  # upper case: "RUN"
    args: list[str]  # exec form: the JSON list; otherwise [the rest of the line after the flags]
    json: bool = False  # written in exec (JSON) form
    flags: dict[str, str] = field(default_factory=dict)  # {"from": "build"}; a bare --link is "true"
    original: str = ""  # the logical line, as `Step N/M : ...` prints it
    line: int = 0  # 1-based line of its first physical line
    end_line: int = 0  # ... and of its last
    values: list[str] = field(default_factory=list)  # the words as Docker's parser splits them (below)
    trigger: "Instruction | None" = None  # ONBUILD's instruction

    # `values`, per keyword (quotes are kept: words.expand removes them, as Docker does):
    #   ENV, LABEL: [key1, value1, key2, value2, ...]      ARG: ["name", "name=value", ...]
    #   FROM, EXPOSE, and ADD/COPY/VOLUME in shell form: the whitespace-separated words
    #   exec form: the JSON list    RUN/CMD/ENTRYPOINT/SHELL in shell form, and the STRING ones: [rest]
    #   HEALTHCHECK: [type, *command]    ONBUILD: [the trigger's keyword, *its values]


@dataclass
class Dockerfile:
    directives: dict[str, str]  # {"escape": "`", "syntax": "docker/dockerfile:1"}, as found
    instructions: list[Instruction]
    warnings: list[str] = field(default_factory=list)  # Docker's "Empty continuation line" warning

    @property
    def escape(self) -> str:
        return self.directives.get("escape", "\\")


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile's text. `name` is used in error messages: "Dockerfile:3: ..."."""
    directives, lines, warnings = _logical_lines(text, name)
    escape = directives.get("escape", "\\")
    instructions = [_instruction(logical, start, end, escape, name) for logical, start, end in lines]
    if not instructions:
        raise MinidockerError(f"{name}: file with no instructions", "a Dockerfile starts with FROM")
    for i in instructions:  # only ARGs may come before the first FROM (they parametrize it)
        if i.keyword == "FROM":
            break
        if i.keyword != "ARG":
            raise _error(name, i.line, "no build stage in current context", "start the Dockerfile with FROM")
    return Dockerfile(directives, instructions, warnings)


# ---------------------------------------------------------------------------------------------
# Pass 1: physical lines -> logical lines

def _logical_lines(text: str, name: str) -> tuple[dict, list[tuple[str, int, int]], list[str]]:
    """Directives, and (logical line, first line, last line) for each instruction."""
    physical = text.removeprefix("\ufeff").splitlines()
    directives: dict[str, str] = {}
    looking = True  # for directives: only until the first line that is not one
    escape = "\\"
    out, warnings = [], []
    n = 0
    while n < len(physical):
        raw = physical[n].lstrip()
        n += 1
        if looking:
            looking = _directive(raw, directives, name, n)
            if looking:
                escape = directives.get("escape", escape)
                continue
        if raw.startswith("#") or not raw:
            continue  # a comment, or an empty line
        start = n
        # --8<-- [start:ex-06-continuation]
        # A line ending in the escape character (and maybe blanks after it) goes on on the next
        # line: drop the escape, glue the next line on as it is (its leading blanks kept). A
        # comment line in the middle is dropped; so is an empty one (Docker warns about it).
        line, more = _continues(raw, escape)
        empty_seen = False
        while more and n < len(physical):
            nxt = physical[n]
            n += 1
            if nxt.lstrip().startswith("#"):
                continue
            if not nxt.strip():
                empty_seen = True
                continue
            rest, more = _continues(nxt, escape)
            line += rest
        # --8<-- [end:ex-06-continuation]
        if empty_seen:
            warnings.append(f"[WARNING]: Empty continuation line found in:\n    {line}")
        if line.strip():
            out.append((line, start, n))
    return directives, out, warnings


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """The line without its continuation mark, and whether it had one."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def _directive(line: str, found: dict, name: str, n: int) -> bool:
    """Record `line` if it is a parser directive; False once directives are over. Docker looks
    for them only at the very top: the first comment that is not one, the first empty line, or
    the first instruction ends the search, and a later `# escape=` is an ordinary comment."""
    match = DIRECTIVE.match(line)
    if not match or match[1].lower() not in DIRECTIVES:
        return False
    key, value = match[1].lower(), match[2]
    if key in found:
        raise _error(name, n, f"only one {key} parser directive can be used", "remove the second one")
    if key == "escape" and value not in ("\\", "`"):
        raise _error(name, n, f"invalid escape token '{value}' does not match ` or \\", "use \\ or `")
    found[key] = value
    return True


# ---------------------------------------------------------------------------------------------
# Pass 2: a logical line -> an Instruction

def _instruction(line: str, start: int, end: int, escape: str, name: str) -> Instruction:
    def fail(message: str, hint: str = HINT) -> MinidockerError:
        return _error(name, start, message, hint)

    parts = line.strip().split(None, 1)
    keyword = parts[0].upper()
    if keyword not in RULES:
        raise fail(f"unknown instruction: {keyword}", "instructions are " + ", ".join(sorted(RULES)))
    rest, flag_words = _split_flags(parts[1] if len(parts) > 1 else "")
    flags = _flags(keyword, flag_words, fail)
    inst = Instruction(keyword, [rest] if rest else [], flags=flags, original=line.strip(),
                       line=start, end_line=end)
    rule = RULES[keyword]
    if rule in (JSON_OR_STRING, JSON_OR_WORDS):
        exec_form = _json(rest, fail)
        if exec_form is not None:
            inst.args, inst.json = exec_form, True
            inst.values = exec_form
        elif rule == JSON_OR_WORDS:
            inst.values = rest.split()
        else:
            inst.values = [rest] if rest else []
    elif rule == WORDS:
        inst.values = rest.split()
    elif rule == STRING:
        inst.values = [rest] if rest else []
    elif rule == NAME_VALUE:
        inst.values = _name_values(keyword, rest, escape, fail)
    elif rule == NAME_OR_NAME_VALUE:
        inst.values = words.split(rest, escape)
    elif rule == HEALTH:
        kind, command = (re.split(r"\s+", rest, maxsplit=1) + [""])[:2] if rest else ("", "")
        exec_form = _json(command.strip(), fail)
        inst.json = exec_form is not None
        inst.values = ([kind] if kind else []) + (exec_form if inst.json else [command.strip()] if command.strip() else [])
    elif rule == SUB:
        if rest:
            inst.trigger = _instruction(rest, start, end, escape, name)
            inst.values = [inst.trigger.keyword, *inst.trigger.values]
    _check(inst, fail)
    return inst


def _split_flags(rest: str) -> tuple[str, list[str]]:
    """Split `--from=build --chown=1:1 a b` into the flags' words and the rest. Flags are the
    words right after the keyword that start with `--`; a bare `--` ends them."""
    found = []
    while True:
        rest = rest.lstrip()
        if not rest.startswith("--"):
            return rest.rstrip(), found
        word, end = _flag_word(rest)
        rest = rest[end:]
        if word == "--":
            return rest.strip(), found
        found.append(word)


def _flag_word(text: str) -> tuple[str, int]:
    """One flag word: quotes group (and are removed), a backslash escapes the next character."""
    out, quote, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and i + 1 < len(text):
                i += 1
                out.append(text[i])
            else:
                out.append(ch)
        elif ch.isspace():
            break
        elif ch in "'\"":
            quote = ch
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            out.append(text[i])
        else:
            out.append(ch)
        i += 1
    return "".join(out), i


def _flags(keyword: str, flag_words: list[str], fail) -> dict[str, str]:
    """--name=value words as a dict, checked against what the instruction takes."""
    flags = {}
    for word in flag_words:
        key, has_value, value = word[2:].partition("=")
        if key not in FLAGS.get(keyword, ()):
            raise fail(f"unknown flag: {key}", f"{keyword} takes " + (
                ", ".join("--" + f for f in sorted(FLAGS[keyword])) if keyword in FLAGS else "no flags"))
        if key in flags:
            raise fail(f"duplicate flag specified: --{key}", "give it once")
        if key in BOOL_FLAGS:
            if has_value and value.lower() not in ("true", "false"):
                raise fail(f"expecting boolean value for flag {key}, not: {value}", f"--{key} or --{key}=false")
            value = value.lower() if has_value else "true"
        elif not has_value or value == "":
            raise fail(f"missing a value on flag: --{key}", f"write --{key}=VALUE")
        flags[key] = value
    return flags


def _json(rest: str, fail) -> list[str] | None:
    """The exec form's JSON array of strings, or None when `rest` is not a JSON array: Docker
    then reads it in shell form, silently (`CMD [echo, hi]` runs `/bin/sh -c '[echo, hi]'`)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_no_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise fail("when using JSON array syntax, arrays must be comprised of strings only",
                   'quote every element: ["echo", "1"]')
    return value


def _no_constant(word: str):
    raise ValueError(word)  # NaN, Infinity: Go's JSON has no such thing


def _name_values(keyword: str, rest: str, escape: str, fail) -> list[str]:
    """ENV and LABEL: `key=value ...` pairs, or the old form `KEY name the value` (first word has
    no "="): the name, then the rest of the line as one value."""
    found = words.split(rest, escape)
    if not found:
        return []
    if "=" not in found[0]:
        old = rest.split(None, 1)
        if len(old) < 2:
            raise fail(f"{keyword} must have two arguments", f"{keyword} name=value")
        return old
    pairs = []
    for word in found:
        if "=" not in word:
            raise fail(f"Syntax error - can't find = in \"{word}\". Must be of the form: name=value",
                       "quote a value that has blanks")
        pairs.extend(word.split("=", 1))
    return pairs


def _check(inst: Instruction, fail) -> None:
    """What each instruction needs, in Docker's words (its instructions/parse.go)."""
    k, v = inst.keyword, inst.values
    if k in ("ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "ONBUILD", "HEALTHCHECK") and not v:
        raise fail(f"{k} requires at least one argument")
    if k in ("ENV", "LABEL") and any(key == "" for key in v[::2]):
        raise fail(f"{k} names can not be blank")
    if k == "ARG" and any(word.startswith("=") for word in v):
        raise fail("ARG names can not be blank")
    if k in ("MAINTAINER", "USER", "WORKDIR", "STOPSIGNAL") and len(v) != 1:
        raise fail(f"{k} requires exactly one argument")
    if k in ("ADD", "COPY") and len(v) < 2:
        raise fail(f"{k} requires at least two arguments, but only one was provided. "
                   "Destination could not be determined", f"{k} SOURCE... DEST")
    if k == "FROM":
        if not (len(v) == 1 or (len(v) == 3 and v[1].lower() == "as")):
            raise fail("FROM requires either one or three arguments", "FROM IMAGE [AS NAME]")
        if len(v) == 3 and not STAGE_NAME.match(v[2].lower()):
            raise fail(f'invalid name for build stage: "{v[2]}", name can\'t start with a number or contain symbols')
    if k == "VOLUME" and any(not p.strip() for p in v):
        raise fail("VOLUME specified can not be an empty string")
    if k == "SHELL" and not inst.json:
        raise fail("SHELL requires the arguments to be in JSON form", 'SHELL ["/bin/sh", "-c"]')
    if k == "SHELL" and not v:
        raise fail("SHELL requires at least one argument")
    if k == "ONBUILD":
        trigger = inst.trigger.keyword
        if trigger == "ONBUILD":
            raise fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise fail(f"{trigger} isn't allowed as an ONBUILD trigger")
    if k == "HEALTHCHECK":
        _check_health(inst, fail)
    if k in ("RUN", "COPY", "ADD") and not inst.json and inst.args and any(map(HEREDOC.match, inst.args[0].split())):
        raise fail("heredocs (<<EOF) are not supported: minidocker reads Dockerfiles as the classic builder",
                   "write the lines into RUN with && or copy a file")


def _check_health(inst: Instruction, fail) -> None:
    kind = inst.values[0].upper()
    if kind == "NONE":
        if len(inst.values) > 1 or inst.flags:
            raise fail("HEALTHCHECK NONE takes no arguments")
        return
    if kind != "CMD":
        raise fail(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if len(inst.values) < 2:
        raise fail("Missing command after HEALTHCHECK CMD")
    for key in ("interval", "timeout", "start-period", "start-interval"):
        if key in inst.flags:
            try:
                ns = parse_duration(inst.flags[key])
            except ValueError:
                raise fail(f'time: invalid duration "{inst.flags[key]}"', "durations are like 30s, 1m30s, 500ms") from None
            if ns < 1_000_000:
                raise fail(f'Interval "{key}" cannot be less than 1ms')
    if "retries" in inst.flags:
        if not re.fullmatch(r"[+-]?\d+", inst.flags["retries"]):
            raise fail(f'strconv.ParseInt: parsing "{inst.flags["retries"]}": invalid syntax')
        if int(inst.flags["retries"]) < 1:
            raise fail(f"--retries must be at least 1 (not {int(inst.flags['retries'])})")


DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                  "m": 60_000_000_000, "h": 3_600_000_000_000}
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """A Go duration ("1m30s", "500ms", "0") in nanoseconds: HEALTHCHECK's flags, and the image
    config's Healthcheck fields, are in Go's units."""
    body = text.lstrip("+")
    if body == "0":
        return 0
    if not body or DURATION_PART.sub("", body) != "":
        raise ValueError(text)
    return round(sum(float(n) * DURATION_UNITS[u] for n, u in DURATION_PART.findall(body)))


def _error(name: str, line: int, message: str, hint: str = HINT) -> MinidockerError:
    return MinidockerError(f"{name}:{line}: {message}", hint)
