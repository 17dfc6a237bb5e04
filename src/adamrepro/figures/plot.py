"""Merge run records, select the best setting per optimizer, and draw a figure of the paper
with the paper's own curves overlaid.

    python -m adamrepro.figures.plot fig1_mnist_logreg --runs outputs/fig1_mnist_logreg \
        --out results/fig1_mnist_logreg

experiments/<figure>/figure.yaml gives the axes, the title and `curves` (our optimizer label ->
the paper's legend name); `compare` (label -> a paper legend name) names runs that are not
among the figure's curves but are measured against one of the paper's, and drawn dotted at
their setting closest to it. experiments/<figure>/paper_curves.csv holds the paper's curves.
Optional keys: `metric` (the record column drawn and selected on; default train_cost, the mean
minibatch cost during a pass), `x.offset` (x = epoch - offset; default 1: pass k+1 is drawn at
k; 0 with a cost evaluated at a pass's end: x = k after k passes, x = 0 before training),
`paper_left_out` (the paper's points that no distance uses, each with `curve`, `x`, `why`) and
`walltime` (a second figure against wall-clock time in units of one curve's time per pass).

Selection rule: for each curve, the setting with the lowest final value of the metric,
averaged over its seeds; a setting with a diverged (or non-finite) seed counts as +inf; ties
go to the setting met first (the smaller stepsize, in the order of our grids).

Writes into --out:
    figure.png    ours solid (band: min-max over seeds), the paper's dashed in the same colour
    figure_walltime.png  (figures with `walltime`) the same curves against wall-clock time
    figure_first_epochs.png, steps.csv  (figures with `steps`, e.g. Figure 3 left) the first
                  epochs step by step, from the per-step costs of the selected settings
    curves.csv    the selected curves: curve (the paper's legend name), epoch (the paper's x:
                  pass k+1 over the data is drawn at k, unless x.offset says otherwise),
                  train_cost (mean over seeds of the mean minibatch cost during that pass),
                  the metric's min and max over seeds (<metric>_min, <metric>_max), seeds,
                  the full-training-set cost, test loss and accuracy at the pass's end, and
                  wall_time_s (mean over seeds; cumulative, of the run)
    selected.csv  the setting chosen for each curve, with its final cost
    grid.csv      every setting of every run: settings, seeds, final cost, divergence, and
                  paper_rmse, the RMS distance of its curve to the paper's (inside the axes)
    sources.json  the runs behind the figure: devices, versions, code, wall times, members,
                  and the runs left out with the reason (only completed runs of the expected
                  length are used: an interrupted or shorter run never enters a figure)
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ..errors import command_parser
from ..records import run_identity
from ..tables import (
    completed_runs,
    find_records,
    load_step_costs,
    read_records,
    setting_columns,
    tidy,
)
from .markers import make_marker_figure
from .trajectories import make_trajectory_figure
from .vhat import make_moment_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
METRICS = ["train_cost", "train_cost_full", "test_loss", "test_accuracy"]
Records = list[tuple[Path, dict[str, Any]]]


def figure_spec(name: str) -> dict[str, Any]:
    path = EXPERIMENTS / name / "figure.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in EXPERIMENTS.glob("*/figure.yaml"))
        raise FileNotFoundError(f"no figure {name!r} (known: {', '.join(known)})")
    spec: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[assignment]
    spec.setdefault("compare", {})
    spec.setdefault("kind", "curves")
    spec.setdefault("metric", "train_cost")
    spec.setdefault("paper_left_out", [])
    spec.setdefault("x", {}).setdefault("offset", 1)
    spec["name"] = name
    paper = path.parent / f"paper_{spec['kind']}.csv"  # a figure of ours has none
    spec["paper"] = pd.read_csv(paper) if paper.is_file() else None
    return spec


def with_settings(table: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The rows the figure draws, with `curve`: the paper's name each is compared with."""
    names = {**spec["curves"], **spec["compare"]}
    labels = sorted(set(table["label"].dropna()))
    table = table[table["label"].isin(list(names))].copy()
    if table.empty:
        raise FileNotFoundError(
            f"no run has a label that figure {spec['name']} draws ({', '.join(names)}); "
            f"the runs have {', '.join(labels) or 'no label'}"
        )
    table["curve"] = table["label"].map(names)
    return table


