"""Figure 4's layout: the loss of every grid point after a given number of epochs, as markers
against log10(stepsize), with and without bias correction, one panel per (beta1, beta2).

    python -m adamrepro.figures.plot fig4_vae_bias_correction --runs outputs/fig4_vae \
        --out results/...

experiments/<figure>/figure.yaml (`kind: markers`) gives `epochs` (one block of panels each),
`rows` and `columns` (one setting each) and the axes; paper_markers.csv the paper's markers
(a missing point is one the paper drew off the chart). A point of ours above the chart, or a
diverged member, is drawn as a triangle on the chart's top edge, as the paper leaves them out.

Writes into --out:
    figure.png   ours filled (red: bias correction, green: none), the paper's hollow
    markers.csv  every member at each block's epoch: settings, loss (mean -ELBO over the pass),
                 off_chart
    compare.csv  at each of the paper's marker positions: the paper's loss (empty = off the
                 chart) beside ours
    sources.json the runs behind the figure
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {True: "tab:red", False: "tab:green"}


def panel(
    frame: pd.DataFrame, epochs_key: str, epochs: int, settings: dict[str, float]
) -> pd.DataFrame:
    """The rows of one panel: one block's epochs and one value of each panel setting."""
    keep = frame[epochs_key] == epochs
    for key, value in settings.items():
        keep &= np.isclose(frame[key].astype(float), value)
    return frame[keep]


