"""`--format`: the part of Go's text/template that people type after `docker inspect -f`:
`{{.State.Pid}}`, `{{json .Config}}`, `{{range .Config.Env}}{{.}} {{end}}`.

The docker CLI hands `--format` to Go's text/template, with a few functions of its own (json,
join, split, lower, upper). We do what Go does, in three steps (docs/commands.md#format):

1. lex: cut the text into plain text and {{actions}}, and each action into tokens;
2. parse: turn the tokens into a tree of text, actions, and range/if blocks;
3. execute: walk the tree against the JSON, with "dot" (`.`) as the current value.

The subset: fields (`.`, `.A.B`), string and number literals, pipelines (`.X | json`), the
functions in FUNCTIONS, `{{range}}`, `{{if}}`/`{{else}}`, `{{- trim -}}` markers and
`{{/* comments */}}`. Variables (`$x`), parentheses, `with`, `printf` and the other Go built-ins
are refused in one line, before anything runs.

Docker runs a template against the typed Go struct first and, when that fails, against the JSON
decoded into maps; the maps are all we have. So: a missing field is an error, as in Docker
("map has no entry for key"); null prints `<no value>` (Docker's struct would print `[]` for an
empty list); and a whole object prints as Go prints a map, `map[Key:value ...]`, where Docker's
struct prints `{value ...}`. `json` shows such objects in full, in either.
"""

import json
import re

from minidocker.errors import MinidockerError

KEYWORDS = {"range", "if", "else", "end"}
UNSUPPORTED = {"with", "define", "template", "block", "break", "continue", "printf", "print",
               "println", "and", "or", "lt", "le", "gt", "ge", "slice", "html", "js", "urlquery",
               "call", "title", "pad", "truncate"}


class TemplateError(MinidockerError):
    """Docker's wording, "template parsing error: template: :LINE: ...", for parse and run alike."""

    def __init__(self, what: str, hint: str = "see docs/commands.md#format"):
        super().__init__(f"template parsing error: template: {what}", hint)


# ---------------------------------------------------------------------------------------------
# 1. Lex

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<close>-?\}\})                                  # "}}" or "-}}" (trim what follows)
  | (?P<field>(?:\.[A-Za-z_]\w*)+)                     # .State.Pid: a chain of field names
  | (?P<dot>\.)
  | (?P<string>"(?:\\.|[^"\\\n])*"|`[^`]*`)
  | (?P<number>-?\d+)
  | (?P<word>[A-Za-z_]\w*)                             # a keyword, function, true/false/nil
  | (?P<pipe>\|)
  | (?P<refused>\$\w*|:=|=|\(|\))                      # variables and parentheses
