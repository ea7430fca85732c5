"""Every row of the bad-input catalogue (`docs/reliability.md`): the expected outcome, bounded cost,
and the healthy call beside it still decoding."""

from __future__ import annotations

import pytest

from facecodec.tools import reliability


@pytest.fixture(scope="module")
def rows():
    return reliability.run_all()


def test_the_catalogue_covers_at_least_forty_kinds(rows):
    assert len(rows) >= 40 and len({r.case.name for r in rows}) == len(rows)


def test_every_bad_input_is_handled_cheaply_and_leaves_other_calls_alone(rows):
    failed = [(r.case.name, r.outcome, round(r.cpu_s, 3), round(r.peak_mib, 1), r.others_ok) for r in rows if not r.ok]
    assert not failed, failed


def test_the_document_lists_every_row(rows):
    text = "\n".join(reliability.document(rows))
    assert all(r.case.name.split(":")[0] in text for r in rows)


def test_every_served_case_names_a_test_that_exists():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for _, test, _ in reliability.SERVED:
        path, name = test.split("::")
        assert f"def {name}(" in (root / path).read_text(), test
