"""The optimizers at work on small problems: paths on 2-D surfaces, the claims of the tutorials
and of sections 2-3 decided by numbers, and where Adam's convergence proof breaks.

    python -m adamrepro.studies.small_problems [--runs DIR] [--out results/small_problems] [--quick]

1. Every optimizer (SGD, momentum, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam, AdaMax,
   AMSGrad) on five surfaces (`models/surfaces.py`), its stepsize grid as one population
   through the training loop, every step's position logged; one figure and animation per
   surface (`trajectories.py`).
2. Claims S1-S5, P13 and P14 of experiments/claims.yaml, each decided from a number with
   the rule written beside it (`verdicts.csv`): a claim that does not hold is said not to.
3. Reddi, Kale & Kumar (2018)'s online counterexample (their section 3 and synthetic
   experiment): f_t(x) = 1010 x when t mod 101 = 1, else -10 x, on [-1, 1] (the optimum is
   x = -1), for Adam and AMSGrad; and the setting of the paper's Theorem 4.1 (alpha_t =
   alpha / sqrt(t), beta1_t = beta1 lambda^(t-1)) on online logistic regression: the average
   regret R(T) / T against T. Both use the optimizer classes the figures use; an online
   problem's projection onto its feasible set is `project`.

Everything is written into --out: the figures, their CSVs, verdicts.csv and README.md.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import command_parser
from ..optim import build_optimizer
from ..optim.rules import Adam

OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "adamax",
    "amsgrad",
)
STEPS = {"bowl": 500, "valley": 1000, "saddle": 600, "rosenbrock": 3000, "beale": 2000}


# -- 1. the surfaces, through the training loop ----------------------------------------------
def run_surfaces(runs: Path, out: Path, surfaces: list[str], steps_scale: float = 1.0) -> dict:
    from ..figures.plot import make_figure
    from ..training import compose_config, train

    selected = {}
    for surface in surfaces:
        steps = max(2, int(STEPS[surface] * steps_scale))
        for optimizer in OPTIMIZERS:
            config = compose_config(
                [
                    "experiment=toy",
                    f"optimizer={optimizer}",
                    f"model.surface={surface}",
                    f"data.steps={steps}",
                    "trainer.progress=false",
                    f"experiment_name=toy_{surface}",
                ]
            )
            train(config, runs / surface / optimizer)
        selected[surface] = make_figure(f"toy_{surface}", [str(runs / surface)], out / surface)
        print(f"{surface}: drew {out / surface / 'figure.png'}", file=sys.stderr, flush=True)
    return selected


# -- 2. the claims ------------------------------------------------------------------------------
def ewma_picture(out: Path) -> dict[str, float]:
    """P14 / S4: exponential moving averages of a signal with and without 1 / (1 - beta^t), as
    Adam's first moment computes them; and Adam's first steps with and without the correction."""
    import matplotlib.pyplot as plt

    steps = 60
    gen = torch.Generator().manual_seed(0)
    signal = 1.0 + 0.3 * torch.randn(steps, generator=gen, dtype=torch.float64)
    numbers: dict[str, float] = {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=150)
    left.plot(range(1, steps + 1), signal, ".", color="0.6", ms=3, label="signal (mean 1)")
    for beta, colour in ((0.9, "tab:blue"), (0.98, "tab:red")):
        m = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        adam = Adam([m], stepsize=0.0, beta1=beta)  # only its first moment is read
        raw, corrected, constant = [], [], []
        constant_adam = Adam(
            [c := torch.zeros(1, dtype=torch.float64, requires_grad=True)], stepsize=0.0, beta1=beta
        )
        for t, g in enumerate(signal.tolist(), start=1):
            m.grad, c.grad = (
                torch.tensor([g], dtype=torch.float64),
                torch.ones(1, dtype=torch.float64),
            )
            adam.step()
            constant_adam.step()
            raw.append(adam.state[m]["m"].item())
            corrected.append(raw[-1] / (1 - beta**t))
            constant.append(constant_adam.state[c]["m"].item() / (1 - beta**t))
        left.plot(range(1, steps + 1), raw, color=colour, ls="--", lw=1, label=f"beta {beta}, raw")
        left.plot(
            range(1, steps + 1), corrected, color=colour, lw=1.3, label=f"beta {beta}, corrected"
        )
        numbers[f"raw_at_t1_beta{beta}"] = constant[0] * (1 - beta)  # of the constant 1
        numbers[f"raw_at_t10_beta{beta}"] = constant[9] * (1 - beta**10)
        numbers[f"corrected_constant_max_error_beta{beta}"] = max(abs(v - 1) for v in constant)
    left.set_xlabel("t")
    left.set_title("moving averages of a signal: the raw one starts far below", fontsize=8)
    left.legend(fontsize=6)
    for correction, style in ((True, "-"), (False, "--")):  # Adam on f = x^2/2 from x = 1
        x = torch.ones(1, dtype=torch.float64, requires_grad=True)
        adam = Adam([x], stepsize=0.01, bias_correction=correction)
        path = [1.0]
        for _ in range(30):
            x.grad = x.detach().clone()
            adam.step()
            path.append(x.item())
        moves = np.abs(np.diff(path)) / 0.01
        right.plot(
            range(1, 31), moves, style, label=f"bias correction {'on' if correction else 'off'}"
        )
        numbers[f"first_step_over_alpha_{'on' if correction else 'off'}"] = float(moves[0])
    finish(
        right,
        "step",
        "|step| / alpha",
        "Adam's first steps on x^2/2 (beta1 0.9, beta2 0.999)",
        out / "ewma.png",
        legend_size=6,
    )
    return numbers


def finish(
    ax: Any,
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    title_size: int = 8,
    legend_size: int = 7,
) -> None:
    """Label the axes, add the legend, save the axes' figure to `path` and close it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=title_size)
    ax.legend(fontsize=legend_size)
    fig = ax.get_figure()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def effective_stepsizes(out: Path, steps: int = 10_000) -> dict[str, float]:
    """S5: |update| / |gradient| over a long run on the noisy bowl, AdaGrad against RMSProp."""
    import matplotlib.pyplot as plt

    from ..models.surfaces import SURFACES

    bowl = SURFACES["bowl"]
    numbers = {}
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=150)
    for name in ("adagrad", "rmsprop"):
        gen = torch.Generator().manual_seed(1)
        theta = torch.tensor(bowl.start, dtype=torch.float64, requires_grad=True)
        optimizer = build_optimizer([theta], {"name": name, "stepsize": 0.01})
        ratio = []
        for _ in range(steps):
            gx, gy = bowl.gradient(theta[0].detach(), theta[1].detach())
            g = torch.stack([gx, gy]) + torch.randn(2, generator=gen, dtype=torch.float64)
            before = theta.detach().clone()
            theta.grad = g
            optimizer.step()
            ratio.append(float((theta.detach() - before).norm() / g.norm()))
        smooth = pd.Series(ratio).rolling(100, min_periods=1).mean()
        ax.loglog(range(1, steps + 1), smooth, label=name)
        numbers[f"{name}_ratio_late_over_early"] = float(smooth.iloc[-1] / smooth.iloc[99])
    numbers["s5_steps"] = steps
    finish(
        ax,
        "step",
        "|update| / |gradient| (mean of 100)",
        "S5: the noisy bowl, stepsize 0.01",
        out / "effective_stepsize.png",
    )
    return numbers


