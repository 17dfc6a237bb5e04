"""Benchmark an optimizer on the paper's tasks: tune it within its declared search space by the
paper's rule (the best final training cost), rerun the best setting with several seeds, and
measure its steps and seconds to the paper's Adam value and its time per step beside Adam's.

    python -m adamrepro.benchmark OPTIMIZER.yaml [--tasks NAME ...] [--data-root DIR]
        [--runs outputs/benchmark] [--out results/benchmark] [--seeds 3] [--list]

Before anything trains: the YAML is read (one line for a bad one), every reduction it declares
is stepped beside ours (`conformance`: a port that differs stops here), and each task's budget
is checked (a task whose budget the search space exceeds is left out, and said so). Every run
goes through the one training loop, resumably (the same command continues). Writes
results/benchmark/<label>/: tuning.csv (every trial on every task), best.csv (the best
setting's curves, every seed), summary.csv (per task: the best setting, its final cost over
the seeds, steps and seconds to target), best_of_k.csv (per task, the expected best final cost
after k of its trials, with a bootstrap interval: how much of the result is the tuning
budget) and each curve task's figure (<task>.png: over the paper's curves and ours).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import USER_ERRORS, ConfigError, command_parser
from ..training import compose_config, train
from . import conformance
from .figure import draw_task
from .spec import OptimizerSpec, load_spec
from .tasks import TASKS, Task


def hydra_value(value: Any) -> str:
    """A setting as a Hydra override writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return f"'{value}'"


def optimizer_overrides(spec: OptimizerSpec, point: dict[str, Any] | None = None) -> list[str]:
    """The overrides that make the loop's `optimizer` config the spec's (at `point`)."""
    config = spec.optimizer_config(point)
    group = "external" if spec.target is not None else str(spec.name)
    overrides = [f"optimizer={group}"]
    for key, value in config.items():
        if key != "name":
            overrides.append(f"++optimizer.{key}={hydra_value(value)}")
    return overrides


def _run(overrides: list[str], out: Path) -> dict[str, Any]:
    """The run, trained or continued; a completed one with the same settings is read back."""
    return train(compose_config(overrides), out)


def _finals(record: dict[str, Any], metric: str) -> list[float]:
    """Each member's metric at the run's last epoch (inf where it diverged)."""
    curves = pd.DataFrame(record["curves"])
    last = curves[curves["epoch"] == curves["epoch"].max()].sort_values("member")
    values = last[metric].to_numpy(float)
    return [v if math.isfinite(v) else math.inf for v in values]


def tune(spec: OptimizerSpec, task: Task, base: list[str], runs: Path) -> pd.DataFrame:
    """Every trial of the spec's grid on `task`, seed 0: one population run for this
    project's optimizer API, one run per trial otherwise. A row per trial."""
    grid = spec.grid()
    rows = []
    if spec.population:
        dims = [d.name for d in spec.space]
        overrides = [
            *base,
            *optimizer_overrides(spec, grid[0]),
            *(f"+grid.{d.name}={hydra_value(list(d.points))}" for d in spec.space),
        ]
        record = _run(overrides, runs / "tuning")
        for member, value in zip(record["members"], _finals(record, task.metric), strict=True):
            rows.append({**{d: member[d] for d in dims}, "final": value})
    else:
        for k, point in enumerate(grid):
            record = _run([*base, *optimizer_overrides(spec, point)], runs / f"tuning/{k}")
            rows.append({**point, "final": _finals(record, task.metric)[0]})
    table = pd.DataFrame(rows)
    table.insert(0, "task", task.name)
    return table


def best_point(spec: OptimizerSpec, table: pd.DataFrame) -> dict[str, Any] | None:
    """The trial with the lowest final cost (the paper's rule); None if every one diverged."""
    finite = table[np.isfinite(table["final"])]
    if finite.empty:
        return None
    row = finite.loc[finite["final"].idxmin()]
    return {d.name: _native(row[d.name]) for d in spec.space}


