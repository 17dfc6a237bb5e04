# adamrepro: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Where the data sets are (or are downloaded to); ADAMREPRO_DATA sets it too.
DATA_ROOT ?= $(or $(ADAMREPRO_DATA),data)
# Where runs go (a run continues there when started again) and where figures are written.
RUNS ?= outputs
RESULTS ?= results
# Hydra overrides added to every run of a target, e.g. OVERRIDES="trainer.max_minutes=9"
# (a time budget: the target stops when it is spent; the same command continues it).
OVERRIDES ?=
FIG1_NOTE := ours: real MNIST, 46 passes, best of a 10-stepsize grid (x2 momenta for SGD) by final cost, mean and min-max of 3 seeds, alpha_t = alpha/sqrt(step), L2 1e-4; dotted: AdaGrad without decay, setting closest to the paper
IMDB_NOTE := ours: real IMDB (25k reviews), binary bag of 10,000 words, 50% dropout on the features, 176 passes, best of a 7-stepsize grid (x2 momenta for SGD), alpha_t = alpha/sqrt(step); dotted: without decay, setting closest to the paper
HYDRA := $(PY) -m adamrepro.train -m data.root=$(DATA_ROOT)
# Figure 2: the full protocol by default; `make reproduce-mlp-cpu` sets the shortened CPU run.
MLP_EPOCHS ?= 201
MLP_SWEEP ?= fig2_mnist_mlp
MLP_RUNS ?= $(RUNS)/fig2_mnist_mlp
MLP_PLOT_ARGS ?=
MLP_NOTE ?= ours: real MNIST, $(MLP_EPOCHS) passes, best of the grid in configs/sweep/$(MLP_SWEEP).yaml by final cost, 1 seed, dropout 20% input / 50% hidden, no decay
MLP_B_NOTE := ours: real MNIST, no dropout, the SFO harness' protocol as far as known (no L2, fixed minibatches in a fixed order, output layer from zero), alpha/sqrt(t), best of 3 stepsizes by final cost, 1 seed, float32; SFO (make reproduce-sfo): 24 fixed subfunctions, float64; cost on the whole training set after k passes
# Figure 4: 100 epochs by default; `make reproduce-bias-correction-cpu` sets the CPU run.
VAE_EPOCHS ?= 100
VAE_RUNS ?= $(RUNS)/fig4_vae
VAE_NOTE ?= ours: real MNIST (grey levels as Bernoulli targets), minibatch 100, 1 seed, $(VAE_EPOCHS) passes; loss = mean -ELBO over the pass
VAE_SPLIT ?=
# Figure 3: CIFAR-10 cannot be downloaded here; with a network torchvision fetches it.
CIFAR_NOTE ?= ours: CIFAR-10, ZCA-whitened (eps 0.01), 46 passes, best of 4 stepsizes per curve by final cost, 1 seed, dropout 20% input / 50% fc
# Figure 3 on a CPU: the copy checked, then the first epochs of all six curves.
CIFAR_CPU_EPOCHS ?= 3
CIFAR_CPU_MOMENTS ?= 50
COPYCHECK_ARGS ?=
CIFAR_CPU_NOTE ?= SHORTENED CPU RUN: $(CIFAR_CPU_EPOCHS) of the paper's 46 passes, 1 seed, each curve at the best stepsize of a 3-value grid on 4,000 images (results/fig3_cifar10_cnn/jpeg_check), ZCA (eps 0.01), dropout 20% input / 50% fc
# The runs folder of each reproduce-<name> target: `make restart-<name>` deletes it first.
RUNS_mnist := $(RUNS)/fig1_mnist_logreg
RUNS_imdb := $(RUNS)/fig1_imdb_bow
RUNS_mlp := $(RUNS)/fig2_mnist_mlp
RUNS_mlp-cpu := $(RUNS)/fig2_mnist_mlp_cpu
RUNS_bias-correction := $(RUNS)/fig4_vae
RUNS_bias-correction-cpu := $(RUNS)/fig4_vae_cpu
RUNS_cifar := $(RUNS)/fig3_cifar10_cnn
RUNS_cifar-cpu := $(RUNS)/fig3_cifar10_cnn_cpu
RUNS_sfo := $(RUNS)/sfo

SMALL_ARGS ?=
# The GPU runbook: the long protocols in pieces of GPU_MINUTES (docs/gpu.md).
GPU_MINUTES ?= 9
GPU_ARGS ?=
# Figure 2 (b)'s protocol study: STUDY_ARGS="--only harness init_2.54" runs some variants.
STUDY_ARGS ?=
# `make mutation`: the mutants drawn per place (scripts/mutation_sample.py); `make mutation-all`
# runs every mutant, or MUTANTS="adamrepro.optim*" a part (mutmut's name patterns).
MUTATION_PER_PLACE ?= 150
MUTANTS ?=

