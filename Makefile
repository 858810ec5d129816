# The two commands of the README: `make book` and `make test`.
# Both create the virtual environment when it is missing and install the pinned stack.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install book book-student pdf bench test lab clean

help:
	@echo "make book   build the HTML book into _build/html (executes every chapter)"
	@echo "make test   unit tests, notebook hygiene, every notebook under nbval, strict build"
	@echo "make book-student  the same book without solutions, into _build/student/_build/html"
	@echo "make pdf    the book as a PDF through LaTeX (needs a TeX installation)"
	@echo "make bench  time each chapter and its kernel's memory against the budget"
	@echo "make lab    start JupyterLab on book/"
	@echo "make clean  remove build outputs (keeps $(VENV))"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --requirement requirements.txt --editable .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The student edition: _config.yml with solutions removed (see _ext/student_edition.py) and
# no launch buttons (they would open the full notebooks). It shares the execution cache.
book-student: $(STAMP)
	mkdir -p _build
	$(BIN)/python -c 'import yaml; c = yaml.safe_load(open("_config.yml")); \
	  c["title"] += " (student edition)"; c["sphinx"]["config"]["student_edition"] = True; \
	  c["sphinx"]["config"]["html_copy_source"] = False; c["launch_buttons"] = {}; \
	  c["execute"]["cache"] = "$(CURDIR)/_build/.jupyter_cache"; \
	  ext = c["sphinx"]["local_extensions"]; ext.update({k: "$(CURDIR)/" + v for k, v in ext.items()}); \
	  yaml.safe_dump(c, open("_build/_config_student.yml", "w"), sort_keys=False)'
	$(BIN)/jupyter-book build . --config _build/_config_student.yml --path-output _build/student \
	  --warningiserror --nitpick --keep-going
	@echo "The student edition is at $(CURDIR)/_build/student/_build/html/index.html"

pdf: $(STAMP)
	@command -v latexmk >/dev/null && command -v xelatex >/dev/null || { \
	  echo "make pdf needs LaTeX: latexmk and xelatex, with the TeX Live packages Sphinx uses."; \
	  echo "On Debian or Ubuntu: apt-get install latexmk texlive-xetex texlive-latex-extra \\"; \
	  echo "  texlive-fonts-recommended texlive-fonts-extra fonts-freefont-otf xindy"; \
	  exit 1; }
	$(BIN)/jupyter-book build . --builder pdflatex --keep-going
	@echo "The PDF is in $(CURDIR)/_build/latex/"

# Each chapter in a fresh kernel: wall time and peak memory against the budget of the
# performance appendix (fails when over), plus the estimators' throughput.
bench: $(STAMP)
	mkdir -p _build
	$(BIN)/python benchmarks/chapters.py --check --json _build/benchmarks.json

# Unit tests, hygiene and every notebook under nbval; the strict build of both editions;
# the performance budget; then the tests of the rendered site (tests/site), which need the
# builds.
test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) book
	$(MAKE) book-student
	$(MAKE) bench
	$(BIN)/python -m pytest tests/site

lab: $(STAMP)
	$(BIN)/jupyter lab book/

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
