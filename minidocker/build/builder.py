"""The classic builder: a Dockerfile becomes an image, one step at a time, each step an image.

    FROM busybox          the base: its config and layers          ---> 3f57d9401f8d
    ENV A=1               the config changes: an image, no layer   ---> 1c2e…  (empty_layer)
    COPY app /app         files written as a layer (layer.py)      ---> 8a7b…
    RUN make /app         a container runs it; its changes are     ---> Running in 5d1e…
                          committed as a layer (chapter 03)        ---> 0e4f…

Every step starts from the image the step before made, and makes one more: its parent's config
and layers, plus its own change. Before a step does anything it asks the cache (cache.py) whether
that exact step was made on that exact parent before; if so it takes that image and prints
" ---> Using cache". The intermediate images stay in the store without a name (`images -a` shows
them as <none>), which is what the cache finds next time; the last one gets the -t names.

A Dockerfile can have several stages (each FROM starts one); a later stage can start FROM an
earlier one or COPY --from it, and only the last stage (or --target) is the result. The engine
function takes what the Engine API's POST /build takes: the context as a tar and the query's
options; its output is the text Docker's classic builder (DOCKER_BUILDKIT=0) prints.
See docs/06-build.md.
"""

import contextlib
import os
import posixpath
import shutil

from minidocker import store
from minidocker.build import steps
from minidocker.build.args import BuildArgs
from minidocker.build.cache import Cache, cache_key
from minidocker.errors import MinidockerError

DOCS = "see docs/06-build.md"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What an image config keeps of the builder's run config (Docker's container.Config, without the
# fields that describe one container: Hostname, Tty, AttachStdin…).
IMAGE_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Healthcheck", "Volumes", "WorkingDir",
                "Labels", "OnBuild", "StopSignal", "Shell")


class Output:
    """The build's output: Docker's lines, and RUN's own output as it comes (bytes). -q: nothing."""

    def __init__(self, stream, quiet: bool = False):
        self.stream, self.quiet = stream, quiet

    def line(self, text: str) -> None:
        self.write((text + "\n").encode())

    def write(self, data: bytes) -> None:
        if not self.quiet:
            self.stream.write(data)
            self.stream.flush()

    def flush(self) -> None:
        pass


class Stage:
    """What the builder knows while it runs one stage (moby's dispatchState)."""

    def __init__(self, name: str, args: BuildArgs, escape: str):
        self.name, self.args, self.escape = name, args, escape
        self.image = None  # the current image (layout.Image); None before the first layer of FROM scratch
        self.image_id = ""
        self.config: dict = {}  # the run config: what the next image's config will be
        self.maintainer = ""
        self.cmd_set = False  # a CMD in this stage: a later ENTRYPOINT keeps it
        self.line = 0  # the Dockerfile line of the step being run (for errors)

    def variables(self) -> dict[str, str]:
        """What $VAR means in this step: the stage's ENV, and its ARGs that no ENV hides."""
        env = self.config.get("Env") or []
        found = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        return {**self.args.in_stage(env), **found}

    def expand(self, word: str) -> str:
        return self._lexer("expand", word)

    def expand_words(self, word: str) -> list[str]:
        return self._lexer("expand_words", word)

    def _lexer(self, how: str, word: str):
        from minidocker.build import words

        try:
            return getattr(words, how)(word, self.variables(), self.escape)
        except MinidockerError as e:  # the lexer's error, with the step's line, as the parser's
            raise MinidockerError(f"Dockerfile:{self.line}: {e.what}", e.hint) from None


# ---------------------------------------------------------------------------------------------
# the engine function: POST /build

