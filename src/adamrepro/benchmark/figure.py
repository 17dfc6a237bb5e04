"""A benchmarked optimizer drawn on a task's figure: over the paper's curves and our committed
ones (results/<figure>/curves.csv), its best setting's mean over the seeds with their range;
Figure 4's block as the loss against log10(stepsize) of every trial beside the paper's
bias-corrected Adam at beta1 0.9, beta2 0.999. Small problems have no figure here (their
paths are the trajectories study's)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..figures.plot import draw
from .tasks import Task


def draw_task(
    task: Task,
    label: str,
    best: pd.DataFrame,
    tuning: pd.DataFrame,
    out: Path,
    results: Path = Path("results"),
) -> Path | None:
    """The task's figure into `out` (its path), or None for a small problem."""
    if task.kind == "surface":
        return None
    path = out / f"{task.name}.png"
    if task.kind == "markers":
        _markers(task, label, tuning, path)
        return path
    spec = copy.deepcopy(task.spec)
    metric = spec["metric"]
    committed = results / task.figure / "curves.csv"
    ours = pd.read_csv(committed) if committed.is_file() else pd.DataFrame(columns=["curve"])
    curves = {name: part for name, part in ours.groupby("curve") if name in spec["curves"].values()}
    grouped = best.groupby("x")[metric]
    mine = pd.DataFrame({"epoch": grouped.mean().index, metric: grouped.mean().to_numpy()})
    seeds = int(best["seed"].nunique())
    extra = {f"{label} (best of its grid, mean of {seeds} seeds)": mine}
    low, high = spec["x"]["lim"]
    spec["x"]["lim"] = [low, min(high, task.x_last)]
    note = (
        f"{task.title}; dashed: the paper; solid: ours (committed, results/{task.figure}); "
        f"dotted: {label}"
    )
    draw(spec, curves, extra, path, note)
    return path


def _markers(task: Task, label: str, tuning: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cell = task.paper_cell()
    key = next(c for c in tuning.columns if c not in ("task", "final"))
    values = tuning[key].to_numpy()
    numeric = np.array([isinstance(v, (int, float)) and v > 0 for v in values])
    fig, ax = plt.subplots(figsize=(5, 4), dpi=150)
    ax.plot(cell["log10_alpha"], cell["loss"], "o--", color="red", label="Adam (paper)")
    if numeric.all():
        finals = tuning["final"].to_numpy(float)
        shown = np.where(np.isfinite(finals), finals, math.nan)
        ax.plot(np.log10(values.astype(float)), shown, "s:", color="C0", label=label)
        ax.set_xlabel(f"log10({key})")
    ax.set_ylim(95, 140)
    ax.set_ylabel("loss after 10 epochs")
    ax.set_title(f"{task.title}: every trial", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, lw=0.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
