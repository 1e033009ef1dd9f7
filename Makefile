# Two commands set everything up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganprior-installed

.PHONY: setup demo test test-slow bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# CPU build of torch first (from the local wheel), so nothing later pulls a CUDA build.
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test]"
	# dcgan-digiface64 weights; its declared deps (torchvision, wandb) are not needed.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps gan-face-generate==1.1.1
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ganprior demo --out out/demo

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/generate.py
	# the encoder baseline of the inversion table (resumes if interrupted, instant when done)
	$(BIN)/ganprior train-encoder --model dcgan-digiface64 --steps 1500 --out out/bench/encoder-dcgan
	$(BIN)/python benchmarks/inversion.py --encoder out/bench/encoder-dcgan
	# the StyleGAN2 rows (w+, PadInv) on the embedded StyleGAN2 model
	$(BIN)/python benchmarks/inversion.py --model stylegan2-digiface64
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/augment.py

clean:
	rm -rf $(VENV) out .pytest_cache
