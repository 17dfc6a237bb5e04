"""The mutation score of the places whose mistakes change a figure, from mutmut's results.

    python scripts/mutation_report.py [--mutants mutants] [--sample docs/mutation_sample.txt]
        [--equivalent docs/mutation_equivalent.txt] [--out docs/mutation.md]

Reads every `mutants/**/*.py.meta` that `mutmut run` leaves (one exit code per mutant: 1 the
tests failed, the mutant is killed; 0 they passed, it survived; 33 no test reaches it; 36 it ran
past its time limit, counted as killed, as mutmut does), groups the mutants by place
(optim/, train.py, data/, models/, plot.py) and writes per place: mutants, killed, survived,
equivalent, not reached, not run, and the score killed / (mutants - equivalent). A mutant that
no test of the mutation run reaches (mutmut's "no tests": only a test in a new process would)
counts as not killed: a mutant is scored as caught only when a test failed on it. A mutant
named in the equivalents file (`<mutant name>  <reason>` per line) changes no behaviour that a
figure can show and is left out of the score, with its reason printed. Survivors are listed by
name, so `mutmut show <name>` prints each; the mutants no test reaches, by function.

With `--sample` (the names `scripts/mutation_sample.py` drew), only the sampled mutants are
scored, whatever else has results, and each place's score comes with its 95% Wilson interval.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

PLACES = {
    "adamrepro.optim": "optim/",
    "adamrepro.train": "train.py, training/",
    "adamrepro.data": "data/",
    "adamrepro.models": "models/",
    "adamrepro.figures.plot": "figures/plot.py",
}
KILLED = {1, 3, 36, -9, -11, -24, 152}  # a failing test, a crash or a timeout
SURVIVED = {0, 5}
NOT_TESTED = {33, 34}
TARGET = 0.85


def wilson(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion killed / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def place(name: str) -> str | None:
    return next((label for prefix, label in PLACES.items() if name.startswith(prefix)), None)


def read_results(mutants: Path) -> dict[str, int | None]:
    results: dict[str, int | None] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        results.update(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    return results


def read_equivalents(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    rows = (line.split(maxsplit=1) for line in path.read_text().splitlines())
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows if row and row[0][0] != "#"}


def by_module(results: dict[str, int | None], equivalents: dict[str, str]) -> dict[str, Counter]:
    """The same counts per module (`adamrepro.optim.rules`, ...)."""
    counts: dict[str, Counter] = {}
    for name, code in results.items():
        if place(name) is None:
            continue
        c = counts.setdefault(name.split(".x")[0], Counter())
        c["mutants"] += 1
        c[
            "equivalent"
            if name in equivalents
            else "killed"
            if code in KILLED
            else "survived"
            if code in SURVIVED
            else "not reached"
            if code in NOT_TESTED
            else "not run"
        ] += 1
    return counts


def report(results: dict[str, int | None], equivalents: dict[str, str]) -> tuple[str, bool]:
    counts: dict[str, Counter] = {label: Counter() for label in PLACES.values()}
    survivors: dict[str, list[str]] = {label: [] for label in PLACES.values()}
    unreached: dict[str, Counter] = {label: Counter() for label in PLACES.values()}
    for name, code in sorted(results.items()):
        label = place(name)
        if label is None:
            continue
        c = counts[label]
        c["mutants"] += 1
        if name in equivalents:
            c["equivalent"] += 1
        elif code in KILLED:
            c["killed"] += 1
        elif code in SURVIVED:
            c["survived"] += 1
            survivors[label].append(name)
        elif code in NOT_TESTED:
            c["not reached"] += 1
            unreached[label][name.split("__mutmut_")[0]] += 1
        else:
            c["not run"] += 1
    lines = [
        "| place | mutants | killed | survived | equivalent | not reached | not run | score "
        "| 95% interval |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    reached = True
    for label, c in counts.items():
        decided = c["killed"] + c["survived"] + c["not reached"]
        score = c["killed"] / decided if decided else float("nan")
        low, high = wilson(c["killed"], decided)
        reached &= bool(decided) and score >= TARGET and not c["not run"]
        lines.append(
            f"| {label} | {c['mutants']} | {c['killed']} | {c['survived']} | "
            f"{c['equivalent']} | {c['not reached']} | {c['not run']} | "
            f"{score:.1%} | {low:.1%} - {high:.1%} |"
        )
    lines += [
        "",
        "Per module (`not reached`: no test of the mutation run reaches it, counted "
        "as not killed; `not run`: left for a later run):",
        "",
        "| module | mutants | killed | survived | equivalent | not reached | not run | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for module, c in sorted(by_module(results, equivalents).items()):
        decided = c["killed"] + c["survived"] + c["not reached"]
        score = f"{c['killed'] / decided:.1%}" if decided else "-"
        lines.append(
            f"| {module} | {c['mutants']} | {c['killed']} | {c['survived']} | "
            f"{c['equivalent']} | {c['not reached']} | {c['not run']} | "
            f"{score} |"
        )
    lines += ["", "## Survivors (`mutmut show <name>` prints each)", ""]
    for label, names in survivors.items():
        lines += [f"- {label}: {len(names)}"] + [f"  - `{n}`" for n in names]
    lines += ["", "## Reached by no test of the mutation run (mutants per function)", ""]
    for label, functions in unreached.items():
        lines += [f"- {label}: {sum(functions.values())}"]
        lines += [f"  - `{f}`: {k}" for f, k in sorted(functions.items())]
    lines += ["", "## Equivalent mutants (left out of the score)", ""]
    lines += [f"- `{n}`: {reason}" for n, reason in sorted(equivalents.items())] or ["none"]
    return "\n".join(lines) + "\n", reached


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--sample", type=Path, help="score only these mutants (one per line)")
    parser.add_argument("--equivalent", type=Path, default=Path("docs/mutation_equivalent.txt"))
    parser.add_argument("--out", type=Path, default=Path("docs/mutation.md"))
    parser.add_argument("--command", default="make mutation")
    parser.add_argument("--note", default="", help="what this run covered, in words")
    args = parser.parse_args(argv)
    results = read_results(args.mutants)
    if not results:
        raise SystemExit(f"no mutmut results under {args.mutants}/: run `mutmut run` first")
    scope = f"{len(results)} mutants in all"
    if args.sample is not None:
        names = [n for n in args.sample.read_text().split() if n.startswith("adamrepro.")]
        missing = [n for n in names if n not in results]  # its function changed since
        scope = f"a random sample of {len(names)} of its {len(results)} mutants ({args.sample})"
        if missing:
            scope += f"; {len(missing)} of them no longer exist and are left out"
        results = {n: results[n] for n in names if n in results}
    table, reached = report(results, read_equivalents(args.equivalent))
    verdict = "reached" if reached else "NOT reached"
    head = (
        f"# Mutation testing\n\nMade by `{args.command}` (mutmut, {scope}). Target: at "
        f"least {TARGET:.0%} of the non-equivalent mutants killed in each place: "
        f"**{verdict}**.\n\n"
    )
    head += f"{args.note}\n\n" if args.note else ""
    args.out.write_text(head + table)
    print(f"wrote {args.out}: target {verdict}")


if __name__ == "__main__":
    main()