def update_bound(runs: Path, surfaces: list[str]) -> dict[str, float]:
    """P13: the largest |Delta theta_i| / alpha over every Adam path on the surfaces."""
    from ..figures.trajectories import member_paths
    from ..records import read_record

    ratios = []
    for surface in surfaces:
        record = read_record(runs / surface / "adam")
        paths = member_paths(record)
        diverged = {int(k) for k in record.get("diverged", {})}
        for k, member in enumerate(record["members"]):
            if k not in diverged:
                ratios.append(np.abs(np.diff(paths[k], axis=0)).ravel() / member["stepsize"])
    ratios = np.concatenate(ratios)
    return {
        "max_update_over_alpha": float(ratios.max()),
        "fraction_at_most_alpha": float(np.mean(ratios <= 1 + 1e-9)),
        "paper_worst_case": 0.1 / math.sqrt(0.001),
    }


# -- 3. where the theory breaks ----------------------------------------------------------------
def project(x: torch.Tensor, radius: float) -> None:
    """The online problem's projection onto its feasible set {x : |x_i| <= radius}, in place."""
    with torch.no_grad():
        x.clamp_(-radius, radius)


def counterexample(out: Path, steps: int = 20_000, alpha: float = 0.5) -> dict[str, float]:
    """Reddi et al.'s synthetic online problem: f_t(x) = 1010 x if t mod 101 = 1 else -10 x on
    [-1, 1]; x* = -1. Adam and AMSGrad with beta1 0.9, beta2 0.99, alpha_t = alpha / sqrt(t)."""
    import matplotlib.pyplot as plt

    numbers = {}
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=150)
    for amsgrad in (False, True):
        x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = Adam([x], stepsize=alpha, beta1=0.9, beta2=0.99, amsgrad=amsgrad)
        path = []
        for t in range(1, steps + 1):
            x.grad = torch.tensor([1010.0 if t % 101 == 1 else -10.0], dtype=torch.float64)
            optimizer.param_groups[0]["stepsize"] = alpha / math.sqrt(t)
            optimizer.step()
            project(x, 1.0)
            path.append(x.item())
        name = "AMSGrad" if amsgrad else "Adam"
        ax.plot(range(1, steps + 1), path, label=name)
        numbers[f"{name}_final_x"] = path[-1]
    ax.axhline(-1, color="0.4", ls=":", lw=1, label="x* = -1")
    finish(
        ax,
        "t",
        "x_t",
        "Reddi et al.'s counterexample: f_t = 1010x (t mod 101 = 1), else -10x",
        out / "counterexample.png",
        title_size=7,
    )
    return numbers


