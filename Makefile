# Everything a fresh Debian 12 machine with Python 3.11 needs comes through here.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	sh scripts/bootstrap.sh $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/trellis agent -dev

test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
