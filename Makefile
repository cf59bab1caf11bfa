# The one task runner for maintainers and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
# The lowest supported ansible-core (requirements-lowest.txt): sanity and the
# unit tests also run with it (lane item `lowest`).
VENV_LOWEST ?= .venv-lowest
# ... on the lowest controller Python it supports (Ubuntu 22.04's 3.10) where
# the machine has one, so the filters and modules are imported by 3.10 too.
# (a pyenv shim may name python3.10 and still refuse to run it: each candidate
# must start).
PYTHON_LOWEST ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 $(PYTHON); do \
  if "$$p" -c '' 2>/dev/null; then echo "$$p"; break; fi; done)
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

# Scenarios in dependency order; `make molecule SCENARIO=k3s` runs one.
SCENARIOS ?= harness docker nordvpn k3s-standin k3s stack recover-sqlite recover-etcd default vpn
# `make test` runs lint, sanity, the unit tests and the scenarios in two lanes
# at once: the runs mostly wait on systemd, k3s and containers inside their
# own test hosts (one container per scenario, i8c-<scenario>), so two share
# the machine's cores well. Each lane stops at its first failure; lines carry
# the lane. Items named after make targets (lint, sanity, lowest, images) run
# that target.
# SOLO runs alone afterwards: the default scenario prints the no-change rerun
# figure of site.yml (per platform where it runs on several, each host's rerun
# alone), which a second lane's load would distort. It runs on all three
# declared platforms: Ubuntu's docker.io 29 keeps images in the containerd
# image store, whose image IDs the stack role translates (docs/DEVELOPING.md).
# The longest scenarios start first, so the lanes end close together. The
# item `images` builds the other platforms' test-host images (debootstrap,
# mostly download) in one lane while the other already runs a scenario; an @
# item builds any of its images still missing itself.
# An item `scenario@suite+suite` runs the scenario once with a test host per
# listed suite side by side (tests/images/platforms.py): the declared
# platforms (Debian 12, Ubuntu 22.04, 24.04) get the docker scenario that
# way, in one run.
LANE_1 ?= lint sanity recover-sqlite vpn k3s lowest harness k3s-standin
LANE_2 ?= images unit recover-etcd stack docker@bookworm+jammy+noble nordvpn
# The test-host images of the other declared distributions (lane @ items).
EXTRA_SUITES ?= jammy noble
SOLO ?= default@bookworm+jammy+noble
SCENARIO ?=
# Extra pytest arguments for `make unit`.
UNIT_ARGS ?=
SANITY_ROOT = .cache/sanity-$(notdir $(VENV))/ansible_collections/integr8scode/provision
# The tests' Compose v2 CLI plugin lives in a Docker client configuration
# directory of the checkout's own: in /usr/local/lib/docker/cli-plugins or
# ~/.docker/cli-plugins it would shadow the host's Compose for everyone.
# Exported, so every target (unit tests, fixtures, scenarios, lab) and the
# programs they start run `docker compose` with it. Forced (:=): a
# DOCKER_CONFIG of the caller would put the plugin outside the checkout.
DOCKER_CONFIG := $(abspath .cache/docker)
export DOCKER_CONFIG
# pip's download cache inside the checkout too (make clean removes it): the
# set-ups write nothing outside it.
export PIP_CACHE_DIR := $(abspath .cache/pip)

# Prints how long a stage took, so CI logs show where the time goes.
define timed
	@start=$$(date +%s); echo "==> $(1)"; \
	$(MAKE) --no-print-directory $(1); \
	echo "==> $(1) took $$(( $$(date +%s) - start ))s"
endef

.PHONY: help setup setup-dev dev-venv lowest-venv changelog image images lowest fixtures lint sanity unit molecule lanes solo test bench lab lab-destroy build docs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## User set-up: .venv (ansible-core) and the roles' collections, all inside the checkout
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	@# Galaxy first; where it cannot be reached (our machines), the `ansible`
	@# package from PyPI brings the same collections into .venv.
	@if $(BIN)/ansible-galaxy collection install -r requirements.yml -p collections; then :; else \
	  echo "Galaxy unreachable: the collections come from the ansible package (requirements-collections.txt)"; \
	  $(BIN)/pip install --quiet -r requirements-collections.txt; fi
	@# The inventory ansible.cfg reads; a copy of the sample to edit, never a tracked file.
	@if [ ! -e inventory/local ]; then cp -R inventory/sample inventory/local; \
	  echo "inventory/local/ created from inventory/sample/ (this machine): edit it for other hosts"; fi

setup-dev: ## Maintainer set-up: .venv with the pinned test toolchain, Compose v2 plugin in DOCKER_CONFIG
	@# The two virtualenvs are independent: built side by side (mostly downloads).
	$(MAKE) --no-print-directory -j2 dev-venv lowest-venv
	@plugin=$$($(BIN)/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))'); \
	mkdir -p "$(DOCKER_CONFIG)/cli-plugins"; install -m 0755 "$$plugin" "$(DOCKER_CONFIG)/cli-plugins/docker-compose"; \
	echo "docker compose plugin: $(DOCKER_CONFIG)/cli-plugins/docker-compose"

dev-venv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints-dev.txt

# The lowest supported ansible-core beside it, with the same collections (the
# `ansible` package, whose collections support ansible-core >= 2.15; the
# package itself asks for Python 3.11 only for its ansible-core pin).
lowest-venv:
	$(PYTHON_LOWEST) -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/pip install --quiet --upgrade pip
	$(VENV_LOWEST)/bin/pip install --quiet -r requirements-lowest.txt
	$(VENV_LOWEST)/bin/pip install --quiet --no-deps --ignore-requires-python $$(grep -E '^ansible==' requirements-dev.txt)

