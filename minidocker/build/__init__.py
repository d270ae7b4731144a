"""Build (chapter 06): a Dockerfile and a context directory become an image, one layer a step.

`docker build` is where everyone meets the idea of chapter 03, that every change to an image is
a new layer: each instruction of a Dockerfile runs (a container, or a copy) on top of the image
the previous one made, and what it changed is committed as the next image. The client packs the
context and sends it; the engine reads the Dockerfile, runs the steps, and caches them. The
modules, in the order docs/06-build.md builds them:

- `dockerfile.py`: the Dockerfile language as Docker's parser reads it: parser directives,
  comments, continuation lines, exec and shell forms, flags, every instruction's own rule, and
  one error with the line number for anything malformed;
- `words.py`: Docker's shell-like lexer: `$VAR`, `${VAR:-default}`, quotes and escapes, and the
  word splitting of ENV, LABEL and ARG lists;
- `dockerignore.py`: the .dockerignore rules (`*`, `**`, `!` exceptions, the last match wins);
- `context.py`: the context as the client sends it (a tar, filtered) and as the engine unpacks
  it (refusing any entry that would land outside).
- `builder.py`: the classic builder: stages, one image per step, RUN in a container committed as
  chapter 03 commits, Docker's output (the engine function of POST /build);
- `steps.py`: the metadata steps (ENV, CMD, LABEL...): config changes and Docker's history words;
- `layer.py`: COPY, ADD and WORKDIR as layers written straight from files, no container;
- `args.py`: ARG and --build-arg, with Docker's scopes;
- `cache.py`: the cache key (parent + step) and the index that finds a step's image again.
"""
