"""What a lossy copy of CIFAR-10 changes, measured on the images that exist in both forms.

    python -m adamrepro.studies.copycheck --data-root DIR [--runs DIR] [--out DIR] [--epochs 5]

The exact subset (`exact_subset.npz`: 4,000 training and 4,593 test images, pixel-exact) and
the same images as the lossy copy holds them (`data.rows=exact` of the image copy) are compared
twice:

1. The pixels and their covariance: PSNR per image, and the eigenvalue spectrum of the
   training covariance that ZCA whitening inverts (eps = data.zca_epsilon sets where it stops
   amplifying): how much of each direction's variance the copy keeps.
2. Training: the Figure 3 CNN, for each optimizer of Figure 3 over a short grid of stepsizes,
   trained for a few epochs on each copy from the same initialisation and minibatch order. The
   curves' difference between the copies is set beside the gap between optimizers, which is
   what Figure 3 shows: a difference far below that gap leaves the figure's conclusions intact.

The runs go through the one training loop (resumable, in `--runs`); the best stepsize per
optimizer on the exact images is written to `selected.json`, the stated short grid from which
the CPU run of Figure 3 takes its stepsizes.

Writes into --out: spectrum.csv, spectrum.png, curves.csv, compare.csv, figure.png,
selected.json, summary.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import command_parser

GRIDS = {  # optimizer -> (label, stepsizes): half decades around each one's usual range
    "adagrad": ("AdaGrad", [3e-3, 1e-2, 3e-2]),
    "nesterov": ("SGDNesterov", [3e-3, 1e-2, 3e-2]),
    "adam": ("Adam", [3e-4, 1e-3, 3e-3]),
}
COPIES = {"exact": ["data.source=exact"], "lossy": ["data.source=images", "data.rows=exact"]}


def spectra(data_root: str, epsilon: float, verify: bool, cache: str) -> tuple[Any, dict[str, Any]]:
    """Per rank, the training covariance's eigenvalues of each copy; and PSNR figures."""
    import pandas as pd
    import torch

    from ..data import load_cifar10

    exact = load_cifar10(data_root, whitening="none", source="exact", verify=verify)
    lossy = load_cifar10(
        data_root,
        whitening="none",
        source="images",
        rows="exact",
        verify=verify,
        cache_dir=cache,
    )
    mse = (exact.x_train - lossy.x_train).square().mean(dim=(1, 2, 3)).double()
    psnr = 10 * torch.log10(1 / mse)

    def eigenvalues(x) -> torch.Tensor:  # of the covariance, from the centred data's SVD
        flat = x.flatten(1).double()
        centred = flat - flat.mean(0)
        values = torch.linalg.svdvals(centred).square() / len(flat)
        return torch.cat([values, values.new_zeros(flat.shape[1] - len(values))])

    e, lossy_e = eigenvalues(exact.x_train), eigenvalues(lossy.x_train)
    table = pd.DataFrame(
        {"rank": range(1, len(e) + 1), "exact": e.numpy(), "lossy": lossy_e.numpy()}
    )
    table["lossy_over_exact"] = table["lossy"] / table["exact"]
    facts = {
        "label": lossy.description["label"],
        "psnr_median_db": float(psnr.median()),
        "psnr_min_db": float(psnr.min()),
        "above_eps_exact": int((e > epsilon).sum()),
        "above_eps_lossy": int((lossy_e > epsilon).sum()),
        "variance_kept": float(lossy_e.sum() / e.sum()),
        "epsilon": epsilon,
    }
    return table, facts


def training(data_root: str, runs: Path, epochs: int, extra: list[str]) -> Any:
    """Every (optimizer, stepsize, copy) curve: one population per optimizer and copy."""
    import pandas as pd

    from ..training import compose_config, train

    frames = []
    for optimizer, (label, stepsizes) in GRIDS.items():
        for copy, source in COPIES.items():
            overrides = [
                "experiment=cifar_cnn",
                f"optimizer={optimizer}",
                f"data.root={data_root}",
                f"+grid.stepsize=[{','.join(map(str, stepsizes))}]",
                f"trainer.epochs={epochs}",
                "trainer.progress=false",
                f"experiment_name=copycheck_{copy}",
                *source,
                *extra,
            ]
            record = train(compose_config(overrides), runs / f"{optimizer}_{copy}")
            for row in record["curves"]:
                member = record["members"][row["member"]]
                frames.append(
                    {
                        "optimizer": label,
                        "stepsize": member["stepsize"],
                        "copy": copy,
                        "epoch": row["epoch"],
                        "train_cost": row["train_cost"],
                        "test_accuracy": row["test_accuracy"],
                        "data": record["data"]["label"],
                    }
                )
    return pd.DataFrame(frames)


