"""Check that a data set loads, before a long command starts on it:

    python -m adamrepro.data mnist|imdb|cifar10 [--root DIR] [OVERRIDE ...]

Loads the data set as `configs/data/<name>.yaml` says (with `data.root=DIR` and any further
`data.*` overrides; a download where allowed), prints one line that describes it, and exits 0;
missing or damaged data is one line and exit 2, before a long command starts (the protocol
runner, `python -m adamrepro.protocol`, checks its data the same way before its first run)."""

from __future__ import annotations

import sys

from ..errors import USER_ERRORS, command_parser
from . import load_data


def main(argv: list[str] | None = None) -> None:
    from ..config import compose_config

    parser = command_parser("data", __doc__)
    parser.add_argument("name", choices=["mnist", "imdb", "cifar10"])
    parser.add_argument("--root", default=None, help="default: ADAMREPRO_DATA, else data")
    parser.add_argument("overrides", nargs="*", help="data.* overrides, e.g. data.verify=false")
    args = parser.parse_intermixed_args(argv)
    overrides = [
        f"data={args.name}",
        *([f"data.root={args.root}"] if args.root else []),
        *args.overrides,
    ]
    try:
        config = compose_config(overrides)
        data = load_data(config.data)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    described = data.description
    where = described.get("path") or described.get("source")
    print(
        f"{described.get('label', args.name)}: {len(data.y_train):,} training and "
        f"{len(data.y_test):,} test rows ({where})"
    )


if __name__ == "__main__":
    main()