def build(context_tar, options: dict, out) -> str:
    """Build from a context tar (a file object) with POST /build's options: t (list of names),
    dockerfile (its path in the context), buildargs ({K: V}), target, nocache, labels ({k: v}),
    q, networkmode. Writes the classic builder's output to `out` (bytes); returns the image ID."""
    from minidocker.build import context, dockerfile
    from minidocker.image import reference

    store.require_root()
    names = [reference.normalize(t) for t in options.get("t") or []]  # a bad -t: refused before any work
    work = _new_dir("context-")
    try:
        context.unpack(context_tar, work)
        name = options.get("dockerfile") or "Dockerfile"
        path = os.path.join(work, posixpath.normpath("/" + name).lstrip("/"))
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise MinidockerError(f"Cannot locate specified Dockerfile: {name}", "give its path with -f") from None
        shown = posixpath.basename(name)  # in errors: "Dockerfile:3: ..."; -f -'s random name is "Dockerfile" too
        parsed = dockerfile.parse(text, "Dockerfile" if shown.startswith(".dockerfile.") else shown)
        builder = Builder(work, parsed, options, Output(out, bool(options.get("q"))))
        image_id = builder.run()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    builder.tag(image_id, names)
    return image_id


def _new_dir(prefix: str) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=prefix, dir=store.directory("build"))


