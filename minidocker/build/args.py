"""Build arguments: `ARG` in the Dockerfile, `--build-arg` on the command line, and their scopes.

An ARG is a variable of the *build*, not of the image: it is in the environment of RUN steps and
can be substituted (`$VERSION`) in later instructions, but it is never written into the image's
Env. Docker's classic builder scopes them so:

    ARG BASE=busybox          before the first FROM: a "meta" arg, usable only in FROM lines
    FROM $BASE
    ARG BASE                  in a stage: declared again to use it here; with no default it
                              takes the meta arg's value (or --build-arg's)
    ARG V=1                   a stage's own arg, with a default; --build-arg V=2 overrides it
    FROM busybox              a new stage forgets the stage args: declare them again

A --build-arg that no ARG declares is not used at all, and the build ends with Docker's warning
"[Warning] One or more build-args [X] were not consumed". The proxy variables (HTTP_PROXY & co.)
are predefined: usable without an ARG, and left out of the cache key unless the Dockerfile
declares them (a proxy should not change what an image is). See docs/06-build.md#build-args.
"""

# Docker's predefined args (builtinAllowedBuildArgs).
PREDEFINED = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class BuildArgs:
    def __init__(self, from_options: dict[str, str | None]):
        self.from_options = dict(from_options)  # --build-arg K=V (K alone: from our environment)
        self.meta: dict[str, str | None] = {}  # ARGs before the first FROM
        self.allowed: dict[str, str | None] = {}  # ARGs declared in the current stage
        self.referenced: set[str] = set()  # every ARG declared anywhere (for the warning)

    def new_stage(self) -> None:
        self.allowed = {}

    def add_meta(self, key: str, default: str | None) -> None:
        self.meta[key] = default
        self.add(key, default)

    def add(self, key: str, default: str | None) -> None:
        self.allowed[key] = default
        self.referenced.add(key)

    def _value(self, key: str, scope: dict) -> str | None:
        """--build-arg first, then the ARG's default, then (no default) the meta arg's value."""
        if self.from_options.get(key) is not None:
            return self.from_options[key]
        if key in scope and scope[key] is not None:
            return scope[key]
        if key in scope or key in PREDEFINED:
            return self.meta.get(key)
        return None

    def _values(self, scope: dict) -> dict[str, str]:
        found = {}
        for key in list(scope) + [k for k in PREDEFINED if k not in scope]:
            value = self._value(key, scope)
            if value is not None:
                found[key] = value
        return found

    def for_from(self) -> dict[str, str]:
        """What a FROM line may use: the meta args."""
        return self._values(self.meta)

    def in_stage(self, env: list[str]) -> dict[str, str]:
        """The args a step sees, except those an ENV of the same name hides (ENV wins)."""
        names = {e.split("=", 1)[0] for e in env}
        return {k: v for k, v in self._values(self.allowed).items() if k not in names}

    def in_cache_key(self, args: dict[str, str]) -> list[str]:
        """RUN's args as they enter its cache key: sorted K=V, a predefined one only if declared."""
        return sorted(f"{k}={v}" for k, v in args.items() if k in self.allowed or k not in PREDEFINED)

    def unused(self) -> list[str]:
        return sorted(k for k in self.from_options if k not in self.referenced and k not in PREDEFINED)
