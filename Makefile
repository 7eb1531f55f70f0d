# Two commands do all the set-up: `make demo` and `make test`. Installs are pinned and cached:
# the venv is rebuilt only when requirements/lock.txt, setup.py or the Horovod recipe change, the
# Horovod wheel is built once per torch version into $(WHEEL_CACHE), and Delta's JVM connector and
# hadoop-aws are fetched once with Maven into ~/.cache/ltv_spark/jars (both outside git).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WHEEL_CACHE ?= $(HOME)/.cache/ltv_spark/wheels
PIP := $(BIN)/python -m pip
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# pip's config names two optional local indexes; drop its warnings about them, keep everything else.
QUIET_PIP := 2>&1 | sed '/is ignored: it is neither/d'
PYTEST_ARGS ?=

.PHONY: install jars demo test bench lint clean lock

install: $(STAMP) jars

# A no-op once cached; without Maven it says so and the tables run on delta-rs.
jars: $(STAMP)
	$(BIN)/python -m ltv_spark.jvm_jars

$(STAMP): requirements/lock.txt setup.py tools/build_horovod.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/lock.txt $(QUIET_PIP)
	bash tools/build_horovod.sh $(BIN)/python $(WHEEL_CACHE)
	$(PIP) install -q --no-deps --no-build-isolation -e . $(QUIET_PIP)
	$(PIP) check
	$(BIN)/python -c "import horovod.torch, petastorm, deltalake, pyspark"
	touch $@

demo: install
	$(BIN)/ltv demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark in turn; their output is kept in benchmarks/results/<date>.md.
bench: install
	$(BIN)/python -m benchmarks.run_all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# torch's CUDA runtime packages (nvidia-*, cuda-*, triton) stay out of the lock: pip takes them from
# torch's own metadata when it installs PyPI's build, and none when it finds a local CPU wheel.
lock: $(STAMP)
	grep '^#' requirements/lock.txt > requirements/lock.txt.new
	$(PIP) freeze --all --exclude-editable | sed 's/+c[a-z0-9]*$$//' \
	  | grep -v -E '^(horovod|pip|nvidia-|cuda-|triton)' >> requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean:
	rm -rf $(VENV) data reports spark-warehouse metastore_db derby.log .pytest_cache .ruff_cache *.egg-info
