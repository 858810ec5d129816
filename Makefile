# The commands of the README: `make book`, `make check` (the fast loop) and `make test`.
# Each creates the virtual environment when it is missing and installs the pinned stack.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The strict build; BOOK_ARGS adds options (make test passes --all: every page read again).
JB_STRICT := $(BIN)/jupyter-book build --warningiserror --nitpick --keep-going
JB_BUILD := $(JB_STRICT) .
BOOK_ARGS ?=
BOOK_LOG := _build/book.log
SITE_ZIP := gradients-through-randomness-html.zip
STUDENT_LOG := _build/student/book.log

.PHONY: help install check book book-student pdf pdf-if-tex bench seeds test test-launch lab clean

help:
	@echo "make book   build the HTML book into _build/html (executes chapters not cached)"
	@echo "make check  unit tests, doctests, notebook hygiene and ruff; no chapter runs (fast)"
	@echo "make test   make check, each chapter executed once, both strict builds, the site"
	@echo "make book-student  the same book without solutions, into _build/student/_build/html"
	@echo "make pdf    the book as a PDF through LaTeX (needs a TeX installation)"
	@echo "make test-launch  Colab and Binder simulated: fresh environments run every chapter"
	@echo "make bench  execute each chapter once: errors, time and memory against the budget"
	@echo "make seeds  execute each chapter under K other seeds (K=20) and report every failure"
	@echo "make lab    start JupyterLab on book/ (LAB_PORT=8888, LAB_BROWSER=no, LAB_ARGS=...)"
	@echo "make clean  remove build outputs (keeps $(VENV))"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml scripts/fetch_mathjax.py scripts/fetch_axe.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --requirement requirements.txt --editable .
	$(BIN)/python scripts/fetch_mathjax.py
	$(BIN)/python scripts/fetch_axe.py
	touch $(STAMP)

# Unit tests and doctests of companion/ and tests/ (no chapter is executed), then lint and
# the formatter's check; all three run, and any failure fails. Tests marked slow (2.5 seconds
# or more each) are left to make test.
check: $(STAMP)
	status=0; \
	$(BIN)/python -m pytest -m "not slow" || status=1; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	exit $$status

# Chapters found in the execution cache (_build/.jupyter_cache: filled by make bench or a
# previous build) are not executed again; the others are, and cached. The log is kept for
# make test's check that nothing was executed twice.
book: $(STAMP)
	mkdir -p $(dir $(BOOK_LOG))
	$(JB_BUILD) $(BOOK_ARGS) 2>&1 | tee $(BOOK_LOG)
	@# The whole site in one archive, to read offline (MathJax included): unzip, open index.html.
	cd _build && rm -f $(SITE_ZIP) && $(abspath $(BIN))/python -m zipfile -c $(SITE_ZIP) html/
	@echo "The book is at $(CURDIR)/_build/html/index.html (to read offline: _build/$(SITE_ZIP))"

# The student edition: the student notebooks (no solutions; the implement-it exercises as
# empty stubs), with the book's outputs from its execution cache, in _build/student/src, and
# the same notebooks without outputs in _build/student/notebooks, to hand out; written by
# scripts/student_edition.py (which executes, and caches, a chapter missing from the cache).
# The build executes nothing and has no launch buttons; each page downloads its notebook.
book-student: $(STAMP)
	mkdir -p $(dir $(STUDENT_LOG))
	$(BIN)/python scripts/student_edition.py
	$(JB_STRICT) _build/student/src --path-output _build/student $(BOOK_ARGS) \
	  2>&1 | tee $(STUDENT_LOG)
	@echo "The student edition is at $(CURDIR)/_build/student/_build/html/index.html"
	@echo "The student notebooks are in $(CURDIR)/_build/student/notebooks"

