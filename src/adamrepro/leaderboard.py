"""The leaderboard: every benchmarked optimizer (results/benchmark/<label>/summary.csv) on the
tasks, ranked by AlgoPerf's performance profile.

For task t and optimizer o, s(t, o) is the time to the paper's Adam value: its steps to it
times its time per step, in units of our Adam's step on the same task (the two measured
alternately in one process by the benchmark, so that a machine busier during one optimizer's
benchmark than another's moves neither; infinite when missed or diverged). Its
ratio to the task's best, r(t, o) = s(t, o) / min_o s(t, o), gives the profile
rho_o(tau) = the fraction of the tasks with r(t, o) <= tau, for tau from 1 to TAU_MAX; the
score is its area over [1, TAU_MAX] divided by TAU_MAX - 1 (1: best on every task; 0: never
within TAU_MAX of the best). A task that an optimizer left out (its search space beyond the
task's budget) counts as missed, and the table says so.

    python -m adamrepro.leaderboard [--results results/benchmark]
        [--out results/LEADERBOARD.md]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .benchmark.tasks import TASKS
from .errors import command_parser
from .report import Results, decide, load_claims

TAU_MAX = 4.0


def collect(results: Path) -> pd.DataFrame:
    """One row per (optimizer, task) from every summary.csv under `results`."""
    frames = []
    for path in sorted(results.glob("*/summary.csv")):
        table = pd.read_csv(path)
        table.insert(0, "optimizer", path.parent.name)
        frames.append(table)
    if not frames:
        return pd.DataFrame(
            columns=["optimizer", "task", "status", "seconds_to_target", "adam_steps_to_target"]
        )
    table = pd.concat(frames, ignore_index=True)
    return table.assign(adam_steps_to_target=adam_steps(table))


def adam_steps(table: pd.DataFrame) -> pd.Series:
    """The time to target in Adam steps: steps x the optimizer's time per step over Adam's,
    both measured side by side; a summary without the two times counts its seconds."""
    if {"steps_to_target", "seconds_per_step", "adam_seconds_per_step"} <= set(table.columns):
        relative = table["seconds_per_step"] / table["adam_seconds_per_step"]
        return (table["steps_to_target"] * relative).where(
            relative.notna(), table.get("seconds_to_target")
        )
    return table.get("seconds_to_target", pd.Series(math.inf, index=table.index))


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """r(t, o): each optimizer's time to target (in Adam steps) over the task's best (inf when
    missed, or when no optimizer reached the target on the task); optimizers x tasks."""
    time = table.pivot_table(
        index="optimizer", columns="task", values="adam_steps_to_target", aggfunc="first"
    )
    time = time.astype(float).fillna(math.inf)
    best = time.min(axis=0)
    out = time / best.where(np.isfinite(best), np.nan)
    return out.fillna(math.inf)


def profile(r: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """rho_o(tau): the fraction of the tasks within a factor tau of the best; optimizers x taus."""
    values = np.stack([(r.to_numpy() <= tau).mean(axis=1) for tau in taus], axis=1)
    return pd.DataFrame(values, index=r.index, columns=taus)


def score(r: pd.DataFrame, tau_max: float = TAU_MAX, points: int = 301) -> pd.Series:
    """The area under each optimizer's profile over [1, tau_max], over tau_max - 1."""
    taus = np.linspace(1.0, tau_max, points)
    rho = profile(r, taus).to_numpy()
    area = ((rho[:, 1:] + rho[:, :-1]) / 2 * np.diff(taus)).sum(axis=1)
    return pd.Series(area / (tau_max - 1.0), index=r.index, name="score")


# The figure claims about Adam that a benchmark task reaches (its length covers their x), and
# the task whose best curve takes Adam's place in them.
CLAIM_TASKS = {"P1": "fig1_mnist_logreg", "P2": "fig1_imdb_bow", "P3": "fig1_imdb_bow"}


def claims_in_adams_place(folder: Path, results: Path = Path("results")) -> list[dict[str, str]]:
    """The paper's claims about Adam re-decided with this optimizer's best curve (mean over
    its seeds) in Adam's place and our committed curves for the others, by the report's own
    rules."""
    best_path = folder / "best.csv"
    best = pd.read_csv(best_path) if best_path.is_file() else pd.DataFrame()
    claims = {c["id"]: c for c in load_claims()}
    rows = []
    for claim_id, task_name in CLAIM_TASKS.items():
        task = TASKS[task_name]
        mine = best[best["task"] == task_name] if not best.empty else best
        if mine.empty:
            rows.append({"claim": claim_id, "verdict": "-", "numbers": f"{task_name} not run"})
            continue
        curve = mine.groupby("x", as_index=False)[task.metric].mean()
        substitute = Substituted(results, task.figure, task.target_curve, curve)
        verdict = decide(substitute, claims[claim_id])
        rows.append({"claim": claim_id, "verdict": verdict.verdict, "numbers": verdict.numbers})
    return rows