def regret(
    out: Path, horizon: int = 20_000, dimension: int = 10, radius: float = 2.0
) -> dict[str, float]:
    """The paper's Theorem 4.1 setting on online logistic regression: alpha_t = alpha/sqrt(t),
    beta1_t = beta1 lambda^(t-1) (lambda 0.999), the feasible set {|theta_i| <= radius}; the
    average regret against the best fixed theta in hindsight (fitted on the first T losses)."""
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(0)
    truth = torch.randn(dimension, generator=gen, dtype=torch.float64)
    xs = torch.randn(horizon, dimension, generator=gen, dtype=torch.float64)
    noise = torch.randn(horizon, generator=gen, dtype=torch.float64)
    ys = torch.sign(xs @ truth + noise)

    def loss(theta, rows):
        return torch.nn.functional.softplus(-ys[rows] * (xs[rows] @ theta))

    theta = torch.zeros(dimension, dtype=torch.float64, requires_grad=True)
    alpha = 0.5
    optimizer = Adam([theta], stepsize=alpha, beta1=0.9, beta1_decay=0.999, beta2=0.999)
    online = []
    for t in range(horizon):
        value = loss(theta, slice(t, t + 1))[0]
        online.append(value.item())
        theta.grad = torch.autograd.grad(value, theta)[0]
        optimizer.param_groups[0]["stepsize"] = alpha / math.sqrt(t + 1)
        optimizer.step()
        project(theta, radius)
    cumulative = np.cumsum(online)
    horizons = [h for h in (100, 300, 1000, 3000, 10_000, 20_000) if h <= horizon]
    average = []
    for h in horizons:  # the best fixed theta on the first h losses, in the same set:
        # theta = radius tanh(phi) keeps every iterate feasible for an unconstrained L-BFGS
        phi = torch.zeros(dimension, dtype=torch.float64, requires_grad=True)
        fit = torch.optim.LBFGS([phi], max_iter=500, line_search_fn="strong_wolfe")

        def closure(h=h, phi=phi, fit=fit):
            fit.zero_grad()
            value = loss(radius * torch.tanh(phi), slice(0, h)).sum()
            value.backward()
            return value

        fit.step(closure)
        hindsight = loss(radius * torch.tanh(phi.detach()), slice(0, h)).sum().item()
        average.append((cumulative[h - 1] - hindsight) / h)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=150)
    ax.loglog(horizons, average, "o-", label="Adam, Theorem 4.1 schedule")
    scale = average[0] * math.sqrt(horizons[0])
    ax.loglog(
        horizons, [scale / math.sqrt(h) for h in horizons], ":", color="0.4", label="1 / sqrt(T)"
    )
    finish(ax, "T", "R(T) / T", "online logistic regression: average regret", out / "regret.png")
    pd.DataFrame({"T": horizons, "average_regret": average}).to_csv(out / "regret.csv", index=False)
    return {f"average_regret_T{h}": r for h, r in zip(horizons, average, strict=True)}


