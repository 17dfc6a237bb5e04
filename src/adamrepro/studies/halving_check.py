"""Which successive halving keeps a figure's winners: results/halving.md.

    python -m adamrepro.studies.halving_check FIGURE --runs DIR [DIR ...] [--out DIR]
        [--after 1 2 3 5 10] [--keep 1 2 3]
    python -m adamrepro.studies.halving_check --train [FIGURE ...] --runs ROOT --data-root DIR
        [--out DIR]
    python -m adamrepro.studies.halving_check [--out DIR] [--note TEXT]   # halving.md only

Reads the complete runs of a figure's full grid (every member trained to the end) and asks,
for each (E, k): had `sweep.halving={after_epochs: E, keep: k}` pruned each run after epoch E,
keeping the k settings with the lowest epoch-E training cost averaged over seeds (a setting
with a diverged seed ranks last: `Training.prune`'s rule), would every curve of the figure
still have its full-grid winner (the figure's own selection: the lowest final cost)? And what
share of the grid's member-epochs would it train? For a figure of markers (Figure 4: its
100-epoch units, `--runs results/fig4_vae_bias_correction/runs/fig4`), each panel with or
without bias correction is a curve in each block, its settings the stepsizes (`check_markers`).

With `--train`, each figure's full grid (GRIDS: the runs of its protocol's paper variant that
hold a grid, at the length given there) is first trained, or continued, into ROOT as
`python -m adamrepro.protocol` would, and then checked.

Writes `halving_<figure>.csv` (one row per E, k and curve) into --out, and rewrites
`halving.md` there from every such table present, and, for each long protocol that halves
its grids (FULL_LENGTH), from its units' records under --out: whether the halving kept each
curve's best at the full length, beside the grid's next settings trained to the end by units
of their own. A setting is safe when it keeps the winner
on every curve, and so does every later E with the same k; the long protocols use the
cheapest safe setting.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from ..errors import USER_ERRORS, command_parser
from ..figures.plot import figure_spec, summarise, usable_runs, with_settings
from ..tables import tidy

# The figures whose full grids halving is checked against: figure -> (the runs of its protocol
# that hold the grids, overrides, the epochs E checked). Figure 2 (a) at 10 of its 200 passes.
GRIDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]] = {
    "fig1_mnist_logreg": (("grid",), (), (1, 2, 3, 5, 10, 20)),
    "fig1_imdb_bow": (("grid",), (), (1, 2, 3, 5, 10, 20)),
    "fig2a_mnist_mlp": ((), ("trainer.epochs=10",), (1, 2, 3, 5)),
}
# The figures whose long protocol halves its grids: figure -> its units' folder under
# results/<figure>/runs/ (its grid units, and the `_next` units that train the grid's next
# settings to the end: the check of the halving at the full length).
FULL_LENGTH = {"fig2a_mnist_mlp": "fig2a"}
# Figure 4 draws every stepsize, so halving never prunes it; whether halving would keep each
# panel's best stepsize is read from its 100-epoch units (`check_markers`).
VALIDATED = (*GRIDS, "fig4_vae_bias_correction")


def check(figure: str, runs: list[str], after: list[int], keep: list[int]) -> pd.DataFrame:
    spec = figure_spec(figure)
    used, _ = usable_runs(runs)
    table = with_settings(tidy(used), spec)
    grid = summarise(table, spec)
    metric = spec["metric"]
    epochs = int(table["epoch"].max())
    rows = []
    for curve, settings in grid[grid["label"].isin(list(spec["curves"]))].groupby("curve"):
        winner = settings.loc[settings["final_cost"].idxmin(), "setting"]
        for e in (e for e in after if e < epochs):
            at = table[(table["epoch"] == e) & table["setting"].isin(settings["setting"])]
            by_setting = at.groupby("setting")[metric].agg(
                lambda c: c.mean() if c.notna().all() else math.inf
            )
            ranked = by_setting.sort_values(kind="stable")
            for k in keep:
                n = len(ranked)
                kept = list(ranked.index[:k])
                rows.append(
                    {
                        "figure": figure,
                        "curve": curve,
                        "after_epochs": e,
                        "keep": k,
                        "settings": n,
                        "winner_kept": winner in kept,
                        "winner_rank_at_E": int(list(ranked.index).index(winner)) + 1,
                        "trained_share": (n * e + min(k, n) * (epochs - e)) / (n * epochs),
                        "epochs": epochs,
                    }
                )
    return pd.DataFrame(rows)


def check_markers(figure: str, runs: list[str], after: list[int], keep: list[int]) -> pd.DataFrame:
    """`check` for a figure of markers (Figure 4): each panel's curve (its row and column
    settings, with or without bias correction) in each block is a grid over the stepsizes,
    whose winner is the lowest loss at the block's epoch; halving ranks the stepsizes by the
    loss at epoch E (a diverged member last)."""
    spec = figure_spec(figure)
    used, _ = usable_runs(runs)
    table = tidy(used)
    (row_key,), (col_key,) = spec["rows"], spec["columns"]
    keys = [row_key, col_key, "bias_correction"]
    metric = spec["metric"]
    last = int(table["epoch"].max())
    # one row per member (a member diverged from its first epoch on too), one column per epoch
    cost = table.set_index([*keys, "stepsize", "epoch"])[metric].unstack("epoch")
    cost = cost.reindex(columns=range(1, last + 1)).fillna(math.inf)
    rows = []
    for block in (int(b) for b in spec["epochs"] if int(b) <= last):
        for (row, column, corrected), grid in cost.groupby(level=keys):
            grid = grid.droplevel(keys)
            winner = grid[block].idxmin()
            name = f"{block} epochs: {row_key} {row:g}, {col_key} {column:g}, " + (
                "corrected" if corrected else "uncorrected"
            )
            for e in (e for e in after if e < block):
                ranked = list(grid[e].sort_values(kind="stable").index)
                n = len(ranked)
                for k in keep:
                    rows.append(
                        {
                            "figure": figure,
                            "curve": name,
                            "after_epochs": e,
                            "keep": k,
                            "settings": n,
                            "winner_kept": winner in ranked[:k],
                            "winner_rank_at_E": ranked.index(winner) + 1,
                            # both blocks are read from the same runs, `last` epochs long
                            "trained_share": (n * e + min(k, n) * (last - e)) / (n * last),
                            "epochs": block,
                        }
                    )
    return pd.DataFrame(rows)


def full_length(figure: str, runs: Path) -> pd.DataFrame:
    """The halving checked at the full length, from the long protocol's units: one row per
    setting of each curve, with its cost at the halving epoch and its rank there among its
    grid's settings (a diverged setting last), what the halving did with it (`kept`,
    `pruned`, `diverged`, or `outside the grid`), and its final cost where a unit trained it
    to the end (the grid's unit when the halving kept it, else a unit of its own)."""
    spec = figure_spec(figure)
    used, _ = usable_runs([str(runs)])
    table = with_settings(tidy(used), spec)
    table = table[table["label"].isin(list(spec["curves"]))]
    grid = summarise(table, spec)
    # momentum -1 where the optimizer has none: a key that groups and looks up as NaN does not
    table, grid = (
        t.assign(mom=t["momentum"].fillna(-1.0) if "momentum" in t else -1.0) for t in (table, grid)
    )
    key = ["curve", "stepsize", "mom"]
    # a grid unit holds several settings of its curve; a `_next` unit one
    sizes = grid.groupby(["curve", "run"])["setting"].nunique()
    grid["in_grid"] = [sizes[pair] > 1 for pair in zip(grid["curve"], grid["run"], strict=True)]
    after = int(grid["pruned_at_epoch"].min())
    metric = spec["metric"]
    at = table[table["epoch"] == after].groupby([*key, "run"])[metric].mean()
    rows = []
    for (curve, stepsize, mom), part in grid.groupby(key):
        finals = part["final_cost"][part["final_cost"] < math.inf]
        row = {"curve": curve, "stepsize": stepsize, "momentum": math.nan if mom < 0 else mom}
        row |= {"halving": "outside the grid", f"cost_at_epoch_{after}": math.nan}
        row |= {"rank": math.nan, "final_cost": finals.min() if len(finals) else math.inf}
        in_grid = part[part["in_grid"]]
        if len(in_grid):
            run = in_grid["run"].iloc[0]
            ranked = at.xs((curve, run), level=("curve", "run")).fillna(math.inf)
            cost = ranked.loc[(stepsize, mom)]
            pruned = in_grid["pruned_at_epoch"].notna().any()
            diverged = in_grid["diverged_seeds"].gt(0).any() or cost == math.inf
            row["halving"] = "diverged" if diverged else "pruned" if pruned else "kept"
            row[f"cost_at_epoch_{after}"] = cost
            row["rank"] = int((ranked < cost).sum()) + 1
        rows.append(row)
    out = pd.DataFrame(rows)
    out["best"] = out["final_cost"] == out.groupby("curve")["final_cost"].transform("min")
    out["epochs"] = int(grid["epochs"].max())
    return out


def _number(value: float, spec: str) -> str:
    return "" if value != value else format(value, spec)


def full_length_section(figure: str, runs: Path, out: Path) -> list[str]:
    """halving.md's section on the halving at the full length (`full_length`)."""
    table = full_length(figure, runs)
    after = next(c for c in table.columns if c.startswith("cost_at_epoch_")).rsplit("_", 1)[1]
    epochs = int(table["epochs"].max())
    lines = [
        f"## {figure} at its full length ({epochs} epochs): what the halving kept, against "
        "the settings it pruned",
        "",
        f"From the long protocol's units ({runs.relative_to(out).as_posix()}/): each grid "
        f"halved after epoch {after}, and the grid's next setting beyond the two kept, on the "
        "side of the better of them (and one beyond the grid where that one won at its edge), "
        "each trained to the end by a unit of its own. Bold: the "
        "lowest final cost of the curve (the figure's selection). Final cost `-`: not trained "
        "to the end.",
        "",
        f"| curve | stepsize | momentum | halving | rank at epoch {after} "
        f"| cost at epoch {after} | final cost |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        final = f"{row['final_cost']:.4g}" if row["final_cost"] < math.inf else "-"
        rank = "" if row["rank"] != row["rank"] else str(int(row["rank"]))
        cost = row[f"cost_at_epoch_{after}"]
        lines.append(
            f"| {row['curve']} | {row['stepsize']:g} "
            f"| {_number(row['momentum'], 'g')} "
            f"| {row['halving']} | {rank} "
            f"| {_number(cost, '.4g')} "
            f"| {f'**{final}**' if row['best'] else final} |"
        )
    best = table[table["best"]]
    missed = best.loc[best["halving"] != "kept", "curve"].tolist()
    lines += [
        "",
        f"The halving kept the full-length best on {len(best) - len(missed)} of {len(best)} "
        "curves" + (f"; it pruned the best of {' and of '.join(missed)}." if missed else "."),
        "",
    ]
    return lines


def _curves(names: list[str]) -> str:
    """A few curves by name; more by their number (the rank table names them)."""
    return ", ".join(names) if len(names) <= 3 else f"{len(names)} curves (ranks below)"


def safe_settings(table: pd.DataFrame) -> pd.DataFrame:
    """Per (E, k): whether every curve keeps its winner at E and at every later E (same k),
    and the share of member-epochs trained (summed over the curves' grids)."""
    out = []
    for (e, k), part in table.groupby(["after_epochs", "keep"]):
        later = table[(table["keep"] == k) & (table["after_epochs"] >= e)]
        trained = (part["trained_share"] * part["settings"]).sum() / part["settings"].sum()
        out.append(
            {
                "after_epochs": e,
                "keep": k,
                "every_curve": bool(part["winner_kept"].all()),
                "safe": bool(later["winner_kept"].all()),
                "trained_share": trained,
                "missed": _curves(part.loc[~part["winner_kept"], "curve"].tolist()),
            }
        )
    return pd.DataFrame(out)


def report(out: Path, note: str = "") -> str:
    lines = [
        "# Successive halving: which (E, k) keeps the full grid's winners",
        "",
        "Written by `python -m adamrepro.studies.halving_check` (see its docstring) from complete "
        "full-grid runs. `winner kept`: the figure's selected setting (lowest final cost) "
        "is among the k best settings by the epoch-E training cost averaged over seeds. "
        "`safe`: kept on every curve at E and at every later E with the same k. "
        "`trained`: the share of the full grid's member-epochs that halving trains. "
        "The full grids are those `make halving-check` trains (the grid runs of each figure's "
        "protocol, configs/protocol/; float32, the figures' grids and seeds; Figure 2 (a) at "
        "10 passes, seed 0). Figure 4's grid is its 72 members trained for 100 epochs by its "
        "long-run units (results/fig4_vae_bias_correction/runs/fig4/; bf16-mixed): a curve "
        "is one panel with or without bias correction, its settings the six stepsizes, its "
        "winner the lowest loss at the block's epoch, both blocks read from the same runs "
        "(`trained` counts their 100 epochs).",
        "",
        *([note, ""] if note else []),
    ]
    for path in sorted(out.glob("halving_*.csv")):
        table = pd.read_csv(path)
        figure = table["figure"].iloc[0]
        epochs = " and ".join(str(e) for e in sorted(table["epochs"].unique()))
        sizes = table.groupby("curve")["settings"].first()
        grids = (
            f"{sizes.iloc[0]} settings per curve"
            if sizes.nunique() == 1
            else "settings per curve: " + ", ".join(f"{curve} {n}" for curve, n in sizes.items())
        )
        lines += [
            f"## {figure} ({epochs} epochs; {grids})",
            "",
            "| E | k | every curve keeps its winner | safe | trained | missed |",
            "|---|---|---|---|---|---|",
        ]
        for _, row in safe_settings(table).iterrows():
            lines.append(
                f"| {row['after_epochs']} | {row['keep']} "
                f"| {'yes' if row['every_curve'] else 'no'} "
                f"| {'yes' if row['safe'] else 'no'} | {row['trained_share']:.0%} "
                f"| {row['missed']} |"
            )
        ranks = table.groupby(["curve", "after_epochs"])["winner_rank_at_E"].first().unstack()
        lines += [
            "",
            "The winner's rank at epoch E, per curve:",
            "",
            "| curve | " + " | ".join(f"E={e}" for e in ranks.columns) + " |",
            "|---|" + "---|" * len(ranks.columns),
        ]
        for curve, row in ranks.iterrows():
            ranks_of = ("" if v != v else str(int(v)) for v in row)  # NaN: E past the block
            lines.append(f"| {curve} | " + " | ".join(ranks_of) + " |")
        lines.append("")
    for figure, folder in FULL_LENGTH.items():
        runs = out / figure / "runs" / folder
        if runs.is_dir():
            lines += full_length_section(figure, runs, out)
    missing = [f for f in VALIDATED if not (out / f"halving_{f}.csv").is_file()]
    if missing:
        lines.append(f"Not checked yet: {', '.join(missing)}.")
    return "\n".join(lines)


def train_grid(figure: str, root: Path, data_root: str) -> Path:
    """Train (or continue) the figure's full grid into `root`; the folder of its runs."""
    from ..protocol import load, train_runs

    only, overrides, _ = GRIDS[figure]
    protocol = load(figure).with_overrides(*overrides)
    if not train_runs(protocol, root, data_root, only=only):
        sys.exit(f"{figure}: a run paused; the same command continues it")
    return root / figure / protocol.variant


def main(argv: list[str] | None = None) -> None:
    import os

    parser = command_parser("studies.halving_check", __doc__)
    parser.add_argument("figure", nargs="*")
    parser.add_argument("--runs", nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--after", nargs="+", type=int, default=None)
    parser.add_argument("--keep", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--train", action="store_true", help="train the full grids first")
    parser.add_argument("--data-root", default=os.environ.get("ADAMREPRO_DATA", "data"))
    parser.add_argument("--note", default="", help="a paragraph added to the report")
    args = parser.parse_args(argv)
    figures = args.figure or (list(GRIDS) if args.train else [])
    if (len(figures) > 1 or (figures and not args.runs)) and not args.train:
        parser.error("one FIGURE, whose runs --runs names (or --train; or none: halving.md only)")
    if args.train and not args.runs:
        parser.error("--train needs --runs ROOT")
    args.out.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        try:
            runs = (
                [str(train_grid(figure, Path(args.runs[0]), args.data_root))]
                if args.train
                else args.runs
            )
            after = args.after or list(GRIDS.get(figure, ((), (), (1, 2, 3, 5, 10, 20)))[2])
            kind = figure_spec(figure)["kind"]
            table = (check_markers if kind == "markers" else check)(figure, runs, after, args.keep)
        except (*USER_ERRORS, FileNotFoundError) as error:
            sys.exit(f"error: {error}")
        table.to_csv(args.out / f"halving_{figure}.csv", index=False, float_format="%.4g")
        print(safe_settings(table).to_string(index=False))
    (args.out / "halving.md").write_text(report(args.out, args.note))


if __name__ == "__main__":
    main()