def _native(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def rerun(
    spec: OptimizerSpec, task: Task, base: list[str], runs: Path, point: dict[str, Any], seeds: int
) -> list[dict[str, Any]]:
    """The best setting with seeds 0..seeds-1: one run of all of them where members may share
    one (element-wise), else one run per seed."""
    overrides = [*base, *optimizer_overrides(spec, point)]
    if spec.population or spec.elementwise:
        seed_list = hydra_value(list(range(seeds)))
        return [_run([*overrides, f"sweep.seeds={seed_list}"], runs / "best")]
    return [_run([*overrides, f"seed={s}"], runs / f"best/seed{s}") for s in range(seeds)]


def curves_of(records: list[dict[str, Any]], task: Task) -> pd.DataFrame:
    """The best setting's curves: one row per seed and epoch, x as the figure draws it."""
    frames = []
    for record in records:
        curves = pd.DataFrame(record["curves"])
        seeds = [m["seed"] for m in record["members"]]
        curves["seed"] = curves["member"].map(lambda m, seeds=seeds: seeds[m])
        frames.append(curves)
    out = pd.concat(frames, ignore_index=True)
    out["x"] = out["epoch"] - task.x_offset
    return out


def surface_steps(records: list[dict[str, Any]], task: Task) -> float:
    """A small problem's steps until f - f* stays below the tolerance, the median over the
    seeds (from every step's logged position, as the trajectories figure reads it)."""
    from ..figures.trajectories import member_paths, path_metrics
    from ..models.surfaces import SURFACES

    surface = SURFACES[task.name.removeprefix("small_")]
    steps = [
        path_metrics(path, surface, task.target(), None)["steps_to_tolerance"]
        for record in records
        for path in member_paths(record)
    ]
    return float(np.median(steps))


def steps_to_target(curves: pd.DataFrame, task: Task, steps_per_epoch: int) -> float:
    """The steps until the mean over seeds of the task's metric is at or below the target
    (inf when never, or diverged), read at the recorded epochs."""
    mean = curves.groupby("epoch")[task.metric].mean()
    reached = mean[mean <= task.target()]
    if reached.empty:
        return math.inf
    return float(int(reached.index[0]) * steps_per_epoch)


def time_per_step(
    spec: OptimizerSpec, task: Task, base: list[str], steps: int = 50, rounds: int = 7
) -> dict:
    """Seconds per step of the optimizer and of our Adam on the task's model (one member, a
    fixed minibatch), measured alternately in this process for `rounds` rounds: each one's
    fastest round (what other work on the machine can only slow down, never speed up: the
    median let one busy round decide a small problem's sub-millisecond step); and the task's
    steps per epoch (from the data it loaded)."""
    import torch

    from ..data import load_data
    from ..models import build_model
    from ..optim import build_optimizer

    cfg = compose_config([*base, "sweep=none"])
    data = load_data(cfg.data)
    batch = torch.arange(min(int(cfg.trainer.batch_size), len(data.x_train)))

    def timed(config: dict[str, Any]) -> float:
        model = build_model(cfg.model, data, [0])
        optimizer = build_optimizer(model.parameters(), config)
        x, y = data.x_train[batch], data.y_train[batch]
        started = 0.0
        for k in range(steps + 3):
            if k == 3:
                started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            model.cost(x, y).sum().backward()
            optimizer.step()
        return (time.perf_counter() - started) / steps

    ours = {"name": "adam", "label": "Adam", "stepsize": 1e-4}
    theirs = spec.optimizer_config()
    times: dict[str, list[float]] = {"optimizer": [], "adam": []}
    for _ in range(rounds):
        times["optimizer"].append(timed(theirs))
        times["adam"].append(timed(ours))
    fastest = {name: float(np.min(values)) for name, values in times.items()}
    return {
        **fastest,
        "steps_per_epoch": math.ceil(len(data.x_train) / int(cfg.trainer.batch_size)),
    }


def best_of_k(
    finals: np.ndarray, k: int, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The best (lowest) final cost among k trials drawn without replacement from a grid's
    trials (diverged: inf): its mean over `draws` draws, and the 5th and 95th percentiles."""
    finals = np.asarray(finals, dtype=float)
    if not 1 <= k <= len(finals):
        raise ValueError(f"k must be between 1 and {len(finals)}, got {k}")
    rng = np.random.default_rng(seed)
    best = np.array([finals[rng.permutation(len(finals))[:k]].min() for _ in range(draws)])
    finite = best[np.isfinite(best)]
    mean = float(finite.mean()) if len(finite) == len(best) else math.inf
    low, high = np.percentile(best, [5, 95], method="nearest")  # inf (diverged) allowed
    return mean, float(low), float(high)


def benchmark(args: Any) -> pd.DataFrame:
    spec = load_spec(args.optimizer)
    for result in conformance.check(spec):
        print(result.line(spec.label), file=sys.stderr)
        if not result.agrees:
            raise ConfigError(
                f"{spec.label} does not step as ours under the settings it declares "
                f"(reduces_to.{result.kind}): fix the port or the declaration"
            )
    out = args.out / _slug(spec.label)
    runs = args.runs / _slug(spec.label)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.tasks:
        task = TASKS[name]
        trials = len(spec.grid())
        if trials > task.budget:
            print(
                f"{task.name}: left out, the search space's {trials} trials exceed the "
                f"{task.budget} the paper's optimizers get on it",
                file=sys.stderr,
            )
            row = {
                "task": task.name,
                "trials": trials,
                "status": f"left out: {trials} > {task.budget}",
            }
            save_task(out, task.name, {"summary": pd.DataFrame([row])})
            continue
        base = [
            *task.overrides,
            *([f"data.root={args.data_root}"] if task.kind != "surface" else []),
            "sweep=none",
            f"experiment_name=benchmark_{_slug(spec.label)}_{task.name}",
            *args.override,
        ]
        print(f"== {task.name}: {trials} trials", file=sys.stderr, flush=True)
        table = tune(spec, task, base, runs / task.name)
        point = best_point(spec, table)
        row: dict[str, Any] = {"task": task.name, "trials": trials, "target": task.target()}
        if point is None:
            diverged = {**row, "status": "every trial diverged", "steps_to_target": math.inf}
            save_task(out, task.name, {"tuning": table, "summary": pd.DataFrame([diverged])})
            continue
        budgets = []
        for k in range(1, trials + 1):  # how much of the result is the tuning budget
            mean, low, high = best_of_k(table["final"].to_numpy(float), k)
            budgets.append({"task": task.name, "k": k, "mean": mean, "p5": low, "p95": high})
        records = rerun(spec, task, base, runs / task.name, point, args.seeds)
        curves = curves_of(records, task).assign(task=task.name)
        draw_task(task, spec.label, curves, table, out)
        speed = time_per_step(spec, task, base)
        if task.kind == "surface":
            steps = surface_steps(records, task)
        else:
            steps = steps_to_target(curves, task, int(speed["steps_per_epoch"]))
        finals = curves[curves["epoch"] == curves["epoch"].max()][task.metric]
        done = pd.DataFrame(
            [
                {
                    **row,
                    "status": "completed",
                    **{f"best_{k}": v for k, v in point.items()},
                    "final_mean": float(finals.mean()),
                    "final_min": float(finals.min()),
                    "final_max": float(finals.max()),
                    "seeds": int(finals.size),
                    "steps_to_target": steps,
                    "seconds_per_step": speed["optimizer"],
                    "adam_seconds_per_step": speed["adam"],
                    "seconds_to_target": steps * speed["optimizer"],
                }
            ]
        )
        save_task(
            out,
            task.name,
            {
                "tuning": table,
                "best": curves,
                "summary": done,
                "best_of_k": pd.DataFrame(budgets),
            },
        )
        write_readme(out, spec, args)
    return pd.read_csv(out / "summary.csv") if (out / "summary.csv").exists() else pd.DataFrame()


def write_readme(out: Path, spec: OptimizerSpec, args: Any) -> None:
    """What the folder holds and the command that made it, with the summary as it stands."""
    import platform

    summary = pd.read_csv(out / "summary.csv")
    columns = [
        c
        for c in summary.columns
        if c
        in (
            "task",
            "status",
            "final_mean",
            "seeds",
            "steps_to_target",
            "seconds_to_target",
            "seconds_per_step",
            "adam_seconds_per_step",
        )
        or c.startswith("best_")
    ]
    table = summary[columns]
    machine = platform.processor() or platform.machine()
    lines = [
        f"# {spec.label} on the Adam paper's tasks",
        "",
        f"Command: `python -m adamrepro.benchmark {spec.source} --tasks {' '.join(args.tasks)} "
        f"--seeds {args.seeds}`, {time.strftime('%Y-%m-%d')}, on {machine} "
        f"({os.cpu_count()} CPUs). Target: the paper's Adam at each task's last x; steps and "
        "seconds to it from the best setting's mean over the seeds (inf: not reached).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *(
            "| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in table.itertuples(index=False)
        ),
        "",
        "Files: tuning.csv (every trial's final cost), best.csv (the best setting's curves, every "
        "seed), summary.csv, best_of_k.csv, <task>.png.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def save_task(out: Path, task: str, tables: dict[str, pd.DataFrame]) -> None:
    """One task's rows into each of out/<name>.csv, replacing that task's earlier rows and
    keeping the other tasks' (written after every task: an interrupted benchmark keeps the
    tasks it finished)."""
    for name, rows in tables.items():
        path = out / f"{name}.csv"
        earlier = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["task"])
        kept = earlier[earlier["task"] != task] if "task" in earlier else earlier
        merged = pd.concat([d for d in (kept, rows) if not d.empty], ignore_index=True)
        merged.to_csv(path, index=False, float_format="%.6g")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("benchmark", __doc__)
    parser.add_argument("optimizer", type=Path, nargs="?", help="the optimizer's YAML")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--data-root", default=os.environ.get("ADAMREPRO_DATA", "data"))
    parser.add_argument("--runs", type=Path, default=Path("outputs/benchmark"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmark"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides, every run")
    parser.add_argument("--list", action="store_true", help="the tasks, their budgets, targets")
    args = parser.parse_args(argv)
    if args.list:
        for task in TASKS.values():
            print(
                f"{task.name:34s} budget {task.budget:2d}  target {task.target():.4g}  {task.title}"
            )
        return
    if args.optimizer is None:
        parser.error("give the optimizer's YAML (or --list)")
    try:
        print(benchmark(args).to_string(index=False))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