class Builder:
    def __init__(self, context_dir: str, parsed, options: dict, out: Output):
        from minidocker.image.layout import Layout

        self.context, self.out, self.options = context_dir, out, options
        self.escape = parsed.directives.get("escape", "\\")
        self.layout = Layout()
        self.cache = Cache(self.layout, enabled=not options.get("nocache"))
        self.args = BuildArgs(options.get("buildargs") or {})
        self.meta_args, self.stages = _split_stages(parsed.instructions)
        target = options.get("target")
        if target:
            names = [s[0].lower() for s in self.stages]
            if target.lower() not in names:
                raise MinidockerError(f'failed to reach build target {target} in Dockerfile', "see the stage names: FROM IMAGE AS NAME")
            self.stages = self.stages[:names.index(target.lower()) + 1]
        self.extra_labels = sorted((options.get("labels") or {}).items())  # --label: LABEL steps at the end
        self.results: list = []  # each finished stage: (name, image)
        self.total = len(self.meta_args) + sum(1 + len(s[2]) for s in self.stages) + len(self.extra_labels)
        self.step = 0

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> str:
        from minidocker.build import words

        for instruction in self.meta_args:  # ARGs before the first FROM: for FROM lines only
            self._print_step(instruction.original)
            for word in instruction.values:
                name, eq, default = word.partition("=")
                self.args.add_meta(name, words.expand(default, self.args.for_from(), self.escape) if eq else None)
        state = None
        for index, (name, from_instruction, instructions) in enumerate(self.stages):
            if name and any(n == name for n, _ in self.results):
                raise MinidockerError(f"{name} stage name already used", DOCS)
            self.args.new_stage()
            state = Stage(name, self.args, self.escape)
            self._print_step(from_instruction.original)
            self._from(state, from_instruction)
            self.out.line(f" ---> {state.image_id[7:19]}")
            last = index == len(self.stages) - 1
            for instruction in instructions + (self._label_steps() if last else []):
                self._print_step(instruction.original)
                self.dispatch(state, instruction)
                self.out.line(f" ---> {state.image_id[7:19]}")
            self.results.append((name, state.image))
        unused = self.args.unused()
        if unused:
            self.out.line(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        if state is None or not state.image_id:
            raise MinidockerError("No image was generated. Is your Dockerfile empty?", "start it with FROM IMAGE")
        return state.image_id

    def _print_step(self, original: str) -> None:
        self.step += 1
        self.out.line(f"Step {self.step}/{self.total} : {original}")

    def _label_steps(self) -> list:
        from minidocker.build import dockerfile

        text = "\n".join(f'LABEL "{k}"="{v}"' for k, v in self.extra_labels)
        return dockerfile.parse("FROM scratch\n" + text).instructions[1:] if text else []

    def dispatch(self, state: Stage, instruction) -> None:
        keyword, state.line = instruction.keyword, instruction.line
        if keyword == "RUN":
            self._run(state, instruction)
        elif keyword in ("COPY", "ADD"):
            self._copy(state, instruction)
        elif keyword == "WORKDIR":
            self._workdir(state, instruction)
        elif keyword in steps.DISPATCH:
            comment = steps.DISPATCH[keyword](state, instruction)
            # Docker's "nop" command: the shell, "#(nop) " and the words, as separate arguments;
            # joined, the history shows "/bin/sh -c #(nop)  ENV A=1" (two spaces, Docker's).
            self._metadata_step(state, self._shell(state) + ["#(nop) ", comment])
        else:
            raise MinidockerError(f"Dockerfile:{instruction.line}: unknown instruction: {keyword}", DOCS)

    @staticmethod
    def _shell(state: Stage) -> list[str]:
        return list(state.config.get("Shell") or steps.DEFAULT_SHELL)

    # -- FROM ----------------------------------------------------------------------------------

    def _from(self, state: Stage, instruction) -> None:
        from minidocker.build import words

        base = words.expand(instruction.values[0], self.args.for_from(), self.escape)
        if not base:
            raise MinidockerError(f"base name ({instruction.values[0]}) should not be blank", DOCS)
        earlier = [image for n, image in self.results if n and n == base.lower()]
        if earlier:
            image = earlier[-1]
        elif base.lower() == "scratch":
            image = None
        else:
            image = self._image(base)
        state.image = image
        state.image_id = image.id if image else ""
        config = (image.config.get("config") if image else None) or {}
        state.config = _copy(config)
        env = state.config.get("Env") or []
        if not any(e.startswith("PATH=") for e in env):  # Docker's default PATH, for FROM scratch too
            state.config["Env"] = env + [f"PATH={DEFAULT_PATH}"]
        triggers = state.config.pop("OnBuild", None) or []
        if triggers:
            self._onbuild(state, triggers)

    def _onbuild(self, state: Stage, triggers: list[str]) -> None:
        """The base image's ONBUILD instructions run now, first thing in this stage, as Docker's."""
        from minidocker.build import dockerfile

        self.out.line(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for trigger in triggers:
            # Parsed as the one instruction of a stage (the parser wants a FROM before it).
            instructions = dockerfile.parse("FROM scratch\n" + trigger, "ONBUILD").instructions[1:]
            if len(instructions) != 1:
                raise MinidockerError("onbuild trigger should be a single expression", DOCS)
            self.dispatch(state, instructions[0])

    def _image(self, name: str):
        """An image by name or ID; pulled when missing (busybox:latest is built here, offline)."""
        try:
            return self.layout.image(name)
        except MinidockerError as e:
            if not e.what.startswith("No such image"):
                raise
        from minidocker.image import reference

        ref = reference.normalize(name)
        if str(ref) == "docker.io/library/busybox:latest":
            from minidocker.image import builtin

            return builtin.busybox(self.layout)
        from minidocker.image.pull import pull

        pull(str(ref), out=_TextOut(self.out))
        return self.layout.image(str(ref))

    # -- metadata steps, and the commit every step ends with -----------------------------------

    def _metadata_step(self, state: Stage, nop_cmd: list[str]) -> None:
        key_config = {**_image_config(state.config), "Cmd": nop_cmd}
        if self._from_cache(state, key_config):
            return
        self._commit(state, key_config, " ".join(nop_cmd), upperdir=None)

    def _key(self, state: Stage, key_config: dict) -> str:
        return cache_key(state.image_id, {"config": key_config, "author": state.maintainer})

    def _from_cache(self, state: Stage, key_config: dict) -> bool:
        hit = self.cache.lookup(self._key(state, key_config))
        if hit is None:
            return False
        self.out.line(" ---> Using cache")
        state.image = self.layout.load(hit["manifest"])
        state.image_id = state.image.id
        return True

    def _commit(self, state: Stage, key_config: dict, created_by: str, upperdir: str | None) -> None:
        """A new image: the current one plus this step (a layer from `upperdir` if it holds
        anything), its config the run config; named by nothing yet, and remembered by the cache."""
        from minidocker.image import commit, layers, media

        parent = state.image.config if state.image else _scratch_config()
        with self.layout.writing():
            layer, child = commit.child_config(self.layout, upperdir or "/nonexistent", parent,
                                               _image_config(state.config), created_by, author=state.maintainer)
            config_descriptor = self.layout.put_json(child, media.OCI_CONFIG)
            manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config_descriptor,
                        "layers": [commit._oci_layer(d) for d in (state.image.layers if state.image else [])]
                        + ([layer] if layer else [])}
            descriptor = self.layout.put_json(manifest, media.OCI_MANIFEST)
            image = self.layout.load(descriptor["digest"])
            layers.unpack(self.layout, image)
            self.layout.add(descriptor)  # a dangling image: <none>, until -t names the last one
        self.cache.record(self._key(state, key_config), image.id, descriptor["digest"])
        state.image, state.image_id = image, image.id

    # -- RUN -----------------------------------------------------------------------------------

    # --8<-- [start:run-step]
    def _run(self, state: Stage, instruction) -> None:
        if instruction.flags:
            flag = next(iter(instruction.flags)).lstrip("-")
            raise MinidockerError(f"the --{flag} option requires BuildKit", "the classic builder's RUN takes no flags")
        if state.image is None:
            raise MinidockerError("cannot RUN in an image with no files (FROM scratch)", "COPY a program in first")
        command = steps.command_line(instruction, state.config)
        args = state.args.in_stage(state.config.get("Env") or [])
        # The args a RUN sees enter its cache key, written before the command: "|2 A=1 B=2 /bin/sh
        # -c …" (a "|" no real command starts with). Another --build-arg value, another image.
        saved = command
        if args:
            used = state.args.in_cache_key(args)
            saved = [f"|{len(used)}", *used, *command]
        key_config = {**_image_config(state.config), "Cmd": saved, "Entrypoint": None}
        if self._from_cache(state, key_config):
            return
        container = self._run_container(state, command, args)
        try:
            from minidocker.container import lifecycle

            c = lifecycle.find(container)
            self._commit(state, key_config, " ".join(saved), upperdir=c.upperdir)
        finally:
            self._remove(container)
    # --8<-- [end:run-step]

    def _run_container(self, state: Stage, command: list[str], args: dict[str, str]) -> str:
        """Create and run the step's container to its end, its output streamed; returns its ID. A
        non-zero exit stops the build, and the container is removed (Docker's --force-rm)."""
        from minidocker.container import lifecycle
        from minidocker.container.supervisor import Attach

        config = {"Image": state.image_id, "Cmd": command, "Entrypoint": [""],
                  "Env": (state.config.get("Env") or []) + [f"{k}={v}" for k, v in args.items()],
                  "WorkingDir": state.config.get("WorkingDir") or "", "User": state.config.get("User") or "",
                  "Healthcheck": {"Test": ["NONE"]}}
        host_config = {"NetworkMode": self.options.get("networkmode") or "default"}
        container = lifecycle.create(config, host_config)["Id"]
        self.out.line(f" ---> Running in {container[:12]}")
        try:
            code = lifecycle.start(container, Attach(self.out, self.out, None))
        except BaseException:
            self._remove(container)
            raise
        if code:
            self._remove(container)
            raise MinidockerError(f"The command '{' '.join(command)}' returned a non-zero code: {code}", exit_code=code)
        return container

    def _remove(self, container: str) -> None:
        from minidocker.container import lifecycle

        lifecycle.remove(container, force=True, volumes=True)
        self.out.line(f"Removing intermediate container {container[:12]}")

    # -- WORKDIR, COPY, ADD: layers without a container ----------------------------------------

    def _workdir(self, state: Stage, instruction) -> None:
        from minidocker.build import layer

        path = state.expand(instruction.values[0])
        state.config["WorkingDir"] = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
        # Docker makes the directory now, as a layer (unless the image has it already).
        nop = self._shell(state) + [f"#(nop) WORKDIR {state.config['WorkingDir']}"]
        key_config = {**_image_config(state.config), "Cmd": nop}
        if self._from_cache(state, key_config):
            return
        staging = layer.scratch_dir("layer-")
        try:
            with layer.image_root(state.image) as image_dir:
                if not os.path.isdir(os.path.join(image_dir, state.config["WorkingDir"].lstrip("/"))):
                    layer.make_parents(staging, image_dir, state.config["WorkingDir"], (0, 0))
            self._commit(state, key_config, " ".join(nop), upperdir=staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _copy(self, state: Stage, instruction) -> None:
        from minidocker.build import layer

        what = instruction.keyword
        flags = instruction.flags
        if "chmod" in flags:
            raise MinidockerError("the --chmod option requires BuildKit", "the classic builder copies modes as they are")
        words = [state.expand(w) for w in instruction.values]
        patterns, dest = words[:-1], words[-1]
        chown = state.expand(flags["chown"]) if flags.get("chown") else ""
        source_image = self._copy_source(state, flags.get("from"))
        absolute = dest if dest.startswith("/") else posixpath.join(state.config.get("WorkingDir") or "/", dest) + ("/" if dest.endswith("/") else "")
        staging = layer.scratch_dir("layer-")
        try:
            with _source_root(self.context, source_image, bool(flags.get("from"))) as root:
                sources = layer.resolve_sources(root, patterns, what)
                chown_text = f"--chown={chown} " if chown else ""
                comment = f"{what} {chown_text}{layer.sources_checksum(root, sources)} in {dest} "
                nop = self._shell(state) + ["#(nop) " + comment]
                key_config = {**_image_config(state.config), "Cmd": nop}
                if self._from_cache(state, key_config):
                    return
                with layer.image_root(state.image) as image_dir:
                    owner = layer.chown_ids(chown, image_dir) if chown else (None if flags.get("from") else (0, 0))
                    layer.copy(root, sources, absolute, staging, image_dir, owner, what == "ADD", what)
            self._commit(state, key_config, " ".join(nop), upperdir=staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _copy_source(self, state: Stage, source: str | None):
        """COPY --from=NAME: a stage of this build (by name or number), else an image."""
        if not source:
            return None
        source = state.expand(source)
        for index, (name, image) in enumerate(self.results):
            if (name and name == source.lower()) or source == str(index):
                return image
        if source.isdigit():
            raise MinidockerError(f"invalid from flag value {source}: index out of bounds", DOCS)
        return self._image(source)

    # -- the names -----------------------------------------------------------------------------

    def tag(self, image_id: str, names: list) -> None:
        image = next(i for i in self.layout.images() if i.id == image_id)
        self.out.line(f"Successfully built {image_id[7:19]}")
        for name in names:
            self.layout.tag(str(name), image.descriptor())
            self.out.line(f"Successfully tagged {name.familiar()}")


# ---------------------------------------------------------------------------------------------

def _split_stages(instructions: list) -> tuple[list, list]:
    """The ARGs before the first FROM, and the stages: (name, its FROM, its instructions)."""
    meta, stages = [], []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            v = instruction.values
            stages.append((v[2].lower() if len(v) == 3 else "", instruction, []))
        elif stages:
            stages[-1][2].append(instruction)
        else:
            meta.append(instruction)  # the parser let only ARGs come before the first FROM
    return meta, stages


def _image_config(config: dict) -> dict:
    """The run config as an image config holds it: Docker's fields, the empty ones left out."""
    return {k: config[k] for k in IMAGE_FIELDS if config.get(k) not in (None, "", [], {})}


def _copy(config: dict) -> dict:
    import json

    return json.loads(json.dumps(config))


def _scratch_config() -> dict:
    from minidocker.image.builtin import ARCHITECTURES

    machine = os.uname().machine
    return {"architecture": ARCHITECTURES.get(machine, machine), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


@contextlib.contextmanager
def _source_root(context_dir: str, image, from_flag: bool):
    """Where COPY reads: the context, or (--from) another stage's or image's files."""
    if not from_flag:
        yield context_dir
        return
    from minidocker.build import layer

    with layer.image_root(image) as root:
        yield root


class _TextOut:
    """pull's progress (text) into the build's output (bytes)."""

    def __init__(self, out: Output):
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text.encode())
        return len(text)

    def flush(self) -> None:
        pass
