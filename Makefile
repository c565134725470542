# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

DOCS_ASSETS := src/lunamail/entrypoints/http/static/docs/swagger-ui-bundle.js
CONSOLE_ASSETS := src/lunamail/entrypoints/web/static/vendor/htmx.min.js

.PHONY: demo test lint browser spamassassin bench clean assets

$(BIN)/lunamail: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/lunamail

## Swagger UI and ReDoc for /docs and /redoc, and the console's htmx, CodeMirror and uPlot,
## from the npm packages in package-lock.json (axe-core stays in node_modules for the tests).
assets: $(DOCS_ASSETS) $(CONSOLE_ASSETS)

$(DOCS_ASSETS) $(CONSOLE_ASSETS) &: package-lock.json scripts/docs_assets.py | $(BIN)/lunamail
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	  else echo "install Debian's npm package (sudo apt-get install npm) for the API docs assets"; exit 1; fi; }
	$(BIN)/python scripts/docs_assets.py
	@touch $@

## Send a real campaign to a local SMTP capture server and print the report.
demo: $(BIN)/lunamail assets
	$(BIN)/lunamail demo

## Lint, type-check, layering contracts, then the whole test suite.
test: $(BIN)/lunamail assets browser spamassassin lint
	$(BIN)/python -m pytest -n 2 -q

## The web-page tests drive Debian's Chromium through Playwright (never a downloaded browser).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser tests"; exit 1; fi; }

## A deliverability test scores a newsletter with SpamAssassin's stock rules, offline (Debian's package).
spamassassin:
	@command -v spamassassin >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spamassassin >/dev/null; \
	  else echo "install Debian's spamassassin package (sudo apt-get install spamassassin) for the deliverability test"; exit 1; fi; }

lint: $(BIN)/lunamail
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BIN)/lunamail
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) lunamail-data lunamail-demo .pytest_cache .mypy_cache .ruff_cache node_modules src/lunamail/entrypoints/http/static/docs \
	  src/lunamail/entrypoints/web/static/vendor
