from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from adamrepro.errors import ConfigError
from adamrepro.models import build_model
from adamrepro.training import population, stack_settings, train
from conftest import cli, hydra_config, line


def config(*overrides: str):
    return hydra_config("experiment=mnist_logreg", *overrides)


def tiny(root: Path, *overrides: str):
    return config(
        f"data.root={root}",
        "data.verify=false",
        "data.download=false",
        "trainer.epochs=2",
        "trainer.batch_size=32",
        *overrides,
    )


def test_a_run_writes_a_complete_self_describing_record(mnist_root, tmp_path):
    record = train(tiny(mnist_root, "optimizer=adam"), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "record.json").read_text())
    assert saved["status"] == "completed"
    assert saved["config"]["optimizer"]["name"] == "adam"
    assert saved["versions"]["torch"] == torch.__version__
    assert saved["device"]["type"] == "cpu" and saved["wall_time_s"] > 0
    assert [r["epoch"] for r in saved["curves"]] == [1, 2]
    first, last = saved["curves"]
    assert last["train_cost"] < first["train_cost"]  # it learns the generated classes
    assert last["test_accuracy"] > 0.5
    assert record["curves"] == saved["curves"]


def test_the_same_command_twice_gives_identical_curves(mnist_root, tmp_path):
    a = train(tiny(mnist_root, "optimizer=nesterov"), tmp_path / "a")
    b = train(tiny(mnist_root, "optimizer=nesterov"), tmp_path / "b")
    assert [r["train_cost"] for r in a["curves"]] == [r["train_cost"] for r in b["curves"]]


def test_every_optimizer_starts_from_the_same_initialisation(mnist_root):
    from adamrepro.data import load_mnist

    data = load_mnist(mnist_root, download=False, verify=False)
    one = build_model({"name": "logreg"}, data, seeds=[7])
    three = build_model({"name": "logreg"}, data, seeds=[7, 7, 8])
    assert torch.equal(three.linear.weight[0], one.linear.weight[0])
    assert torch.equal(three.linear.weight[1], one.linear.weight[0])
    assert not torch.equal(three.linear.weight[2], one.linear.weight[0])


def test_a_population_equals_its_members_trained_one_by_one(mnist_root, tmp_path):
    stepsizes = [1e-3, 1e-2, 0.1]
    grid = "+grid.stepsize=[" + ",".join(map(str, stepsizes)) + "]"
    together = train(tiny(mnist_root, "optimizer=adam", "dtype=float64", grid), tmp_path / "g")
    for k, stepsize in enumerate(stepsizes):
        alone = train(
            tiny(mnist_root, "optimizer=adam", "dtype=float64", f"optimizer.stepsize={stepsize}"),
            tmp_path / f"m{k}",
        )
        ours = [r["train_cost"] for r in together["curves"] if r["member"] == k]
        assert ours == pytest.approx([r["train_cost"] for r in alone["curves"]], abs=1e-10)


def test_grid_expansion_and_stacking():
    cfg = {
        "optimizer": {"name": "sgd", "label": "SGD", "stepsize": 0.1, "momentum": 0.0},
        "sweep": {"grids": {"SGD": {"stepsize": [0.1, 0.2]}}, "seeds": [0, 1]},
        "grid": {"momentum": [0.0, 0.9]},
        "seed": 0,
    }
    members = population(cfg)
    assert len(members) == 8
    assert {(m["stepsize"], m["momentum"], m["seed"]) for m in members} == {
        (s, mu, seed) for s in (0.1, 0.2) for mu in (0.0, 0.9) for seed in (0, 1)
    }
    stacked = stack_settings(members)
    assert stacked["name"] == "sgd" and stacked["stepsize"].tolist() == [0.1] * 4 + [0.2] * 4
    with pytest.raises(ConfigError, match="does not have"):
        population({**cfg, "grid": {"beta1": [0.9]}})
    with pytest.raises(ConfigError, match="not a number"):
        stack_settings([{"name": "adam", "bias_correction": b} for b in (True, False)])


