"""Every training command the Makefile runs, composed as Hydra would compose it: the figures'
protocols as member counts per figure and optimizer, so that a sweep file, a label or a make
variable that changes a protocol fails here; and every target at least as a dry run."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections import Counter

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from adamrepro.errors import ConfigError
from adamrepro.train import compose_config, population
from conftest import REPO

# target -> {(experiment, optimizer label): members}; a member is one setting and one seed.
PROTOCOLS = {
    "reproduce-mnist": {  # Fig 1 left: 10 stepsizes (SGD x 2 momenta), 3 seeds
        ("mnist_logreg", "AdaGrad"): 30, ("mnist_logreg", "SGDNesterov"): 60,
        ("mnist_logreg", "Adam"): 30, ("mnist_logreg", "AdaGrad-nodecay"): 30,
    },
    "reproduce-imdb": {  # Fig 1 right: 7 stepsizes (SGD x 2 momenta), 1 seed
        ("imdb_bow", "AdaGrad"): 7, ("imdb_bow", "RMSProp"): 7, ("imdb_bow", "SGDNesterov"): 14,
        ("imdb_bow", "Adam"): 7, ("imdb_bow", "AdaGrad-nodecay"): 7,
        ("imdb_bow", "Adam-nodecay"): 7,
    },
    "reproduce-mlp": {  # Fig 2: half-decade grids (SGD x 2 momenta), 27 members for (a)
        ("mnist_mlp", "AdaGrad"): 5, ("mnist_mlp", "RMSProp"): 4, ("mnist_mlp", "SGDNesterov"): 10,
        ("mnist_mlp", "AdaDelta"): 4, ("mnist_mlp", "Adam"): 4,
        ("mnist_mlp_deterministic", "Adam"): 3,
    },
    "reproduce-mlp-cpu": {  # the shortened grid: 2 stepsizes each
        ("mnist_mlp", "AdaGrad"): 2, ("mnist_mlp", "RMSProp"): 2, ("mnist_mlp", "SGDNesterov"): 2,
        ("mnist_mlp", "AdaDelta"): 2, ("mnist_mlp", "Adam"): 2,
        ("mnist_mlp_deterministic", "Adam"): 3,
    },
    "reproduce-bias-correction": {  # Fig 4: 9 stepsizes x 2 beta1 x 3 beta2 x with/without
        ("mnist_vae", "Adam"): 108,
    },
    "reproduce-bias-correction-cpu": {("mnist_vae", "Adam"): 72},  # the 6 marker stepsizes
    "reproduce-cifar": {  # Fig 3: 4 stepsizes per curve, 6 curves
        ("cifar_cnn", "AdaGrad"): 4, ("cifar_cnn", "AdaGrad+dropout"): 4,
        ("cifar_cnn", "SGDNesterov"): 4, ("cifar_cnn", "SGDNesterov+dropout"): 4,
        ("cifar_cnn", "Adam"): 4, ("cifar_cnn", "Adam+dropout"): 4,
    },
    "reproduce-cifar-cpu": {  # one stepsize per curve, chosen by the copy check
        ("cifar_cnn", "AdaGrad"): 1, ("cifar_cnn", "AdaGrad+dropout"): 1,
        ("cifar_cnn", "SGDNesterov"): 1, ("cifar_cnn", "SGDNesterov+dropout"): 1,
        ("cifar_cnn", "Adam"): 1, ("cifar_cnn", "Adam+dropout"): 1,
    },
}  # fmt: skip
# The shell loops of the CIFAR targets, unrolled: their variables, one row per iteration.
CIFAR_LOOP = [
    {"optimizer": o, "label": lab, "dropout": d, "name": lab + ("+dropout" if d == "true" else ""),
     "stepsize": "1e-3"}
    for o, lab in (("adagrad", "AdaGrad"), ("nesterov", "SGDNesterov"), ("adam", "Adam"))
    for d in ("false", "true")
]  # fmt: skip


def dry_run(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-n", "-o", ".venv/.installed", target, "DATA_ROOT=/data"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip


def training_commands(target: str) -> list[list[str]]:
    """The override lists of every `adamrepro.train -m` command `make -n target` prints."""
    done = dry_run(target)
    assert done.returncode == 0, done.stderr
    text = re.sub(r"\\\n\s*", " ", done.stdout)
    commands = []
    for line in re.findall(r"adamrepro\.train -m([^;|\n]*)", text):
        rows = CIFAR_LOOP if "$" in line else [{}]
        for row in rows:
            expanded = re.sub(r"\$(\w+)", lambda m, row=row: row[m.group(1)], line)
            if expanded not in commands:  # a loop that does not use every variable
                commands.append(expanded)
    return [shlex.split(command) for command in commands]


def members_by_label(overrides: list[str]) -> Counter:
    """Hydra's expansion of a `-m` command line into jobs, each composed, its members counted."""
    overrides = [o for o in overrides if not o.startswith(("hydra.", "data.root="))]
    parsed = OverridesParser.create().parse_overrides(overrides)
    counts: Counter = Counter()
    for batch in BasicSweeper.split_arguments(parsed, None):
        for job in batch:
            cfg = compose_config(["experiment_name=make", *job])
            experiment = next(o.split("=", 1)[1] for o in job if o.startswith("experiment="))
            counts[(experiment, cfg.optimizer.label)] += len(population(cfg))
    return counts


@pytest.mark.parametrize("target", sorted(PROTOCOLS))
def test_every_training_command_of_a_target_composes_to_its_protocol(target):
    counts: Counter = Counter()
    for overrides in training_commands(target):
        counts.update(members_by_label(overrides))
    assert dict(counts) == PROTOCOLS[target]


def test_every_target_of_make_help_runs_dry():
    listed = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True)
    targets = re.findall(r"^\s*make ([\w-]+)\s{2,}", listed.stdout, re.M)
    assert {"test", "reproduce-mnist", "mutation", "study-fig2b"} <= set(targets)
    for target in targets:
        if target not in ("help", "clean", "venv"):
            assert dry_run(target).returncode == 0, target


def test_a_label_with_no_grid_in_the_sweep_is_one_line():
    cfg = compose_config(["experiment_name=make", "experiment=mnist_logreg",
                          "sweep=fig1_mnist_logreg", "optimizer=adam",
                          "optimizer.label=Adma"])  # fmt: skip
    with pytest.raises(ConfigError, match="no grid for the optimizer label 'Adma'"):
        population(cfg)