pdf: $(STAMP)
	@command -v latexmk >/dev/null && command -v xelatex >/dev/null || { \
	  echo "make pdf needs LaTeX: latexmk and xelatex, with the TeX Live packages Sphinx uses."; \
	  echo "On Debian or Ubuntu: apt-get install latexmk texlive-xetex texlive-latex-extra \\"; \
	  echo "  texlive-fonts-recommended fonts-freefont-otf fonts-dejavu-core xindy"; \
	  exit 1; }
	$(BIN)/jupyter-book build . --builder pdflatex --keep-going
	$(BIN)/python scripts/check_pdf.py
	@echo "The PDF is $(CURDIR)/_build/latex/gradients-through-randomness.pdf"

# Each chapter executed once, in a fresh kernel: fails with the traceback when a cell raises,
# and (with BENCH_ARGS=--check, the default) when a chapter is over the budget of the
# performance appendix (wall time, peak kernel memory); stores the executed chapters in the
# book's execution cache and logs every check to _build/checks/. Then the estimators' engine
# against the plain surrogate (benchmarks/estimator_engine.py).
BENCH_ARGS ?= --check
bench: $(STAMP)
	mkdir -p _build
	$(BIN)/python benchmarks/chapters.py $(BENCH_ARGS) --json _build/benchmarks.json

# Every chapter under K other seeds (companion.seeding's offset), nothing cached: a correct
# chapter should essentially never fail. Not part of make test (about K times the book's time).
K ?= 20
seeds: $(STAMP)
	$(BIN)/python benchmarks/chapters.py --seeds $(K)

# make check; each chapter executed once (make bench; time and memory are reported, not
# enforced: a benchmark on a shared machine is not a test); the audit of every check the
# chapters ran; both strict builds, which take every chapter from the cache, and a check of
# their logs that they executed none; then the tests of the rendered site (tests/site).
test: $(STAMP)
	$(MAKE) check
	$(BIN)/python -m pytest -m slow
	$(MAKE) bench BENCH_ARGS=
	$(BIN)/python scripts/audit_checks.py _build/checks
	$(MAKE) book BOOK_ARGS=--all
	$(MAKE) book-student BOOK_ARGS=--all
	$(BIN)/python scripts/check_cached_build.py $(BOOK_LOG) --executes-nothing $(STUDENT_LOG)
	$(BIN)/python -m pytest tests/site
	$(MAKE) pdf-if-tex

# The PDF, when TeX is installed (CI installs it and sets PDF_REQUIRED=1, which turns a
# missing TeX into a failure); from the same execution cache, so no chapter runs again.
pdf-if-tex:
	@if command -v latexmk >/dev/null && command -v xelatex >/dev/null; then \
	  $(MAKE) pdf; \
	elif [ "$${PDF_REQUIRED:-0}" = 1 ]; then \
	  echo "PDF_REQUIRED=1 but latexmk or xelatex is missing"; exit 1; \
	else \
	  echo "TeX is not installed: the PDF is not built (make pdf says what it needs)"; \
	fi

# The launch paths, simulated. Colab (scripts/simulate_colab.py, offline): a fresh kernel
# without companion, whose bootstrap cell installs it from a local stand-in for the public
# repository, then every chapter. Binder (scripts/simulate_binder.py, needs the package
# index): a clean environment from binder/requirements.txt and binder/postBuild, JupyterLab
# started in it, then every chapter, each within Binder's 2 GB. They execute the chapters
# again, so they are not part of make test; .ci/run runs them after make test.
test-launch: $(STAMP)
	$(BIN)/python scripts/simulate_colab.py
	$(BIN)/python scripts/simulate_binder.py

# JupyterLab on book/. LAB_PORT chooses the port, LAB_BROWSER=no starts it without opening a
# browser (a container, a remote machine), LAB_ARGS passes anything else to jupyter lab. As
# root (a container, a cloud VM) it adds --allow-root, which JupyterLab otherwise demands.
LAB_PORT ?= 8888
LAB_BROWSER ?= yes
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab book/ --port=$(LAB_PORT) \
	  $(if $(filter no,$(LAB_BROWSER)),--no-browser) \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