.DEFAULT_GOAL := help
.PHONY: help venv test lint bench reproduce-mnist reproduce-imdb imdb-nodecay study-fig1-decay \
  reproduce-mlp reproduce-mlp-cpu reproduce-bias-correction reproduce-bias-correction-cpu \
  reproduce-cifar reproduce-cifar-cpu time-cifar trajectories report reproduce-gpu figures-gpu plan-gpu \
  study-fig2b reproduce-sfo mutation mutation-all breaks clean precision-check bench-precision halving-check \
  long-runs long-runs-status long-runs-figures

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-31s %s\n", $$1, $$2}'
	@echo "  variables: DATA_ROOT=$(DATA_ROOT) (or ADAMREPRO_DATA), RUNS=$(RUNS), RESULTS=$(RESULTS),"
	@echo "             OVERRIDES=\"...\" (Hydra overrides for every run, e.g. trainer.max_minutes=9)"
	@echo "  a reproduce-* target continues the runs already in RUNS; restart-* starts afresh"

venv: $(VENV)/.installed ## create .venv and install the package with its test tools

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

test: venv ## run the test suite (and ruff)
	$(VENV)/bin/ruff check src tests scripts
	$(PY) -m pytest

lint: venv ## ruff: lint and format check
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

restart-%: ## reproduce-% afresh: delete its runs (RUNS/...), then run it
	@test -n "$(RUNS_$*)" || { echo "no target reproduce-$*"; exit 2; }
	rm -rf $(RUNS_$*)
	$(MAKE) reproduce-$*

reproduce-mnist: venv ## Figure 1 (left): logistic regression on MNIST, full grid protocol
	@$(PY) -m adamrepro.data mnist --root $(DATA_ROOT) $(filter data.%,$(OVERRIDES))
	$(HYDRA) experiment=mnist_logreg sweep=fig1_mnist_logreg optimizer=adagrad,nesterov,adam \
	  $(OVERRIDES) hydra.sweep.dir=$(RUNS_mnist)/grid
	$(HYDRA) experiment=mnist_logreg sweep=fig1_mnist_logreg optimizer=adagrad \
	  optimizer.label=AdaGrad-nodecay trainer.stepsize_decay=none \
	  $(OVERRIDES) hydra.sweep.dir=$(RUNS_mnist)/adagrad_nodecay
	$(PY) -m adamrepro.plot fig1_mnist_logreg --runs $(RUNS_mnist) \
	  --out $(RESULTS)/fig1_mnist_logreg --note "$(FIG1_NOTE)"

reproduce-imdb: venv ## Figure 1 (right): IMDB bag-of-words logistic regression + dropout, full grids
	@$(PY) -m adamrepro.data imdb --root $(DATA_ROOT) $(filter data.%,$(OVERRIDES))
	$(HYDRA) experiment=imdb_bow sweep=fig1_imdb_bow optimizer=adagrad,rmsprop,nesterov,adam \
	  $(OVERRIDES) hydra.sweep.dir=$(RUNS_imdb)/grid
	$(MAKE) imdb-nodecay

imdb-nodecay: venv ## Figure 1 (right): AdaGrad and Adam without decay, measured against the paper
	$(HYDRA) experiment=imdb_bow sweep=fig1_imdb_bow optimizer=adagrad \
	  optimizer.label=AdaGrad-nodecay trainer.stepsize_decay=none \
	  $(OVERRIDES) hydra.sweep.dir=$(RUNS_imdb)/nodecay_adagrad
	$(HYDRA) experiment=imdb_bow sweep=fig1_imdb_bow optimizer=adam \
	  optimizer.label=Adam-nodecay trainer.stepsize_decay=none \
	  $(OVERRIDES) hydra.sweep.dir=$(RUNS_imdb)/nodecay_adam
	$(PY) -m adamrepro.plot fig1_imdb_bow --runs $(RUNS_imdb) \
	  --out $(RESULTS)/fig1_imdb_bow --note "$(IMDB_NOTE)"

