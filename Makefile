# Every workflow of the course is a target. Run `make help` for the list.
# Instructors: A=<assignment> names a lesson folder, e.g. make autograde A=05_residual_blocks.

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
GRADING_ROOT ?= $(abspath autograder)
export GRADING_ROOT
# nbgrader runs helper programs (alembic, jupyter) by name: the venv comes first on PATH.
export PATH := $(BIN):$(PATH)
NBGRADER := cd autograder && $(BIN)/nbgrader
LESSONS_DIR ?= lessons
ASSIGNMENTS := $(notdir $(wildcard solutions/[0-9]*))
FASHION_MNIST := /usr/share/datasets/fashion-mnist
space := $(subst ,, )

.PHONY: help setup data browser postgres lab formgrader gradebook test lock lint release collect autograde feedback grades gpu-check bench bench-data device-proof device-wheels clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# Every package of the dev extra, pinned with its hashes by `make lock`: students, graders and CI install the same
# versions all term. It is resolved on Linux x86_64 (CI's and the grading machines'), whose torch pulls CUDA wheels
# that exist nowhere else: on another system `make setup` says so and resolves pyproject.toml's ranges instead.
LOCK := requirements-dev.lock
LOCKED_FOR := Linux x86_64

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ "$$(uname -sm)" = "$(LOCKED_FOR)" ]; then \
		$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK) && \
		$(BIN)/python -m pip install --quiet --no-deps -e .; \
	else \
		echo "$(LOCK) pins packages for $(LOCKED_FOR), not for $$(uname -sm): installing pyproject.toml's ranges"; \
		$(BIN)/python -m pip install --quiet --upgrade pip && $(BIN)/python -m pip install --quiet -e ".[dev]"; \
	fi
	@# jsonschema's optional IRI checker builds a grammar on import: 2 s in every nbformat process (each graded
	@# submission starts one); jsonschema works without it, skipping only the "iri" format, which nbformat never uses
	$(BIN)/python -m pip uninstall --quiet --yes rfc3987-syntax
	touch $(STAMP)

setup: $(STAMP) data  ## create .venv: the course package and everything it needs, as requirements-dev.lock pins

data:  ## get Fashion-MNIST (Debian's dataset-fashion-mnist when apt-get is there; else it downloads on first use)
	@if [ -d $(FASHION_MNIST) ]; then echo "Fashion-MNIST: $(FASHION_MNIST)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null && echo "Fashion-MNIST installed"; \
	else echo "Fashion-MNIST is not installed system-wide: the lessons download it on first use (or see README)."; fi

ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

browser:  ## get Debian's Chromium for the browser tests (as root with apt-get; the tests skip without it)
	@if [ -x /usr/bin/chromium ]; then echo "Chromium: /usr/bin/chromium"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null && echo "Chromium installed"; \
	else echo "No Chromium and no root apt-get: the browser tests will be skipped."; fi

postgres:  ## get Debian's PostgreSQL server for the gradebook test (as root with apt-get; the test fails without it)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then echo "PostgreSQL: $$(ls -d /usr/lib/postgresql/*/bin)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq postgresql >/dev/null && echo "PostgreSQL installed"; \
	else echo "No PostgreSQL and no root apt-get: install Debian's postgresql, or tests/test_postgres.py fails."; fi

# JupyterLab's per-user state (settings changed in the UI, the open tabs) lives outside the repository
LAB_STATE ?= $(HOME)/.local/share/residual-course/lab

lab: setup  ## open the course in JupyterLab, as students see it (no instructor extensions, no news pop-up)
	JUPYTER_CONFIG_DIR=$(abspath jupyter/student) JUPYTERLAB_SETTINGS_DIR=$(LAB_STATE)/user-settings \
		JUPYTERLAB_WORKSPACES_DIR=$(LAB_STATE)/workspaces \
		$(BIN)/jupyter lab --notebook-dir=$(LESSONS_DIR) $(ALLOW_ROOT) $(LAB_ARGS)

