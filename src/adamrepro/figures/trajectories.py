"""Paths of the optimizers on a 2-D surface: the contour plot, an animation, and the numbers
behind the tutorials' claims (path length, zig-zags, steps to a tolerance, time at a saddle).

    python -m adamrepro.figures.plot toy_bowl --runs outputs/small_problems/bowl --out results/...

experiments/toy_<surface>/figure.yaml (`kind: trajectories`) names the surface, the tolerance
and, for a saddle, the radius of its neighbourhood. The runs are one population per optimizer
(its stepsize grid) with every step's position logged (`trainer.step_log_parameters`).

Selection rule, per optimizer: the stepsize whose path reaches f - f* < tolerance, and stays
there to the end, in the fewest steps; if none does, the lowest f - f* at the end (diverged
members never).

Writes into --out: figure.png (contours, every selected path, start and minimum),
animation.gif (the paths drawn step by step), paths.csv (the selected paths), metrics.csv
(every member: steps to the tolerance, final gap, path length and its ratio to the straight
distance, zig-zags, and at a saddle the steps spent near it and after it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import torch

from ..models.surfaces import SURFACES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402


def member_paths(record: dict[str, Any]) -> np.ndarray:
    """(members, steps + 1, 2): every member's position from theta_0 on."""
    logged = record["step_parameters"]
    initial = np.asarray(logged["initial"], dtype=float)[None]
    return np.concatenate([initial, np.asarray(logged["values"], dtype=float)]).transpose(1, 0, 2)


def path_metrics(
    path: np.ndarray, surface: Any, tolerance: float, radius: float | None
) -> dict[str, float]:
    """Numbers of one path (steps + 1, 2) on `surface`."""
    xs, ys = torch.from_numpy(path[:, 0]), torch.from_numpy(path[:, 1])
    gap = (surface.f(xs, ys) - surface.f_min).numpy()
    finite = np.isfinite(gap)
    outside = np.flatnonzero(~(finite & (gap < tolerance)))
    # reached: within the tolerance from this step to the end (a path that only passes through
    # it, and leaves again, has not reached it)
    first_for_good = int(outside[-1]) + 1 if len(outside) else 0
    reached = np.arange(first_for_good, len(gap))
    steps = np.diff(path, axis=0)
    length = float(np.sum(np.linalg.norm(steps, axis=1))) if finite.all() else math.inf
    straight = float(np.linalg.norm(path[0] - np.asarray(surface.minimum)))
    # zig-zags: direction reversals across the valley (the steepest coordinate at the start)
    across = int(np.argmax(np.abs(np.asarray(surface.gradient(*map(torch.tensor, path[0]))))))
    moves = steps[:, across]
    moves = moves[np.abs(moves) > 1e-12]
    metrics = {
        "steps_to_tolerance": int(reached[0]) if len(reached) else math.inf,
        "final_gap": float(gap[-1]) if finite[-1] else math.inf,
        "path_length": length,
        "path_ratio": length / straight if straight > 0 else math.nan,
        "zigzags": int(np.sum(np.sign(moves[1:]) != np.sign(moves[:-1]))),
    }
    if radius is not None and surface.saddle is not None:
        near = np.linalg.norm(path - np.asarray(surface.saddle), axis=1) < radius
        inside = np.flatnonzero(near)
        left = int(inside[-1]) + 1 if len(inside) else 0  # after this step it never returns
        metrics["steps_near_saddle"] = int(near.sum())
        metrics["left_saddle_at"] = left if left < len(path) else math.inf
        after = reached[reached >= left] if len(inside) else reached
        metrics["steps_after_saddle"] = int(after[0] - left) if len(after) else math.inf
    return metrics


