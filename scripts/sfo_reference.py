"""Our SFO against its authors' implementation, on the same objectives and subfunctions.

    python scripts/sfo_reference.py --reference PATH/TO/sfo.py [--problems quadratics logreg]
        [--passes 25] [--out results/fig2b_mnist_mlp_deterministic/sfo_reference]

`--reference` is the `sfo.py` of Sohl-Dickstein/Sum-of-Functions-Optimizer (Apache-2.0 since
2021), imported from where it lies (a fetched snapshot): nothing of it is in this repository.
Both optimizers minimise the same sum of N subfunctions from the same start, each with its own
defaults except the subfunction count and `max_history` 10 (both codes' default). The x axis
is the number of subfunction evaluations divided by N (a failed step's extra evaluations
count, for both), and at each whole pass the full objective is computed outside the
optimizers. Problems:

- `quadratics`: N = 24 subfunctions 1/2 (x - c_i)' A_i (x - c_i) in 50 dimensions that share
  most of their structure (as minibatches do); the minimum is solved exactly.
- `logreg`: L2-regularised (1e-3) binary logistic regression on 4,800 synthetic rows of 50
  features in N = 24 minibatches; the minimum by Newton's method (30 steps, to rounding).
- `network`: Figure 2 (b)'s network (`experiment=mnist_mlp_deterministic`: 784-1000-1000-10
  ReLU, no dropout, no L2, the output layer starting at zero) on the 60,000 MNIST training
  images, in float64, cut into `--subfunctions` fixed minibatches as our Figure 2 (b) driver
  cuts them (`studies.sfo_run.subfunction_batches`, seed 0); each subfunction is its
  minibatch's share of the mean training cost, so the objective is the figure's training cost.
  Its minimum is not known: the excess is the cost itself. Needs `--data-root`; the full cost
  is computed only at the passes the table shows (a pass over 60,000 images in float64 costs
  seconds).

Writes `reference.csv` (problem, optimizer, pass, evaluations, objective, excess over the
minimum) and `reference.md`.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adamrepro.optim.sfo import SFO

FDF = Callable[[np.ndarray, int], tuple[float, np.ndarray]]


@dataclass
class Problem:
    name: str
    n: int  # subfunctions
    theta0: np.ndarray
    f_df: FDF  # subfunction i at theta: (value, gradient), float64
    minimum: float
    value: Callable[[np.ndarray], float] | None = None  # the objective alone, when cheaper

    def full(self, theta: np.ndarray) -> float:
        if self.value is not None:
            return self.value(theta)
        return float(sum(self.f_df(theta, i)[0] for i in range(self.n)))


def quadratics(m: int = 50, n: int = 24, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((m, m))
    common, centre = b @ b.T / m + 0.1 * np.eye(m), rng.standard_normal(m)
    a, c = [], []
    for _ in range(n):
        extra = rng.standard_normal((m, 5))
        a.append(common + 0.3 * extra @ extra.T / 5)
        c.append(centre + 0.3 * rng.standard_normal(m))

    def f_df(theta: np.ndarray, i: int) -> tuple[float, np.ndarray]:
        d = theta.reshape(-1) - c[i]
        return float(0.5 * d @ a[i] @ d), a[i] @ d

    solution = np.linalg.solve(sum(a), sum(ai @ ci for ai, ci in zip(a, c, strict=True)))
    problem = Problem("quadratics", n, np.zeros(m), f_df, 0.0)
    problem.minimum = problem.full(solution)
    return problem


def logreg(rows: int = 4800, m: int = 50, n: int = 24, l2: float = 1e-3, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, m))
    w_true = rng.standard_normal(m)
    y = (x @ w_true + rng.standard_normal(rows) > 0).astype(float)
    batches = np.array_split(rng.permutation(rows), n)

    def f_df(theta: np.ndarray, i: int) -> tuple[float, np.ndarray]:
        w = theta.reshape(-1)
        xb, yb = x[batches[i]], y[batches[i]]
        z = xb @ w
        loss = np.logaddexp(0.0, z) - yb * z  # -log p(y | x)
        grad = xb.T @ (1.0 / (1.0 + np.exp(-z)) - yb)
        return (float(loss.sum() / rows + 0.5 * l2 * w @ w / n), grad / rows + l2 * w / n)

    problem = Problem("logreg", n, np.zeros(m), f_df, 0.0)
    w = np.zeros(m)
    for _ in range(30):  # Newton's method: the objective is smooth and 50-dimensional
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) / rows + l2 * w
        hessian = (x.T * (p * (1 - p))) @ x / rows + l2 * np.eye(m)
        w = w - np.linalg.solve(hessian, gradient)
    problem.minimum = problem.full(w)
    return problem


def network(data_root: str, n: int = 24, seed: int = 0, overrides: tuple[str, ...] = ()) -> Problem:
    from adamrepro.config import compose_config
    from adamrepro.data import load_data
    from adamrepro.models import build_model
    from adamrepro.studies.sfo_run import subfunction_batches

    cfg = compose_config(
        ["experiment=mnist_mlp_deterministic", f"data.root={data_root}", *overrides]
    )
    torch.manual_seed(seed)
    data = load_data(cfg.data).to("cpu", torch.float64)
    model = build_model(cfg.model, data, [seed]).to(dtype=torch.float64)
    params = list(model.parameters())
    rows = len(data.x_train)
    batches = subfunction_batches(rows, n, seed)
    theta0 = torch.nn.utils.parameters_to_vector(params).detach().numpy().copy()

    def f_df(theta: np.ndarray, i: int) -> tuple[float, np.ndarray]:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(theta.reshape(-1)), params)
        model.zero_grad(set_to_none=True)
        batch = batches[i]
        cost = model.cost(data.x_train[batch], data.y_train[batch])[0] * (len(batch) / rows)
        cost.backward()
        grad = torch.nn.utils.parameters_to_vector([p.grad for p in params])
        return cost.item(), grad.numpy().copy()

    @torch.no_grad()
    def value(theta: np.ndarray) -> float:
        torch.nn.utils.vector_to_parameters(torch.from_numpy(theta.reshape(-1)), params)
        return sum(
            model.cost(data.x_train[b], data.y_train[b])[0].item() * len(b) / rows
            for b in torch.arange(rows).split(5000)
        )

    return Problem("network", n, theta0, f_df, 0.0, value)


PROBLEMS = {"quadratics": quadratics, "logreg": logreg, "network": network}
SHOWN = (1, 2, 3, 5, 10, 15, 20, 25)


def run_ours(problem: Problem, passes: int, seed: int, **options: object) -> list[dict]:
    theta = torch.from_numpy(problem.theta0.copy())
    evaluations = [0]

    def subfunction(i: int) -> tuple[float, torch.Tensor]:
        evaluations[0] += 1
        value, grad = problem.f_df(theta.numpy(), i)
        return value, torch.from_numpy(np.asarray(grad, dtype=np.float64).reshape(-1))

    optimizer = SFO([theta], subfunction, problem.n, **{"max_history": 10, "seed": seed, **options})
    return _passes(problem, passes, optimizer.step, lambda: theta.numpy(), evaluations)


def run_theirs(
    reference: type, problem: Problem, passes: int, seed: int, **options: object
) -> list[dict]:
    evaluations = [0]

    def f_df(theta: np.ndarray, i: int) -> tuple[float, np.ndarray]:
        evaluations[0] += 1
        return problem.f_df(theta, i)

    random.seed(seed)  # theirs draws from the global generators (its start-up order, directions)
    np.random.seed(seed)
    settings = {"display": 0, "max_history_terms": 10, **options}
    optimizer = reference(f_df, problem.theta0.copy(), list(range(problem.n)), **settings)
    return _passes(
        problem,
        passes,
        lambda: optimizer.optimize(num_steps=1),
        lambda: np.asarray(optimizer.theta).reshape(-1),
        evaluations,
    )


def _passes(
    problem: Problem, passes: int, step: Callable, theta: Callable, evaluations: list[int]
) -> list[dict]:
    rows, started = [], time.perf_counter()
    for k in range(1, passes + 1):
        while evaluations[0] < k * problem.n:
            step()
        if problem.name == "network" and k not in SHOWN and k != passes:
            continue  # a full pass over 60,000 images is not free: the table's passes only
        value = problem.full(theta())
        if problem.name == "network":
            print(f"  pass {k}: cost {value:.4g}", flush=True)
        rows.append(
            {
                "pass": k,
                "evaluations": evaluations[0],
                "objective": value,
                "excess": value - problem.minimum,
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def load_reference(path: Path) -> type:
    spec = importlib.util.spec_from_file_location("sfo_reference_implementation", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SFO


def options(pairs: list[str]) -> dict[str, object]:
    """KEY=VALUE settings, each value read as a Python literal (1e5, True, 'random')."""
    import ast

    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def report(table: pd.DataFrame, command: str) -> str:
    lines = [
        "# Our SFO against its authors' implementation",
        "",
        f"Command: `{command}` "
        "(the authors' `sfo.py` from Sohl-Dickstein/Sum-of-Functions-Optimizer at commit "
        "36c66df, imported from a fetched snapshot, not copied). Cells: the full objective's "
        "excess over the minimum after k passes (subfunction evaluations / N, failed steps' "
        "extra evaluations included), the median over the seeds (both codes draw random "
        "numbers: ours from its `seed`, theirs from numpy's and Python's global generators, "
        "seeded); ratio: ours / theirs.",
        "",
    ]
    for problem, part in table.groupby("problem", sort=False):
        wide = part.groupby(["pass", "optimizer"])["excess"].median().unstack()
        lines += [
            f"## {problem}",
            "",
            "| pass | ours | theirs | ours / theirs |",
            "|---|---|---|---|",
        ]
        for k in [p for p in SHOWN if p in wide.index]:
            ours, theirs = wide.loc[k, "ours"], wide.loc[k, "theirs"]
            shown = f"{ours / theirs:.3g}" if min(ours, theirs) > 1e-12 else "at rounding"
            lines.append(f"| {k} | {ours:.3g} | {theirs:.3g} | {shown} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the authors' sfo.py")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--passes", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=5, help="runs of each, seeds 0, 1, ...")
    parser.add_argument("--subfunctions", type=int, default=24, help="N of the network")
    parser.add_argument("--data-root", default=None, help="where MNIST lies (for network)")
    parser.add_argument("--ours", nargs="*", default=[], help="KEY=VALUE settings of our SFO")
    parser.add_argument("--theirs", nargs="*", default=[], help="KEY=VALUE settings of theirs")
    parser.add_argument(
        "--out", type=Path, default=Path("results/fig2b_mnist_mlp_deterministic/sfo_reference")
    )
    args = parser.parse_args()
    ours, theirs = options(args.ours), options(args.theirs)
    command = (
        f"python scripts/sfo_reference.py --reference PATH/sfo.py --problems "
        f"{' '.join(args.problems)} --passes {args.passes} --seeds {args.seeds}"
        + (
            f" --subfunctions {args.subfunctions} --data-root DATA"
            if "network" in args.problems
            else ""
        )
        + "".join(
            f" --{who} {' '.join(pairs)}"
            for who, pairs in (("ours", args.ours), ("theirs", args.theirs))
            if pairs
        )
    )
    reference = load_reference(args.reference)
    rows = []
    for name in args.problems:
        if name == "network":
            if args.data_root is None:
                raise SystemExit("error: the network problem needs --data-root (where MNIST lies)")
            problem = network(args.data_root, args.subfunctions)
        else:
            problem = PROBLEMS[name]()
        for optimizer, runner in (
            ("ours", lambda p, k, s: run_ours(p, k, s, **ours)),
            ("theirs", lambda p, k, s: run_theirs(reference, p, k, s, **theirs)),
        ):
            for seed in range(args.seeds):
                for row in runner(problem, args.passes, seed):
                    rows.append({"problem": name, "optimizer": optimizer, "seed": seed, **row})
            print(
                f"{name} {optimizer}: excess {rows[-1]['excess']:.3g} after {args.passes} "
                f"passes, {rows[-1]['seconds']:.1f} s",
                flush=True,
            )
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "reference.csv", index=False, float_format="%.6g")
    (args.out / "reference.md").write_text(report(table, command))
    print(report(table, command))


if __name__ == "__main__":
    main()