formgrader: gradebook  ## instructors: JupyterLab on the grading folder, opening on nbgrader's formgrader
	@# the formgrader reads nbgrader_config.py from the course root: a grading folder elsewhere gets a pointer to ours
	@# nbgrader's exchange (unused: submissions come through `make collect`) must exist, or the page warns
	mkdir -p $(GRADING_ROOT)/exchange
	test -f $(GRADING_ROOT)/nbgrader_config.py || \
		echo 'load_subconfig("$(abspath autograder/nbgrader_config.py)")  # noqa: F821' > $(GRADING_ROOT)/nbgrader_config.py
	@# its Autograde buttons go through the course's driver (autograder/grading/nbgrader_steps/formgrader.py), never around it
	cd $(GRADING_ROOT) && PYTHONPATH=$(CURDIR) JUPYTERLAB_SETTINGS_DIR=$(LAB_STATE)/user-settings \
		JUPYTERLAB_WORKSPACES_DIR=$(LAB_STATE)/workspaces $(BIN)/jupyter lab --LabApp.default_url=/formgrader \
		--ServerApp.jpserver_extensions="{'autograder.grading.nbgrader_steps.formgrader': True}" $(ALLOW_ROOT) $(LAB_ARGS)

gradebook: $(STAMP)  ## load every assignment of solutions/ into the gradebook (lessons/ stays untouched)
	mkdir -p $(GRADING_ROOT)
	for a in $(ASSIGNMENTS); do \
		($(NBGRADER) generate_assignment $$a --force --CourseDirectory.release_directory=$(GRADING_ROOT)/release) || exit 1; \
	done

lock: $(STAMP)  ## re-pin requirements-dev.lock to pyproject.toml (UPGRADE=1: every package to its newest release)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --extra dev --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links $(if $(filter 1,$(UPGRADE)),--upgrade) \
		--output-file $(LOCK) pyproject.toml

lint: $(STAMP)  ## ruff over the package, tests and benchmarks
	$(BIN)/ruff check .

test: setup browser postgres  ## run every test: lint, package, notebooks, release drift, grading, Colab-like, browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

release: $(STAMP)  ## regenerate lessons/ from solutions/ with nbgrader
	for a in $(ASSIGNMENTS); do ($(NBGRADER) generate_assignment $$a --force) || exit 1; done

PATTERN ?= auto

collect: $(STAMP)  ## unpack a course platform's zip: A=<assignment> ZIP=<download> [PATTERN=canvas|moodle|plain] [FORCE=1]
	@test -n "$(A)" -a -n "$(ZIP)" || { echo "usage: make collect A=<assignment> ZIP=<submissions.zip>" \
		"[PATTERN=auto|canvas|moodle|plain|<regex with (?P<student>...)>] [FORCE=1] [MAX_MB=<MB>]"; exit 2; }
	$(BIN)/python -m autograder.grading.intake.collect "$(ZIP)" "$(A)" --root "$(GRADING_ROOT)" --pattern '$(PATTERN)' \
		$(if $(MAX_MB),--max-mb "$(MAX_MB)") $(if $(filter 1,$(FORCE)),--force)

J ?= 1

# one line, so that make's echo of the command is one printable line
AUTOGRADE_OPTIONS = --jobs $(J) $(if $(WALL),--wall $(WALL)) $(if $(MEMORY_GB),--memory-gb $(MEMORY_GB)) \
	$(if $(filter 1,$(REQUIRE_GPU)),--require-gpu) $(if $(STUDENTS),--students $(STUDENTS))

autograde: $(STAMP)  ## grade submitted/<student>/$(A)/ (A="a b", or all): isolated, J=<n> at once, report.csv [REQUIRE_GPU=1]
	@test -n "$(A)" || { echo "usage: make autograde A=<assignment> [J=2] [WALL=<seconds>] [MEMORY_GB=<GiB>] [REQUIRE_GPU=1]," \
		"A one or more of: $(ASSIGNMENTS), or all"; exit 2; }
	$(BIN)/python -m autograder.grading $(A) $(AUTOGRADE_OPTIONS)