image: ## Build (or reuse from cache) the systemd test-host image
	tests/images/build-test-image.sh

images: image ## Also the test-host images of EXTRA_SUITES (Ubuntu 22.04, 24.04)
	@for suite in $(EXTRA_SUITES); do TEST_IMAGE_SUITE=$$suite tests/images/build-test-image.sh; done

fixtures: image ## Build (or reuse from cache) the fixture stack image the scenarios load
	tests/fixtures/build-fixture-images.sh

lint: ## ansible-lint (production profile), ruff, changelog fragments
	ansible-lint
	ruff check .
	ruff format --check .
	antsibull-changelog lint

changelog: ## CHANGELOG.md and CHANGELOG.rst from changelogs/ (after `antsibull-changelog release` for a version)
	antsibull-changelog generate

sanity: ## ansible-test sanity on a copy laid out as ansible_collections/integr8scode/provision
	rm -rf .cache/sanity-$(notdir $(VENV)) && mkdir -p $(SANITY_ROOT)
	@pip_version=$$(grep -oP "pip='\\K[0-9.]+" $$($(BIN)/python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py); \
	cache=$$HOME/.ansible/test/cache/get_pip_$${pip_version//./_}.py; \
	mkdir -p "$$(dirname "$$cache")"; install -m 0644 tests/sanity/get_pip_bootstrap.py "$$cache"
	git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' | \
	  xargs -0 -I{} cp --parents -P {} $(SANITY_ROOT)/
	cd $(SANITY_ROOT) && git init -q && git add -A && \
	  ansible-test sanity --local --python $$($(BIN)/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")') \
	  --color no

unit: image ## Unit tests (real Docker engine, real HTTPS servers, stand-ins)
	pytest tests/unit $(UNIT_ARGS)

lowest: image ## Sanity, unit tests and the playbooks' syntax with the lowest supported ansible-core
	@echo "$$($(VENV_LOWEST)/bin/ansible --version | head -n 1), $$($(VENV_LOWEST)/bin/python --version)"
	@# The stand-ins' own tests run programs under tests/standins, not ansible-core.
	$(MAKE) --no-print-directory VENV=$(VENV_LOWEST) UNIT_ARGS=--ignore=tests/unit/standins sanity unit
	$(VENV_LOWEST)/bin/ansible-playbook --syntax-check -i inventory/sample/hosts.yml site.yml playbooks/*.yml

molecule: image ## All molecule scenarios, or one: make molecule SCENARIO=name
	@$(MAKE) --no-print-directory lane-only LANE_only="$(or $(SCENARIO),$(SCENARIOS))"

# A lane is a list of `unit` and scenario names, run in order, each timed.
lane-%:
	@for s in $(LANE_$*); do \
	  start=$$(date +%s); \
	  case "$$s" in \
	  unit) echo "==> unit ($$(ansible --version | head -n 1))"; pytest tests/unit ;; \
	  lint | sanity | lowest | images) echo "==> $$s"; $(MAKE) --no-print-directory $$s ;; \
	  *@*) scenario=$${s%@*}; suites=$${s#*@}; config=.cache/molecule/platforms-$$suites.yml; \
	    $(MAKE) --no-print-directory images EXTRA_SUITES="$${suites//+/ }"; \
	    echo "==> molecule test -s $$scenario on $$suites"; \
	    $(BIN)/python tests/images/platforms.py "$$suites" "$$config"; \
	    MOLECULE_EPHEMERAL_DIRECTORY=$(abspath .cache/molecule)/$$scenario@$$suites \
	      molecule --base-config "$$config" test -s "$$scenario" ;; \
	  *) echo "==> molecule test -s $$s"; molecule test -s $$s ;; \
	  esac; \
	  echo "==> $$s took $$(( $$(date +%s) - start ))s"; \
	done

lanes: fixtures ## The unit tests and every scenario in two concurrent lanes
	@start=$$(date +%s); \
	( $(MAKE) --no-print-directory lane-1 2>&1 | sed -u 's/^/[lane 1] /' ) & one=$$!; \
	( $(MAKE) --no-print-directory lane-2 2>&1 | sed -u 's/^/[lane 2] /' ) & two=$$!; \
	rc=0; wait $$one || rc=1; wait $$two || rc=1; \
	echo "==> lanes took $$(( $$(date +%s) - start ))s (exit $$rc)"; exit $$rc

solo: fixtures images ## The scenarios that print timing figures, alone (SOLO)
	$(MAKE) --no-print-directory molecule SCENARIO="$(SOLO)"

test: ## Everything CI runs: lint, sanity, unit and molecule in two lanes, then SOLO
	$(call timed,lanes)
	$(call timed,solo)

bench: ## Benchmarks (print numbers; no assertions)
	$(BIN)/python bench/wait_latency.py

lab: image ## A throwaway systemd host provisioned by site.yml with offline sources
	tests/lab/lab.sh up

lab-destroy: ## Remove the lab host
	tests/lab/lab.sh down

docs: ## Regenerate the README variables section from the roles' argument specs
	$(BIN)/python tests/docs/render_variables.py --write

build: ## Build the collection tarball
	ansible-galaxy collection build --force

clean: ## Remove caches (not .venv, nor the Compose plugin in DOCKER_CONFIG)
	find .cache -mindepth 1 -maxdepth 1 ! -name docker -exec rm -rf {} + 2>/dev/null || true
	rm -rf tests/output integr8scode-provision-*.tar.gz
