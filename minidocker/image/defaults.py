"""An image's defaults combined with the command line: the container's Config, as dockerd makes it.

An image's config (the OCI image config's `config` object) says how to run it: its Entrypoint and
Cmd, its Env, its WorkingDir and User, the ports it listens on (ExposedPorts), the directories
that hold its data (Volumes) and its Labels. `docker run` may override each of them, and dockerd
combines the two before it creates the container (daemon/commit.go's merge), with a rule of its
own for each field:

    field          the command line                     the image's value
    Entrypoint     --entrypoint PROG replaces it        kept when no --entrypoint is given
    Cmd            the words after IMAGE replace it     kept only when no --entrypoint is given
    Env            -e NAME=VALUE wins, NAME by NAME     every NAME the command line did not set
    WorkingDir     -w DIR                               when no -w
    User           -u USER                              when no -u
    ExposedPorts, Volumes, Labels                       added to those of the command line

The Cmd rule surprises people: `--entrypoint` drops the image's Cmd, because a Cmd is written as
the arguments of *its* image's Entrypoint, and makes no sense to another program. `--entrypoint ""`
resets the Entrypoint to none at all (and so drops the Cmd too): the command line's words then
are the whole command. With neither an Entrypoint nor a Cmd, nothing can run: "no command
specified", dockerd says. See docs/03-images.md#run-image.
"""


def env_name(item: str) -> str:
    return item.split("=", 1)[0]


def merge(config: dict, image_config: dict) -> dict:
    """The container's Config: `config` (the create request) with the gaps filled from
    `image_config` (the image config's `config`). Neither argument is changed."""
    merged = dict(config)
    # --8<-- [start:ex-03-image-defaults]
    # Fill what the request leaves empty from the image: Env name by name (the request's entry
    # wins), WorkingDir, User; ExposedPorts, Volumes and Labels are unions (the request wins on a
    # Label). Entrypoint and Cmd come from the image only when the request has no Entrypoint:
    # then Cmd if the request has none, and the Entrypoint if the request's is None (absent).
    # Last, an Entrypoint of [""] (`--entrypoint ""`) means none at all: it becomes None.
    given = {env_name(item) for item in config.get("Env") or []}
    env = (config.get("Env") or []) + [e for e in image_config.get("Env") or [] if env_name(e) not in given]
    merged["Env"] = env or None
    for field in ("WorkingDir", "User"):
        merged[field] = config.get(field) or image_config.get(field) or ""
    for field in ("ExposedPorts", "Volumes", "Labels"):
        union = {**(image_config.get(field) or {}), **(config.get(field) or {})}
        merged[field] = union or None
    if not config.get("Entrypoint"):
        if not config.get("Cmd"):
            merged["Cmd"] = image_config.get("Cmd")
        if config.get("Entrypoint") is None:
            merged["Entrypoint"] = image_config.get("Entrypoint")
    if merged.get("Entrypoint") == [""]:
        merged["Entrypoint"] = None
    # --8<-- [end:ex-03-image-defaults]
    return merged
