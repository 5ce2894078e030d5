"""The layering the README describes, checked on the source: what renders never reaches the
store, and what the store hands back is plain data. (checks/ never importing bot/ is a lint
rule: checks/ruff.toml.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from checks.record import FINDING_FIELDS

ROOT = Path(__file__).resolve().parent.parent
# Pure modules: data in, text out. They read bot.stored's records, never the database.
NO_STORE = ["bot/render.py", "bot/present.py", "bot/terminal.py", "bot/stored.py", "bot/triage.py"]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", NO_STORE)
def test_rendering_and_its_data_never_import_the_store(module: str) -> None:
    imports = imported_modules(ROOT / module)
    assert not {m for m in imports if m == "bot.store" or m.startswith("bot.store.")}
    assert "sqlalchemy" not in {m.split(".")[0] for m in imports}


def test_the_finding_field_list_is_written_once() -> None:
    """The contract's field names are listed in checks/record.py alone: no other product
    module holds a list of five or more of them (tests/scenario.py keeps its own on purpose,
    as an independent check of the contract)."""
    restated = []
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "checks").rglob("*.py")]):
        if path == ROOT / "checks" / "record.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if len(names & set(FINDING_FIELDS)) >= 5:
                    restated.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert restated == []
