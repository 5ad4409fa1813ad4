# Two commands on a fresh machine (Python 3.11, pip, Rust):
#   make demo   sets up .venv and runs the main job on built-in defaults
#   make test   sets up .venv, runs the gates (make lint) and every test (cargo, pytest, short fuzz runs of the coder
#               and the .mptvc reader)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
FUZZ_SECONDS ?= 20
RUST_SOURCES := $(wildcard coder_ext/src/*.rs) coder_ext/Cargo.toml pyproject.toml

.PHONY: setup demo test test-rust lint lint-python lint-rust test-python fuzz bench clean

setup: $(VENV)/.installed

# Reinstall when the package metadata or the Rust sources change (the extension is compiled).
$(VENV)/.installed: $(RUST_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,lint,eval,hf,ray,gen,heads]"
	touch $@

demo: setup
	$(PY) -m mptvc_latents.demo
	$(PY) -m generation.demo

test: setup lint fuzz test-rust test-python

test-rust:
	cd coder_ext && cargo test --release --locked

# The gates: ruff (lint and format) over the tree, mypy over the package, clippy and rustfmt over the crate.
lint: lint-python lint-rust

lint-python: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy mptvc_latents

# clippy (warnings are errors) and rustfmt over the crate, with and without the Python
# bindings, and over the fuzz targets (their own workspace).
lint-rust:
	cd coder_ext && cargo fmt --check
	cd coder_ext && cargo clippy --locked --all-targets -- -D warnings
	cd coder_ext && cargo clippy --locked --all-targets --features python -- -D warnings
	cd coder_ext/fuzz && cargo fmt --check
	cd coder_ext/fuzz && cargo clippy --locked --all-targets -- -D warnings

# atheris drives tests/fuzz_bitstream.py (run by tests/test_bitstream.py); without it the script
# falls back to pure-Python mutations, so a failed install does not stop the tests.
test-python: setup
	$(PY) -c "import atheris" 2>/dev/null || $(PIP) install --quiet atheris \
		|| echo "atheris is unavailable: the .mptvc fuzz test uses random mutations"
	MPTVC_FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest -q

# Coverage-guided fuzzing of the decoder (cargo fuzz on the stable toolchain, no sanitizer).
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
	cd coder_ext && cargo fuzz run -s none decode -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | tail -n 3
	cd coder_ext && cargo fuzz run -s none round_trip -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | tail -n 3

bench: setup
	$(PIP) install --quiet -e ".[bench]"
	$(PIP) install --quiet --no-deps compressai
	$(PY) -m benchmarks.coder_bench

clean:
	rm -rf $(VENV) coder_ext/target coder_ext/fuzz/target