def marker_table(table: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """One row per member and block: the training loss at the block's epoch, with its
    settings. Blocks beyond the runs' length are left out, except that runs shorter than the
    first block fill it with their last epoch (drawn with that epoch in the title)."""
    (row_key,), (col_key,) = spec["rows"], spec["columns"]
    last = int(table["epoch"].max())
    frames = []
    for k, wanted in enumerate(spec["epochs"]):
        if int(wanted) > last and k > 0:
            continue
        epoch = min(int(wanted), last)
        at = table[table["epoch"] == epoch]
        frames.append(
            pd.DataFrame(
                {
                    "block_epochs": int(wanted),
                    "epoch": epoch,
                    row_key: at[row_key].astype(float),
                    col_key: at[col_key].astype(float),
                    "bias_correction": at["bias_correction"].astype(bool),
                    "stepsize": at["stepsize"].astype(float),
                    "log10_stepsize": np.log10(at["stepsize"].astype(float)),
                    "loss": at["train_cost"].astype(float),
                }
            )
        )
    markers = pd.concat(frames, ignore_index=True)
    top = spec["y"]["lim"][1]
    markers["off_chart"] = ~np.isfinite(markers["loss"]) | (markers["loss"] > top)
    return markers.sort_values(["block_epochs", row_key, col_key, "bias_correction", "stepsize"])


def compare(markers: pd.DataFrame, paper: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """At each grid position where the paper could draw a marker (its stepsizes), the paper's
    loss (NaN: off its chart) beside ours at the nearest stepsize of our grid."""
    (row_key,), (col_key,) = spec["rows"], spec["columns"]
    positions = sorted(paper["log10_alpha"].round(1).unique())
    rows = []
    for keys, ours in markers.groupby(["block_epochs", row_key, col_key, "bias_correction"]):
        epochs, r, c, bc = keys
        theirs = panel(paper, "epochs", epochs, {row_key: r, col_key: c})
        theirs = theirs[theirs["bias_correction"] == bc]
        for x in positions:
            near = ours.iloc[(ours["log10_stepsize"] - x).abs().argmin()]
            match = theirs[(theirs["log10_alpha"] - x).abs() < 0.1]
            rows.append(
                {
                    "epochs": epochs,
                    row_key: r,
                    col_key: c,
                    "bias_correction": bc,
                    "log10_stepsize": round(float(near["log10_stepsize"]), 2),
                    "paper_loss": float(match["loss"].iloc[0]) if len(match) else math.nan,
                    "our_loss": float(near["loss"]),
                    "our_epoch": int(near["epoch"]),
                }
            )
    return pd.DataFrame(rows)


def draw(
    markers: pd.DataFrame, paper: pd.DataFrame, spec: dict[str, Any], path: Path, note: str = ""
) -> None:
    (row_key, row_values), (col_key, col_values) = *spec["rows"].items(), *spec["columns"].items()
    blocks = list(spec["epochs"])
    n_rows, n_cols = len(blocks) * len(row_values), len(col_values)
    size = (3.0 * n_cols, 2.2 * n_rows + 0.6)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=size,
        dpi=130,
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    low, top = spec["y"]["lim"]
    for b, wanted in enumerate(blocks):
        for i, r in enumerate(row_values):
            for j, c in enumerate(col_values):
                ax = axes[b * len(row_values) + i, j]
                settings = {row_key: r, col_key: c}
                mine = panel(markers, "block_epochs", wanted, settings)
                theirs = panel(paper, "epochs", wanted, settings)
                for bc, colour in COLOURS.items():
                    ours = mine[mine["bias_correction"] == bc]
                    on = ours[~ours["off_chart"]]
                    ax.plot(on["log10_stepsize"], on["loss"], "o-", color=colour, ms=3.5, lw=1)
                    off = ours[ours["off_chart"]]
                    shift = -0.06 if bc else 0.06  # side by side where both are off
                    if len(off):  # (an empty unclipped line would span the whole figure)
                        ax.plot(
                            off["log10_stepsize"] + shift,
                            np.full(len(off), top),
                            "^",
                            color=colour,
                            ms=4.5,
                            clip_on=False,
                        )
                    p = theirs[theirs["bias_correction"] == bc]
                    ax.plot(
                        p["log10_alpha"],
                        p["loss"],
                        "o",
                        mfc="none",
                        color=colour,
                        ms=7,
                        mew=1.2,
                        alpha=0.8,
                    )
                if mine.empty:
                    ax.text(
                        0.5,
                        0.5,
                        "ours: not run",
                        transform=ax.transAxes,
                        ha="center",
                        color="0.5",
                        fontsize=8,
                    )
                    after = f"{wanted} epochs"
                else:
                    epoch = int(mine["epoch"].max())
                    after = f"{epoch} epochs" + ("" if epoch == wanted else f" (paper {wanted})")
                ax.set_title(f"{row_key}={r:g}, {col_key}={c:g}", fontsize=7)
                ax.set_xlim(*spec["x"]["lim"])
                ax.set_ylim(low, top)
                ax.tick_params(labelsize=6)
                if j == 0:
                    ax.set_ylabel(f"after {after}\n{spec['y']['label']}", fontsize=7)
                if b * len(row_values) + i == n_rows - 1:
                    ax.set_xlabel(spec["x"]["label"], fontsize=7)
    handles = [
        plt.Line2D([], [], color="tab:red", marker="o", label="ours, bias correction"),
        plt.Line2D([], [], color="tab:green", marker="o", label="ours, no bias correction"),
        plt.Line2D([], [], color="0.3", marker="o", mfc="none", ls="", label="paper (hollow)"),
        plt.Line2D([], [], color="0.3", marker="^", ls="", label="ours above the chart / diverged"),
    ]
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncol=4,
        fontsize=7,
        frameon=False,
        title=spec["title"],
        title_fontsize=9,
    )
    if note:
        fig.supxlabel(note, fontsize=6, color="0.3", wrap=True)
    fig.savefig(path)
    plt.close(fig)


def make_marker_figure(
    spec: dict[str, Any], table: pd.DataFrame, out: Path, note: str = ""
) -> pd.DataFrame:
    """Write figure.png, markers.csv and compare.csv into `out`; return the comparison."""
    paper = spec["paper"].assign(bias_correction=spec["paper"]["bias_correction"].eq("yes"))
    markers = marker_table(table, spec)
    comparison = compare(markers, paper, spec)
    out.mkdir(parents=True, exist_ok=True)
    markers.to_csv(out / "markers.csv", index=False, float_format="%.6g")
    comparison.to_csv(out / "compare.csv", index=False, float_format="%.6g")
    draw(markers, paper, spec, out / "figure.png", note)
    return comparison


SETTINGS = ["beta1", "beta2", "bias_correction", "stepsize"]


def settings_of(index: tuple) -> dict[str, Any]:
    beta1, beta2, bias_correction, stepsize = index
    return {
        "beta1": float(beta1),
        "beta2": float(beta2),
        "bias_correction": bool(bias_correction),
        "stepsize": float(stepsize),
    }


def agreement(markers: pd.DataFrame, reference: pd.DataFrame, block: int) -> dict[str, Any]:
    """One block of two marker tables (markers.csv) of the same grid, member by member: how
    many members are on the chart in both, the median and largest |difference| of their
    losses, and the members on the chart in one table and off it in the other. For the same
    runs trained two ways (Figure 4's 100-epoch units at epoch 10 in bf16-mixed, beside the
    committed float32 10-epoch block)."""

    def at(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["block_epochs"] == block].copy()
        for flag in ("bias_correction", "off_chart"):  # bool, or read back from a CSV as text
            frame[flag] = frame[flag].astype(str).str.lower() == "true"
        frame["stepsize"] = frame["stepsize"].astype(float).round(12)
        return frame[[*SETTINGS, "loss", "off_chart"]]

    joined = at(markers).merge(at(reference), on=SETTINGS, suffixes=("", "_reference"))
    joined = joined.set_index(SETTINGS)
    off, off_reference = joined["off_chart"], joined["off_chart_reference"]
    both = joined[~off & ~off_reference]
    difference = (both["loss"] - both["loss_reference"]).abs()
    return {
        "block": block,
        "members": len(joined),
        "on_chart_in_both": len(both),
        "median_abs_difference": float(difference.median()) if len(both) else math.nan,
        "largest_abs_difference": float(difference.max()) if len(both) else math.nan,
        "largest_at": settings_of(difference.idxmax()) if len(both) else {},
        "on_chart_in_one_only": [
            {
                **settings_of(index),
                "loss": row["loss"],
                "loss_reference": row["loss_reference"],
            }
            for index, row in joined[off != off_reference].iterrows()
        ],
    }


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m adamrepro.figures.markers",
        description="two markers.csv of one grid, member by member, at one block",
    )
    parser.add_argument("markers", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--block", type=int, default=10)
    args = parser.parse_args(argv)
    for path in (args.markers, args.reference):
        if not path.is_file():
            raise SystemExit(f"error: no such file: {path}")
    result = agreement(pd.read_csv(args.markers), pd.read_csv(args.reference), args.block)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
