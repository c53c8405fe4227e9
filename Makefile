# The two set-up commands: `make demo` (the main job) and `make test` (the whole test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8765

.PHONY: demo test install browser bench lint clean

# The demo needs only the package's own dependencies; the test tools (Ray, Playwright, schemathesis,
# mypy) are installed by `make test` on top, so a first `make demo` does not wait for them.
$(BIN)/samplescope: pyproject.toml
	@date +%s > .install-started
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	@echo "$$(( $$(date +%s) - $$(cat .install-started) )) $$(date +%s)" > $(VENV)/samplescope-install-seconds; rm -f .install-started
	touch $@

$(VENV)/.test-tools: pyproject.toml $(BIN)/samplescope
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(BIN)/samplescope

## fetch MNIST, train the CNN, analyse every sample, serve the web app on 127.0.0.1:$(PORT)
demo: install
	$(BIN)/samplescope demo --out runs/mnist --port $(PORT)

## the whole test suite, browser tests included (installs Debian's chromium when missing and root)
test: $(VENV)/.test-tools browser
	$(BIN)/python -m pytest

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: Debian's chromium is missing; browser tests need 'sudo apt-get install chromium'"; fi; }

bench: $(VENV)/.test-tools
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/analyze_speed.py runs/mnist
	$(BIN)/python bench/serve_speed.py runs/mnist

lint: $(VENV)/.test-tools
	$(BIN)/ruff check samplescope tests bench

clean:
	rm -rf $(VENV) .pytest_cache tests/_artifacts
