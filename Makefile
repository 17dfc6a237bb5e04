# adamrepro: `make help` lists the targets and the protocols. A figure's protocol (its runs,
# variants and drawing) is configs/protocol/<figure>.yaml; this file only names the commands.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_ROOT ?= $(or $(ADAMREPRO_DATA),data)# the data sets (or where they are downloaded to)
RUNS ?= outputs# where runs go (a run continues there when started again)
RESULTS ?= results# where figures and tables are written
OVERRIDES ?=# Hydra overrides for every run of a target, e.g. data.verify=false
MINUTES ?=# a time budget: the target pauses (exit 75) and the same command continues
PROTOCOL_ARGS = --data-root $(DATA_ROOT) --runs $(RUNS) --results $(RESULTS) \
  $(if $(MINUTES),--minutes $(MINUTES)) $(if $(OVERRIDES),--override $(OVERRIDES))
GPU_MINUTES ?= 9# the GPU runbook's pieces (docs/gpu.md)
GPU_ARGS ?=
LONG_ARGS ?=# e.g. --commit: the long-run units (python -m adamrepro.long_runs --help)
STUDY_ARGS ?=# e.g. --only harness init_2.54: some variants of Figure 2 (b)'s protocol study
SMALL_ARGS ?=
COPYCHECK_ARGS ?=
MUTATION_PER_PLACE ?= 150
MUTANTS ?=# e.g. "adamrepro.optim*": a part of `make mutation-all`
HALVING_RUNS ?= $(RUNS)/halving

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast lint clean

help: ## list the targets and the protocols
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-31s %s\n", $$1, $$2}'
	@echo "  variables: DATA_ROOT=$(DATA_ROOT) (or ADAMREPRO_DATA), RUNS=$(RUNS), RESULTS=$(RESULTS),"
	@echo "             OVERRIDES=\"...\" (Hydra overrides for every run), MINUTES=N (a time budget)"
	@echo "protocols (configs/protocol/*.yaml): make reproduce-NAME[-VARIANT]"
	@$(PY) -m adamrepro.protocol --list 2>/dev/null || echo "  (make venv first: then make help lists them)"

venv: $(VENV)/.installed ## create .venv and install the package with its test tools

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

test: venv ## run the test suite (and ruff)
	$(VENV)/bin/ruff check src tests scripts examples
	$(PY) -m pytest

test-fast: venv ## the tests without the slow ones (no real training): the edit-test loop
	$(PY) -m pytest -m "not slow" -q

lint: venv ## ruff: lint and format check
	$(VENV)/bin/ruff check src tests scripts examples
	$(VENV)/bin/ruff format --check src tests scripts examples

reproduce-%: venv ## train a protocol's runs (continuing those in RUNS) and draw its figures, e.g. reproduce-mnist
	$(PY) -m adamrepro.protocol $* $(PROTOCOL_ARGS)

restart-%: venv ## reproduce-% afresh: its runs in RUNS deleted first
	$(PY) -m adamrepro.protocol $* --restart $(PROTOCOL_ARGS)

copycheck: venv ## Figure 3: the JPEG-75 copy of CIFAR-10 against exact pixels, the stepsizes it selects (1 h)
	$(PY) -m adamrepro.studies.copycheck --data-root $(DATA_ROOT) --runs $(RUNS)/cifar_copycheck \
	  --out $(RESULTS)/fig3_cifar10_cnn/jpeg_check $(COPYCHECK_ARGS)

reproduce-sfo: venv ## Figure 2 (b) with our SFO, claims P5 and P6 (after reproduce-mlp's Adam; 1-2 h on a CPU)
	$(PY) -m adamrepro.studies.sfo_study --data-root $(DATA_ROOT) \
	  --adam-runs $(RUNS)/fig2b_mnist_mlp_deterministic/paper --runs $(RUNS)/sfo \
	  --out $(RESULTS)/fig2b_mnist_mlp_deterministic

study-fig2b: venv ## Figure 2 (b): which protocol lands on the paper's Adam curve (variants x 3 stepsizes, 30 min each on a CPU)
	$(PY) -m adamrepro.studies.fig2b_study --data-root $(DATA_ROOT) --runs $(RUNS)/fig2b_study \
	  --out $(RESULTS)/fig2b_mnist_mlp_deterministic/study $(STUDY_ARGS)

trajectories: venv ## small problems: paths on 2-D surfaces (figures, animations), the tutorials' claims decided, Adam's counterexample and regret (5 min)
	$(PY) -m adamrepro.studies.small_problems --runs $(RUNS)/small_problems --out $(RESULTS)/small_problems $(SMALL_ARGS)

long-runs: venv ## the next unit of the long protocols (each protocol's units variant): niced; repeat (RUNNERS=2: two side by side)
	@for i in $$(seq $(or $(RUNNERS),1)); do nice -n 19 $(PY) -m adamrepro.long_runs --data-root $(DATA_ROOT) $(if $(filter-out 1,$(RUNNERS)),--threads 1) $(LONG_ARGS) & done; \
	rc=0; for job in $$(jobs -p); do wait $$job || rc=$$?; done; exit $$rc