def trajectory_tables(spec: dict[str, Any], used: list[tuple[Path, dict]]) -> tuple[Any, Any]:
    """Every member's metrics, and the selected path of each optimizer."""
    surface = SURFACES[spec["surface"]]
    rows, paths = [], []
    for path, record in used:
        if "step_parameters" not in record:
            continue
        all_paths = member_paths(record)
        diverged = {int(k) for k in record.get("diverged", {})}
        for k, member in enumerate(record["members"]):
            metrics = path_metrics(all_paths[k], surface, spec["tolerance"], spec.get("radius"))
            if k in diverged:
                metrics.update(steps_to_tolerance=math.inf, final_gap=math.inf)
            label = member.get("label", member["name"])
            rows.append(
                {
                    "label": label,
                    "stepsize": member["stepsize"],
                    "member": k,
                    "run": str(path.parent),
                    **metrics,
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        raise FileNotFoundError("no run logged its positions (trainer.step_log_parameters)")
    order = table.sort_values(["steps_to_tolerance", "final_gap", "stepsize"])
    selected = order.groupby("label", sort=False).head(1).sort_values("label")
    records = {str(p.parent): r for p, r in used}
    for row in selected.itertuples():
        points = member_paths(records[row.run])[row.member]
        xs, ys = torch.from_numpy(points[:, 0]), torch.from_numpy(points[:, 1])
        paths.append(
            pd.DataFrame(
                {
                    "label": row.label,
                    "stepsize": row.stepsize,
                    "step": np.arange(len(points)),
                    "x": points[:, 0],
                    "y": points[:, 1],
                    "f": surface.f(xs, ys).numpy(),
                }
            )
        )
    table["selected"] = table.index.isin(selected.index)
    return table, pd.concat(paths, ignore_index=True)


def _contours(ax: Any, surface: Any) -> None:
    x0, x1, y0, y1 = surface.box
    grid_x, grid_y = torch.meshgrid(
        torch.linspace(x0, x1, 300, dtype=torch.float64),
        torch.linspace(y0, y1, 300, dtype=torch.float64),
        indexing="xy",
    )
    values = (surface.f(grid_x, grid_y) - surface.f_min).numpy()
    levels = np.logspace(np.log10(max(values.min(), 0) + 1e-3), np.log10(values.max()), 25)
    ax.contour(
        grid_x.numpy(),
        grid_y.numpy(),
        values + 1e-12,
        levels=levels,
        cmap="Greys",
        linewidths=0.5,
        norm=matplotlib.colors.LogNorm(),
    )
    ax.plot(*surface.start, "ko", ms=4)
    ax.plot(*surface.minimum, "k*", ms=9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def make_trajectory_figure(
    spec: dict[str, Any], used: list[tuple[Path, dict]], out: Path, note: str
) -> pd.DataFrame:
    surface = SURFACES[spec["surface"]]
    table, paths = trajectory_tables(spec, used)
    out.mkdir(parents=True, exist_ok=True)
    table.drop(columns=["run"]).to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    paths.to_csv(out / "paths.csv", index=False, float_format="%.6g")
    labels = list(dict.fromkeys(paths["label"]))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(6.2, 4.6), dpi=150)
    _contours(ax, surface)
    lines = {}
    for i, label in enumerate(labels):
        mine = paths[paths["label"] == label]
        name = f"{label} ({mine['stepsize'].iloc[0]:g})"
        (lines[label],) = ax.plot(
            mine["x"], mine["y"], color=colours[i % len(colours)], lw=1.2, label=name, alpha=0.9
        )
    ax.set_title(f"{spec['title']}: f = {surface.formula}", fontsize=8)
    ax.legend(fontsize=6, loc="best")
    if note:
        fig.text(0.01, 0.005, note, fontsize=5.5, color="0.3", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(out / "figure.png")
    steps = int(paths["step"].max())
    frames = np.unique(np.linspace(0, steps, min(steps + 1, spec.get("frames", 40))).astype(int))

    def show(frame: int) -> list:
        for label, line in lines.items():
            mine = paths[(paths["label"] == label) & (paths["step"] <= frame)]
            line.set_data(mine["x"], mine["y"])
        ax.set_title(f"{spec['title']}: step {frame}", fontsize=8)
        return list(lines.values())

    animation = FuncAnimation(fig, show, frames=frames, blit=False)
    animation.save(out / "animation.gif", writer=PillowWriter(fps=12), dpi=72)
    plt.close(fig)
    return table[table["selected"]].drop(columns=["run", "selected"])
