"""checks.record: a finding to JSON and back, unchanged, for every record we have."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from checks.classify import classify
from checks.model import Finding, KeyInfo, Target
from checks.record import FINDING_FIELDS, from_stored, to_record, to_stored
from tests.samples import fixture_cases
from tests.scenario import FINDING_KEYS

CASES = fixture_cases()


def _findings() -> list[tuple[str, Finding]]:
    return [(case.id, classify(case.event(), case.context())) for case in CASES]


def test_the_field_list_is_the_contracts() -> None:
    assert FINDING_FIELDS == FINDING_KEYS


@pytest.mark.parametrize(("case_id", "finding"), _findings(), ids=[c.id for c in CASES])
def test_every_fixture_finding_reads_back_unchanged(case_id: str, finding: Finding) -> None:
    enriched = replace(
        finding,
        target=Target("111111111111", "us-east-1"),
        user_keys=(
            KeyInfo("AKIAEXAMPLEOLDKEY001", "Inactive", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
            KeyInfo("AKIAEXAMPLENEWKEY002", "Active", None),
        ),
        status="investigating",
    )
    for original in (finding, enriched):
        # Through JSON text, as the store keeps it.
        stored = json.loads(json.dumps(to_stored(original), ensure_ascii=False))
        assert from_stored(stored) == original
        assert to_record(from_stored(stored)) == to_record(original)


@pytest.mark.parametrize(("case_id", "finding"), _findings(), ids=[c.id for c in CASES])
def test_a_contract_record_alone_reads_back_the_same_record(case_id: str, finding: Finding) -> None:
    """Stores written before the detail was kept hold the contract fields only."""
    record = json.loads(json.dumps(to_record(finding), ensure_ascii=False))
    assert to_record(from_stored(record)) == record


def test_a_record_without_a_required_field_is_an_error() -> None:
    finding = _findings()[0][1]
    record = to_stored(finding)
    del record["event_id"]
    with pytest.raises(KeyError):
        from_stored(record)
