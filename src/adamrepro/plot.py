"""Merge run records, select the best setting per optimizer, and draw a figure of the paper
with the paper's own curves overlaid.

    python -m adamrepro.plot fig1_mnist_logreg --runs outputs/fig1_mnist_logreg \
        --out results/fig1_mnist_logreg

The figure's axes, title and legend names are read from experiments/<figure>/figure.yaml,
the paper's curves from experiments/<figure>/paper_curves.csv. Writes into --out:
    figure.png    ours solid, the paper's dashed in the same colour
    curves.csv    the selected curves: curve (the paper's legend name), epoch (the paper's x:
                  the (epoch+1)-th pass over the data), train_cost (mean over seeds of the mean
                  minibatch cost during that pass), its min and max over seeds, and the
                  full-training-set cost, test loss and accuracy at the pass's end
    selected.csv  the setting chosen for each curve, with its final cost
    grid.csv      every member of every run: settings, seed, final cost, divergence
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from omegaconf import OmegaConf

from .records import load_records

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
# Columns of the tidy table that are results or bookkeeping, not settings of a member.
NOT_SETTINGS = {
    "run",
    "member",
    "epoch",
    "train_cost",
    "train_cost_full",
    "test_loss",
    "test_accuracy",
    "wall_time_s",
    "status",
    "seed",
    "diverged_at_step",
    "label",
}
METRICS = ["train_cost", "train_cost_full", "test_loss", "test_accuracy"]


def figure_spec(name: str) -> dict[str, Any]:
    path = EXPERIMENTS / name / "figure.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in EXPERIMENTS.glob("*/figure.yaml"))
        raise SystemExit(f"error: no figure {name!r} (known: {', '.join(known)})")
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    spec["dir"] = path.parent
    return spec  # type: ignore[return-value]


def setting_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in NOT_SETTINGS]


def final_costs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per member of every run: its settings, seed, final train_cost, divergence.
    A member that diverged, or ended on a non-finite cost, has final cost +inf."""
    last = table[table["epoch"] == table.groupby(["run", "member"])["epoch"].transform("max")]
    last = last.copy()
    bad = last["diverged_at_step"].notna() | ~last["train_cost"].apply(math.isfinite)
    last["final_cost"] = last["train_cost"].where(~bad, math.inf)
    last["diverged"] = bad
    return last.drop(columns=[c for c in METRICS if c != "train_cost"]).reset_index(drop=True)


def select_best(table: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """For each curve, the setting with the lowest final mean training cost, averaged over its
    seeds. Diverged members count as +inf, so a setting with any diverged seed loses; ties go
    to the first setting in the order of the records (the smaller stepsize in our grids)."""
    finals = final_costs(table)
    finals["curve"] = finals["label"].map(names)
    finals = finals[finals["curve"].notna()]
    keys = ["curve", "run", *setting_columns(finals.drop(columns=["final_cost", "diverged"]))]
    keys = [k for k in dict.fromkeys(keys) if k not in ("curve",)]
    per_setting = (
        finals.groupby(["curve", *keys], dropna=False, sort=False)
        .agg(
            final_cost=("final_cost", "mean"),
            seeds=("seed", "nunique"),
            diverged=("diverged", "sum"),
        )
        .reset_index()
    )
    best = per_setting.loc[per_setting.groupby("curve", sort=False)["final_cost"].idxmin()]
    return best.reset_index(drop=True)


def selected_curves(table: pd.DataFrame, best: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The per-epoch curves of the selected settings, averaged over seeds."""
    table = table.assign(curve=table["label"].map(names))
    frames = []
    for _, choice in best.iterrows():
        mask = (table["curve"] == choice["curve"]) & (table["run"] == choice["run"])
        for column in setting_columns(best.drop(columns=["final_cost", "seeds", "diverged"])):
            if column in ("curve", "run"):
                continue
            value = choice[column]
            mask &= table[column].isna() if pd.isna(value) else table[column] == value
        rows = table[mask]
        grouped = rows.groupby("epoch")
        curve = grouped[METRICS].mean()
        curve["train_cost_min"] = grouped["train_cost"].min()
        curve["train_cost_max"] = grouped["train_cost"].max()
        curve["seeds"] = grouped["seed"].nunique()
        curve = curve.reset_index()
        curve.insert(0, "curve", choice["curve"])
        curve["epoch"] = curve["epoch"] - 1  # the paper's x: pass k+1 is drawn at x = k
        frames.append(curve)
    columns = [
        "curve",
        "epoch",
        "train_cost",
        "train_cost_min",
        "train_cost_max",
        "seeds",
        "train_cost_full",
        "test_loss",
        "test_accuracy",
    ]
    return pd.concat(frames, ignore_index=True)[columns]


def draw(
    spec: dict[str, Any], ours: pd.DataFrame, paper: pd.DataFrame, path: Path, note: str = ""
) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 4.2), dpi=150)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(spec["curves"].values()):
        colour = colours[i % len(colours)]
        mine = ours[ours["curve"] == name]
        if len(mine):
            ax.plot(mine["epoch"], mine["train_cost"], color=colour, lw=1.6, label=f"{name} (ours)")
            if mine["seeds"].max() > 1:
                ax.fill_between(
                    mine["epoch"],
                    mine["train_cost_min"],
                    mine["train_cost_max"],
                    color=colour,
                    alpha=0.2,
                    lw=0,
                )
        theirs = paper[paper["curve"] == name]
        if len(theirs):
            ax.plot(
                theirs["x"], theirs["y"], color=colour, lw=1.2, ls="--", label=f"{name} (paper)"
            )
    ax.set_xlim(*spec["x"]["lim"])
    ax.set_ylim(*spec["y"]["lim"])
    ax.set_yscale(spec["y"].get("scale", "linear"))
    ax.set_xlabel(spec["x"]["label"])
    ax.set_ylabel(spec["y"]["label"])
    ax.set_title(spec["title"])
    ax.legend(fontsize=7, ncol=2 if len(spec["curves"]) > 3 else 1)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def make_figure(name: str, runs: list[str], out: Path, note: str = "") -> pd.DataFrame:
    spec = figure_spec(name)
    names: dict[str, str] = spec["curves"]
    table = load_records(runs)
    best = select_best(table, names)
    curves = selected_curves(table, best, names)
    paper = pd.read_csv(spec["dir"] / "paper_curves.csv")
    out.mkdir(parents=True, exist_ok=True)
    finals = final_costs(table)
    finals.insert(0, "curve", finals["label"].map(names))
    finals.drop(columns=["label", "train_cost"]).to_csv(out / "grid.csv", index=False)
    best.to_csv(out / "selected.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False, float_format="%.6g")
    draw(spec, curves, paper, out / "figure.png", note)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m adamrepro.plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("figure", help="a folder name under experiments/, e.g. fig1_mnist_logreg")
    parser.add_argument("--runs", nargs="+", required=True, help="run folders or record files")
    parser.add_argument("--out", type=Path, required=True, help="where to write the results")
    parser.add_argument("--note", default="", help="a line printed under the figure")
    args = parser.parse_args(argv)
    try:
        best = make_figure(args.figure, args.runs, args.out, args.note)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(best.drop(columns=["run"]).dropna(axis=1, how="all").to_string(index=False))
    print(f"wrote {args.out}/figure.png, curves.csv, selected.csv, grid.csv")


if __name__ == "__main__":
    main()