# A=all: every assignment that has autograded submissions
FEEDBACK_FOR = $(if $(filter all,$(A)),$(foreach a,$(ASSIGNMENTS),$(if $(wildcard $(GRADING_ROOT)/autograded/*/$(a)),$(a))),$(A))

feedback: $(STAMP)  ## HTML feedback for $(A) (A="a b", or all) in autograder/feedback/ [LMS=canvas|moodle: a zip to upload]
	@test -n "$(A)" || { echo "usage: make feedback A=<assignment> (or A=all) [LMS=canvas|moodle]"; exit 2; }
	for a in $(FEEDBACK_FOR); do ($(NBGRADER) generate_feedback $$a --force) || exit 1; done
	$(if $(LMS),$(BIN)/python -m autograder.grading.nbgrader_steps.lms_feedback "$(LMS)" $(FEEDBACK_FOR) \
		--root "$(GRADING_ROOT)")

grades: $(STAMP)  ## export the gradebook to autograder/grades.csv [LMS=canvas|moodle: the platform's import file too]
	$(NBGRADER) export --to $(GRADING_ROOT)/grades.csv
	$(if $(LMS),$(BIN)/python -m autograder.grading.nbgrader_steps.lms_export "$(LMS)" --root "$(GRADING_ROOT)" \
		$(if $(CANVAS_IDS),--canvas-ids "$(CANVAS_IDS)"))

gpu-check: $(STAMP)  ## run every check and hidden test on the GPU and say what ran where
	$(BIN)/python -m autograder.grading.gpu_check

bench: $(STAMP)  ## time fit() against a textbook loop, widget redraws, autograding (and a GPU's): benchmarks/results.md
	$(BIN)/python benchmarks/bench.py

bench-data: $(STAMP)  ## copy the data sets into .data/ for benchmarks/device_run.sh (the device machine has no network)
	$(BIN)/python benchmarks/bench.py --copy-data .data

device-proof: $(STAMP)  ## GPU checks, a class graded at J=8 against its CPU scores, bench part 4 (small here, without a GPU)
	$(BIN)/python benchmarks/device_proof.py

# What the device machine (Python 3.12, torch of its own, no network) lacks to grade: wheels for benchmarks/device_proof.sh.
# Left out to keep them and the data within the device tool's 64 MiB: jedi and debugpy (IPython and ipykernel run
# without them) and widgetsnbextension (only the classic notebook's).
DEVICE_WHEELS := alembic argon2-cffi argon2-cffi-bindings arrow asttokens async-lru beautifulsoup4 bleach cffi comm \
	defusedxml executing fastjsonschema fqdn greenlet ipykernel ipython ipython_pygments_lexers ipywidgets \
	isoduration jsonpointer jsonschema jsonschema-specifications jupyter_client jupyter_core jupyter-events \
	jupyter_server jupyter_server_terminals jupyterlab_pygments jupyterlab_widgets lark latex2mathml Mako \
	matplotlib-inline mistune nbclient nbconvert nbformat nbgrader nest-asyncio2 notebook notebook_shim overrides \
	pandocfilters parso pexpect platformdirs prompt_toolkit ptyprocess pure_eval pycparser python-json-logger pyzmq \
	RapidFuzz referencing rfc3339-validator rfc3986-validator rfc3987-syntax rpds-py Send2Trash soupsieve SQLAlchemy \
	stack-data terminado tinycss2 tornado traitlets tzdata uri-template wcwidth webcolors webencodings \
	websocket-client

device-wheels: $(STAMP)  ## download those packages, at this venv's versions, into .whl/ for the device machine
	mkdir -p .whl && $(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(addprefix --platform ,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 any) \
		-d .whl $$($(BIN)/python -m pip list --format=freeze | grep -i -E "^($(subst $(space),|,$(DEVICE_WHEELS)))==")
	du -sh .whl

clean:  ## remove grading work folders and the gradebook (never the gradebook's source: solutions/)
	rm -rf $(addprefix autograder/,autograded feedback release logs originals .isolation exchange gradebook.db \
		grades.csv report.csv lms_ids.csv grades-*.csv feedback-*.zip)
