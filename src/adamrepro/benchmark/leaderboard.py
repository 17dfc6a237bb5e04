"""The leaderboard: every benchmarked optimizer (results/benchmark/<label>/summary.csv) on the
tasks, ranked by AlgoPerf's performance profile.

For task t and optimizer o, s(t, o) is the seconds to the paper's Adam value (steps to it
times the time per step measured on this machine; infinite when missed or diverged). Its
ratio to the task's best, r(t, o) = s(t, o) / min_o s(t, o), gives the profile
rho_o(tau) = the fraction of the tasks with r(t, o) <= tau, for tau from 1 to TAU_MAX; the
score is its area over [1, TAU_MAX] divided by TAU_MAX - 1 (1: best on every task; 0: never
within TAU_MAX of the best). A task that an optimizer left out (its search space beyond the
task's budget) counts as missed, and the table says so.

`best_of_k` reads how much of a result is its tuning budget: from the final costs of a grid's
trials, the expected best after k trials drawn without replacement, with a bootstrap interval.

    python -m adamrepro.benchmark.leaderboard [--results results/benchmark]
        [--out results/LEADERBOARD.md]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import command_parser

TAU_MAX = 4.0


def collect(results: Path) -> pd.DataFrame:
    """One row per (optimizer, task) from every summary.csv under `results`."""
    frames = []
    for path in sorted(results.glob("*/summary.csv")):
        table = pd.read_csv(path)
        table.insert(0, "optimizer", path.parent.name)
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=["optimizer", "task", "status", "seconds_to_target"])
    return pd.concat(frames, ignore_index=True)


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """r(t, o): each optimizer's seconds to target over the task's best (inf when missed, or
    when no optimizer reached the target on the task); optimizers x tasks."""
    seconds = table.pivot_table(
        index="optimizer", columns="task", values="seconds_to_target", aggfunc="first"
    )
    seconds = seconds.astype(float).fillna(math.inf)
    best = seconds.min(axis=0)
    out = seconds / best.where(np.isfinite(best), np.nan)
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
    low, high = np.percentile(best, [5, 95])
    return mean, float(low), float(high)


def markdown(table: pd.DataFrame, r: pd.DataFrame, scores: pd.Series) -> str:
    tasks = list(r.columns)
    order = scores.sort_values(ascending=False).index
    lines = [
        "# Leaderboard: optimizers on the Adam paper's CPU-sized tasks",
        "",
        "Written by `python -m adamrepro.benchmark.leaderboard` from results/benchmark/*/"
        "summary.csv (each from `make benchmark OPTIMIZER=...`). Score: the area under the "
        f"performance profile over tau in [1, {TAU_MAX:g}] (AlgoPerf's), from each task's "
        "seconds to the paper's Adam value over the best optimizer's; inf: missed, diverged "
        "or left out.",
        "",
        "| rank | optimizer | score | " + " | ".join(tasks) + " |",
        "|---|---|---|" + "---|" * len(tasks),
    ]
    for rank, name in enumerate(order, 1):
        cells = [_ratio(r.loc[name, t]) for t in tasks]
        lines.append(f"| {rank} | {name} | {scores[name]:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "Final training cost (mean over the seeds of the best setting):", ""]
    finals = table.pivot_table(
        index="optimizer", columns="task", values="final_mean", aggfunc="first"
    )
    lines += ["| optimizer | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name in order:
        cells = [
            _cost(finals.loc[name, t]) if name in finals.index and t in finals.columns else "-"
            for t in tasks
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


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
    for name, row in rho.iterrows():
        ax.step(taus, row.to_numpy(), where="post", label=str(name))
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
    parser = command_parser("benchmark.leaderboard", __doc__)
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
    args.out.write_text(markdown(table, r, scores) + "\n![profiles](leaderboard_profiles.png)\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
