"""A fixed random sample of mutmut's mutants, the same size in each place, stratified by module.

    python scripts/mutation_sample.py [--per-place 300] [--seed 0] [--mutants mutants]
        [--within FILE] [--out docs/mutation_sample.txt]

Every mutant of the places (optim/, train.py, data/, models/, plot.py) that `mutmut run` has
generated is listed in `mutants/**/*.py.meta`. Running all of them takes hours on two CPU cores
(a mutant of the training loop runs every training test that survives it); a simple random
sample of mutants estimates each place's score with a known error instead (300 mutants: a 95%
interval of about +-4 points at a score of 85%). Within a place each module gets its share of
the sample in proportion to its mutants; the draw depends only on the seed and the mutants'
names, so the same code gives the same sample. `--within FILE` draws from the names of an
earlier sample instead of from all mutants (a random part of a random sample is a random
sample): `make mutation` draws 300 per place, then 150 of those (the 300 did not fit in a
session on 2 cores). Writes one name per line; `make mutation` runs them
(`mutmut run <names>`) and `scripts/mutation_report.py --sample` scores only them.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_report import place, read_results  # noqa: E402


def sample(names: list[str], per_place: int, seed: int) -> list[str]:
    """`per_place` names from each place (all of a smaller one), each module's share
    proportional to its size (largest remainders), drawn with `seed`."""
    chosen: list[str] = []
    places: dict[str, dict[str, list[str]]] = {}
    for name in sorted(names):
        label = place(name)
        if label is not None:
            places.setdefault(label, {}).setdefault(name.split(".x")[0], []).append(name)
    rng = random.Random(seed)
    for label in sorted(places):
        modules = places[label]
        total = sum(len(m) for m in modules.values())
        want = min(per_place, total)
        exact = {module: want * len(m) / total for module, m in modules.items()}
        share = {module: int(e) for module, e in exact.items()}
        by_remainder = sorted(exact, key=lambda module: (share[module] - exact[module], module))
        for module in by_remainder[: want - sum(share.values())]:
            share[module] += 1
        for module in sorted(modules):
            chosen += sorted(rng.sample(modules[module], share[module]))
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--per-place", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--within", type=Path, help="draw from this sample's names instead")
    parser.add_argument("--out", type=Path, default=Path("docs/mutation_sample.txt"))
    args = parser.parse_args(argv)
    names = list(read_results(args.mutants))
    if args.within is not None:
        kept = set(names)
        names = [n for n in args.within.read_text().split() if n in kept]
    if not names:
        raise SystemExit(f"no mutants under {args.mutants}/: run `mutmut run` once to make them")
    chosen = sample(names, args.per_place, args.seed)
    within = f" --within {args.within}" if args.within else ""
    header = (
        f"# mutation_sample.py --per-place {args.per_place} --seed {args.seed}{within}: "
        f"{len(chosen)} of {len(names)} mutants\n"
    )
    args.out.write_text(header + "\n".join(chosen) + "\n")
    print(f"wrote {args.out}: {len(chosen)} of {len(names)} mutants")


if __name__ == "__main__":
    main()
