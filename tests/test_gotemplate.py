"""minidocker's Go-template subset (minidocker/container/gotemplate.py) against the real docker CLI.

The docker CLI runs `inspect -f TEMPLATE` itself, on the JSON the engine sends. So a replay engine
(docker_cli_replay.py) serves it random JSON, and its output, or its error message, must be ours.
Every template starts with a field that Docker's typed ContainerJSON lacks (.MdAnchor): the CLI's
typed attempt then fails, and it runs the template on the JSON decoded into maps, as we do. (Not
`join`: this docker CLI's join takes a typed []string only, which maps never give it.)
"""

import importlib

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.container import gotemplate
from minidocker.errors import MinidockerError

docker_cli = importlib.import_module("tests.docker_cli")
Replay = importlib.import_module("tests.docker_cli_replay").Replay
KEYS = ["A", "B", "Px", "Nm"]  # none of them a ContainerJSON field, which must decode typed


@pytest.fixture(scope="module")
def docker():
    harness.need(docker_cli.docker_available(), "the docker CLI (no daemon): apt-get install docker.io")
    data = {}
    with Replay({"/containers/md/json": lambda query: data}) as engine:
        def run(template: str, value: dict) -> tuple[bool, str]:
            data.clear()
            data.update(value)
            done = engine.docker("container", "inspect", "-f", template, "md")
            # Docker exits 64 when the template does not parse, else 1; minidocker exits 125.
            return done.returncode != 0, done.stdout if done.returncode == 0 else done.stderr
        yield run


def ours(template: str, value: dict) -> tuple[bool, str]:
    """(failed, what is printed) as `minidocker inspect -f` prints it."""
    try:
        return False, gotemplate.render(template, value) + "\n"
    except MinidockerError as e:
        return True, e.what + "\n"


text = st.text(st.sampled_from("ab <>&\"\\é\n-"), max_size=4)
# No 0: decoded into maps, Go's 0 is the json.Number "0", a non-empty string and so true in
# {{if}}; Docker's typed attempt, which the real inspect fields pass, has an int 0, false, as ours.
scalars = st.none() | st.booleans() | st.integers(-5, 10**12).filter(bool) | text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3), max_leaves=8)
fields = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(lambda names: "." + ".".join(names))
pieces = st.one_of(
    text.filter(lambda t: "{" not in t),
    fields.map(lambda f: f"{{{{{f}}}}}"),
    fields.map(lambda f: f"{{{{json {f}}}}}"),
    fields.map(lambda f: f"{{{{{f} | json}}}}"),
    fields.map(lambda f: f"{{{{range {f}}}}}[{{{{json .}}}}]{{{{else}}}}none{{{{end}}}}"),
    fields.map(lambda f: f"{{{{if {f}}}}}yes{{{{else}}}}no{{{{end}}}}"),
    fields.map(lambda f: f'{{{{index {f} "A"}}}}'),
    fields.map(lambda f: f"{{{{upper {f}}}}}"),
    st.sampled_from(["{{- .Px -}}", " {{/* note */}} ", "{{.}}", "{{json .}}", '{{"lit"}}', "{{7}}"]),
)


def sorted_keys(value):
    """Go's json sorts a map's keys, where we keep the order of the record (which for a real
    record is the order of Docker's struct, what the CLI's typed attempt prints): sorted data
    makes the two agree."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    return [sorted_keys(v) for v in value] if isinstance(value, list) else value


documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=4).map(
    lambda d: sorted_keys({"MdAnchor": "@", **d}))


@settings(max_examples=60)
@given(documents, st.lists(pieces, max_size=4).map("".join))
def test_templates_print_what_docker_prints(docker, document, body):
    template = "{{.MdAnchor}}" + body
    assert ours(template, document) == docker(template, document), template


@pytest.mark.parametrize("template", [
    "{{.MdAnchor}}{{.Nope}}", "{{.MdAnchor}}{{.A.Nope}}", "{{.MdAnchor}}{{.B.X}}", "{{.MdAnchor}}{{.N.X}}",
    "{{.MdAnchor}}{{json}}", "{{.MdAnchor}}{{.A \"x\"}}", "{{.MdAnchor}}\n{{.A.Nope}}", "{{foo}}", "{{",
    "{{}}", "{{end}}", "{{range .A}}", "{{else}}", "{{if}}{{end}}", "{{.A&}}", "{{.MdAnchor}}{{upper .B}}",
    "{{.MdAnchor}}{{index .L 5}}", "{{.MdAnchor}}{{range .B}}{{end}}"])
def test_errors_are_worded_as_docker_words_them(docker, template):
    document = {"MdAnchor": "@", "A": {"Px": 1}, "B": 42, "N": None, "L": [1]}
    assert ours(template, document) == docker(template, document)


@pytest.mark.parametrize("template", ["{{printf \"%d\" .A}}", "{{$x := .A}}", "{{with .A}}{{end}}", "{{(.A)}}"])
def test_what_is_not_supported_is_one_clear_line(template):
    with pytest.raises(MinidockerError) as refused:
        gotemplate.render(template, {"A": 1})
    assert "not supported by minidocker" in str(refused.value) and "\n" not in str(refused.value)


@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=20))
def test_json_is_gos_json(value):
    # Go's encoder: compact, no HTML escaping, \u0008 and \u000c, and U+2028/U+2029 escaped.
    import json
    encoded = gotemplate.go_json({"k": [value]})
    assert json.loads(encoded) == {"k": [value]} and "\u2028" not in encoded and "\\b" not in encoded
