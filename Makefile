# Two commands set everything up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganprior-installed

.PHONY: setup demo test test-slow mutation bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# CPU build of torch first (from the local wheel), so nothing later pulls a CUDA build.
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	# the library, the studio's server (ui) and what the tests use (test: pytest, the studio's
	# test client, Playwright, which drives Debian's chromium: never `playwright install`)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test,ui]"
	# dcgan-digiface64 weights; its declared deps (torchvision, wandb) are not needed.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps gan-face-generate==1.1.1
	[ -x /usr/bin/chromium ] || (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q chromium) || echo "note: no chromium (needs root): e2e test skipped"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ganprior demo --out out/demo

# the drag studio on http://127.0.0.1:7860 (docs/studio.md)
.PHONY: serve
serve: setup
	$(BIN)/ganprior serve

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# Mutation testing of the training recipe's and the image metrics' maths (docs/testing.md);
# mutmut is not a test dependency. Runs on a copy in out/mutation; MUTANTS narrows it.
MUTANTS ?= ganprior.metrics.image.* ganprior.train.stylegan2.x_lazy_adam_settings* \
	ganprior.train.stylegan2.x_ema_beta* ganprior.train.stylegan2.x_r1_* \
	ganprior.train.stylegan2.x_pl_loss* ganprior.train.stylegan2.x_path_length_penalty* \
	ganprior.inversion.*
mutation: setup
	$(BIN)/pip install -q --disable-pip-version-check mutmut==3.8.1
	rm -rf out/mutation && mkdir -p out/mutation
	cp -r src tests pyproject.toml out/mutation/
	cd out/mutation && ../../$(BIN)/mutmut run --max-children 2 $(foreach m,$(MUTANTS),'$(m)')
	# counts of killed / survived ...; survivors by name in out/mutation/results.txt
	cd out/mutation && ../../$(BIN)/mutmut results --all true | grep -v "not checked" > results.txt; \
		awk '{print $$2}' results.txt | sort | uniq -c; grep -v ": killed" results.txt || true

bench: setup
	# generation vs NVIDIA and vs this CPU's conv limit (NVIDIA's code: NVLABS_SG2ADA=<checkout>)
	$(BIN)/python benchmarks/generate.py
	# one inversion step vs NVIDIA's projector loop, and --loss auto vs plain MSE
	$(BIN)/python benchmarks/inversion_step.py
	# the encoder baseline of the inversion table (resumes if interrupted, instant when done)
	$(BIN)/ganprior train-encoder --model dcgan-digiface64 --steps 1500 --out out/bench/encoder-dcgan
	$(BIN)/python benchmarks/inversion.py --encoder out/bench/encoder-dcgan
	# the StyleGAN2 rows (w+, PadInv) on the embedded StyleGAN2 model
	$(BIN)/python benchmarks/inversion.py --model stylegan2-digiface64
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/augment.py
	# restoration: baselines vs fixed G vs tuned G (about 10 min), and the shipped directions
	$(BIN)/python benchmarks/restoration.py --steps 100 --tune-steps 60 --n-domain 1 --real astronaut_face
	$(BIN)/python benchmarks/directions.py --n 200 --strength 3
	# DragGAN: the drag step beside the official renderer and 50 seeded drags per row, with the
	# official code's own drags when DRAGGAN_REPO=<checkout> (about 75 min; 45 without it)
	$(BIN)/python benchmarks/drag.py --tasks 50 --max-steps 200 --threads 1 --clock cpu
	# pix2pixHD: the embedded model's segmentation score, edit locality and diversity (its
	# segmenter trains once, about 20 min, cached under out/bench/segmenter; then about 1 min)
	$(BIN)/python benchmarks/pix2pixhd.py --model pix2pixhd-scenes128

clean:
	rm -rf $(VENV) out .pytest_cache
