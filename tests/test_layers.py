"""The package's layers: each module imports only from its own layer or the ones below it.

core       errors, files, settings, records, checkpoint, config, optim/, data/, models/
training   training/ (the loop), tables (records as tables)
figures    figures/
protocol   protocol (a figure's runs and drawing)
studies    studies/, benchmark/ (a user's optimizer on the paper's tasks)
commands   train (the loop's command line), runbook, long_runs, report, leaderboard
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "adamrepro"
LAYERS = {
    "errors": 0,
    "files": 0,
    "settings": 0,
    "records": 0,
    "checkpoint": 0,
    "config": 0,
    "optim": 0,
    "data": 0,
    "models": 0,
    "training": 1,
    "tables": 1,
    "figures": 2,
    "protocol": 3,
    "studies": 4,
    "benchmark": 4,
    "train": 5,
    "runbook": 5,
    "long_runs": 5,
    "report": 5,
    "leaderboard": 5,
}


def layer_of(module: str) -> int | None:
    """The layer of `adamrepro.X...` (None for the package itself)."""
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else None


def imports_of(path: Path) -> list[str]:
    """Every adamrepro module the file imports, absolute."""
    here = ["adamrepro", *path.relative_to(PACKAGE).with_suffix("").parts]
    if here[-1] == "__init__":
        here = here[:-1]
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found += [module] if module.startswith("adamrepro") else []
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("adamrepro")]
    return found


def test_every_module_has_a_layer_and_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(["adamrepro", *path.relative_to(PACKAGE).with_suffix("").parts])
        if module in ("adamrepro.__init__",):
            continue
        own = layer_of(module)
        assert own is not None, module
        for imported in imports_of(path):
            theirs = layer_of(imported)
            if theirs is not None and theirs > own:
                wrong.append(f"{module} (layer {own}) imports {imported} (layer {theirs})")
    assert wrong == []