def verdicts(selected: dict[str, pd.DataFrame], numbers: dict[str, float]) -> pd.DataFrame:
    """Each claim: the numbers that decide it, the rule, and whether it holds."""
    rows = []

    def metric(surface: str, label: str, column: str) -> float:
        table = selected[surface].set_index("label")
        return float(table.loc[label, column]) if label in table.index else math.nan

    def add(claim, text, number, rule, holds):
        rows.append(
            {
                "claim": claim,
                "statement": text,
                "measured": number,
                "rule": rule,
                "verdict": "holds" if holds else "does not hold",
            }
        )

    if "bowl" in selected:
        ratio = {
            k: metric("bowl", k, "path_ratio") for k in ("SGD", "SGDMomentum", "AdaGrad", "Adam")
        }
        zig = {k: metric("bowl", k, "zigzags") for k in ratio}
        add(
            "S1",
            "on the bowl plain SGD zig-zags; momentum, AdaGrad and Adam take straighter paths",
            "; ".join(f"{k}: path/straight {ratio[k]:.2f}, {zig[k]:.0f} reversals" for k in ratio),
            "SGD's path ratio and reversals above each of the three others (at each one's "
            "fastest stepsize)",
            all(ratio["SGD"] > ratio[k] and zig["SGD"] > zig[k] for k in ratio if k != "SGD"),
        )
    if "saddle" in selected:
        slow, quick = ("SGD", "SGDMomentum", "SGDNesterov"), ("AdaGrad", "RMSProp", "AdaDelta")
        near = {k: metric("saddle", k, "steps_near_saddle") for k in slow + quick}
        add(
            "S2",
            "SGD, momentum and Nesterov stay long near a saddle; AdaGrad, RMSProp and "
            "AdaDelta leave it quickly",
            "; ".join(f"{k}: {v:.0f} steps within 0.3" for k, v in near.items()),
            "each of the first three spends more steps near the saddle than each of the last three",
            min(near[k] for k in slow) > max(near[k] for k in quick),
        )
        after = {
            k: metric("saddle", k, "steps_after_saddle")
            for k in ("SGDMomentum", "SGDNesterov", "AdaGrad", "RMSProp")
        }
        add(
            "S3",
            "past the saddle, momentum and Nesterov reach the minimum fastest; AdaGrad and "
            "RMSProp are slower",
            "; ".join(f"{k}: {v:.0f} steps" for k, v in after.items()),
            "momentum's and Nesterov's steps from leaving to 1e-6 below AdaGrad's and RMSProp's",
            max(after["SGDMomentum"], after["SGDNesterov"])
            < min(after["AdaGrad"], after["RMSProp"]),
        )
    corrected_error = max(
        numbers["corrected_constant_max_error_beta0.9"],
        numbers["corrected_constant_max_error_beta0.98"],
    )
    add(
        "P14/S4",
        "bias correction removes the initialisation bias of the moving averages",
        f"raw average of the constant 1 at t = 1: {numbers['raw_at_t1_beta0.9']:.3f} (beta 0.9), "
        f"{numbers['raw_at_t1_beta0.98']:.3f} (beta 0.98); corrected average of a constant: "
        f"largest error {corrected_error:.1e}; "
        f"Adam's first step / alpha: {numbers['first_step_over_alpha_on']:.3f} corrected, "
        f"{numbers['first_step_over_alpha_off']:.3f} not",
        "the corrected average of a constant equals it from t = 1 (error < 1e-12) while the raw "
        "one starts at (1 - beta)",
        max(
            numbers["corrected_constant_max_error_beta0.9"],
            numbers["corrected_constant_max_error_beta0.98"],
        )
        < 1e-12
        and abs(numbers["raw_at_t1_beta0.9"] - 0.1) < 0.05,
    )
    add(
        "S5",
        "AdaGrad's step shrinks until learning stalls; RMSProp's does not",
        f"|update|/|gradient| at step {numbers['s5_steps']:,} over step 100: AdaGrad "
        f"{numbers['adagrad_ratio_late_over_early']:.3f}, "
        f"RMSProp {numbers['rmsprop_ratio_late_over_early']:.3f}",
        "AdaGrad's ratio below 0.2 (about 1/sqrt(100) expected) and RMSProp's above 0.5 (it "
        "does not shrink; until issue 28 also below 2, which the claim's words do not ask)",
        numbers["adagrad_ratio_late_over_early"] < 0.2
        and numbers["rmsprop_ratio_late_over_early"] > 0.5,
    )
    add(
        "P13",
        "Adam's effective step is bounded: |Delta| <= alpha roughly",
        f"largest |Delta_i| / alpha {numbers['max_update_over_alpha']:.3f} over every Adam path "
        f"and member; {numbers['fraction_at_most_alpha']:.1%} of updates within alpha",
        f"largest ratio within the paper's worst case alpha (1 - beta1) / sqrt(1 - beta2) = "
        f"{numbers['paper_worst_case']:.2f}",
        numbers["max_update_over_alpha"] <= numbers["paper_worst_case"],
    )
    add(
        "Reddi",
        "Adam can converge to the worst point of an online convex problem; AMSGrad does not",
        f"x at the end: Adam {numbers['Adam_final_x']:.3f}, "
        f"AMSGrad {numbers['AMSGrad_final_x']:.3f} (x* = -1)",
        "Adam ends above 0.9 (the wrong end) and AMSGrad below -0.5",
        numbers["Adam_final_x"] > 0.9 and numbers["AMSGrad_final_x"] < -0.5,
    )
    regrets = [v for k, v in numbers.items() if k.startswith("average_regret_T")]
    add(
        "Thm 4.1",
        "with alpha/sqrt(t) and beta1 lambda^(t-1), Adam's average regret goes to 0",
        ", ".join(
            f"{k.removeprefix('average_regret_T')}: {v:.4f}"
            for k, v in numbers.items()
            if k.startswith("average_regret_T")
        ),
        "R(T)/T falls at every step of T and ends below a fifth of its first value",
        all(b < a for a, b in zip(regrets, regrets[1:], strict=False))
        and regrets[-1] < regrets[0] / 5,
    )
    return pd.DataFrame(rows)