def test_stepsize_decays_as_one_over_sqrt_of_the_step(mnist_root, tmp_path, monkeypatch):
    """The stepsize each update uses is alpha_t = alpha / sqrt(t) (or / sqrt(epoch)), t the
    step (19 per epoch here); the record's current_stepsize is the last epoch's alpha_t."""
    from adamrepro.optim import Adam

    seen = []
    original = Adam.update

    def spy(self, param, grad, state, t, work, **hp):
        if param.dim() == 3:  # one of the two parameters: once per step
            seen.append((t, float(hp["stepsize"])))
        return original(self, param, grad, state, t, work, **hp)

    monkeypatch.setattr(Adam, "update", spy)
    record = train(
        tiny(
            mnist_root,
            "optimizer=adam",
            "optimizer.stepsize=0.5",
            "trainer.stepsize_decay=sqrt_step",
        ),
        tmp_path / "step",
    )
    assert [t for t, _ in seen] == list(range(1, 39))
    assert all(a == pytest.approx(0.5 / math.sqrt(t), rel=1e-7) for t, a in seen)
    assert record["curves"][-1]["current_stepsize"] == pytest.approx(0.5 / math.sqrt(38))
    seen.clear()
    record = train(
        tiny(
            mnist_root,
            "optimizer=adam",
            "optimizer.stepsize=0.5",
            "trainer.stepsize_decay=sqrt_epoch",
        ),
        tmp_path / "epoch",
    )
    assert {a for t, a in seen if t <= 19} == {0.5}
    assert all(a == pytest.approx(0.5 / math.sqrt(2), rel=1e-7) for t, a in seen if t > 19)
    assert record["curves"][-1]["current_stepsize"] == pytest.approx(0.5 / math.sqrt(2))