""", re.VERBOSE)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _column(text: str, pos: int) -> int:
    # Go counts bytes of UTF-8 (é is two), from 0 at the line's start.
    return len(text[text.rfind("\n", 0, pos) + 1:pos].encode("utf-8", "surrogateescape"))


TRIM = " \t\r\n"  # what a trim marker removes: {{- eats the spaces before, -}} those after
COMMENT = re.compile(r"/\*.*?\*/( -)?\}\}", re.DOTALL)


def lex(text: str) -> list[tuple]:
    """[("text", str, pos)] and [("action", [(kind, value, pos), ...], pos)] in order."""
    items, pos = [], 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            items.append(("text", text[pos:], pos))
            return items
        trim_left = re.match(r"\{\{-[ \t\r\n]", text[start:start + 4]) is not None  # {{-3}} is -3
        items.append(("text", text[pos:start].rstrip(TRIM) if trim_left else text[pos:start], pos))
        pos = start + (4 if trim_left else 2)
        comment = COMMENT.match(text, pos)
        if comment:  # {{/* a comment */}}: nothing to run
            pos, trim_right = comment.end(), comment.group(1) is not None
        else:
            tokens, pos, trim_right = _lex_action(text, pos)
            items.append(("action", tokens, start))
        if trim_right:
            pos = len(text) - len(text[pos:].lstrip(TRIM))


def _lex_action(text: str, pos: int) -> tuple[list, int, bool]:
    tokens = []
    while True:
        match = TOKEN.match(text, pos)
        if pos >= len(text):
            raise TemplateError(f":{_line(text, pos)}: unclosed action")
        if match is None:
            char = text[pos]
            if char == '"':
                raise TemplateError(f":{_line(text, pos)}: unterminated quoted string")
            raise TemplateError(f":{_line(text, pos)}: bad character U+{ord(char):04X} '{char}'")
        kind = match.lastgroup
        if kind == "close":
            if match.group() == "-}}" and not text[pos - 1:pos].isspace():
                raise TemplateError(f":{_line(text, pos)}: bad number syntax: \"-\"")
            return tokens, match.end(), match.group() == "-}}"
        if kind == "refused":
            raise TemplateError(f":{_line(text, pos)}: {match.group()!r} is not supported by minidocker's --format",
                                "variables and parentheses are not; see docs/commands.md#format")
        if kind == "string" and match.group().startswith('"'):
            try:
                json.loads(match.group())  # Go's escapes that JSON shares: \n \t \" \\ \uXXXX
            except ValueError:
                raise TemplateError(f":{_line(text, pos)}: cannot read the string {match.group()}",
                                    "use the escapes \\n \\t \\\" \\\\ or \\uXXXX") from None
        if kind != "space":
            tokens.append((kind, match.group(), pos))
        pos = match.end()


# ---------------------------------------------------------------------------------------------
# 2. Parse: a list of nodes; each node is a str (text), an Action, or a Block (range, if).

class Action:
    def __init__(self, pipeline: list[list[tuple]]):
        self.pipeline = pipeline  # commands; each command is a list of tokens (its words)


class Block:
    """{{range PIPELINE}}body{{else}}otherwise{{end}}, and the same with if."""

    def __init__(self, keyword: str, pipeline, body: list, otherwise: list):
        self.keyword, self.pipeline, self.body, self.otherwise = keyword, pipeline, body, otherwise


def parse(text: str) -> list:
    return _parse_list(text, lex(text), 0, top=True)[0]


def _parse_list(text: str, items: list, start: int, top: bool = False):
    """Nodes from items[start] up to an {{else}} or {{end}}: (nodes, (that keyword, the index
    after it, its position)). At the top there is no block to end, and the text's end is fine."""
    nodes, i = [], start
    while i < len(items):
        kind, value, pos = items[i]
        i += 1
        if kind == "text":
            if value:
                nodes.append(value)
            continue
        word = value[0][1] if value and value[0][0] == "word" else None
        if word in ("else", "end"):
            if word == "else" and len(value) > 1:
                raise TemplateError(f":{_line(text, pos)}: {{{{else {value[1][1]}}}}} is not supported by "
                                    "minidocker's --format", "nest an {{if}} inside the {{else}}")
            if top:
                raise TemplateError(f":{_line(text, pos)}: unexpected {{{{{word}}}}}")
            return nodes, (word, i, pos)
        if word in ("range", "if"):
            pipeline = _pipeline(text, value[1:], pos, f"missing value for {word}")
            body, (ended, i, _) = _parse_list(text, items, i)
            otherwise = []
            if ended == "else":
                otherwise, (ended, i, end_pos) = _parse_list(text, items, i)
                if ended == "else":
                    raise TemplateError(f":{_line(text, end_pos)}: expected end; found {{{{else}}}}")
            nodes.append(Block(word, pipeline, body, otherwise))
            continue
        nodes.append(Action(_pipeline(text, value, pos, "missing value for command")))
    if not top:
        raise TemplateError(f":{_line(text, len(text))}: unexpected EOF")
    return nodes, None


def _pipeline(text: str, tokens: list, pos: int, missing: str) -> list[list[tuple]]:
    commands, command = [], []
    for token in tokens + [("pipe", "|", len(text))]:
        kind, value, where = token
        if kind == "pipe":
            if not command:
                raise TemplateError(f":{_line(text, where if commands else pos)}: {missing}")
            commands.append(command)
            command = []
            continue
        if kind == "word" and value in UNSUPPORTED:
            raise TemplateError(f":{_line(text, where)}: {value!r} is not supported by minidocker's --format",
                                f"what is: fields, json, {', '.join(sorted(set(FUNCTIONS) - {'json'}))}, "
                                f"range, if/else; see docs/commands.md#format")
        if kind == "word" and value not in FUNCTIONS and value not in ("true", "false", "nil"):
            if value in KEYWORDS:
                raise TemplateError(f":{_line(text, where)}: unexpected <{value}> in command")
            raise TemplateError(f":{_line(text, where)}: function \"{value}\" not defined")
        command.append(token)
    return commands


# ---------------------------------------------------------------------------------------------
# 3. Execute

