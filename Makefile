# hashspark developer entry points. `make demo` and `make test` create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo report markets test test-slow lint typecheck unit bench clean system-packages lock audit \
        iso-env unit-iso lock-iso

# Tool environments kept apart from the product's: pip-tools writes the lock, pip-audit reads it.
TOOLS_VENV  ?= .venv-tools
PIP_TOOLS   := pip-tools==7.6.2
PIP_AUDIT   := pip-audit==2.10.1

install: $(STAMP)

# Exactly the locked set (hashes checked), then hashspark itself without touching it.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hashspark needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(TOOLS_VENV)/.installed:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet '$(PIP_TOOLS)' '$(PIP_AUDIT)'
	@touch $@

# After changing dependencies in pyproject.toml: re-resolve and re-hash the whole set, the
# dev, report, asicrs and central extras included (developers and CI install all of it).
lock: $(TOOLS_VENV)/.installed
	$(TOOLS_VENV)/bin/pip-compile --quiet --generate-hashes --extra dev --extra report --extra asicrs --extra central \
	  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  -o requirements.lock pyproject.toml

# The ISO price publisher's own environment (`hashspark feed gridstatus`, docs/feeds.md):
# the product's locked set plus gridstatus (pandas, lxml, plotly...) and vcrpy for its tests,
# from requirements-iso.lock (hashed, constrained to requirements.lock). The daemon's .venv
# never gets gridstatus. Rebuilt only when one of the three files changes (CI: cache on them).
ISO_VENV  ?= .venv-iso
ISO_STAMP := $(ISO_VENV)/.installed

iso-env: $(ISO_STAMP)

$(ISO_STAMP): pyproject.toml requirements.lock requirements-iso.lock
	$(PYTHON) -m venv $(ISO_VENV)
	$(ISO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ISO_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements.lock -r requirements-iso.lock
	$(ISO_VENV)/bin/python -m pip install --quiet --no-deps -e .
	@touch $@

# After changing requirements-iso.in: re-resolve and re-hash the publisher's extra set.
lock-iso: $(TOOLS_VENV)/.installed
	$(TOOLS_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links -o requirements-iso.lock requirements-iso.in

# Known vulnerabilities in the locked set (PyPI's advisory data). --strict: a package it
# could not look up is a failure, so an unreachable data source never passes silently.
audit: $(TOOLS_VENV)/.installed
	@$(TOOLS_VENV)/bin/pip-audit --strict --disable-pip --require-hashes -r requirements.lock \
	  || { echo "make audit: FAILED: a known vulnerability, or pip-audit could not reach its" \
	            "vulnerability data (PyPI JSON API) for some package: see above" >&2; exit 1; }

# The main job first: the daemon's live path over the 2024-08-20 scarcity window (two
# evenings, 36 h), 36 simulated miners commanded through pyasic (the three firmware
# families; without port 80, i.e. not root, the two that need none), each decision printed
# with its reason, in under a minute; then the year's fast replay. No broker, no network.
DEMO_SCENARIO := deploy/scenarios/ercot-hb-south-hedged.toml
demo: $(STAMP)
	@mkdir -p out
	$(BIN)/hashspark replay $(DEMO_SCENARIO) --live-path --window scarcity-2024-08-20 --miners 36 --family auto --decisions --report-json out/demo-live-report.json
	$(BIN)/hashspark replay $(DEMO_SCENARIO) --report-json out/demo-report.json

# The hedged scenario's strategy comparison over the whole recording, as HTML with charts.
report: $(STAMP)
	$(BIN)/hashspark compare deploy/scenarios/ercot-hb-south-hedged.toml --report out/report

# One fleet and book over six markets, 2024-06-01..2024-12-05 (docs/replay.md, "Markets compared").
MARKETS = ercot-hb-south-spot spp-south-spot miso-illinois-spot nyiso-zone-j-spot isone-hub-spot de-lu-day-ahead-spot
markets: $(STAMP)
	$(BIN)/hashspark markets $(MARKETS:%=deploy/scenarios/%.toml) --to 2024-12-05 --report out/markets

lint: $(STAMP)
	$(BIN)/ruff check controller adapters simulators tests bench
	$(BIN)/ruff format --check controller adapters simulators tests bench
	$(BIN)/deptry .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

system-packages:
	@scripts/ensure-system-packages

unit: $(STAMP) system-packages
	$(BIN)/python -m pytest -q

# The gridstatus publisher's tests, in its environment: the real gridstatus code over recorded
# ISO responses, into a running daemon over a real Mosquitto (tests/iso).
unit-iso: $(ISO_STAMP) system-packages
	$(ISO_VENV)/bin/python -m pytest -q -m iso tests/iso

test: lint typecheck unit unit-iso

# The slow tests (10,000-case fuzzing of every input surface, 1,000 miners through pyasic, the
# 24-hour soak); `make test` skips them.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Every benchmark, each in its own process; writes docs/performance.md from their output.
bench: $(STAMP)
	$(BIN)/python bench/suite.py

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(ISO_VENV) out .mypy_cache .pytest_cache .ruff_cache
