"""Claim P9's figure: Adam's sqrt(v-hat) per layer over training, against eps.

    python -m adamrepro.figures.plot fig3_cifar10_cnn_vhat --runs outputs/fig3_cpu --out results/...

experiments/<figure>/figure.yaml (`kind: moments`) names the runs' labels to draw and the
parameter tensors (one panel each). Of each label, the member with the lowest final training
cost (over its runs, when units trained its grid) is drawn: the median (solid) and 90th
percentile (dashed) of sqrt(v-hat) over the tensor's entries, from the record's
`moment_stats`, and eps (dotted).

Writes into --out: figure.png, moments.csv (every logged row of the drawn members), and
verdict.csv: per label and parameter, the last median of sqrt(v-hat), eps, and the fraction of
entries below eps at the end.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def final_costs(record: dict[str, Any]) -> dict[int, float]:
    """Each member's training cost at the run's last epoch (inf: diverged, or none there)."""
    last = max(r["epoch"] for r in record["curves"])
    final = {r["member"]: r["train_cost"] for r in record["curves"] if r["epoch"] == last}
    return {k: c if c is not None and math.isfinite(c) else math.inf for k, c in final.items()}


def selected_member(record: dict[str, Any]) -> tuple[int, float]:
    """The member with the lowest final training cost (diverged members never), and its cost."""
    final = final_costs(record)
    finite = {k: c for k, c in final.items() if c < math.inf}
    member = min(finite, key=finite.get) if finite else 0
    return member, finite.get(member, math.inf)


def moment_table(spec: dict[str, Any], used: list[tuple[Path, dict]]) -> pd.DataFrame:
    """Each label's selected member: in each run the member with the lowest final cost, and of
    several runs with the label (a grid trained in units) the run whose member ends lowest."""
    chosen: dict[str, tuple[float, pd.DataFrame]] = {}
    for path, record in used:
        label = record["members"][0].get("label") if record["members"] else None
        if label not in spec["labels"] or not record.get("moment_stats"):
            continue
        member, final = selected_member(record)
        rows = pd.DataFrame(record["moment_stats"])
        rows = rows[(rows["member"] == member) & rows["parameter"].isin(spec["parameters"])]
        rows.insert(0, "label", label)
        rows["stepsize"] = record["members"][member]["stepsize"]
        rows["run"] = str(path.parent)
        if label not in chosen or final < chosen[label][0]:
            chosen[label] = (final, rows)
    frames = [rows for _, rows in chosen.values()]
    if not frames:
        raise FileNotFoundError(
            f"no run labelled {', '.join(spec['labels'])} logged moment_stats "
            "(trainer.moment_stats_every)"
        )
    return pd.concat(frames, ignore_index=True)


def make_moment_figure(
    spec: dict[str, Any], used: list[tuple[Path, dict]], out: Path, note: str
) -> pd.DataFrame:
    table = moment_table(spec, used)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "moments.csv", index=False, float_format="%.6g")
    parameters = spec["parameters"]
    fig, axes = plt.subplots(
        1,
        len(parameters),
        figsize=(2.6 * len(parameters), 3.2),
        dpi=150,
        sharey=True,
        squeeze=False,
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    verdict = []
    for ax, parameter in zip(axes[0], parameters, strict=True):
        for i, label in enumerate(spec["labels"]):
            rows = table[(table["label"] == label) & (table["parameter"] == parameter)]
            if rows.empty:
                continue
            colour = colours[i % len(colours)]
            name = f"{label} ({rows['stepsize'].iloc[0]:g})"
            ax.plot(rows["epoch"], rows["median"], color=colour, lw=1.3, label=name)
            ax.plot(rows["epoch"], rows["p90"], color=colour, lw=1.0, ls="--")
            last = rows.iloc[-1]
            verdict.append(
                {
                    "label": label,
                    "parameter": parameter,
                    "epoch": last["epoch"],
                    "median_sqrt_vhat": last["median"],
                    "p90_sqrt_vhat": last["p90"],
                    "eps": last["eps"],
                    "fraction_below_eps": last["below_eps"],
                }
            )
        eps = table["eps"].iloc[0]
        ax.axhline(eps, color="0.3", ls=":", lw=1.0, label=f"eps = {eps:g}")
        ax.set_title(parameter, fontsize=7)
        ax.set_yscale(spec["y"].get("scale", "log"))
        ax.set_xlabel(spec["x"]["label"], fontsize=6)
        ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel(spec["y"]["label"], fontsize=6)
    axes[0][0].legend(fontsize=5.5)
    fig.suptitle(spec["title"], fontsize=8)
    if note:
        fig.text(0.01, 0.005, note, fontsize=5.5, color="0.3", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    fig.savefig(out / "figure.png")
    plt.close(fig)
    result = pd.DataFrame(verdict)
    result.to_csv(out / "verdict.csv", index=False, float_format="%.6g")
    return result
