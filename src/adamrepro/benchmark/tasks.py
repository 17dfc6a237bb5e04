"""The paper's tasks that a CPU runs in minutes, as the benchmark trains them.

Each task is an experiment of this project at a stated length, the figure it is drawn on, the
budget of trials the paper's optimizers get on it in our protocol (the largest grid of its
sweep: a user's search space larger than that is not run on the task), and the target: the
paper's Adam at the task's last x (its curve interpolated in log between the digitised
points; Figure 4: the best loss of bias-corrected Adam with beta1 0.9, beta2 0.999 at 10
epochs), which the time to target is measured against. A small problem's target is its
surface's minimum within the tolerance its figure states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..figures.plot import EXPERIMENTS, figure_spec

SMALL_STEPS = {"bowl": 500, "valley": 1000, "saddle": 600, "rosenbrock": 3000, "beale": 2000}


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    figure: str  # experiments/<figure>/: the paper's numbers, and the figure drawn
    overrides: tuple[str, ...]  # the experiment, at the task's length
    budget: int  # the paper's optimizers' largest grid on the task (our sweep)
    x_last: float  # the figure's x where the target is read
    target_curve: str = "Adam"
    kind: str = "curves"  # curves | markers (Figure 4) | surface (a small problem)
    extra: tuple[str, ...] = field(default_factory=tuple)  # overrides for speed only

    @property
    def spec(self) -> dict[str, Any]:
        return figure_spec(self.figure)

    @property
    def metric(self) -> str:
        """The column tuned on and compared: the figure's (a surface: f - f*, noise-free)."""
        if self.kind == "surface":
            return "test_loss"
        return str(self.spec["metric"]) if self.kind == "curves" else "train_cost"

    @property
    def x_offset(self) -> int:
        return int(self.spec["x"]["offset"]) if self.kind == "curves" else 0

    def paper_cell(self) -> pd.DataFrame:
        """Figure 4's markers of bias-corrected Adam, beta1 0.9, beta2 0.999, at 10 epochs."""
        paper = pd.read_csv(EXPERIMENTS / self.figure / "paper_markers.csv")
        return paper[
            (paper["epochs"] == 10)
            & (paper["beta1"] == 0.9)
            & (paper["beta2"] == 0.999)
            & (paper["bias_correction"] == "yes")
        ]

    def target(self) -> float:
        """The paper's Adam value the time to target is measured against."""
        if self.kind == "surface":
            return float(self.spec["tolerance"])
        if self.kind == "markers":
            return float(self.paper_cell()["loss"].min())
        paper = pd.read_csv(EXPERIMENTS / self.figure / "paper_curves.csv")
        curve = paper[paper["curve"] == self.target_curve].sort_values("x")
        return float(np.exp(np.interp(self.x_last, curve["x"], np.log(curve["y"].to_numpy(float)))))


def _small(surface: str) -> Task:
    return Task(
        name=f"small_{surface}",
        title=f"small problem: {surface}",
        figure=f"toy_{surface}",
        overrides=(
            "experiment=toy",
            f"model.surface={surface}",
            f"data.steps={SMALL_STEPS[surface]}",
        ),
        budget=9,
        x_last=math.nan,
        kind="surface",
    )


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "fig1_mnist_logreg",
            "Figure 1 (left): logistic regression, MNIST, 46 passes",
            "fig1_mnist_logreg",
            ("experiment=mnist_logreg",),
            budget=20,
            x_last=45.0,
        ),
        Task(
            "fig1_imdb_bow",
            "Figure 1 (right): logistic regression, IMDB BoW + dropout, 176 passes",
            "fig1_imdb_bow",
            ("experiment=imdb_bow",),
            budget=14,
            x_last=175.0,
            target_curve="Adam+dropout",
        ),
        Task(
            "fig2a_mnist_mlp_10",
            "Figure 2 (a)'s first passes: 2x1000 ReLU MLP + dropout, MNIST, to x = 10",
            "fig2a_mnist_mlp",
            ("experiment=mnist_mlp", "trainer.epochs=11"),
            budget=10,
            x_last=10.0,
        ),
        Task(
            "fig2b_mnist_mlp_deterministic_10",
            "Figure 2 (b)'s first passes: the MLP without dropout, MNIST, to x = 10",
            "fig2b_mnist_mlp_deterministic",
            ("experiment=mnist_mlp_deterministic", "trainer.epochs=10"),
            budget=3,
            x_last=10.0,
        ),
        Task(
            "fig4_vae_10",
            "Figure 4's 10-epoch block: the VAE on MNIST, 10 epochs",
            "fig4_vae_bias_correction",
            ("experiment=mnist_vae", "trainer.epochs=10"),
            budget=9,
            x_last=10.0,
            kind="markers",
        ),
        *(_small(surface) for surface in SMALL_STEPS),
    )
}