def render(template: str, data, header: bool = False) -> str:
    """The template's output for `data` (a JSON value: dict, list, str, int, bool or None).

    header=True runs it for a table's header row, where `data` holds the column names and the
    text functions (json, join, ...) hand their first argument back unchanged, as the docker
    CLI's HeaderFunctions do: `{{json .Names}}` still heads its column with NAMES."""
    run = Run(template, HEADER_FUNCTIONS if header else FUNCTIONS)
    run.nodes(parse(template), data)
    return "".join(run.out)


class Run:
    """One execution: the template's text (for error positions), its functions, the output."""

    def __init__(self, text: str, functions: dict):
        self.text, self.functions, self.out = text, functions, []

    def nodes(self, nodes: list, dot) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, Action):
                self.out.append(go_print(self.pipeline(node.pipeline, dot)))
            elif node.keyword == "if":
                self.nodes(node.body if truth(self.pipeline(node.pipeline, dot)) else node.otherwise, dot)
            else:  # range: the body runs once per element (a map's values in key order), dot = it
                value = self.pipeline(node.pipeline, dot)
                if isinstance(value, dict):
                    elements = [value[k] for k in sorted(value)]
                elif isinstance(value, list) or value is None:
                    elements = value or []
                else:
                    raise self.error(node.pipeline[0][0], f"range can't iterate over {go_print(value)}")
                for element in elements:
                    self.nodes(node.body, element)
                if not elements:
                    self.nodes(node.otherwise, dot)

    def error(self, token: tuple, message: str, context: str | None = None) -> TemplateError:
        """Go's words: where (line:column), at which node (`context`, else the token), what."""
        kind, value, pos = token
        value = context or value
        if kind == "field":  # Go reports a chain .A.B.C at its second name (where the chain began)
            second = value.find(".", 1)
            pos += second if second > 0 else 0
        text = self.text
        return TemplateError(f":{_line(text, pos)}:{_column(text, pos)}: executing \"\" at <{value}>: {message}")

    def pipeline(self, pipeline: list, dot):
        """Each command's value is the last argument of the next: `.Config | json` is `json .Config`."""
        value, piped = None, False
        for command in pipeline:
            value = self.command(command, dot, [value] if piped else [])
            piped = True
        return value

    def command(self, command: list[tuple], dot, piped: list):
        first = command[0]
        if first[0] == "word" and first[1] in FUNCTIONS:
            return self.call(first, command[1:], dot, piped)
        if len(command) > 1 or piped:
            if first[0] == "field":
                raise self.error(first, f"{first[1].rsplit('.', 1)[1]} is not a method but has arguments")
            raise self.error(first, f"can't give argument to non-function {first[1]}")
        return self.arg(first, dot)

    def call(self, name: tuple, arg_tokens: list[tuple], dot, piped: list):
        """A function call, its arguments checked as Go checks them against the signature."""
        params = PARAMETERS[name[1]]
        given = len(arg_tokens) + len(piped)
        fixed = [p for p in params if not p.startswith("*")]
        if given < len(fixed) or (given > len(fixed) and len(fixed) == len(params)):
            want = len(fixed) if len(fixed) == len(params) else f"at least {len(fixed)}"
            raise self.error(name, f"wrong number of args for {name[1]}: want {want} got {given}")
        args = []
        for i, token in enumerate(arg_tokens + [None] * len(piped)):
            value = self.arg(token, dot) if token else piped[0]
            if params[min(i, len(params) - 1)] == "string" and not isinstance(value, str):
                # Go blames an argument written in the template on its own node; a value that
                # came down the pipe, on the function.
                wrong = f"wrong type for value; expected string; got {go_type(value)}"
                if token is None and value is None:
                    wrong = "invalid value; expected string"
                raise self.error(token or name, wrong)
            args.append(value)
        try:
            return self.functions[name[1]](*args)
        except (TypeError, ValueError, KeyError, IndexError) as e:
            raise self.error(name, f"error calling {name[1]}: {e}",
                             context=" ".join(token[1] for token in [name, *arg_tokens])) from None

    def arg(self, token: tuple, dot):
        kind, value, _ = token
        if kind == "dot":
            return dot
        if kind == "field":
            return self.field(token, dot)
        if kind == "string":
            return value[1:-1] if value.startswith("`") else json.loads(value)
        if kind == "number":
            return int(value)
        if value in ("true", "false", "nil"):
            return {"true": True, "false": False, "nil": None}[value]
        raise self.error(token, f"can't use function {value} as an argument; pipe into it: .X | {value}")

    # --8<-- [start:field]
    def field(self, token: tuple, dot):
        """.A.B: look each name up in the map at hand, as Go does on JSON decoded into maps."""
        value = dot
        for depth, name in enumerate(token[1].split(".")[1:]):
            if isinstance(value, dict):
                if name not in value:
                    raise self.error(token, f'map has no entry for key "{name}"')
                value = value[name]
            elif value is None:
                raise self.error(token, f"nil pointer evaluating interface {{}}.{name}")
            else:  # below the top, Go sees each value as an interface {} (what the map holds)
                raise self.error(token, f"can't evaluate field {name} in type "
                                        f"{go_type(value) if depth == 0 else 'interface {}'}")
        return value
    # --8<-- [end:field]