def compare(curves: Any) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Per (optimizer, stepsize): the largest difference between the copies' curves; the best
    stepsize of each optimizer on the exact images; and the gaps between optimizers there."""
    import pandas as pd

    rows = []
    for (optimizer, stepsize), group in curves.groupby(["optimizer", "stepsize"], sort=False):
        exact = group[group["copy"] == "exact"].set_index("epoch")["train_cost"]
        lossy = group[group["copy"] == "lossy"].set_index("epoch")["train_cost"]
        difference = (exact - lossy).abs()
        rows.append(
            {
                "optimizer": optimizer,
                "stepsize": stepsize,
                "final_exact": exact.iloc[-1],
                "final_lossy": lossy.iloc[-1],
                "max_abs_difference": difference.max(),
                "max_relative_difference": (difference / exact).max(),
            }
        )
    table = pd.DataFrame(rows)
    finite = table[table["final_exact"].apply(math.isfinite)]
    best = finite.loc[finite.groupby("optimizer", sort=False)["final_exact"].idxmin()]
    selected = dict(zip(best["optimizer"], best["stepsize"], strict=True))
    finals = dict(zip(best["optimizer"], best["final_exact"], strict=True))
    names = list(finals)
    gaps = {
        f"{a} - {b}": abs(finals[a] - finals[b])
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
    return table, selected, gaps


def draw(curves: Any, spectrum: Any, selected: dict[str, float], facts: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=150)
    left.loglog(spectrum["rank"], spectrum["exact"], label="exact pixels", lw=1.2)
    left.loglog(spectrum["rank"], spectrum["lossy"], label=facts["label"], lw=1.2, ls="--")
    eps = facts["epsilon"]
    left.axhline(eps, color="0.4", ls=":", lw=1, label=f"ZCA eps = {eps:g}")
    left.set_xlabel("rank")
    left.set_ylabel("eigenvalue of the pixel covariance")
    left.set_title("the spectrum ZCA whitening inverts", fontsize=8)
    left.legend(fontsize=6)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (optimizer, stepsize) in enumerate(selected.items()):
        mine = curves[(curves["optimizer"] == optimizer) & (curves["stepsize"] == stepsize)]
        for copy, style in (("exact", "-"), ("lossy", "--")):
            line = mine[mine["copy"] == copy]
            right.plot(
                line["epoch"] - 1,
                line["train_cost"],
                color=colours[i],
                ls=style,
                label=f"{optimizer} {stepsize:g}, {copy}",
            )
    right.set_yscale("log")
    right.set_xlabel("iterations over the 4,000 images")
    right.set_ylabel("training cost")
    right.set_title("the CNN on each copy: same start, same minibatches", fontsize=8)
    right.legend(fontsize=5.5, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "figure.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("studies.copycheck", __doc__)
    parser.add_argument("--data-root", default=os.environ.get("ADAMREPRO_DATA", "data"))
    parser.add_argument("--runs", type=Path, default=Path("outputs/cifar_copycheck"))
    parser.add_argument("--out", type=Path, default=Path("results/fig3_cifar10_cnn/jpeg_check"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--override", nargs="+", default=[], help="Hydra overrides for every run")
    parser.add_argument("--no-verify", action="store_true", help="skip the copies' md5 checks")
    parser.add_argument("--cache-dir", default=os.environ.get("ADAMREPRO_CACHE", "data/cache"))
    args = parser.parse_args(argv)
    from ..errors import USER_ERRORS

    try:
        spectrum, facts = spectra(args.data_root, 0.01, not args.no_verify, args.cache_dir)
        extra = [f"data.cache_dir={args.cache_dir}", *args.override]
        curves = training(args.data_root, args.runs, args.epochs, extra)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    table, selected, gaps = compare(curves)
    args.out.mkdir(parents=True, exist_ok=True)
    spectrum.to_csv(args.out / "spectrum.csv", index=False, float_format="%.6g")
    curves.to_csv(args.out / "curves.csv", index=False, float_format="%.6g")
    table.to_csv(args.out / "compare.csv", index=False, float_format="%.6g")
    (args.out / "selected.json").write_text(json.dumps(selected, indent=1) + "\n")
    draw(curves, spectrum, selected, facts, args.out)
    at_best = table.merge(pd_frame(selected), on=["optimizer", "stepsize"])
    lines = [
        f"Data: {facts['label']} against the exact pixels of the same 4,000 training images "
        f"(PSNR median {facts['psnr_median_db']:.1f} dB, min {facts['psnr_min_db']:.1f} dB).",
        f"Covariance: the copy keeps {facts['variance_kept']:.1%} of the pixel variance; "
        f"{facts['above_eps_exact']} eigenvalues of the exact images and "
        f"{facts['above_eps_lossy']} of the copy's lie above ZCA's eps = {facts['epsilon']:g}.",
        f"Training ({args.epochs} epochs, same initialisation and minibatches), at each "
        "optimizer's best stepsize on the exact images:",
        "",
        "| optimizer | stepsize | final cost, exact | final cost, copy | largest difference |",
        "|---|---|---|---|---|",
        *(
            f"| {r.optimizer} | {r.stepsize:g} | {r.final_exact:.4f} | {r.final_lossy:.4f} "
            f"| {r.max_abs_difference:.4f} ({r.max_relative_difference:.1%}) |"
            for r in at_best.itertuples()
        ),
        "",
        "Gaps between optimizers (final cost, exact images): "
        + ", ".join(f"{k} {v:.4f}" for k, v in gaps.items())
        + ".",
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def pd_frame(selected: dict[str, float]) -> Any:
    import pandas as pd

    return pd.DataFrame({"optimizer": list(selected), "stepsize": list(selected.values())})


if __name__ == "__main__":
    main()