def paper_points(spec: dict[str, Any], name: str) -> pd.DataFrame:
    """The paper's points of curve `name` that a distance uses: inside the axes, and not among
    the figure's `paper_left_out`."""
    paper = spec["paper"]
    points = paper[(paper["curve"] == name) & (paper["outside_axes"] == 0)]
    for left in spec["paper_left_out"]:
        points = points[~((left["curve"] == name) & np.isclose(points["x"], left["x"]))]
    return points


def paper_rmse(curve: pd.DataFrame, points: pd.DataFrame, metric: str = "train_cost") -> float:
    """RMS difference between our curve (at x) and the paper's `points` within our x range."""
    points = points[points["x"] <= curve["x"].max()]
    if points.empty or not np.isfinite(curve[metric]).all():
        return math.inf
    ours = np.interp(points["x"], curve["x"], curve[metric])
    return float(np.sqrt(np.mean((ours - points["y"].to_numpy()) ** 2)))


def summarise(table: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """One row per setting: its settings, seeds, final cost and distance to the paper."""
    rows = []
    metric = spec["metric"]
    settings = setting_columns(table)
    for setting, group in table.groupby("setting", sort=False):
        last = group[group["epoch"] == group["epoch"].max()]
        pruned = group["pruned_at_epoch"].dropna()  # by halving (sweep.halving): not a result
        diverged = (last["diverged_at_step"].notna() | ~np.isfinite(last[metric])) & pruned.empty
        mean = group.groupby("epoch", as_index=False)[metric].mean().dropna()
        mean["x"] = mean["epoch"] - spec["x"]["offset"]
        points = paper_points(spec, group["curve"].iloc[0])
        first = group.iloc[0]
        rows.append(
            {
                "curve": first["curve"],
                "label": first["label"],
                **{c: first[c] for c in settings},
                "seeds": group["seed"].nunique(),
                "epochs": int(group["epoch"].max()),
                "final_cost": math.inf
                if diverged.any() or len(pruned)
                else float(last[metric].mean()),
                "diverged_seeds": int(diverged.sum()),
                "pruned_at_epoch": int(pruned.min()) if len(pruned) else math.nan,
                "paper_rmse": paper_rmse(mean, points, metric),
                "run": first["run"],
                "setting": setting,
            }
        )
    return pd.DataFrame(rows)


def mean_curve(table: pd.DataFrame, setting: str, spec: dict[str, Any]) -> pd.DataFrame:
    metric = spec["metric"]
    rows = table[table["setting"] == setting]
    grouped = rows.groupby("epoch")
    curve = grouped[[*METRICS, "wall_time_s"]].mean()
    curve[f"{metric}_min"] = grouped[metric].min()
    curve[f"{metric}_max"] = grouped[metric].max()
    curve["seeds"] = grouped["seed"].nunique()
    curve = curve.reset_index()
    curve.insert(0, "curve", rows["curve"].iloc[0])
    curve["epoch"] = curve["epoch"] - spec["x"]["offset"]  # the paper's x
    columns = ["curve", "epoch", "train_cost", f"{metric}_min", f"{metric}_max", "seeds"]
    columns += [m for m in METRICS[1:] if m not in columns]
    return curve[[*dict.fromkeys(columns), "wall_time_s"]]


def draw(
    spec: dict[str, Any],
    curves: dict[str, pd.DataFrame],
    extra: dict[str, pd.DataFrame],
    path: Path,
    note: str = "",
    x: str = "epoch",
) -> None:
    """Our curves (column `x` against the figure's metric) over the paper's."""
    fig, ax = plt.subplots(figsize=(5.6, 4.4), dpi=150)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    paper, metric = spec["paper"], spec["metric"]
    for i, name in enumerate(spec["curves"].values()):
        colour = colours[i % len(colours)]
        if name in curves:
            mine = curves[name].dropna(subset=[metric])
            ax.plot(mine[x], mine[metric], color=colour, lw=1.6, label=f"{name}")
            if mine["seeds"].max() > 1:
                ax.fill_between(
                    mine[x],
                    mine[f"{metric}_min"],
                    mine[f"{metric}_max"],
                    color=colour,
                    alpha=0.25,
                    lw=0,
                )
        theirs = paper[paper["curve"] == name]
        ax.plot(theirs["x"], theirs["y"], color=colour, lw=1.1, ls="--", label=f"{name} (paper)")
    for j, (legend, mine) in enumerate(extra.items()):
        colour = colours[(len(spec["curves"]) + j) % len(colours)]
        mine = mine.dropna(subset=[metric])
        ax.plot(mine[x], mine[metric], color=colour, lw=1.4, ls=":", label=legend)
    ax.set_xlim(*spec["x"]["lim"])
    ax.set_ylim(*spec["y"]["lim"])
    ax.set_yscale(spec["y"].get("scale", "linear"))
    ax.set_xlabel(spec["x"]["label"])
    ax.set_ylabel(spec["y"]["label"])
    ax.set_title(spec["title"])
    ax.legend(fontsize=6.5, ncol=2)
    if note:
        fig.text(0.01, 0.005, note, fontsize=5.5, color="0.3", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def sources(used: Records, left_out: list[dict[str, str]]) -> dict[str, Any]:
    records = [record for _, record in used]
    return {
        "runs": len(records),
        "members": sum(len(r["members"]) for r in records),
        "wall_time_s": round(sum(r["wall_time_s"] for r in records), 1),
        "status": sorted({r["status"] for r in records}),
        "devices": sorted({f"{r['device']['type']}: {r['device']['name']}" for r in records}),
        "threads": sorted({r["threads"] for r in records}),
        "versions": sorted({json.dumps(r["versions"], sort_keys=True) for r in records}),
        "started": min(r["started"] for r in records),
        "code": sorted({json.dumps(r.get("code"), sort_keys=True) for r in records}),
        "data": data_labels(used),
        "lossless": all(r.get("data", {}).get("lossless", True) for r in records),
        "left_out": left_out,
    }


def data_labels(used: Records) -> list[str]:
    """What the runs read, as each record names it (older records: the data config's name)."""
    labels = set()
    for _, record in used:
        described = record.get("data") or {}
        name = (record["config"].get("data") or {}).get("name", "data not recorded")
        labels.add(described.get("label") or str(name).upper())
    return sorted(labels)


def with_data(note: str, used: Records) -> str:
    """The figure's note, ending with the data its runs read (a lossy copy says so) and, where
    any run did not compute in float32 throughout, the precisions they used."""
    data = "data: " + "; ".join(data_labels(used))
    precisions = sorted({run_identity(r["config"])["precision"] for _, r in used})
    if precisions != ["32-true"]:
        data += " | precision: " + ", ".join(precisions)
    return f"{note} | {data}" if note else data


def usable_runs(runs: list[str], epochs: int | None = None) -> tuple[Records, list[dict]]:
    """The completed runs of the expected length under `runs`, and what was left out (why)."""
    paths = find_records(runs)
    records = read_records(runs)
    if not records:
        raise FileNotFoundError(f"no record.json found under {', '.join(map(str, runs))}")
    used, left_out = completed_runs(records, epochs)
    read = {path for path, _ in records}
    left_out += [
        {"run": str(path.parent), "why": "its record.json cannot be read (half-written or damaged)"}
        for path in paths
        if path not in read
    ]
    if not used:
        reasons = "; ".join(f"{r['run']}: {r['why']}" for r in left_out[:3])
        raise FileNotFoundError(f"no completed run under {', '.join(map(str, runs))} ({reasons})")
    return used, left_out


def _describe(row: pd.Series) -> str:
    return f"{row['label']}, stepsize {row['stepsize']:.3g}"


def make_figure(
    name: str,
    runs: list[str],
    out: Path,
    note: str = "",
    xlim: Sequence[float] | None = None,
    ylim: Sequence[float] | None = None,
    epochs: int | None = None,
) -> pd.DataFrame:
    """Write the figure `name` and its tables into `out` from the completed runs under `runs`
    (of `epochs` epochs, else of the most any has; the others are listed in sources.json);
    return the selected curves (or, for a figure of markers, the comparison with the paper's
    markers). `xlim` and `ylim` replace the paper's axes (a shortened run drawn where it has
    points)."""
    spec = figure_spec(name)
    for axis, lim in (("x", xlim), ("y", ylim)):
        if lim is not None:
            spec[axis]["lim"] = list(lim)
    used, left_out = usable_runs(runs, epochs)
    for skipped in left_out:
        print(f"left out {skipped['run']}: {skipped['why']}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sources.json").write_text(json.dumps(sources(used, left_out), indent=1) + "\n")
    note = with_data(note, used)
    if spec["kind"] == "markers":
        return make_marker_figure(spec, tidy(used), out, note)
    if spec["kind"] == "moments":
        return make_moment_figure(spec, used, out, note)
    if spec["kind"] == "trajectories":
        return make_trajectory_figure(spec, used, out, note)
    table = with_settings(tidy(used), spec)
    grid = summarise(table, spec)
    in_figure = grid[grid["label"].isin(list(spec["curves"]))]
    best = in_figure.loc[in_figure.groupby("curve", sort=False)["final_cost"].idxmin()]
    curves = {row["curve"]: mean_curve(table, row["setting"], spec) for _, row in best.iterrows()}
    extra = {}
    for label in spec["compare"]:
        candidates = grid[grid["label"] == label]
        if len(candidates):
            closest = candidates.loc[candidates["paper_rmse"].idxmin()]
            extra[f"{_describe(closest)} (closest to paper)"] = mean_curve(
                table, closest["setting"], spec
            )
    settings_out = grid.drop(columns=["setting"]).dropna(axis=1, how="all")
    settings_out.to_csv(out / "grid.csv", index=False, float_format="%.6g")
    best.drop(columns=["setting"]).dropna(axis=1, how="all").to_csv(
        out / "selected.csv", index=False, float_format="%.6g"
    )
    pd.concat(curves.values()).to_csv(out / "curves.csv", index=False, float_format="%.6g")
    draw(spec, curves, extra, out / "figure.png", note)
    if "walltime" in spec:
        walltime_figure(spec, curves, out, note)
    if "steps" in spec:
        step_figure(spec, table, best, used, out, note)
    return best


def walltime_figure(
    spec: dict[str, Any],
    curves: dict[str, pd.DataFrame],
    out: Path,
    note: str,
    seconds_per_pass: dict[str, float] | None = None,
) -> None:
    """The curves against wall-clock time, in units of the `unit` curve's mean time per pass
    (the paper's "normalized walltime"). Each curve's time is its own run's, or, with
    `seconds_per_pass` (a time per pass for every curve, measured side by side), k passes of a
    curve take k times its measured time."""
    wall = spec["walltime"]
    unit_curve = curves.get(wall["unit"])
    if unit_curve is None:
        print(f"no {wall['unit']} curve: no wall-clock figure", file=sys.stderr)
        return
    if seconds_per_pass is None:
        last = unit_curve.iloc[-1]
        unit = last["wall_time_s"] / (last["epoch"] + spec["x"]["offset"])
        timed = {name: c.assign(walltime=c["wall_time_s"] / unit) for name, c in curves.items()}
        how = "each run's own time"
    else:
        unit = seconds_per_pass[wall["unit"]]
        timed = {
            name: c.assign(walltime=c["epoch"] * seconds_per_pass[name] / unit)
            for name, c in curves.items()
        }
        how = ", ".join(f"{name} {seconds_per_pass[name]:.1f} s" for name in curves)
        how = f"passes timed side by side ({how})"
    paper = pd.read_csv(EXPERIMENTS / spec["name"] / "paper_curves_walltime.csv")
    note = f"time unit: {wall['unit']}'s {unit:.1f} s per pass, {how} | {note}"
    draw(
        {**spec, "x": wall, "paper": paper},
        timed,
        {},
        out / "figure_walltime.png",
        note,
        x="walltime",
    )
    pd.concat(timed.values()).to_csv(out / "curves_walltime.csv", index=False, float_format="%.6g")


def step_figure(
    spec: dict[str, Any],
    table: pd.DataFrame,
    best: pd.DataFrame,
    used: Records,
    out: Path,
    note: str,
) -> None:
    """The first epochs step by step (Figure 3, left), for the settings selected on the full
    run: each curve the per-step cost averaged over seeds and over a running window."""
    steps_spec = {**spec, **spec["steps"]}
    steps_spec["paper"] = pd.read_csv(EXPERIMENTS / spec["name"] / "paper_steps.csv")
    logged = load_step_costs(used)
    window = int(spec["steps"].get("smooth", 1))
    curves = {}
    for _, row in best.iterrows():
        members = table.loc[table["setting"] == row["setting"], ["run", "member"]].drop_duplicates()
        mine = logged.merge(members, on=["run", "member"])
        if mine.empty:
            continue
        grouped = mine.groupby("step")
        curve = grouped[["epoch", "cost"]].mean()
        curve["train_cost"] = curve["cost"].rolling(window, min_periods=1).mean()
        curve["train_cost_min"] = grouped["cost"].min().rolling(window, min_periods=1).mean()
        curve["train_cost_max"] = grouped["cost"].max().rolling(window, min_periods=1).mean()
        curve["seeds"] = mine.groupby("step")["member"].nunique()
        curve.insert(0, "curve", row["curve"])
        curves[row["curve"]] = curve.reset_index()
    if curves:
        pd.concat(curves.values()).drop(columns=["cost"]).to_csv(
            out / "steps.csv", index=False, float_format="%.6g"
        )
    draw(steps_spec, curves, {}, out / "figure_first_epochs.png", note)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("figures.plot", __doc__)
    parser.add_argument("figure", help="a folder name under experiments/, e.g. fig1_mnist_logreg")
    parser.add_argument("--runs", nargs="+", required=True, help="run folders or record files")
    parser.add_argument("--out", type=Path, required=True, help="where to write the results")
    parser.add_argument("--note", default="", help="a line printed under the figure")
    parser.add_argument(
        "--xlim",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="x axis limits, not the paper's (a shortened run)",
    )
    parser.add_argument(
        "--ylim",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="y axis limits, not the paper's",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="the runs' expected length (default: the "
        "most that a completed run has); other runs are left out",
    )
    args = parser.parse_args(argv)
    try:
        best = make_figure(
            args.figure, args.runs, args.out, args.note, args.xlim, args.ylim, args.epochs
        )
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    except OSError as error:  # an --out that cannot be written (read-only, full)
        where = f" ({error.filename})" if error.filename else ""
        sys.exit(f"error: cannot write the figure into {args.out}: {error.strerror}{where}")
    if "path_ratio" in best.columns:  # a small problem: the selected path of each optimizer
        print(best.to_string(index=False))
        print(f"wrote {args.out}/figure.png, animation.gif, paths.csv, metrics.csv")
        return
    if "fraction_below_eps" in best.columns:  # claim P9: sqrt(v-hat) at the end, per layer
        print(best.to_string(index=False))
        print(f"wrote {args.out}/figure.png, moments.csv, verdict.csv, sources.json")
        return
    if "paper_loss" in best.columns:  # markers: the best loss of each panel, ours and the paper's
        keys = ["epochs", "beta1", "beta2", "bias_correction"]
        print(best.groupby(keys)[["paper_loss", "our_loss"]].min().to_string())
        print(f"wrote {args.out}/figure.png, markers.csv, compare.csv, sources.json")
        return
    shown = ["curve", "stepsize", "momentum", "seeds", "epochs", "final_cost", "paper_rmse"]
    print(best[[c for c in shown if c in best.columns]].to_string(index=False))
    print(f"wrote {args.out}/figure.png, curves.csv, selected.csv, grid.csv, sources.json")


if __name__ == "__main__":
    main()