reproduce-mlp: venv ## Figure 2 (a, b): the 2x1000 ReLU network on MNIST (GPU: hours on a CPU)
	@$(PY) -m adamrepro.data mnist --root $(DATA_ROOT) $(filter data.%,$(OVERRIDES))
	$(HYDRA) experiment=mnist_mlp sweep=$(MLP_SWEEP) trainer.epochs=$(MLP_EPOCHS) \
	  optimizer=adagrad,rmsprop,nesterov,adadelta,adam $(OVERRIDES) hydra.sweep.dir=$(MLP_RUNS)/dropout
	$(HYDRA) experiment=mnist_mlp_deterministic sweep=fig2_mnist_mlp_deterministic optimizer=adam \
	  $(OVERRIDES) hydra.sweep.dir=$(MLP_RUNS)/deterministic
	$(PY) -m adamrepro.plot fig2a_mnist_mlp --runs $(MLP_RUNS)/dropout \
	  --out $(RESULTS)/fig2a_mnist_mlp --note "$(MLP_NOTE)" $(MLP_PLOT_ARGS)
	$(PY) -m adamrepro.plot fig2b_mnist_mlp_deterministic --runs $(MLP_RUNS)/deterministic \
	  $(RUNS_sfo)/deterministic --out $(RESULTS)/fig2b_mnist_mlp_deterministic --note "$(MLP_B_NOTE)"

reproduce-sfo: venv ## Figure 2 (b) with our SFO, claims P5 and P6 (after reproduce-mlp's Adam; 1-2 h on a CPU)
	$(PY) -m adamrepro.sfo_study --data-root $(DATA_ROOT) --adam-runs $(MLP_RUNS)/deterministic \
	  --runs $(RUNS_sfo) --out $(RESULTS)/fig2b_mnist_mlp_deterministic --note "$(MLP_B_NOTE)"

reproduce-mlp-cpu: ## Figure 2 shortened for a CPU: (a) 10 passes, 2 stepsizes each; (b) in full
	$(MAKE) reproduce-mlp MLP_EPOCHS=10 MLP_SWEEP=fig2_mnist_mlp_cpu MLP_RUNS=$(RUNS_mlp-cpu) \
	  MLP_PLOT_ARGS="--xlim 0 10 --ylim 0.03 1" \
	  MLP_NOTE="SHORTENED CPU RUN: real MNIST, 10 of the paper's 200 passes, best of 2 stepsizes per optimizer (configs/sweep/fig2_mnist_mlp_cpu.yaml), 1 seed, dropout 20%/50%, no decay"

reproduce-bias-correction: venv ## Figure 4: VAE, Adam with/without bias correction, 108 members (GPU)
	@$(PY) -m adamrepro.data mnist --root $(DATA_ROOT) $(filter data.%,$(OVERRIDES))
	$(HYDRA) experiment=mnist_vae sweep=fig4_vae_bias_correction optimizer=adam \
	  optimizer.bias_correction=true,false trainer.epochs=$(VAE_EPOCHS) $(VAE_SPLIT) \
	  $(OVERRIDES) hydra.sweep.dir=$(VAE_RUNS)
	$(PY) -m adamrepro.plot fig4_vae_bias_correction --runs $(VAE_RUNS) \
	  --out $(RESULTS)/fig4_vae_bias_correction --note "$(VAE_NOTE)"

reproduce-bias-correction-cpu: ## Figure 4 on a CPU: 10 passes, the paper's 6 marker stepsizes (1 h)
	$(MAKE) reproduce-bias-correction VAE_EPOCHS=10 VAE_RUNS=$(RUNS_bias-correction-cpu) \
	  VAE_SPLIT="'sweep.grids.Adam.stepsize=[3.0e-5,1.0e-4,3.0e-4,1.0e-3,3.0e-3,1.0e-2]' 'sweep.grids.Adam.beta1=[0.0],[0.9]' 'sweep.grids.Adam.beta2=[0.99],[0.999],[0.9999]'" \
	  VAE_NOTE="CPU RUN: real MNIST (grey levels as Bernoulli targets), 10 passes (the paper's first block; its 100-pass block not run), the paper's 6 marker stepsizes (72 members), minibatch 100, 1 seed; loss = mean -ELBO over the 10th pass"

