# The one task runner for maintainers and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
# The lowest supported ansible-core (requirements-lowest.txt): sanity and the
# unit tests also run with it (item `lowest`).
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

# Scenarios in dependency order; `make molecule SCENARIO=k3s` runs one
# (SCENARIO takes items, e.g. docker@bookworm+jammy+noble).
SCENARIOS ?= harness docker nordvpn k3s-standin k3s stack recover-sqlite recover-etcd default vpn
# `make test` runs ITEMS from one queue, JOBS at a time (make's own job
# server): lint, sanity, the unit tests and the scenarios. The scenarios mostly
# wait on systemd, k3s and containers inside their own test hosts (one per
# scenario and platform, i8c-<scenario>[-<suite>]), so two share the machine's
# 2 cores well; three did not (vmstat: no idle left, every item twice as slow).
# The longest items come first and the short ones fill the gaps at the end.
# Every line carries its item's name and each item is timed; after the first
# failure no further item starts. Items named after make targets (lint,
# sanity, lowest, images) run that target; `unit` runs the unit tests.
# An item `scenario@suite+suite` runs the scenario once with a test host per
# listed suite side by side (tests/images/platforms.py): the declared
# platforms (Debian 12, Ubuntu 22.04, 24.04) get the default and docker
# scenarios that way. The first of them builds the Ubuntu test-host images
# (debootstrap, mostly download) while other items run; the next one waits
# for it (flock) and finds them built.
# PERF runs alone afterwards: the default scenario prints the no-change rerun
# figure of site.yml per platform, each host's rerun alone, which the other
# items' load would distort. Its hosts are not kept up for that while the
# queue runs: an idle converged host still costs CPU (healthchecks, the
# workers' API polls; figures in docs/DEVELOPING.md). Ubuntu's docker.io
# 29 keeps images in the containerd image store, whose image IDs the stack
# role translates (docs/DEVELOPING.md).
ITEMS ?= recover-etcd stack vpn recover-sqlite docker@bookworm+jammy+noble k3s \
  lowest unit nordvpn k3s-standin lint sanity harness
JOBS ?= 2
PERF ?= default@bookworm+jammy+noble
# The test-host images of the other declared distributions (@ items).
EXTRA_SUITES ?= jammy noble
SCENARIO ?=
# Extra pytest arguments for `make unit`.
UNIT_ARGS ?=
# Every skip of the unit tests and the scenarios' verifiers must be on this list, with its
# reason, or the run fails (tests/ci/skiplist.py); `SKIP_LIST=` turns the check off.
SKIP_LIST ?= $(abspath tests/ci/allowed-skips.yml)
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

# CI shows only the tail of its output: after the queue, the failure lines of
# each failed item.
failure_digests = for item in $(1); do [ -e ".cache/items/$$item.log.failed" ] || continue; \
  echo "==> what failed in $$item (whole output: .cache/items/$$item.log):"; \
  $(BIN)/python tests/ci/failure_digest.py ".cache/items/$$item.log" | sed "s/^/    /"; done

# Prints how long a stage took, so CI logs show where the time goes.
define timed
	@start=$$(date +%s); echo "==> $(1)"; \
	$(MAKE) --no-print-directory $(1); \
	echo "==> $(1) took $$(( $$(date +%s) - start ))s"
endef

.PHONY: help setup setup-dev dev-venv lowest-venv changelog image images lowest fixtures lint sanity unit molecule items perf test bench lab lab-destroy build docs clean

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
	I8C_SKIP_LIST='$(SKIP_LIST)' pytest tests/unit $(UNIT_ARGS)

lowest: image ## Sanity, unit tests and the playbooks' syntax with the lowest supported ansible-core
	@echo "$$($(VENV_LOWEST)/bin/ansible --version | head -n 1), $$($(VENV_LOWEST)/bin/python --version)"
	@# The stand-ins' own tests run programs under tests/standins, not ansible-core.
	$(MAKE) --no-print-directory VENV=$(VENV_LOWEST) UNIT_ARGS=--ignore=tests/unit/standins sanity unit
	$(VENV_LOWEST)/bin/ansible-playbook --syntax-check -i inventory/sample/hosts.yml site.yml playbooks/*.yml

molecule: image ## All molecule scenarios one after another, or some: make molecule SCENARIO="k3s stack"
	@$(MAKE) --no-print-directory -j1 $(addprefix item-,$(or $(SCENARIO),$(SCENARIOS)))

# One item, its output prefixed with its name and its time printed, also when
# it fails. Molecule wraps its output at COLUMNS (80 without a terminal), which
# would split a failure line. An @ item gets its generated base configuration
# and an ephemeral directory of its own, so the same scenario can run beside
# another suite.
item-%:
	@s='$*'; start=$$(date +%s); rc=0; log=.cache/items/$$s.log; mkdir -p .cache/items; rm -f "$$log.failed"; \
	export COLUMNS=200 I8C_SKIP_LIST='$(SKIP_LIST)'; \
	{ case "$$s" in \
	  unit) echo "==> unit ($$(ansible --version | head -n 1))"; pytest tests/unit ;; \
	  lint | sanity | lowest | images) echo "==> $$s"; $(MAKE) --no-print-directory $$s ;; \
	  *@*) scenario=$${s%@*}; suites=$${s#*@}; config=.cache/molecule/platforms-$$suites.yml; \
	    echo "==> molecule test -s $$scenario on $$suites"; \
	    mkdir -p .cache && flock .cache/images.lock $(MAKE) --no-print-directory images EXTRA_SUITES="$${suites//+/ }" && \
	    $(BIN)/python tests/images/platforms.py "$$suites" "$$config" && \
	    MOLECULE_EPHEMERAL_DIRECTORY=$(abspath .cache/molecule)/$$s \
	      molecule --base-config "$$config" test -s "$$scenario" ;; \
	  *) echo "==> molecule test -s $$s"; molecule test -s $$s ;; \
	  esac; } 2>&1 | tee "$$log" | sed -u "s/^/[$$s] /" || rc=$$?; \
	echo "[$$s] ==> $$s took $$(( $$(date +%s) - start ))s$$( [ $$rc = 0 ] || echo " (exit $$rc)")"; \
	[ $$rc = 0 ] || touch "$$log.failed"; exit $$rc

items: fixtures ## lint, sanity, the unit tests and every scenario but PERF: ITEMS, JOBS at a time
	@start=$$(date +%s); rc=0; rm -f .cache/items/*.log.failed; \
	$(MAKE) --no-print-directory -j$(JOBS) $(addprefix item-,$(ITEMS)) || rc=$$?; \
	$(call failure_digests,$(ITEMS)); \
	echo "==> items took $$(( $$(date +%s) - start ))s (exit $$rc)"; exit $$rc

perf: fixtures ## The scenario that prints timing figures (PERF), alone
	@rc=0; $(MAKE) --no-print-directory item-$(PERF) || rc=$$?; \
	$(call failure_digests,$(PERF)); exit $$rc

test: ## Everything CI runs: ITEMS, JOBS at a time, then PERF alone
	$(call timed,items)
	$(call timed,perf)

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
