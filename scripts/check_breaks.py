"""Deliberate breaks, one at a time, on a fresh clone: each must make a test fail.

    python scripts/check_breaks.py [--repo .] [--out docs/breaks.md] [NAME ...]

The breaks are the mistakes issue 17 found the suite blind to (an L2 penalty ignored, test
metrics computed on the training set, the run's seed not set, the record not saved per epoch,
CIFAR rows read in the wrong layout, AdaMax's averaging dropped, RMSProp's eps placement
ignored, MNIST binarisation inverted). Each is a text replacement in one file of a `git clone`
of the committed code; the tests that should notice it run there (`-x`, in-process and
subprocess tests alike, since the clone is what every process imports). A break whose text is
no longer in the file is reported as stale, never as caught.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LOOP = "src/adamrepro/training/loop.py"
STATE = "src/adamrepro/training/state.py"
EVALUATION = "src/adamrepro/training/evaluation.py"
RULES = "src/adamrepro/optim/rules.py"
BREAKS: dict[str, tuple[str, str, str, list[str]]] = {
    # name: (file, text, replacement, the tests that should fail)
    "l2_ignored": (
        "src/adamrepro/models/classifier.py",
        "return 0.5 * self.weight_decay * total",
        "return 0.0 * self.weight_decay * total",
        ["tests/test_train.py"],
    ),
    "test_on_train": (
        EVALUATION,
        "test = model.evaluate(data.x_test, data.y_test, batch_size)",
        "test = model.evaluate(data.x_train, data.y_train, batch_size)",
        ["tests/test_train.py"],
    ),
    "no_manual_seed": (
        LOOP,
        "        torch.manual_seed(settings.seed)\n",
        "\n",
        [
            "tests/test_cli.py::test_a_run_with_dropout_repeats_exactly_in_a_new_"
            "process_and_another_seed_differs",
            "tests/test_resume.py",
        ],
    ),
    "no_epoch_save": (
        STATE,
        "            )\n        save_record(self.record, self.out_dir)",
        "            )\n        pass",
        ["tests/test_resume.py"],
    ),
    "cifar_layout": (
        "src/adamrepro/data/cifar.py",
        'data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, *SHAPE)',
        'data = np.asarray(batch[b"data"], dtype=np.uint8)'
        ".reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2)",
        ["tests/test_cifar.py"],
    ),
    "adamax_no_avg": (
        RULES,
        "        if averaging:\n"
        "            self._average(param, state, beta2, averaging_beta)"
        "\n\n\ndef _sqrt",
        "        pass\n\n\ndef _sqrt",
        ["tests/test_optim.py"],
    ),
    "rmsprop_eps_inside_ignored": (
        RULES,
        "        if eps_inside_sqrt:\n            denominator = torch.add(v, eps",
        "        if False:\n            denominator = torch.add(v, eps",
        ["tests/test_optim.py"],
    ),
    "mnist_binarize_inverted": (
        "src/adamrepro/data/mnist.py",
        "return (pixels >= 0.5).float() if binarize else pixels",
        "return (pixels < 0.5).float() if binarize else pixels",
        ["tests/test_data.py"],
    ),
}


def check(repo: Path, name: str) -> tuple[str, str]:
    """(verdict, the failing tests or the last line of pytest) for one break."""
    path, text, replacement, tests = BREAKS[name]
    with tempfile.TemporaryDirectory(prefix=f"break_{name}_") as work:
        clone = Path(work) / "repo"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        target = clone / path
        source = target.read_text()
        if source.count(text) != 1:
            return "stale", f"the text to break is not (once) in {path}"
        target.write_text(source.replace(text, replacement))
        env = {**os.environ, "PYTHONPATH": str(clone / "src")}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)
    failed = [
        line.split(" - ")[0]
        for line in done.stdout.splitlines()
        if line.startswith(("FAILED", "ERROR"))
    ]
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return ("caught" if done.returncode else "SURVIVED"), "; ".join(failed) or last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"some of: {', '.join(BREAKS)}")
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=Path("docs/breaks.md"))
    args = parser.parse_args(argv)
    rows = []
    unknown = sorted(set(args.names) - set(BREAKS))
    if unknown:
        parser.error(f"no break named {', '.join(unknown)} (known: {', '.join(BREAKS)})")
    for name in args.names or list(BREAKS):
        verdict, detail = check(args.repo.resolve(), name)
        print(f"{name}: {verdict} ({detail})", flush=True)
        rows.append(f"| {name} | `{BREAKS[name][0]}` | **{verdict}** | {detail} |")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.repo, capture_output=True, text=True
    ).stdout.strip()
    args.out.write_text(
        "# Deliberate breaks\n\nMade by `make breaks` (`python scripts/check_breaks.py`) at "
        f"commit {commit}: each break applied alone to a clone, its tests run.\n\n"
        "| break | file | verdict | caught by |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    if any("SURVIVED" in row or "stale" in row for row in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