reproduce-cifar: venv ## Figure 3: the CNN on whitened CIFAR-10, 6 curves x 4 stepsizes (GPU)
	for pair in adagrad:AdaGrad nesterov:SGDNesterov adam:Adam; do \
	  optimizer=$${pair%%:*}; label=$${pair##*:}; \
	  $(HYDRA) experiment=cifar_cnn sweep=fig3_cifar10_cnn optimizer=$$optimizer \
	    model.dropout=false $(OVERRIDES) hydra.sweep.dir=$(RUNS_cifar)/$$label || exit 1; \
	  $(HYDRA) experiment=cifar_cnn sweep=fig3_cifar10_cnn optimizer=$$optimizer \
	    optimizer.label=$$label+dropout model.dropout=true \
	    $(OVERRIDES) hydra.sweep.dir=$(RUNS_cifar)/$$label+dropout || exit 1; \
	done
	$(PY) -m adamrepro.plot fig3_cifar10_cnn --runs $(RUNS_cifar) \
	  --out $(RESULTS)/fig3_cifar10_cnn --note "$(CIFAR_NOTE)"

reproduce-cifar-cpu: venv ## Figure 3 on a CPU (2 h): the JPEG copy checked against exact pixels, the first 3 epochs of all six curves, v-hat per layer
	$(PY) -m adamrepro.copycheck --data-root $(DATA_ROOT) --runs $(RUNS)/cifar_copycheck \
	  --out $(RESULTS)/fig3_cifar10_cnn/jpeg_check $(COPYCHECK_ARGS)
	for pair in adagrad:AdaGrad nesterov:SGDNesterov adam:Adam; do \
	  optimizer=$${pair%%:*}; label=$${pair##*:}; \
	  stepsize=$$($(PY) -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
	    $(RESULTS)/fig3_cifar10_cnn/jpeg_check/selected.json $$label) || exit 1; \
	  for dropout in false true; do \
	    name=$$label$$([ $$dropout = true ] && echo +dropout); \
	    $(HYDRA) experiment=cifar_cnn optimizer=$$optimizer optimizer.label=$$name \
	      optimizer.stepsize=$$stepsize model.dropout=$$dropout trainer.epochs=$(CIFAR_CPU_EPOCHS) \
	      trainer.eval_every=$(CIFAR_CPU_EPOCHS) trainer.moment_stats_every=$(CIFAR_CPU_MOMENTS) $(OVERRIDES) \
	      hydra.sweep.dir=$(RUNS_cifar-cpu)/$$name || exit 1; \
	  done; \
	done
	$(PY) -m adamrepro.plot fig3_cifar10_cnn --runs $(RUNS_cifar-cpu) --out $(RESULTS)/fig3_cifar10_cnn \
	  --note "$(CIFAR_CPU_NOTE)" --xlim 0 $$(( $(CIFAR_CPU_EPOCHS) - 1 ))
	$(PY) -m adamrepro.plot fig3_cifar10_cnn_vhat --runs $(RUNS_cifar-cpu) \
	  --out $(RESULTS)/fig3_cifar10_cnn/vhat --note "$(CIFAR_CPU_NOTE)"

time-cifar: venv ## Figure 3's cost: one epoch of the CNN on random CIFAR-shaped data
	$(PY) scripts/time_cifar_epoch.py --out $(RESULTS)/fig3_cifar10_cnn/epoch_time.md

study-fig1-decay: venv ## Figure 1 (left): which stepsize decay lands on the paper's curves
	$(HYDRA) experiment=mnist_logreg sweep=fig1_mnist_logreg optimizer=adam,nesterov,adagrad \
	  trainer.stepsize_decay=sqrt_step,sqrt_epoch,none 'sweep.grids.SGDNesterov.momentum=[0.9]' \
	  $(OVERRIDES) hydra.sweep.dir=$(RUNS)/fig1_decay_study
	$(PY) -m adamrepro.plot fig1_mnist_logreg --runs $(RUNS)/fig1_decay_study \
	  --out $(RESULTS)/fig1_mnist_logreg/decay_study --note "decay study: best of each decay"

study-fig2b: venv ## Figure 2 (b): which protocol lands on the paper's Adam curve (variants x 3 stepsizes, 30 min each on a CPU)
	$(PY) -m adamrepro.fig2b_study --data-root $(DATA_ROOT) --runs $(RUNS)/fig2b_study \
	  --out $(RESULTS)/fig2b_mnist_mlp_deterministic/study $(STUDY_ARGS)

mutation: venv ## mutation testing (mutmut) of a fixed random sample of 150 mutants in each of optim/, train.py, data/, models/, plot.py; score, interval and survivors in docs/mutation.md (2-3 h on 2 cores)
	$(VENV)/bin/mutmut run "adamrepro.none" # makes mutants/ and the test map, runs no mutant
	$(PY) scripts/mutation_sample.py --per-place 300 --out mutants/sample_300.txt
	$(PY) scripts/mutation_sample.py --within mutants/sample_300.txt --seed 1 \
	  --per-place $(MUTATION_PER_PLACE) --out docs/mutation_sample.txt
	$(VENV)/bin/mutmut run $$(grep -v '^#' docs/mutation_sample.txt)
	$(PY) scripts/mutation_report.py --sample docs/mutation_sample.txt --out docs/mutation.md \
	  --command "make mutation"

mutation-all: venv ## every mutant (about 6,900; many hours on 2 cores), or MUTANTS="adamrepro.optim*"; report in docs/mutation_all.md
	$(VENV)/bin/mutmut run $(MUTANTS)
	$(PY) scripts/mutation_report.py --out docs/mutation_all.md --command "make mutation-all"

breaks: venv ## the deliberate breaks of issue 17, each alone on a clone: every one must fail a test (docs/breaks.md, 20 min)
	$(PY) scripts/check_breaks.py --out docs/breaks.md

report: venv ## results/REPORT.md and the README's status table, from the committed results (seconds)
	$(PY) -m adamrepro.report --results $(RESULTS) --readme README.md

trajectories: venv ## small problems: paths on 2-D surfaces (figures, animations), the tutorials' claims decided, Adam's counterexample and regret (5 min)
	$(PY) -m adamrepro.small_problems --runs $(RUNS)/small_problems --out $(RESULTS)/small_problems $(SMALL_ARGS)

reproduce-gpu: venv ## the long protocols (Fig 2a 200 passes, Fig 4 both blocks, Fig 3) in pieces of GPU_MINUTES: repeat until "all done"
	$(PY) -m adamrepro.runbook --runs $(RUNS)/gpu --data-root $(DATA_ROOT) --minutes $(GPU_MINUTES) $(GPU_ARGS)

figures-gpu: venv ## draw the figures of the complete GPU protocols (records in RUNS/gpu) into RESULTS
	$(PY) -m adamrepro.runbook --runs $(RUNS)/gpu --figures --results $(RESULTS)

plan-gpu: venv ## what each long protocol costs: FLOPs and operations per step, CPU time, H100 projection
	$(PY) -m adamrepro.runbook --plan --measure --data-root $(DATA_ROOT)

precision-check: venv ## bf16-mixed against 32-true on each long protocol's model, 3 seeds: results/precision.md (~1 h on a CPU)
	$(PY) -m adamrepro.precision_check --data-root $(DATA_ROOT) --runs $(RUNS)/precision \
	  --out $(RESULTS) $(if $(OVERRIDES),--override $(OVERRIDES))

# The long half of the paper on a CPU (python -m adamrepro.long_runs): one unit per call.
LONG_ARGS ?=
long-runs: venv ## the next unit of the long protocols (Fig 4 100 epochs, Fig 2a 200 passes, Fig 3 46): niced; repeat
	nice -n 19 $(PY) -m adamrepro.long_runs --data-root $(DATA_ROOT) --work $(RUNS)/long --results $(RESULTS) $(LONG_ARGS)

long-runs-status: venv ## the long protocols' units: done, to do, CPU-hours left
	$(PY) -m adamrepro.long_runs --status --results $(RESULTS)

long-runs-figures: venv ## draw each long protocol's figure whose units are all in results/
	$(PY) -m adamrepro.long_runs --figures --results $(RESULTS)

HALVING_RUNS ?= $(RUNS)/halving
halving-check: venv ## which successive halving keeps the full grids' winners (Fig 1 left, Fig 2a at 10 passes): results/halving.md
	$(MAKE) reproduce-mnist RUNS=$(HALVING_RUNS) RESULTS=$(HALVING_RUNS)/figures
	$(HYDRA) experiment=mnist_mlp sweep=fig2_mnist_mlp trainer.epochs=10 \
	  optimizer=adagrad,rmsprop,nesterov,adadelta,adam $(OVERRIDES) hydra.sweep.dir=$(HALVING_RUNS)/fig2a
	$(PY) -m adamrepro.halving_check fig1_mnist_logreg --runs $(HALVING_RUNS)/fig1_mnist_logreg/grid --out $(RESULTS)
	$(PY) -m adamrepro.halving_check fig2a_mnist_mlp --runs $(HALVING_RUNS)/fig2a --out $(RESULTS) --after 1 2 3 5

bench-precision: venv ## one step in 32-true and bf16-mixed, both layouts, against bare matmuls/convolutions
	$(PY) scripts/bench_precision.py --out $(RESULTS)/bench_precision.md

bench: venv ## populations vs the usual per-setting loop; our Adam step vs torch.optim
	$(PY) scripts/bench.py --data-root $(DATA_ROOT) --epochs 2 --seeds 3 --out $(RESULTS)/bench.md

clean: ## remove outputs/ and multirun/ (not results/)
	rm -rf outputs multirun