long-runs-status: venv ## the long protocols' units: done, to do, hours left on two cores
	$(PY) -m adamrepro.long_runs --status --results $(RESULTS)

long-runs-figures: venv ## draw each long protocol's figure whose units are all in results/
	$(PY) -m adamrepro.long_runs --figures --results $(RESULTS)

reproduce-gpu: venv ## the long protocols (each protocol's variant with a gpu name) in pieces of GPU_MINUTES: repeat until "all done"
	$(PY) -m adamrepro.runbook --runs $(RUNS)/gpu --data-root $(DATA_ROOT) --minutes $(GPU_MINUTES) $(GPU_ARGS)

figures-gpu: venv ## draw the figures of the complete GPU protocols (records in RUNS/gpu) into RESULTS
	$(PY) -m adamrepro.runbook --runs $(RUNS)/gpu --figures --results $(RESULTS)

plan-gpu: venv ## what each long protocol costs: FLOPs and operations per step, CPU time, H100 projection
	$(PY) -m adamrepro.runbook --plan --measure --data-root $(DATA_ROOT)

precision-check: venv ## bf16-mixed against 32-true on each long protocol's model, 3 seeds: results/precision.md (~1.5 h on a CPU)
	$(PY) -m adamrepro.studies.precision_check --data-root $(DATA_ROOT) --runs $(RUNS)/precision \
	  --out $(RESULTS) $(if $(OVERRIDES),--override $(OVERRIDES))

halving-check: venv ## which successive halving keeps the full grids' winners (Fig 1 left and right, Fig 2a at 10 passes): results/halving.md
	$(PY) -m adamrepro.studies.halving_check --train --data-root $(DATA_ROOT) --runs $(HALVING_RUNS) --out $(RESULTS)

bench: venv ## populations vs the usual per-setting loop; our Adam step vs torch.optim
	$(PY) scripts/bench.py --data-root $(DATA_ROOT) --epochs 2 --seeds 3 --out $(RESULTS)/bench.md

bench-precision: venv ## one step in 32-true and bf16-mixed, both layouts, against bare matmuls/convolutions
	$(PY) scripts/bench_precision.py --out $(RESULTS)/bench_precision.md

time-cifar: venv ## Figure 3's cost: one epoch of the CNN on random CIFAR-shaped data
	$(PY) scripts/time_cifar_epoch.py --out $(RESULTS)/fig3_cifar10_cnn/epoch_time.md

report: venv ## results/REPORT.md and the README's status table, from the committed results (seconds)
	$(PY) -m adamrepro.report --results $(RESULTS) --readme README.md

benchmark: venv ## your optimizer on the paper's tasks: make benchmark OPTIMIZER=examples/adamw.yaml [TASKS="small_bowl ..."] (see examples/)
	@test -n "$(OPTIMIZER)" || { echo "error: give OPTIMIZER=path/to/optimizer.yaml (examples/ has some)"; exit 2; }
	$(PY) -m adamrepro.benchmark $(OPTIMIZER) --data-root $(DATA_ROOT) --runs $(RUNS)/benchmark \
	  --out $(RESULTS)/benchmark $(if $(TASKS),--tasks $(TASKS))
	$(PY) -m adamrepro.leaderboard --results $(RESULTS)/benchmark --out $(RESULTS)/LEADERBOARD.md

leaderboard: venv ## results/LEADERBOARD.md and its profile figure from every benchmarked optimizer (seconds)
	$(PY) -m adamrepro.leaderboard --results $(RESULTS)/benchmark --out $(RESULTS)/LEADERBOARD.md

mutation: venv ## mutation testing (mutmut) of a fixed random sample of 150 mutants in each of optim/, train.py, data/, models/, plot.py; score, interval and survivors in docs/mutation.md (2-3 h on 2 cores)
	$(VENV)/bin/mutmut run "adamrepro.none" # makes mutants/ and the test map, runs no mutant
	$(PY) scripts/mutation_sample.py --per-place 300 --out mutants/sample_300.txt
	$(PY) scripts/mutation_sample.py --within mutants/sample_300.txt --seed 1 \
	  --per-place $(MUTATION_PER_PLACE) --out docs/mutation_sample.txt
	$(VENV)/bin/mutmut run $$(grep -v '^#' docs/mutation_sample.txt)
	$(PY) scripts/mutation_report.py --sample docs/mutation_sample.txt --out docs/mutation.md \
	  --command "make mutation"

mutation-all: venv ## every mutant (about 6,900; many hours on 2 cores), or MUTANTS="adamrepro.optim*"; docs/mutation_all.md
	$(VENV)/bin/mutmut run $(MUTANTS)
	$(PY) scripts/mutation_report.py --out docs/mutation_all.md --command "make mutation-all"

breaks: venv ## the deliberate breaks of issue 17, each alone on a clone: every one must fail a test (docs/breaks.md, 20 min)
	$(PY) scripts/check_breaks.py --out docs/breaks.md

clean: ## remove outputs/ and multirun/ (not results/)
	rm -rf outputs multirun