class Substituted(Results):
    """Our committed results with one curve replaced by a benchmarked optimizer's."""

    def __init__(self, root: Path, figure: str, name: str, curve: pd.DataFrame) -> None:
        super().__init__(root)
        self.figure, self.name = figure, name
        self.replacement = curve.rename(columns={"x": "epoch"}).assign(curve=name)

    def curve(self, folder: str, name: str) -> pd.DataFrame | None:
        if folder == self.figure and name == self.name:
            return self.replacement.sort_values("epoch")
        return super().curve(folder, name)


def markdown(
    table: pd.DataFrame,
    r: pd.DataFrame,
    scores: pd.Series,
    claims: dict[str, list[dict[str, str]]] | None = None,
) -> str:
    tasks = list(r.columns)
    order = scores.sort_values(ascending=False).index
    lines = [
        "# Leaderboard: optimizers on the Adam paper's CPU-sized tasks",
        "",
        "Written by `python -m adamrepro.leaderboard` (`make leaderboard`) from "
        "results/benchmark/*/summary.csv (each from `make benchmark OPTIMIZER=...`). Score: "
        "the area under the "
        f"performance profile over tau in [1, {TAU_MAX:g}] (AlgoPerf's), from each task's "
        "time to the paper's Adam value (steps x its time per step over Adam's, measured side "
        "by side) over the best optimizer's; inf: missed, diverged "
        "or left out.",
        "",
        f"Tasks here: {len(tasks)} of the benchmark's {len(TASKS)}"
        + (
            f"; not run yet: {', '.join(t for t in TASKS if t not in tasks)}."
            if len(tasks) < len(TASKS)
            else "."
        ),
        "",
        "| rank | optimizer | score | " + " | ".join(tasks) + " |",
        "|---|---|---|" + "---|" * len(tasks),
    ]
    for rank, name in enumerate(order, 1):
        cells = [_ratio(r.loc[name, t]) for t in tasks]
        lines.append(f"| {rank} | {name} | {scores[name]:.3f} | " + " | ".join(cells) + " |")
    finals = table.pivot_table(
        index="optimizer", columns="task", values="final_mean", aggfunc="first"
    )
    for t in tasks:  # a target nobody reaches ranks nobody on the task: say how far off
        if not np.isfinite(r[t].to_numpy(float)).any() and t in finals.columns:
            best = finals[t].astype(float).idxmin()
            target = float(TASKS[t].target()) if t in TASKS else math.nan
            lines += [
                "",
                f"No optimizer reached the target on {t}: the lowest final cost, {best}'s "
                f"{finals.loc[best, t]:.4g}, is {finals.loc[best, t] / target - 1:.1%} above "
                f"the paper's Adam value {target:.4g}; the task ranks none of them.",
            ]
    lines += ["", "Final training cost (mean over the seeds of the best setting):", ""]
    lines += ["| optimizer | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name in order:
        cells = [
            _cost(finals.loc[name, t]) if name in finals.index and t in finals.columns else "-"
            for t in tasks
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    if claims:
        ids = list(CLAIM_TASKS)
        lines += [
            "The tuning each had (trials per task, seeds of the best setting), and the paper's "
            "claims about Adam re-decided with each optimizer in Adam's place (the report's "
            "rules; our committed curves for the others):",
            "",
            "| optimizer | trials | seeds | " + " | ".join(ids) + " |",
            "|---|---|---|" + "---|" * len(ids),
        ]
        for name in order:
            mine = table[table["optimizer"] == name]
            trials = _joined(mine.get("trials"))
            seeds = _joined(mine.get("seeds"))
            verdicts = {row["claim"]: row["verdict"] for row in claims.get(str(name), [])}
            cells = [verdicts.get(i, "-") for i in ids]
            lines.append(f"| {name} | {trials} | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _joined(values: Any) -> str:
    if values is None:
        return "-"
    distinct = sorted({int(v) for v in values.dropna()})
    return ", ".join(str(v) for v in distinct) or "-"


def _ratio(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.2f}"


def _cost(value: Any) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
    )


def draw(r: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = np.linspace(1.0, TAU_MAX, 301)
    rho = profile(r, taus)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=150)
    order = score(r).sort_values(ascending=False).index  # the legend in the board's order
    for i, name in enumerate(order):
        ax.step(
            taus,
            rho.loc[name].to_numpy(),
            where="post",
            color=f"C{i % 10}",
            ls=("-", "--", ":")[i // 10 % 3],
            label=str(name),
        )
    ax.set_xlabel("tau: within this factor of the best time to target")
    ax.set_ylabel("fraction of tasks")
    ax.set_xlim(1, TAU_MAX)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("Performance profiles on the Adam paper's tasks", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("leaderboard", __doc__)
    parser.add_argument("--results", type=Path, default=Path("results/benchmark"))
    parser.add_argument("--out", type=Path, default=Path("results/LEADERBOARD.md"))
    args = parser.parse_args(argv)
    table = collect(args.results)
    if table.empty:
        print(f"error: no summary.csv under {args.results}", file=sys.stderr)
        sys.exit(2)
    r = ratios(table)
    scores = score(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw(r, args.out.with_name("leaderboard_profiles.png"))
    claims = {
        folder.name: claims_in_adams_place(folder)
        for folder in sorted(args.results.glob("*"))
        if (folder / "summary.csv").is_file()
    }
    text = markdown(table, r, scores, claims)
    args.out.write_text(text + "\n![profiles](leaderboard_profiles.png)\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
