# Two entry points on a fresh machine: `make demo` runs the product, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml dev/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: test lint typecheck unit demo demo-shell readme-image bench clean

$(STAMP): pyproject.toml dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./dev
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/hadolint --failure-threshold style Dockerfile
	$(BIN)/cfn-lint --include-checks I -- config/cross-account-role.yaml \
		config/eventbridge-forwarder.yaml config/central-bus.yaml config/responder-role.yaml

typecheck: $(STAMP)
	$(BIN)/mypy checks bot dev/keyhunt_dev

# Four pytest workers, a test file each at a time: most tests wait (on CloudTrail's 2 calls/s,
# on child processes, on Slack's answers) rather than compute, so four overlap on two cores.
# `make unit PYTEST_WORKERS=` runs them one after the other.
PYTEST_WORKERS ?= -n 4 --dist loadfile

# PostgreSQL: scripts/test-postgres.sh installs Debian's server if needed and runs a throwaway
# cluster on loopback for the store, poller, triage and replica tests (they skip without it,
# and fail under CI=true).
unit: $(STAMP)
	@url=$$(scripts/test-postgres.sh start) || url=""; \
	KEYHUNT_TEST_POSTGRES_URL="$$url" $(BIN)/pytest -q $(PYTEST_WORKERS); status=$$?; \
	if [ -n "$$url" ]; then scripts/test-postgres.sh stop; fi; \
	exit $$status

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/keyhunt demo

# The demo's world kept up (until Ctrl-C) for a second shell: `. .keyhunt-demo/env`.
demo-shell: $(STAMP)
	$(BIN)/keyhunt demo --keep

# docs/alert.png, the README's picture of an alert: the demo's SSO-made key for deploy-bot as
# the channel shows it after the demo's Investigate click, drawn from the Block Kit JSON it posted.
readme-image: $(STAMP)
	@json=$$($(BIN)/keyhunt demo --json) && printf '%s\n' "$$json" | \
		$(BIN)/python -m keyhunt_dev.draw docs/alert.png --finding demo-sso-for-deploy-bot

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
