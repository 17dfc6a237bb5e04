"""The curve check that decides where a figure may train in bf16-mixed (results/precision.md).

    python -m adamrepro.studies.precision_check --data-root DIR [--runs DIR] [--out DIR]
        [--only NAME ...]

For each long protocol's model (Figure 2 (a)'s MLP with dropout, Figure 3's CNN without and
with dropout, Figure 4's VAE) one population of three seeds, at the figure's setting, trains
for a few epochs in 32-true and again in bf16-mixed. A seed's two runs share their
initialisation, minibatches and dropout masks, so they differ by the precision alone. Per
epoch the check reports the largest difference between the precisions over the seeds next
to the seed-to-seed spread of the float32 runs (the largest minus the smallest seed), for the
training cost the figures draw (the mean over the pass) and the test loss.

The rule, fixed before the runs: a figure may use bf16-mixed where, at every epoch of its
check, the largest difference stays inside the seed-to-seed spread for both columns. Figure 1
and Figure 2 (b) (costs down to 1e-5) stay float32 without a check.

Runs are ordinary runs of the training loop (a run that is complete is read back; the same
command continues one that was stopped). Writes precision.csv, precision.png and precision.md
into --out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

from ..errors import USER_ERRORS, command_parser
from ..protocol import run_log
from ..records import read_record
from ..settings import PRECISIONS
from ..training import compose_config, train

SEEDS = "[0,1,2]"
COLUMNS = ("train_cost", "test_loss")
# name -> (figure, what it runs, overrides): each figure's own setting (its selected stepsize)
CHECKS: dict[str, tuple[str, str, list[str]]] = {
    "mlp_dropout": (
        "Figure 2 (a)",
        "2x1000 MLP, dropout 20%/50%, Adam 3e-4",
        ["experiment=mnist_mlp", "optimizer=adam", "optimizer.stepsize=3e-4", "trainer.epochs=3"],
    ),
    "cnn": (
        "Figure 3",
        "CNN c64-c64-c128-1000, Adam 3e-4",
        [
            "experiment=cifar_cnn",
            "optimizer=adam",
            "optimizer.stepsize=3e-4",
            "model.dropout=false",
            "trainer.epochs=2",
            "trainer.step_log_epochs=0",
        ],
    ),
    "cnn_dropout": (
        "Figure 3",
        "CNN c64-c64-c128-1000, dropout 20%/50%, Adam 3e-4",
        [
            "experiment=cifar_cnn",
            "optimizer=adam",
            "optimizer.stepsize=3e-4",
            "model.dropout=true",
            "trainer.epochs=2",
            "trainer.step_log_epochs=0",
        ],
    ),
    "vae": (
        "Figure 4",
        "VAE 500 hidden, 50 latent, Adam 1e-3, beta1 0.9, beta2 0.999",
        [
            "experiment=mnist_vae",
            "optimizer=adam",
            "optimizer.stepsize=1e-3",
            "optimizer.beta1=0.9",
            "optimizer.beta2=0.999",
            "trainer.epochs=3",
            "trainer.eval_every=1",
        ],
    ),
}


def run(name: str, precision: str, data_root: str, runs: Path, extra: list[str]) -> dict:
    overrides = [
        *CHECKS[name][2],
        f"sweep.seeds={SEEDS}",
        f"precision={precision}",
        f"data.root={data_root}",
        "trainer.progress=false",
        f"experiment_name=precision_{name}",
        *extra,
    ]
    folder = runs / name / precision
    record = read_record(folder)
    if record is None or record["status"] != "completed":
        with run_log(folder):
            record = train(compose_config(overrides), folder)
    return record


def compare(name: str, records: dict[str, dict]) -> pd.DataFrame:
    """Per epoch and column: the largest |bf16-mixed - 32-true| over the seeds, and the
    float32 seed-to-seed spread."""
    rows = []
    tables = {
        p: pd.DataFrame(r["curves"]).set_index(["epoch", "member"]) for p, r in records.items()
    }
    full, mixed = tables["32-true"], tables["bf16-mixed"]
    for epoch in sorted(full.index.get_level_values("epoch").unique()):
        for column in COLUMNS:
            a, b = full.loc[epoch, column], mixed.loc[epoch, column]
            if a.isna().all():
                continue
            rows.append(
                {
                    "check": name,
                    "figure": CHECKS[name][0],
                    "epoch": epoch,
                    "column": column,
                    "mean_32": a.mean(),
                    "mean_bf16": b.mean(),
                    "largest_difference": (b - a).abs().max(),
                    "seed_spread": a.max() - a.min(),
                }
            )
    table = pd.DataFrame(rows)
    table["inside"] = table["largest_difference"] <= table["seed_spread"]
    return table


def figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = list(dict.fromkeys(table["check"]))
    fig, axes = plt.subplots(1, len(checks), figsize=(3.2 * len(checks), 3.0), squeeze=False)
    for ax, name in zip(axes[0], checks, strict=True):
        part = table[(table["check"] == name) & (table["column"] == "train_cost")]
        ax.plot(
            part["epoch"], part["seed_spread"], "o-", color="0.4", label="seed spread (32-true)"
        )
        ax.plot(
            part["epoch"],
            part["largest_difference"],
            "s-",
            color="C3",
            label="largest |bf16-mixed - 32-true|",
        )
        ax.set_yscale("log")
        ax.set_title(f"{CHECKS[name][0]}: {name}", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_xticks(list(part["epoch"]))
    axes[0][0].set_ylabel("training cost: difference or spread")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(
    table: pd.DataFrame, records: dict[str, dict[str, dict]], command: str, note: str = ""
) -> str:
    lines = [
        "# bf16-mixed against 32-true: the curve check",
        "",
        f"Command: `{command}`. Three seeds in one population per precision; a seed's two runs "
        "share initialisation, minibatches and dropout masks, so they differ by the precision "
        "alone. `largest difference`: the largest |bf16-mixed - 32-true| over the three seeds; "
        "`seed spread`: the largest minus the smallest seed in 32-true. Rule (fixed before the "
        "runs): a figure may train in bf16-mixed where every epoch of its check is inside the "
        "spread in both columns. Figure 1 and Figure 2 (b) stay float32 without a check.",
        "",
        "| check | figure | model | epoch | column | mean 32-true | mean bf16-mixed "
        "| largest difference | seed spread | inside |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        lines.append(
            f"| {row['check']} | {row['figure']} | {CHECKS[row['check']][1]} | {row['epoch']} "
            f"| {row['column']} | {row['mean_32']:.5g} | {row['mean_bf16']:.5g} "
            f"| {row['largest_difference']:.3g} | {row['seed_spread']:.3g} "
            f"| {'yes' if row['inside'] else 'NO'} |"
        )
    lines += ["", "## Verdicts", ""]
    for name in dict.fromkeys(table["check"]):
        part = table[table["check"] == name]
        ok = bool(part["inside"].all())
        walls = {p: r["wall_time_s"] for p, r in records[name].items()}
        data = records[name]["32-true"]["data"].get("label", "")
        lines.append(
            f"- **{name}** ({CHECKS[name][0]}, {data}): "
            + ("bf16-mixed allowed" if ok else "stays 32-true (a difference outside the spread)")
            + f"; wall time 32-true {walls['32-true'] / 60:.1f} min, bf16-mixed "
            f"{walls['bf16-mixed'] / 60:.1f} min ({walls['32-true'] / walls['bf16-mixed']:.2f}x)"
        )
    missing = [name for name in CHECKS if name not in records]
    if missing:
        lines.append(
            f"- Not run yet: {', '.join(missing)} (`{command}` runs them; the runs "
            "above are read back, not trained again)."
        )
    if note:
        lines += ["", note]
    lines += ["", "![precision check](precision.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("studies.precision_check", __doc__)
    parser.add_argument("--data-root", default=os.environ.get("ADAMREPRO_DATA", "data"))
    parser.add_argument("--runs", type=Path, default=Path("outputs/precision"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    parser.add_argument("--override", nargs="+", default=[], help="Hydra overrides for every run")
    parser.add_argument(
        "--command", default="make precision-check", help="the command written into the report"
    )
    parser.add_argument("--note", default="", help="a line added to the report")
    args = parser.parse_args(argv)
    try:
        records = {
            name: {p: run(name, p, args.data_root, args.runs, args.override) for p in PRECISIONS}
            for name in args.only
        }
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    for name, pair in records.items():
        for precision, record in pair.items():
            if record["status"] != "completed":
                sys.exit(f"{name} {precision}: {record['status']}; run the same command again")
    table = pd.concat([compare(name, pair) for name, pair in records.items()], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "precision.csv", index=False, float_format="%.6g")
    figure(table, args.out / "precision.png")
    (args.out / "precision.md").write_text(report(table, records, args.command, args.note))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
