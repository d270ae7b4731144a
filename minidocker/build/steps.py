"""The metadata steps: instructions that change only the image's config, never a file.

ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME, USER, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD,
MAINTAINER and ARG each change the config (or the builder's state) and return the words Docker's
classic builder records for them: the step's image gets a history entry created_by
"/bin/sh -c #(nop)  ENV A=1" with "empty_layer": true, and the same words are the step's cache
key (cache.py). The words follow moby's dispatchers.go, Go's formatting included (`CMD %q` of a
list prints ["/bin/sh" "-c" "x"]), so `history` reads as Docker's does.
See docs/06-build.md#metadata-steps.
"""

import json

from minidocker.errors import MinidockerError

DOCS = "see docs/06-build.md#metadata-steps"
DEFAULT_SHELL = ["/bin/sh", "-c"]


def go_quote_list(words: list[str]) -> str:
    """Go's fmt %q of a []string: ["a" "b c"] (JSON's quoting is the same for printable text)."""
    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"


def command_line(instruction, config: dict) -> list[str]:
    """RUN/CMD/ENTRYPOINT's command: the exec form as written, or the shell form run by SHELL
    (default /bin/sh -c): `CMD echo $HOME` is ["/bin/sh", "-c", "echo $HOME"], and the shell,
    not the builder, expands $HOME when the container runs."""
    if instruction.json:
        return list(instruction.args)
    return list(config.get("Shell") or DEFAULT_SHELL) + [" ".join(instruction.args)]


def key_value_words(state, instruction) -> list[tuple[str, str | None]]:
    """ENV/LABEL's pairs, ARG's names with their defaults (None: no default), expanded."""
    v = instruction.values
    if instruction.keyword == "ARG":
        pairs = []
        for word in v:
            name, eq, value = word.partition("=")
            pairs.append((state.expand(name), state.expand(value) if eq else None))
        return pairs
    return [(state.expand(v[i]), state.expand(v[i + 1])) for i in range(0, len(v) - 1, 2)]


# Each function changes `state` (its config above all) and returns the words of the history entry.

def env(state, instruction) -> str:
    pairs = key_value_words(state, instruction)  # all expanded first: ENV A=2 B=$A sees the old A
    config = state.config
    for name, value in pairs:
        item = f"{name}={value or ''}"
        current = config.get("Env") or []
        for i, old in enumerate(current):
            if old.split("=", 1)[0] == name:
                current[i] = item
                break
        else:
            current.append(item)
        config["Env"] = current
    return "ENV " + " ".join(f"{n}={v or ''}" for n, v in pairs)


def label(state, instruction) -> str:
    pairs = key_value_words(state, instruction)
    state.config["Labels"] = {**(state.config.get("Labels") or {}), **{n: v or "" for n, v in pairs}}
    return "LABEL " + " ".join(f"{n}={v or ''}" for n, v in pairs)


def arg(state, instruction) -> str:
    pairs = key_value_words(state, instruction)
    for name, default in pairs:
        state.args.add(name, default)
    return "ARG " + " ".join(n if v is None else f"{n}={v}" for n, v in pairs)


def maintainer(state, instruction) -> str:
    state.maintainer = instruction.values[0]
    return "MAINTAINER " + state.maintainer


def cmd(state, instruction) -> str:
    state.config["Cmd"] = command_line(instruction, state.config)
    state.cmd_set = bool(instruction.args)
    return f"CMD {go_quote_list(state.config['Cmd'])}"


def entrypoint(state, instruction) -> str:
    state.config["Entrypoint"] = command_line(instruction, state.config)
    if not state.cmd_set:  # a Cmd from the base image was written for *its* entrypoint: dropped
        state.config["Cmd"] = None
    return f"ENTRYPOINT {go_quote_list(state.config['Entrypoint'])}"


def expose(state, instruction) -> str:
    from minidocker.image.commit import exposed_ports

    # The one instruction whose variables may expand to several words: EXPOSE $PORTS.
    ports = [p for w in instruction.values for p in state.expand_words(w)]
    state.config["ExposedPorts"] = {**(state.config.get("ExposedPorts") or {}),
                                    **{p: {} for p in exposed_ports(" ".join(ports))}}
    return "EXPOSE " + " ".join(ports)


def volume(state, instruction) -> str:
    paths = [state.expand(p) for p in instruction.values]
    if not paths or not all(paths):
        raise MinidockerError("VOLUME specified can not be an empty string", DOCS)
    state.config["Volumes"] = {**(state.config.get("Volumes") or {}), **{p: {} for p in paths}}
    return f"VOLUME [{' '.join(paths)}]"


def user(state, instruction) -> str:
    state.config["User"] = state.expand(instruction.values[0])
    return f"USER {state.config['User']}"


def shell(state, instruction) -> str:
    state.config["Shell"] = list(instruction.args)
    return f"SHELL [{' '.join(state.config['Shell'])}]"


def stopsignal(state, instruction) -> str:
    from minidocker.container.lifecycle import parse_signal

    signal = state.expand(instruction.values[0])
    parse_signal(signal)  # "invalid signal: X", before anything is stored
    state.config["StopSignal"] = signal
    return f"STOPSIGNAL {signal}"


def onbuild(state, instruction) -> str:
    expression = instruction.args[0]  # the trigger as written: it runs when a build uses this image
    state.config["OnBuild"] = (state.config.get("OnBuild") or []) + [expression]
    return "ONBUILD " + expression


# ---------------------------------------------------------------------------------------------
# HEALTHCHECK: a command the engine runs now and then in the container (recorded here; chapter 08
# runs it). Its durations are Go durations, stored in nanoseconds, as Docker's HealthConfig.

def go_duration(ns: int) -> str:
    """Go's Duration.String(): 0s, 1.5s, 5m0s, 1h0m0s, 500ms."""
    if ns == 0:
        return "0s"
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    seconds = f"{rest / 10**9:.9f}".rstrip("0").rstrip(".") + "s"
    return (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + seconds


def healthcheck(state, instruction) -> str:
    """HEALTHCHECK NONE, or CMD in exec or shell form with --interval & co. (checked by the parser)."""
    from minidocker.build.dockerfile import parse_duration

    kind, command = instruction.values[0].upper(), instruction.values[1:]
    if kind == "NONE":
        check = {"Test": ["NONE"]}
    else:
        check = {"Test": ["CMD", *command] if instruction.json else ["CMD-SHELL", command[0]]}
        for flag, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                            ("start-interval", "StartInterval")):
            if flag in instruction.flags:
                check[field] = parse_duration(instruction.flags[flag])
        if "retries" in instruction.flags:
            check["Retries"] = int(instruction.flags["retries"])
    state.config["Healthcheck"] = check
    # Go's %+v of Docker's HealthConfig, as its history shows it.
    shown = " ".join(f"{f}:{go_duration(check.get(f, 0))}" for f in ("Interval", "Timeout", "StartPeriod", "StartInterval"))
    return f"HEALTHCHECK &{{Test:[{' '.join(check['Test'])}] {shown} Retries:{check.get('Retries', 0)}}}"


DISPATCH = {"ENV": env, "LABEL": label, "ARG": arg, "MAINTAINER": maintainer, "CMD": cmd,
            "ENTRYPOINT": entrypoint, "EXPOSE": expose, "VOLUME": volume, "USER": user, "SHELL": shell,
            "STOPSIGNAL": stopsignal, "ONBUILD": onbuild, "HEALTHCHECK": healthcheck}
