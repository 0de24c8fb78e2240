"""The typed decision record: its fields are the decisions table's columns, and the
recorder builds it from a plan and an outcome without a string key in sight."""

from __future__ import annotations

import dataclasses

import pytest

from storage.models import DECISIONS
from storage.record import FIELDS, DecisionRecord


def test_the_record_has_exactly_the_tables_columns() -> None:
    assert set(FIELDS) == {c.name for c in DECISIONS.columns}
    required = {f.name for f in dataclasses.fields(DecisionRecord)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert required == {"id", "request_id", "source"}


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown decision field\(s\): \['colour'\]"):
        DecisionRecord.from_mapping({"id": "x", "request_id": "x", "source": "api", "colour": "red"})
    row = DecisionRecord(id="x", request_id="r", source="api").to_row()
    assert row["status"] == "error" and row["created_at"] is not None and set(row) == FIELDS