def test_an_interrupted_run_keeps_its_finished_epochs(mnist_root, tmp_path, monkeypatch):
    from adamrepro.optim import Adam

    calls = {"n": 0}
    original = Adam.step

    def interrupting(self, closure=None):
        calls["n"] += 1
        if calls["n"] == 25:  # in the second epoch (19 steps per epoch)
            raise KeyboardInterrupt
        return original(self, closure)

    monkeypatch.setattr(Adam, "step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(mnist_root, "optimizer=adam"), tmp_path)
    saved = json.loads((tmp_path / "record.json").read_text())
    assert saved["status"] == "interrupted"
    assert [r["epoch"] for r in saved["curves"]] == [1]


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.name=adamw", "error: unknown optimizer 'adamw'"),
        ("optimizer.stepsize=-0.1", "error: stepsize must be >= 0, got -0.1"),
        ("optimizer.beta1=1.5", "error: beta1 must be in [0, 1), got 1.5"),
        ("optimizer.beta2=1", "error: beta2 must be in [0, 1), got 1"),
        ("data.root=/no/such/dir", "error: MNIST not found: looked in /no/such/dir"),
        ("trainer.stepsize_decay=cosine", "error: trainer.stepsize_decay must be one of"),
    ],
)
def test_bad_input_is_one_line_and_no_traceback(override, message, tmp_path, mnist_root):
    root = [] if override.startswith("data.root") else [f"data.root={mnist_root}"]
    done = cli(
        "experiment=mnist_logreg",
        "data.download=false",
        "data.verify=false",
        f"hydra.run.dir={tmp_path}",
        *root,
        override,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(message)


def test_unknown_optimizer_choice_is_reported_by_hydra_without_traceback(tmp_path):
    done = cli("experiment=mnist_logreg", "optimizer=adamw", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Could not find 'optimizer/adamw'" in done.stderr


def test_a_hydra_sweep_and_the_figure_from_it(mnist_root, tmp_path, drawn):
    done = cli(
        "-m",
        "experiment=mnist_logreg",
        f"data.root={mnist_root}",
        "data.verify=false",
        "data.download=false",
        "trainer.epochs=2",
        "trainer.progress=false",
        "optimizer=adam,adagrad,nesterov",
        "optimizer.stepsize=1e-3,1e-2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("record.json")]
    assert len(records) == 6
    from adamrepro.figures.plot import make_figure

    selected = make_figure("fig1_mnist_logreg", [str(tmp_path / "sweep")], tmp_path / "res")
    assert set(selected["curve"]) == {"Adam", "AdaGrad", "SGDNesterov"}
    figure = drawn[str(tmp_path / "res" / "figure.png")]
    for _, row in selected.iterrows():
        same = [r for r in records if r["members"][0]["label"] == row["curve"]]
        finals = {r["members"][0]["stepsize"]: r["curves"][-1]["train_cost"] for r in same}
        assert row["stepsize"] == min(finals, key=finals.get)  # the best final cost
        best = next(r for r in same if r["members"][0]["stepsize"] == row["stepsize"])
        x, y = line(figure, row["curve"])  # what is drawn: that run's cost, pass by pass
        assert x.tolist() == [0, 1]
        assert y.tolist() == pytest.approx([r["train_cost"] for r in best["curves"]])


def _member_costs(record, k):
    return [r["train_cost"] for r in record["curves"] if r["member"] == k]


@pytest.mark.parametrize(
    "optimizer,stepsizes,bad",
    [("adam", [1e-3, 1e6, 1e-2], 1), ("sgd", [0.1, 0.3, 1e308], 2)],
    ids=["past-the-bound", "nan"],
)
def test_a_diverging_member_leaves_and_cannot_touch_the_others(
    mnist_root, tmp_path, optimizer, stepsizes, bad
):
    grid = "+grid.stepsize=[" + ",".join(map(str, stepsizes)) + "]"
    run = tiny(mnist_root, f"optimizer={optimizer}", "dtype=float64", grid)
    together = train(run, tmp_path / "g")
    assert list(together["diverged"]) == [str(bad)]
    assert together["diverged"][str(bad)] <= 3
    assert all(math.isnan(c) for c in _member_costs(together, bad))
    for k, stepsize in enumerate(stepsizes):
        if k == bad:
            continue
        alone = train(
            tiny(
                mnist_root,
                f"optimizer={optimizer}",
                "dtype=float64",
                f"optimizer.stepsize={stepsize}",
            ),
            tmp_path / f"m{k}",
        )
        assert alone["diverged"] == {}
        assert _member_costs(together, k) == pytest.approx(_member_costs(alone, 0), abs=1e-10)


def test_seed_members_have_their_own_initialisation_and_data_order(mnist_root, tmp_path):
    together = train(
        tiny(
            mnist_root,
            "optimizer=adam",
            "dtype=float64",
            "+grid.stepsize=[1e-3,1e-2]",
            "sweep.seeds=[0,1]",
        ),
        tmp_path / "g",
    )
    assert [(m["stepsize"], m["seed"]) for m in together["members"]] == [
        (1e-3, 0),
        (1e-3, 1),
        (1e-2, 0),
        (1e-2, 1),
    ]
    for k, (stepsize, seed) in enumerate([(1e-3, 0), (1e-3, 1), (1e-2, 0), (1e-2, 1)]):
        alone = train(
            tiny(
                mnist_root,
                "optimizer=adam",
                "dtype=float64",
                f"optimizer.stepsize={stepsize}",
                f"seed={seed}",
            ),
            tmp_path / f"m{k}",
        )
        assert _member_costs(together, k) == pytest.approx(_member_costs(alone, 0), abs=1e-10)
    assert _member_costs(together, 0) != _member_costs(together, 1)


def test_logged_step_costs_average_to_the_epochs_cost(mnist_root, tmp_path):
    record = train(
        tiny(
            mnist_root,
            "+grid.stepsize=[1e-3,1e-1]",
            "trainer.step_log_epochs=1",
            "trainer.eval_every=2",
            "trainer.epochs=3",
        ),
        tmp_path / "run",
    )
    logged = record["step_costs"]
    steps = logged["steps_per_epoch"]
    assert steps == math.ceil(600 / 32) and len(logged["cost"]) == steps  # the first epoch only
    sizes = [32] * (steps - 1) + [600 - 32 * (steps - 1)]
    for member in (0, 1):
        mean = sum(c[member] * n for c, n in zip(logged["cost"], sizes, strict=True)) / 600
        first = next(r for r in record["curves"] if r["epoch"] == 1 and r["member"] == member)
        assert mean == pytest.approx(first["train_cost"], rel=1e-6)
    evaluated = {r["epoch"] for r in record["curves"] if not math.isnan(r["test_loss"])}
    assert evaluated == {2, 3}  # every 2nd epoch, and the last


def test_the_check_without_host_reads_gives_the_per_step_checks_numbers(
    mnist_root, tmp_path, monkeypatch
):
    """Divergence is checked on the device every step and read by the host once per epoch;
    dropping a member at once (reading every step, as a naive loop would) gives the same
    curves, the same divergence steps and the same parameters at the end."""
    from adamrepro.training.loop import Training

    grid = "+grid.stepsize=[1e-3,30.0,1e-2,1e6]"
    cfg = tiny(mnist_root, "optimizer=adam", "dtype=float64", grid, "trainer.epochs=3")
    models = {}
    original_run, original_step = Training.run, Training._step

    def keep_model(self):
        models[self.out_dir.name] = self
        return original_run(self)

    monkeypatch.setattr(Training, "run", keep_model)
    deferred = train(cfg, tmp_path / "deferred")

    def step_and_settle(self, *args):
        original_step(self, *args)
        self.settle()  # a host read every step: the member leaves at the very step

    monkeypatch.setattr(Training, "_step", step_and_settle)
    eager = train(cfg, tmp_path / "eager")
    assert deferred["diverged"] == eager["diverged"] and set(eager["diverged"]) == {"1", "3"}
    # the same numbers up to float64 rounding (populations of 4 and of 2 go through batched
    # kernels that may round alike or not, by machine)
    for a, b in zip(deferred["curves"], eager["curves"], strict=True):
        assert a["member"] == b["member"] and a["epoch"] == b["epoch"]
        for key in ("train_cost", "train_cost_full", "test_loss", "test_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-12, nan_ok=True), key
    assert models["deferred"].live.tolist() == models["eager"].live.tolist() == [0, 2]
    for a, b in zip(
        models["deferred"].model.parameters(), models["eager"].model.parameters(), strict=True
    ):
        assert a.shape[0] == 2 and torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("model", ["experiment=mnist_logreg", "experiment=mnist_mlp"])
def test_members_that_diverge_leave_and_the_others_run_as_without_them(mnist_root, tmp_path, model):
    """Two seeds, two of six members diverge in the first epoch and leave the population;
    the four that go on give the curves of a population that never had the two (float64,
    no dropout), and their steps no longer compute the two."""
    from adamrepro.training.loop import Training

    common = [
        model,
        "model.input_dropout=0",
        "model.hidden_dropout=0",
        "model.hidden=[16,16]",
        "optimizer=adam",
        "dtype=float64",
        "sweep.seeds=[0,1]",
        "trainer.epochs=3",
    ]
    if model.endswith("logreg"):
        common = [c for c in common if not c.startswith("model.")]
    shapes = []
    original_step = Training._step

    def step(self, *args):
        shapes.append(next(self.model.parameters()).shape[0])
        return original_step(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Training, "_step", step)
        full = train(tiny(mnist_root, *common, "+grid.stepsize=[1e-3,1e6,1e-2]"), tmp_path / "a")
    alone = train(tiny(mnist_root, *common, "+grid.stepsize=[1e-3,1e-2]"), tmp_path / "b")
    assert full["config"]["model"]["name"] == model.split("_")[-1]
    assert set(full["diverged"]) == {"2", "3"} and not alone["diverged"]
    steps = len(shapes) // 3
    assert shapes[:steps] == [6] * steps and shapes[steps:] == [4] * (2 * steps)
    went_on = {0: 0, 1: 1, 4: 2, 5: 3}  # member of the full population -> of the other
    for row in full["curves"]:
        if row["member"] in went_on:
            other = alone["curves"][len(went_on) * (row["epoch"] - 1) + went_on[row["member"]]]
            assert other["member"] == went_on[row["member"]]
            for key in ("train_cost", "train_cost_full", "test_loss", "test_accuracy"):
                assert row[key] == pytest.approx(other[key], rel=1e-10, abs=1e-12), key
        else:
            assert math.isnan(row["train_cost_full"])


def test_halving_keeps_the_best_settings_by_mean_cost_and_they_run_as_alone(mnist_root, tmp_path):
    """sweep.halving after 1 epoch, keep 2 of 4 settings (2 seeds each): the two settings
    with the lowest epoch-1 training cost averaged over seeds go on, exactly as a grid of
    those two alone; the others' curves end at epoch 1 and the record names them."""
    common = ["optimizer=adam", "dtype=float64", "sweep.seeds=[0,1]", "trainer.epochs=3"]
    grid = "+grid.stepsize=[1e-4,3e-2,1e-2,1e-3]"
    full = train(
        tiny(mnist_root, *common, grid, "+sweep.halving={after_epochs:1,keep:2}"),
        tmp_path / "halved",
    )
    first = {}
    for row in full["curves"]:
        if row["epoch"] == 1:
            first.setdefault(full["members"][row["member"]]["stepsize"], []).append(
                row["train_cost"]
            )
    best = sorted(first, key=lambda s: sum(first[s]) / 2)[:2]
    kept = [k for k, m in enumerate(full["members"]) if m["stepsize"] in best]
    assert len(kept) == 4 and set(best) != {1e-4, 1e-3}  # not simply the ends of the grid
    assert full["pruned"] == {str(k): 1 for k in range(8) if k not in kept}
    assert full["diverged"] == {}
    alone = train(
        tiny(mnist_root, *common, f"+grid.stepsize=[{best[0]},{best[1]}]"), tmp_path / "alone"
    )
    other = {(m["stepsize"], m["seed"]): k for k, m in enumerate(alone["members"])}
    for row in full["curves"]:
        member = full["members"][row["member"]]
        if row["member"] in kept:
            twin = next(
                r
                for r in alone["curves"]
                if r["epoch"] == row["epoch"]
                and r["member"] == other[member["stepsize"], member["seed"]]
            )
            assert row["train_cost"] == pytest.approx(twin["train_cost"], rel=1e-10)
            assert row["test_loss"] == pytest.approx(twin["test_loss"], rel=1e-10)
        elif row["epoch"] > 1:
            assert math.isnan(row["train_cost"]) and math.isnan(row["test_loss"])
    from adamrepro.figures.plot import figure_spec, summarise, with_settings
    from adamrepro.tables import tidy

    spec = figure_spec("fig1_mnist_logreg")
    grid_table = summarise(with_settings(tidy([(tmp_path / "halved", full)]), spec), spec)
    pruned_rows = grid_table[grid_table["pruned_at_epoch"] == 1]
    assert sorted(pruned_rows["stepsize"]) == sorted(set(first) - set(best))
    assert (pruned_rows["final_cost"] == math.inf).all()
    assert (grid_table["diverged_seeds"] == 0).all()


@pytest.mark.parametrize(
    "value,message",
    [
        ("{after_epochs:0,keep:2}", "sweep.halving.after_epochs must be at least 1, got 0"),
        ("{keep:2}", "sweep.halving must be null or {after_epochs: E, keep: k}, got {'keep': 2}"),
    ],
)
def test_a_wrong_halving_is_one_line(mnist_root, tmp_path, value, message):
    with pytest.raises(ConfigError) as error:
        train(tiny(mnist_root, f"+sweep.halving={value}"), tmp_path / "run")
    assert str(error.value) == message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_training_step_on_cuda_never_waits_for_the_host(mnist_root, tmp_path, monkeypatch):
    from adamrepro.training.loop import Training

    original = Training._step
    steps = {"n": 0}

    def strict(self, *args):
        steps["n"] += 1
        if steps["n"] == 3:  # after the first steps (state made, first cost kept)
            torch.cuda.set_sync_debug_mode("error")
        try:
            return original(self, *args)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(Training, "_step", strict)
    cfg = tiny(
        mnist_root,
        "optimizer=adam",
        "device=cuda",
        "+grid.stepsize=[1e-3,1e6]",
        "trainer.stepsize_decay=sqrt_step",
    )
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "completed" and list(record["diverged"]) == ["1"]


def mlp_tiny(root: Path, *overrides: str):
    return hydra_config(
        "experiment=mnist_mlp_deterministic",
        f"data.root={root}",
        "data.verify=false",
        "data.download=false",
        "trainer.epochs=2",
        "trainer.batch_size=64",
        "model.hidden=[16,16]",
        "optimizer=adam",
        "trainer.train_eval_subset=0",
        *overrides,
    )


def test_the_initial_evaluation_is_the_untrained_models_cost(mnist_root, tmp_path):
    """Epoch 0 holds the costs before any step: log(10) for every member when the output layer
    starts at zero; no minibatch cost (NaN); the epochs after it are the usual ones."""
    record = train(
        mlp_tiny(
            mnist_root,
            "trainer.evaluate_initial=true",
            "model.zero_output=true",
            "model.weight_decay=0",
            "+grid.stepsize=[1e-3,1e-2]",
        ),
        tmp_path / "run",
    )
    initial = [r for r in record["curves"] if r["epoch"] == 0]
    assert [r["member"] for r in initial] == [0, 1]
    for row in initial:
        assert math.isnan(row["train_cost"]) and row["wall_time_s"] == 0.0
        assert row["train_cost_full"] == pytest.approx(math.log(10), rel=1e-6)
        assert row["test_loss"] == pytest.approx(math.log(10), rel=1e-6)
    assert [r["epoch"] for r in record["curves"]] == [0, 0, 1, 1, 2, 2]
    assert record["pieces"][-1]["epochs_done"] == 2
    later = [r["train_cost_full"] for r in record["curves"] if r["epoch"] == 2]
    assert all(cost < math.log(10) for cost in later)


def test_the_initial_evaluation_matches_the_models_own_evaluation(mnist_root, tmp_path):
    from adamrepro.data import load_mnist

    cfg = mlp_tiny(
        mnist_root, "trainer.evaluate_initial=true", "trainer.epochs=1", "model.weight_decay=1e-3"
    )
    record = train(cfg, tmp_path / "run")
    data = load_mnist(mnist_root, download=False, verify=False)
    model = build_model(cfg.model, data, seeds=[0])
    expected = model.evaluate(data.x_train, data.y_train, 2000)["cost"][0].item()
    assert record["curves"][0]["train_cost_full"] == pytest.approx(expected, rel=1e-6)
    assert expected > model.evaluate(data.x_train, data.y_train, 2000)["loss"][0].item()  # L2 in


def test_a_fixed_order_visits_the_same_minibatches_every_epoch():
    from adamrepro.training.population import MinibatchOrder

    device = torch.device("cpu")
    fixed = MinibatchOrder([3, 4], n=50, batch_size=8, order="fixed")
    epochs = [[b.clone() for b in fixed.epoch(device)] for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(epochs[0], epochs[2], strict=True))
    assert len(epochs[0]) == 7 and not torch.equal(epochs[0][0][0], epochs[0][0][1])  # per seed
    rows = torch.cat([b[0] for b in epochs[0]])
    assert sorted(rows.tolist()) == list(range(50))  # one pass: every row once
    shuffled = MinibatchOrder([3, 4], n=50, batch_size=8)
    first, second = ([b.clone() for b in shuffled.epoch(device)] for _ in range(2))
    assert torch.equal(first[0], epochs[0][0])  # the same first draw
    assert not torch.equal(first[0], second[0])  # then a new permutation per epoch
    resumed = MinibatchOrder([3, 4], n=50, batch_size=8, order="fixed")
    assert all(
        torch.equal(a, b) for a, b in zip(epochs[1][2:], resumed.epoch(device, skip=2), strict=True)
    )


def test_a_replacement_order_draws_fixed_minibatches_with_replacement():
    """The harness's split (minibatch i: rows i, i + N, ... of the seed's permutation), each
    step one of the N drawn at random: repeats within an epoch, a new draw every epoch, the
    same draw again from a saved state."""
    from adamrepro.training.population import MinibatchOrder

    device = torch.device("cpu")
    order = MinibatchOrder([5], n=100, batch_size=10, order="replacement")
    state = order.state_dict()
    epochs = [[b.clone() for b in order.epoch(device)] for _ in range(4)]
    split = torch.randperm(100, generator=torch.Generator().manual_seed(5))
    minibatches = {tuple(sorted(split[i::10].tolist())) for i in range(10)}
    drawn = [tuple(sorted(b.tolist())) for e in epochs for b in e]
    assert len(epochs[0]) == 10 and set(drawn) <= minibatches
    assert len(set(drawn[:10])) < 10 or len(set(drawn[10:20])) < 10  # with replacement
    assert len(set(drawn)) == 10  # 40 draws of 10: all seen (fails with odds 10 x 0.9^40)
    assert drawn[:10] != drawn[10:20]  # a new draw each epoch
    order.load_state_dict(state)
    again = [b.clone() for b in order.epoch(device)]
    assert all(torch.equal(a, b) for a, b in zip(again, epochs[0], strict=True))
    two = MinibatchOrder([5, 6], n=95, batch_size=10, order="replacement")
    sizes = {b.shape for b in two.epoch(device)}
    assert all(len(s) == 2 and s[0] == 2 and s[1] in (9, 10) for s in sizes)


def test_a_fixed_order_run_repeats_its_epochs_cost_pattern(mnist_root, tmp_path):
    """With stepsize 0 nothing moves: a fixed order gives each epoch the same minibatch costs,
    a random one the same mean (each pass sees every row) but a different sequence."""
    logged = {}
    for order in ("fixed", "random"):
        record = train(
            mlp_tiny(
                mnist_root,
                f"trainer.minibatch_order={order}",
                "optimizer.stepsize=0",
                "trainer.step_log_epochs=2",
                "model.zero_output=false",
            ),  # else every cost is log 10
            tmp_path / order,
        )
        costs = [c[0] for c in record["step_costs"]["cost"]]
        steps = record["step_costs"]["steps_per_epoch"]
        logged[order] = (costs[:steps], costs[steps:])
    assert logged["fixed"][0] == logged["fixed"][1]
    assert logged["random"][0] != logged["random"][1]
    assert logged["random"][0] == logged["fixed"][0]  # the first epoch is drawn alike


def test_the_subset_cost_is_the_cost_on_fixed_training_rows(mnist_root, tmp_path):
    record = train(mlp_tiny(mnist_root, "trainer.train_eval_subset=600"), tmp_path / "all")
    for row in record["curves"]:  # all 600 rows, in another order: the full cost again
        assert row["train_cost_subset"] == pytest.approx(row["train_cost_full"], rel=1e-5)
    some = train(mlp_tiny(mnist_root, "trainer.train_eval_subset=50"), tmp_path / "some")
    assert some["curves"][-1]["train_cost_subset"] != pytest.approx(
        some["curves"][-1]["train_cost_full"], rel=1e-3
    )
    assert [r["train_cost_full"] for r in some["curves"]] == [
        r["train_cost_full"] for r in record["curves"]
    ]  # evaluating a subset changes nothing else


def test_test_metrics_are_measured_on_the_test_set(tmp_path):
    """A test set whose labels are the training labels shifted by one class: a model that
    learns the training set must be wrong on it, so test accuracy near 0 and a test loss far
    above the training cost (computed on the training rows, both would look trained)."""
    from adamrepro.data.mnist import read_idx
    from conftest import make_mnist, write_idx

    root = make_mnist(tmp_path / "shifted", compress=False)
    labels = read_idx((root / "t10k-labels-idx1-ubyte").read_bytes())
    write_idx(root / "t10k-labels-idx1-ubyte", (labels + 1) % 10)
    record = train(
        tiny(root, "trainer.epochs=3", "optimizer=adam", "optimizer.stepsize=1e-2"),
        tmp_path / "run",
    )
    last = record["curves"][-1]
    assert last["train_cost_full"] < 0.3
    assert last["test_accuracy"] < 0.05
    assert last["test_loss"] > 10 * last["train_cost_full"]


def test_the_l2_penalty_adds_exactly_half_lambda_times_the_squared_weights(mnist_root, tmp_path):
    """Before any step the cost with L2 lambda minus the cost without it is
    lambda / 2 * sum of the squared weights (biases excluded), per member."""
    from adamrepro.data import load_mnist

    lam = 1e-2
    common = ("trainer.evaluate_initial=true", "trainer.epochs=1", "+grid.stepsize=[1e-3,1e-2]")
    with_l2 = train(mlp_tiny(mnist_root, *common, f"model.weight_decay={lam}"), tmp_path / "l2")
    without = train(mlp_tiny(mnist_root, *common, "model.weight_decay=0"), tmp_path / "none")
    data = load_mnist(mnist_root, download=False, verify=False)
    model = build_model(mlp_tiny(mnist_root).model, data, seeds=[0, 0])
    squares = sum(
        p.detach().double().pow(2).flatten(1).sum(1)
        for name, p in model.named_parameters()
        if name.endswith("weight")
    )
    for member in (0, 1):
        first = [r for r in with_l2["curves"] if r["epoch"] == 0 and r["member"] == member][0]
        base = [r for r in without["curves"] if r["epoch"] == 0 and r["member"] == member][0]
        difference = first["train_cost_full"] - base["train_cost_full"]
        assert difference == pytest.approx(lam / 2 * squares[member].item(), rel=1e-4)
        assert first["test_loss"] == pytest.approx(base["test_loss"], rel=1e-6)  # loss: no L2


def test_a_restored_divergence_monitor_keeps_the_first_costs_and_its_device():
    """Divergence is judged against the first step's costs: a monitor restored from a
    checkpoint keeps them (a fresh one would take the resumed step's costs instead), and puts
    its flags on its own device (the meta device stands in for a GPU)."""
    from adamrepro.training.evaluation import DivergenceMonitor

    cpu = torch.device("cpu")
    before = DivergenceMonitor(3, factor=3.0, device=cpu)
    before.check(torch.tensor([1.0, 1.0, 1.0]), step=1)
    before.check(torch.tensor([1.0, 1.0, math.inf]), step=2)
    after = DivergenceMonitor(3, factor=3.0, device=cpu)
    after.load_state_dict(before.state_dict())
    assert after.check(torch.tensor([2.5, 3.5, 0.1]), step=3).tolist() == [True, False, False]
    assert after.diverged_at.tolist() == [0, 3, 2]
    on_meta = DivergenceMonitor(3, factor=3.0, device=torch.device("meta"))
    on_meta.load_state_dict(before.state_dict())
    assert on_meta.active.device.type == "meta" and on_meta.diverged_at.device.type == "meta"


def test_the_wall_time_is_the_time_the_run_took(mnist_root, tmp_path):
    import time

    started = time.perf_counter()
    record = train(tiny(mnist_root), tmp_path / "run")
    took = time.perf_counter() - started
    times = [row["wall_time_s"] for row in record["curves"]]
    assert 0 < times[0] < times[1] <= record["wall_time_s"] <= took


def test_the_progress_bar_counts_every_step_of_every_epoch(
    mnist_root, tmp_path, capsys, monkeypatch
):
    """600 rows in minibatches of 32: 19 steps an epoch, 38 in two; the bar is titled with
    the experiment's name (`experiment_name`, "test" here), else "train". It shows on a
    terminal only: into a file it writes nothing."""
    train(tiny(mnist_root, "trainer.progress=true"), tmp_path / "into_a_file")
    assert "38/38" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    record = train(tiny(mnist_root, "trainer.progress=true"), tmp_path / "run")
    shown = capsys.readouterr().err
    assert "test: 100%" in shown and "38/38" in shown and "/39" not in shown
    best = min(r["train_cost"] for r in record["curves"] if r["epoch"] == 2)
    assert shown.rstrip().endswith(f"cost={best:.4f}]")  # the lowest cost of the last epoch
    train(tiny(mnist_root, "trainer.progress=true", "experiment_name="), tmp_path / "unnamed")
    assert "train: 100%" in capsys.readouterr().err
    diverged = train(
        tiny(mnist_root, "trainer.progress=true", "optimizer.stepsize=1e6"), tmp_path / "diverged"
    )
    assert diverged["status"] == "failed" and "cost=diverged]" in capsys.readouterr().err


@pytest.mark.parametrize("minutes,before_steps", [("0", []), ("5", []), ("1e-9", list(range(38)))])
def test_checkpoints_come_at_epoch_ends_and_every_so_many_minutes(
    mnist_root, tmp_path, monkeypatch, minutes, before_steps
):
    """trainer.checkpoint_minutes: 0 never by time, 5 not within this short run, 1e-9 before
    every step; the first epoch's end (step 19) checkpoints, the last saves the record only."""
    from adamrepro.training.loop import Training

    saved, original = [], Training.save

    def save(self, checkpoint):
        saved.append((self.progress.step, checkpoint))
        return original(self, checkpoint)

    monkeypatch.setattr(Training, "save", save)
    train(tiny(mnist_root, f"trainer.checkpoint_minutes={minutes}"), tmp_path / "run")
    ends = [(19, True), (38, False)]
    assert sorted(saved) == sorted([(s, True) for s in before_steps] + ends)


def test_a_failed_step_is_logged_with_its_reason(mnist_root, tmp_path, monkeypatch, caplog):
    from adamrepro.training.loop import Training

    def step(self, *args):
        raise RuntimeError("no step here")

    monkeypatch.setattr(Training, "_step", step)
    with caplog.at_level("ERROR", logger="adamrepro.train"), pytest.raises(RuntimeError):
        train(tiny(mnist_root), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["status"] == "failed" and record["reason"] == "no step here"
    assert caplog.messages == ["failed: no step here"]


def test_a_subset_larger_than_the_training_set_is_one_line(mnist_root, tmp_path):
    with pytest.raises(ConfigError) as error:
        train(mlp_tiny(mnist_root, "trainer.train_eval_subset=601"), tmp_path / "run")
    assert str(error.value) == "trainer.train_eval_subset=601 is more than the 600 training rows"


def test_the_subsets_rows_are_made_on_the_runs_device(mnist_root, tmp_path, monkeypatch):
    """On a GPU the rows index data held there (IMDB's sparse rows need their index on the
    same device): the subset is asked for on the run's device."""
    import adamrepro.training.loop as loop_module

    asked = []
    original = loop_module.evaluation_subset

    def recorded(n_train, examples, seed, device):
        asked.append((n_train, examples, seed, device))
        return original(n_train, examples, seed, device)

    monkeypatch.setattr(loop_module, "evaluation_subset", recorded)
    train(mlp_tiny(mnist_root, "trainer.train_eval_subset=50", "seed=4"), tmp_path / "run")
    assert asked == [(600, 50, 4, torch.device("cpu"))]
