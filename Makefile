# Every target that runs containers needs root: `sudo make demo`, `sudo make test`.
VENV := .venv
PY   := $(VENV)/bin/python
# mkdocs-material's end-of-life banner is not for learners.
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup demo test test-chapters docs serve-docs transcripts lab bench clean

setup:
	@bash scripts/setup.sh

# A real container from the busybox image (built here from the host's busybox the first time: no
# network needed), showing what isolation means.
demo: setup
	@$(PY) -m minidocker run --rm busybox sh -c '\
	  echo "hostname:  $$(hostname)   (the host is $(shell hostname))"; \
	  echo "my pid:    $$$$   (PID 1 of its own PID namespace)"; \
	  echo "processes I can see:"; ps -o pid,comm; \
	  echo "my / holds: $$(ls / | tr "\n" " ")"; \
	  echo "my / is:   $$(grep " / " /proc/mounts | cut -d" " -f3)     (the image layers under my own upper dir)"; \
	  echo "network:   $$(ls /sys/class/net | tr "\n" " ")"'

# The whole suite: every chapter, and the project's own tests (the strict docs build among them:
# tests/test_docs.py).
test: setup
	$(PY) -m pytest chapters tests

docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

serve-docs: setup
	$(VENV)/bin/mkdocs serve -a 127.0.0.1:8000

# The command output on the pages (docs/transcripts/), from real runs: run it after a change that
# alters what a command prints; tests/test_docs.py fails until the pages match. Needs root.
transcripts: setup
	$(PY) scripts/transcripts.py

# A student copy with every exercise blanked: make lab DIR=~/lab FROM=1
DIR  ?= lab
FROM ?= 1
lab: setup
	$(PY) -m minidocker lab init $(DIR) --from-chapter $(FROM)

bench: setup
	@for b in bench/*.py; do $(PY) $$b; done

clean:
	rm -rf build .pytest_cache .hypothesis