# ---------------------------------------------------------------------------------------------
# Values as Go shows them

def go_type(value) -> str:
    """The Go type of a JSON value as Docker's fallback decodes it (a number is a json.Number)."""
    return {dict: "map[string]interface {}", list: "[]interface {}", str: "string", bool: "bool",
            int: "json.Number", float: "json.Number"}.get(type(value), "interface {}")


def go_print(value, nested: bool = False) -> str:
    """fmt.Print's %v: `[a b]` for a list, `map[k:v]` (sorted keys) for a map, `<no value>` for
    a null at the top (inside a list or map, Go prints `<nil>`)."""
    if value is None:
        return "<nil>" if nested else "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + " ".join(go_print(v, True) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k], True)}" for k in sorted(value)) + "]"
    return str(value)


def go_json(value) -> str:
    """Docker's `json`: Go's encoder, compact, without HTML escaping (so `<` stays `<`)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Where Python's encoder and Go's differ: Go writes \u0008 and \u000c, not \b and \f; it
    # escapes the JavaScript line separators; and it turns a byte that is not UTF-8 into U+FFFD.
    text = re.sub(r"\\(\\|b|f)", lambda m: {"b": "\\u0008", "f": "\\u000c"}.get(m[1], "\\\\"), text)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def truth(value) -> bool:
    """Go's truth: false, 0, "", null and an empty list or map are false; all else is true."""
    return value not in (None, False, 0, "") and value != [] and value != {}


def _join(elements, separator: str) -> str:
    if elements is None:
        return ""
    if isinstance(elements, dict):  # Go's join of a map: its values, sorted
        return separator.join(sorted(go_print(v, True) for v in elements.values()))
    if not isinstance(elements, list):
        raise TypeError(f"expected slice, got {go_type(elements)}")
    return separator.join(go_print(v, True) for v in elements)


def _index(value, *keys):
    """Go's index: a map by key, a list (or the bytes of a string) by position."""
    for key in keys:
        if value is None:
            raise TypeError("index of untyped nil")
        if isinstance(value, dict):
            if not isinstance(key, str):
                raise TypeError(f"value has type {'int' if isinstance(key, int) else go_type(key)}; should be string")
            value = value.get(key)  # a missing key gives Go's zero value: nothing
        elif isinstance(value, (list, str, int, float)) and not isinstance(value, bool):
            if not isinstance(key, int) or isinstance(key, bool):
                raise TypeError(f"cannot index slice/array with type {go_type(key)}")
            items = value if isinstance(value, list) else str(value).encode()  # a json.Number is text
            if not 0 <= key < len(items):
                raise IndexError(f"index out of range: {key}")
            value = items[key]
        else:
            raise TypeError(f"can't index item of type {go_type(value)}")
    return value


def _len(value) -> int:
    if not isinstance(value, (str, list, dict)):
        raise TypeError(f"len of type {go_type(value)}")
    return len(value.encode()) if isinstance(value, str) else len(value)  # Go counts bytes


def _eq(first, *others) -> bool:
    if isinstance(first, (list, dict)):
        raise TypeError("non-comparable type")
    return any(first == other and type(first) is type(other) for other in others)


FUNCTIONS = {
    "json": go_json, "join": _join, "index": _index, "len": _len,
    "lower": str.lower, "upper": str.upper,
    "split": lambda s, sep: s.split(sep) if sep else list(s),
    "eq": _eq, "ne": lambda a, b: not _eq(a, b), "not": lambda value: not truth(value),
}
# Each function's parameters, as its Go signature has them: "string" is checked, "*" repeats.
PARAMETERS = {"json": ("any",), "join": ("any", "string"), "index": ("any", "*any"), "len": ("any",),
              "lower": ("string",), "upper": ("string",), "split": ("string", "string"),
              "eq": ("any", "any", "*any"), "ne": ("any", "any"), "not": ("any",)}
HEADER_FUNCTIONS = {**FUNCTIONS, **{name: lambda first, *_: first for name in ("json", "join", "split", "lower", "upper")}}
