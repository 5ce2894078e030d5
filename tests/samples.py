"""Load CloudTrail records for tests: the shared public samples and our own rule fixtures.

The shared samples are other projects' records (see their SOURCES.md). They live beside the
repository, in `<repo>/../shared/samples/`, are read in place and never copied in; a test that
needs them is skipped when the folder is absent.

Our fixtures live in `tests/fixtures/records/<rule_id>/` (see the README there). A case is
either `positive_*.json` / `negative_*.json` (one record), or a folder of that name holding
`create.json` (the CreateAccessKey record) and optionally `changes.json` (a list of the
UpdateAccessKey/DeleteAccessKey records a rule sees as context). Each folder's `expected.json`
maps every case name to the finding classify() must make of it: `severity`, `reasons` and,
where the case needs explaining, `why`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from checks.model import KeyEvent
from checks.parse import parse_record
from checks.rules import RuleContext

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "samples"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "records"
EXPECTED_FILE = "expected.json"  # in each rule folder: case name -> expected finding

Record = dict[str, Any]


# ---------------------------------------------------------------------------- shared samples


def require_samples() -> Path:
    """The samples folder, or skip the calling test when it is not beside the repository."""
    if not SAMPLES_DIR.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES_DIR}")
    return SAMPLES_DIR


def sample_records(name: str) -> list[Record]:
    """Every record in one sample file; a file holds one record or a JSON array of them."""
    path = require_samples() / name
    data = json.loads(path.read_text(encoding="utf-8"))
    records = data if isinstance(data, list) else [data]
    assert all(isinstance(r, dict) for r in records), f"{name}: not CloudTrail records"
    return records


def sample_record(name: str, event_name: str = "CreateAccessKey") -> Record:
    """The one record called `event_name` in a sample file."""
    found = [r for r in sample_records(name) if r.get("eventName") == event_name]
    assert len(found) == 1, f"{name}: expected one {event_name} record, found {len(found)}"
    return found[0]


def sample_event(name: str, event_name: str = "CreateAccessKey") -> KeyEvent:
    return parse_record(sample_record(name, event_name))


# ---------------------------------------------------------------------------- our fixtures


@dataclass(frozen=True)
class FixtureCase:
    """One positive or negative example for a rule."""

    rule_id: str
    name: str  # file or folder name without `.json`, e.g. `positive_sso_session_for_deploy_bot`
    path: Path
    record: Record  # the CreateAccessKey record
    changes: list[Record] = field(default_factory=list)  # context records, if any
    # What classify() must make of it, from the folder's expected.json (None: no entry there,
    # which tests/test_classify.py reports).
    severity: str | None = None
    reasons: tuple[str, ...] | None = None
    why: str | None = None  # why this case is expected so, where that needs saying

    @property
    def id(self) -> str:
        """`rule_id/name`: the pytest id and the key of expectation tables."""
        return f"{self.rule_id}/{self.name}"

    @property
    def positive(self) -> bool:
        return self.name.startswith("positive_")

    def event(self) -> KeyEvent:
        return parse_record(self.record)

    def context(self) -> RuleContext:
        return RuleContext(key_changes=[parse_record(r) for r in self.changes])


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _expectations(rule_id: str) -> dict[str, Any]:
    path = FIXTURES_DIR / rule_id / EXPECTED_FILE
    data = _load_json(path) if path.exists() else {}
    assert isinstance(data, dict), f"{path}: must map case names to expected findings"
    return data


def fixture_expectations(rule_id: str) -> dict[str, Any]:
    """A copy of one rule folder's expected.json: case name -> {"severity", "reasons", "why"?};
    empty when the folder has none."""
    return json.loads(json.dumps(_expectations(rule_id)))


def load_case(rule_id: str, entry: Path) -> FixtureCase:
    if entry.is_dir():
        name = entry.name
        changes_path = entry / "changes.json"
        changes = _load_json(changes_path) if changes_path.exists() else []
        assert isinstance(changes, list), f"{changes_path}: must be a JSON list of records"
        record = _load_json(entry / "create.json")
    else:
        name, changes, record = entry.stem, [], _load_json(entry)
    expected = _expectations(rule_id).get(name)
    if expected is None:
        return FixtureCase(rule_id, name, entry, record, changes)
    return FixtureCase(
        rule_id,
        name,
        entry,
        record,
        changes,
        severity=expected["severity"],
        reasons=tuple(expected["reasons"]),
        why=expected.get("why"),
    )


def fixture_rule_ids() -> list[str]:
    return sorted(p.name for p in FIXTURES_DIR.iterdir() if p.is_dir())


def fixture_cases(rule_id: str | None = None) -> list[FixtureCase]:
    """Every fixture case, or those of one rule, in a stable order."""
    rule_ids = [rule_id] if rule_id is not None else fixture_rule_ids()
    cases = []
    for rid in rule_ids:
        folder = FIXTURES_DIR / rid
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            # Cases only: expected.json (and anything else) is not one.
            if entry.name.startswith(("positive_", "negative_")):
                cases.append(load_case(rid, entry))
    return cases


def fixture_case(case_id: str) -> FixtureCase:
    """One case by its id, `rule_id/name`."""
    rule_id, name = case_id.split("/", 1)
    folder = FIXTURES_DIR / rule_id
    entry = folder / name if (folder / name).is_dir() else folder / f"{name}.json"
    assert entry.exists(), f"no fixture {case_id} ({entry})"
    return load_case(rule_id, entry)


def fixture_record(case_id: str) -> Record:
    """A fresh copy of a fixture's CreateAccessKey record, safe to modify."""
    return fixture_case(case_id).record
