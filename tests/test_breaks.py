"""`make breaks` (scripts/check_breaks.py) applies deliberate mistakes to a clone: each break's
text must still be in its file, once, or the break would be reported stale instead of run."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_breaks  # noqa: E402


@pytest.mark.parametrize("name", sorted(check_breaks.BREAKS))
def test_every_deliberate_break_finds_its_text_once(name):
    file, text, replacement, tests = check_breaks.BREAKS[name]
    assert (REPO / file).read_text().count(text) == 1
    assert replacement != text and tests
    for test in tests:
        assert (REPO / test.split("::")[0]).is_file()