def readme(out: Path, table: pd.DataFrame, surfaces: list[str]) -> None:
    lines = [
        "# Small problems: the optimizers at work",
        "",
        "Generated by `make trajectories` (`python -m adamrepro.studies.small_problems`) from the "
        "optimizer classes and the training loop that the paper's figures use; every number "
        "below is read from this folder's CSVs. Claims: `../../experiments/claims.yaml`.",
        "",
        "## Paths on 2-D surfaces",
        "",
        "Every optimizer from the same start; per optimizer, the stepsize of its grid "
        "(`configs/sweep/toy.yaml`) that reaches f - f* below the tolerance and stays there "
        "in the fewest steps (else the lowest final f - f*). Each folder holds the figure, "
        "an animation (`animation.gif`), `paths.csv` and `metrics.csv` (every member).",
        "",
    ]
    for surface in surfaces:
        lines += [
            f"### {surface}",
            "",
            f"![{surface}]({surface}/figure.png) [animation]({surface}/animation.gif)",
            "",
        ]
    lines += [
        "## The claims, decided",
        "",
        "| claim | statement | measured | rule | verdict |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.claim} | {row.statement} | {row.measured} | {row.rule} | **{row.verdict}** |"
        )
    lines += [
        "",
        "![EWMA](ewma.png)",
        "",
        "![effective stepsize](effective_stepsize.png)",
        "",
        "## Where the theory breaks",
        "",
        "![counterexample](counterexample.png) ![regret](regret.png)",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("studies.small_problems", __doc__)
    parser.add_argument("--runs", type=Path, default=Path("outputs/small_problems"))
    parser.add_argument("--out", type=Path, default=Path("results/small_problems"))
    parser.add_argument("--surfaces", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--quick", action="store_true", help="short runs: check the machinery")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scale = 0.1 if args.quick else 1.0
    selected = run_surfaces(args.runs, args.out, args.surfaces, scale)
    numbers = {**ewma_picture(args.out), **update_bound(args.runs, args.surfaces)}
    numbers.update(effective_stepsizes(args.out, 1000 if args.quick else 10_000))
    numbers.update(counterexample(args.out, 2000 if args.quick else 20_000))
    numbers.update(regret(args.out, 1000 if args.quick else 20_000))
    table = verdicts(selected, numbers)
    table.to_csv(args.out / "verdicts.csv", index=False)
    readme(args.out, table, args.surfaces)
    print(table[["claim", "verdict", "measured"]].to_string(index=False))


if __name__ == "__main__":
    main()
