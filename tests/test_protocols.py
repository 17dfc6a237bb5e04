"""The figures' protocols (configs/protocol/*.yaml), composed through the code that runs them:
every protocol and variant as member counts per experiment, label and length, so that a sweep
file, a label or a variant that changes a protocol fails here; their loading rules; and one
protocol trained, continued and drawn end to end on generated data."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adamrepro import protocol
from adamrepro.errors import ConfigError
from adamrepro.protocol import Run, load, merge, resolve
from adamrepro.records import read_record
from adamrepro.training import compose_config, population
from conftest import REPO

LOGREG = {"AdaGrad": 30, "SGDNesterov": 60, "Adam": 30, "AdaGrad-nodecay": 30}
IMDB = {
    "AdaGrad": 7,
    "RMSProp": 7,
    "SGDNesterov": 14,
    "Adam": 7,
    "AdaGrad-nodecay": 7,
    "Adam-nodecay": 7,
}
MLP = {"AdaGrad": 5, "RMSProp": 4, "SGDNesterov": 10, "AdaDelta": 4, "Adam": 4}
CNN = ("AdaGrad", "AdaGrad+dropout", "SGDNesterov", "SGDNesterov+dropout", "Adam", "Adam+dropout")


def table(experiment: str, epochs: int, counts: dict[str, int]) -> dict:
    return {(experiment, label, epochs): n for label, n in counts.items()}


# (figure, variant) -> {(experiment, optimizer label, epochs): members}; a member is one setting
# and one seed
PROTOCOLS = {
    ("fig1_mnist_logreg", "paper"): table("mnist_logreg", 46, LOGREG),
    ("fig1_mnist_logreg", "decay_study"): table(  # 3 decays x 10 stepsizes x 3 seeds
        "mnist_logreg", 46, {"Adam": 90, "SGDNesterov": 90, "AdaGrad": 90}
    ),
    ("fig1_mnist_logreg", "tiny"): table("mnist_logreg", 2, {k: v // 3 for k, v in LOGREG.items()}),
    ("fig1_imdb_bow", "paper"): table("imdb_bow", 176, IMDB),
    ("fig1_imdb_bow", "tiny"): table("imdb_bow", 2, IMDB),
    ("fig2a_mnist_mlp", "paper"): table("mnist_mlp", 201, MLP),
    ("fig2a_mnist_mlp", "cpu"): table("mnist_mlp", 10, dict.fromkeys(MLP, 2)),
    ("fig2a_mnist_mlp", "units"): table(  # pruned as they run; the settings beyond the kept
        "mnist_mlp",
        201,
        {**MLP, "Adam": 6, "RMSProp": 6, "AdaGrad": 6, "SGDNesterov": 11, "AdaDelta": 5},
    ),
    ("fig2a_mnist_mlp", "ablation"): table(
        "mnist_mlp", 201, {"RMSProp": 1, "Adam": 1, "AdaGrad": 1}
    ),
    ("fig2a_mnist_mlp", "seeds"): table("mnist_mlp", 201, {"Adam": 3, "AdaGrad": 3}),
    ("fig2a_mnist_mlp", "3seeds"): table("mnist_mlp", 201, {k: 3 * v for k, v in MLP.items()}),
    ("fig2a_mnist_mlp", "tiny"): table("mnist_mlp", 3, MLP),
    ("fig2b_mnist_mlp_deterministic", "paper"): table("mnist_mlp_deterministic", 25, {"Adam": 3}),
    ("fig2b_mnist_mlp_deterministic", "cpu"): table("mnist_mlp_deterministic", 25, {"Adam": 3}),
    ("fig2b_mnist_mlp_deterministic", "tiny"): table("mnist_mlp_deterministic", 2, {"Adam": 3}),
    ("fig3_cifar10_cnn", "paper"): table("cifar_cnn", 46, dict.fromkeys(CNN, 4)),
    ("fig3_cifar10_cnn", "cpu"): table("cifar_cnn", 3, dict.fromkeys(CNN, 1)),
    # Adam also at its grid neighbours (1e-4, 1e-3), SGD-Nesterov at 1e-2; Adam+dropout at 3e-4
    # and 1e-4, SGD-Nesterov+dropout at 1e-2 only
    ("fig3_cifar10_cnn", "units"): table(
        "cifar_cnn", 46, {**dict.fromkeys(CNN, 1), "Adam": 3, "SGDNesterov": 2, "Adam+dropout": 2}
    ),
    ("fig3_cifar10_cnn", "ablation"): table("cifar_cnn", 46, {"Adam": 3, "SGDNesterov": 1}),
    ("fig3_cifar10_cnn", "tiny"): table("cifar_cnn", 2, dict.fromkeys(CNN, 4)),
    ("fig4_vae_bias_correction", "paper"): table("mnist_vae", 100, {"Adam": 108}),
    ("fig4_vae_bias_correction", "cpu"): table("mnist_vae", 10, {"Adam": 72}),
    ("fig4_vae_bias_correction", "units"): table("mnist_vae", 100, {"Adam": 72}),
    ("fig4_vae_bias_correction", "tiny"): table("mnist_vae", 2, {"Adam": 108}),
}


def members(p: protocol.Protocol) -> Counter:
    counts: Counter = Counter()
    for run in p.runs:
        cfg = p.compose(run)
        experiment = next(
            o.split("=", 1)[1] for o in p.overrides(run) if o.startswith("experiment=")
        )
        counts[(experiment, cfg.optimizer.label, cfg.trainer.epochs)] += len(population(cfg))
    return counts


@pytest.mark.slow  # composes about 100 runs
def test_every_protocol_and_variant_composes_to_its_members():
    found = {(p.figure, p.variant): p for p in protocol.every_variant()}
    assert set(found) == set(PROTOCOLS)
    for key, p in found.items():
        assert dict(members(p)) == PROTOCOLS[key], key


def test_the_units_and_the_gpu_protocols_are_the_variants_that_say_so():
    units = {p.name: (p.figure, p.variant) for p in protocol.every_variant() if p.units}
    assert units == {
        "fig2a": ("fig2a_mnist_mlp", "units"),
        "fig2a_ablation": ("fig2a_mnist_mlp", "ablation"),
        "fig2a_seeds": ("fig2a_mnist_mlp", "seeds"),
        "fig3": ("fig3_cifar10_cnn", "units"),
        "fig3_ablation": ("fig3_cifar10_cnn", "ablation"),
        "fig4": ("fig4_vae_bias_correction", "units"),
    }
    gpu = {p.gpu: (p.figure, p.variant) for p in protocol.every_variant() if p.gpu}
    assert gpu == {
        "fig2a": ("fig2a_mnist_mlp", "paper"),
        "fig2a_3seeds": ("fig2a_mnist_mlp", "3seeds"),
        "fig3": ("fig3_cifar10_cnn", "paper"),
        "fig4": ("fig4_vae_bias_correction", "paper"),
    }
    units = load("fig2a_mnist_mlp", "units")
    fig2a = units.compose(units.runs[0])
    assert fig2a.sweep.halving == {"after_epochs": 2, "keep": 2}
    assert fig2a.experiment_name == "fig2a"


def test_figure_3s_stepsizes_are_the_copy_checks_and_their_neighbours():
    """The cpu variant trains each curve at the copy check's best stepsize. The units train Adam
    and SGD-Nesterov (no dropout) at its neighbours in the paper variant's grid as well, and the
    curves with dropout at what those 46-pass runs leave: SGD-Nesterov at the smaller neighbour
    only, Adam at its best and the smaller neighbour. Steps are positions in the grid."""
    check = REPO / "results/fig3_cifar10_cnn/jpeg_check"
    selected = json.loads((check / "selected.json").read_text())
    paper = yaml.safe_load((REPO / "configs/sweep/fig3_cifar10_cnn.yaml").read_text())["grids"]
    units = {
        "AdaGrad": {0},
        "AdaGrad+dropout": {0},
        "SGDNesterov": {-1, 0},
        "SGDNesterov+dropout": {-1},
        "Adam": {-1, 0, 1},
        "Adam+dropout": {-1, 0},
    }
    for variant in ("cpu", "units"):
        p = load("fig3_cifar10_cnn", variant)
        stepsizes: dict[str, set[float]] = {}
        for run in p.runs:
            cfg = p.compose(run)
            stepsizes.setdefault(cfg.optimizer.label, set()).add(cfg.optimizer.stepsize)
        assert set(stepsizes) == set(units)
        for label, used in stepsizes.items():
            best = selected[label.removesuffix("+dropout")]
            grid = sorted(paper[label]["stepsize"])
            assert used <= set(grid)
            steps = {grid.index(s) - grid.index(best) for s in used}
            assert steps == (units[label] if variant == "units" else {0}), (variant, label)


def test_a_later_override_of_a_key_replaces_the_earlier_in_its_place():
    assert merge(["a=1", "b=2"], ["a=3", "+c=4"], ["c=5"]) == ["a=3", "b=2", "c=5"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("mnist", [("fig1_mnist_logreg", "paper")]),
        ("mlp-cpu", [("fig2a_mnist_mlp", "cpu"), ("fig2b_mnist_mlp_deterministic", "cpu")]),
        ("mlp-units", [("fig2a_mnist_mlp", "units")]),
        ("bias-correction-cpu", [("fig4_vae_bias_correction", "cpu")]),
        ("fig4_vae_bias_correction", [("fig4_vae_bias_correction", "paper")]),
    ],
)
def test_a_target_names_protocols_by_file_or_make_name_and_variant(target, expected):
    assert [(p.figure, p.variant) for p in resolve(target)] == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mnst", "no protocol 'mnst' (known: bias-correction, cifar"),
        ("mnist-fast", "mnist has no variant 'fast' (its variants: paper, decay_study, tiny)"),
    ],
)
def test_an_unknown_target_is_one_line_and_exit_2(target, message, capsys):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(target)
    with pytest.raises(SystemExit) as exited:
        protocol.main([target])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_protocol_file_with_an_unknown_key_or_a_name_its_matrix_lacks_is_refused(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(protocol, "PROTOCOL_DIR", tmp_path)
    (tmp_path / "a.yaml").write_text("title: A\nrun: {}\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['run'\]"):
        load("a")
    (tmp_path / "a.yaml").write_text("title: A\nruns: {'x_{b}': {matrix: {a: [1]}}}\n")
    with pytest.raises(ConfigError, match="run 'x_{b}' names 'b' that its matrix lacks"):
        load("a")
    (tmp_path / "a.yaml").write_text(
        "title: A\nruns: {'{a}_{b}': {matrix: {a: [1, 2], b: [{b: x, c: y}]},"
        " overrides: ['k={c}']}}\nvariants: {v: {overrides: [k=z, m=1]}}\n"
    )
    assert load("a").runs == (Run("1_x", ("k=y",)), Run("2_x", ("k=y",)))
    assert load("a", "v").runs[0] == Run("1_x", ("k=z", "m=1"))


def test_a_label_with_no_grid_in_the_sweep_is_one_line():
    cfg = compose_config(
        [
            "experiment_name=make",
            "experiment=mnist_logreg",
            "sweep=fig1_mnist_logreg",
            "optimizer=adam",
            "optimizer.label=Adma",
        ]
    )
    with pytest.raises(ConfigError, match="no grid for the optimizer label 'Adma'"):
        population(cfg)


@pytest.mark.slow
def test_a_protocol_trains_draws_continues_and_pauses(mnist_root: Path, tmp_path: Path, caplog):
    args = [
        "fig1_mnist_logreg",
        "--variant",
        "tiny",
        "--data-root",
        str(mnist_root),
        "--runs",
        str(tmp_path / "runs"),
        "--results",
        str(tmp_path / "results"),
        "--override",
        "trainer.progress=false",
        "data.download=false",
        "sweep.grids.SGDNesterov.momentum=[0.9]",
    ]
    with pytest.raises(SystemExit) as paused:
        protocol.main([*args, "--minutes", "0"])
    assert paused.value.code == 75
    protocol.main(args)
    folder = tmp_path / "runs/fig1_mnist_logreg/tiny"
    names = sorted(str(p.parent.relative_to(folder)) for p in folder.rglob("record.json"))
    assert names == ["adagrad_nodecay", "grid/adagrad", "grid/adam", "grid/nesterov"]
    record = read_record(folder / "grid/adam")
    assert record["status"] == "completed" and record["config"]["experiment_name"] == (
        "fig1_mnist_logreg_tiny"
    )
    sources = json.loads((tmp_path / "results/fig1_mnist_logreg/sources.json").read_text())
    assert sources["runs"] == 4 and sources["left_out"] == []
    assert "completed already: nothing to do" not in caplog.text
    protocol.main(args)  # again: read back, drawn again
    assert "completed already: nothing to do" in caplog.text
    assert len(read_record(folder / "grid/adam")["pieces"]) == 1


def test_every_target_of_make_help_runs_dry():
    listed = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True)
    targets = re.findall(r"^\s*make ([\w-]+)\s{2,}", listed.stdout, re.M)
    assert {"test", "reproduce-mnist", "reproduce-mlp-cpu", "study-fig2b"} <= set(targets)
    for target in targets:
        if target not in ("help", "clean", "venv"):
            done = subprocess.run(
                ["make", "-n", "-o", ".venv/.installed", target, "DATA_ROOT=/d"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, target


def test_the_makefile_holds_no_protocol():
    text = (REPO / "Makefile").read_text()
    assert len(text.splitlines()) < 140
    assert not re.search(r"sweep=|optimizer=|experiment=|trainer\.epochs", text)
