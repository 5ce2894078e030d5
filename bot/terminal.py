"""Hunt results for people and scripts: table, JSON lines, CSV. Pure functions returning text.

CloudTrail text is attacker-chosen: the table strips terminal control sequences, CSV defuses
spreadsheet formulas, JSON escapes by construction.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from bot.present import account_label, hunt_headline, is_own_key, plural, short_key, tally, visible
from bot.stored import AuditEntry
from checks.investigate import KeyReport
from checks.model import Finding, HuntResult, HuntStats, Severity, Target, TargetError
from checks.record import FINDING_FIELDS
from checks.timeutil import isoformat_z

SEVERITY_MARK = {
    Severity.CRITICAL: "!!! CRITICAL",
    Severity.HIGH: "!!  HIGH",
    Severity.MEDIUM: "!   MEDIUM",
    Severity.LOW: "    low",
    Severity.INFO: "    info",
}
_COLOURS = {
    Severity.CRITICAL: "\033[1;31m",
    Severity.HIGH: "\033[31m",
    Severity.MEDIUM: "\033[33m",
    Severity.LOW: "\033[2m",
    Severity.INFO: "\033[2m",
}
_RESET = "\033[0m"


def safe_text(value: object, limit: int | None = None) -> str:
    """One printable line: control and bidi-override characters become `?`."""
    return visible(value, limit, mark="?")


def summary_line(result: HuntResult) -> str:
    line = f"{hunt_headline(result)} ({tally(f.severity for f in result.findings)})"
    unread = len(result.failed_targets)
    if unread:
        line += f" — PARTIAL: {unread} of {plural(len(result.targets), 'target')} could not be read"
    if result.stats.unreadable:
        line += (
            f" — PARTIAL: {plural(result.stats.unreadable, 'CloudTrail record')} could not be read"
        )
    return line


# What gives way when the table is wider than the terminal, in this order: the reasons are
# cut, then the region and source IP columns go, then an account's name (its ID stays), then
# who → for whom and the status are shortened with "…", then the key ID is shown short
# (`keyhunt hunt --format jsonl` has it whole). Time, severity and the account ID always stay.
SHRINK_ORDER: tuple[tuple[str, int], ...] = (
    ("REASONS", 0),  # (column, the width it may shrink to; 0 drops it)
    ("REGION", 0),
    ("SOURCE IP", 0),
    ("ACCOUNT", 12),
    ("WHO → FOR WHOM", 16),
    ("STATUS", 8),
    ("KEY", 9),
)
GAP = "  "


def format_table(result: HuntResult, colour: bool = False, width: int | None = None) -> str:
    """The hunt as a table; `width` (the terminal's columns) bounds every row, giving way in
    SHRINK_ORDER; None (output piped to a file) never shortens anything. The summary line is
    never shortened: it says whether the hunt was partial."""
    lines = [summary_line(result)]
    if result.findings:
        lines.append("")
        rows = [_row(f) for f in result.findings]
        header = list(rows[0])
        table = [dict(zip(header, header, strict=True)), *rows]
        widths = {name: max(len(row[name]) for row in table) for name in header}
        for name, least in SHRINK_ORDER:
            if width is None or _width(widths) <= width:
                break
            excess = _width(widths) - width
            keep = max(widths[name] - excess, least)
            if keep < max(least, len(name)) or keep == 0:
                del widths[name]  # the column goes
            else:
                widths[name] = max(keep, len(name))
        for index, row in enumerate(table):
            cells = [_fit(row[name], size, name) for name, size in widths.items()]
            line = GAP.join(cells).rstrip()
            if colour and index > 0:
                severity = result.findings[index - 1].severity
                line = f"{_COLOURS[severity]}{line}{_RESET}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def _row(f: Finding) -> dict[str, str]:
    e = f.event
    who = safe_text(e.actor.name or e.actor.type or "?", 24)  # "?": unreadable
    whom = "(self)" if is_own_key(f) else safe_text(e.target_user or "?", 24)
    # The whole key ID: a hunt's answer is for copying into `keyhunt key`.
    key = f"({safe_text(e.error_code)})" if e.failed else safe_text(e.access_key_id or "-", 128)
    return {
        "TIME (UTC)": e.event_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        "SEVERITY": SEVERITY_MARK[f.severity],
        "WHO → FOR WHOM": f"{who} → {whom}",
        "ACCOUNT": safe_text(account_label(f.account_id, f.account_name) if f.account_id else "-"),
        "REGION": safe_text(e.region or "-"),
        "SOURCE IP": safe_text(e.source_ip or "-", 45),
        "KEY": key,
        "STATUS": f.status,
        "REASONS": ",".join(f.reasons),
    }


def _width(widths: dict[str, int]) -> int:
    return sum(widths.values()) + len(GAP) * (len(widths) - 1)


_NAMED_ACCOUNT = re.compile(r".* \((\d{12})\)")


def _fit(text: str, size: int, column: str) -> str:
    if len(text) <= size:
        return text.ljust(size)
    if column == "KEY" and text.startswith(("AKIA", "ASIA")):
        return short_key(text).ljust(size)
    named = _NAMED_ACCOUNT.fullmatch(text)
    if (
        column == "ACCOUNT" and named
    ):  # the name gives way, never the ID: it is what --account takes
        return named.group(1).ljust(size)
    return text[: max(size - 1, 0)] + "…"


def format_jsonl(findings: Sequence[Finding]) -> str:
    return "".join(json.dumps(f.to_record(), ensure_ascii=False) + "\n" for f in findings)


def format_csv(findings: Sequence[Finding]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FINDING_FIELDS)
    for f in findings:
        record = f.to_record()
        record["reasons"] = ";".join(record["reasons"])
        record["malformed_fields"] = ";".join(record["malformed_fields"])
        writer.writerow([_csv_cell(record[name]) for name in FINDING_FIELDS])
    return buffer.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    # A cell starting with = + - @ (or tab/CR) is a formula to a spreadsheet.
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def describe_errors(errors: Sequence[TargetError]) -> list[str]:
    return [safe_text(str(e)) for e in errors]


def format_key_report(report: KeyReport, now: datetime | None = None) -> str:
    lines = [f"Access key {safe_text(report.access_key_id)}"]
    created = report.creation
    if created is not None:
        e = created.event
        lines.append(
            f"Created {isoformat_z(e.event_time)} by {safe_text(e.actor.name)} "
            f"({safe_text(e.actor.type)} {safe_text(e.actor.arn)}) for {safe_text(e.target_user)} "
            f"in {safe_text(account_label(created.account_id, created.account_name))} "
            f"from {safe_text(e.source_ip)}"
        )
        lines.append(f"  user agent: {safe_text(e.user_agent, 200)}")
        lines.append(f"  severity: {created.severity.value} ({', '.join(created.reasons)})")
    else:
        lines.append("Creation event: not found in the window searched")
    use = report.last_use
    if use is not None:
        last = isoformat_z(use.last_used) if use.last_used else "never"
        where = f" in {use.region} by {use.service}" if use.service else ""
        lines.append(f"IAM: owner {safe_text(use.user_name)}; last used {last}{where}")
    for key in report.owner_keys or ():
        made = isoformat_z(key.create_date) if key.create_date else "?"
        mark = " (this key)" if key.access_key_id == report.access_key_id else ""
        lines.append(f"  key {short_key(key.access_key_id)} {key.status}, created {made}{mark}")
    lines.append(f"Activity ({len(report.activity)} calls):")
    for call in report.activity:
        error = f"  ERROR {safe_text(call.error_code)}" if call.error_code else ""
        source = safe_text((call.event_source or "").removesuffix(".amazonaws.com"))
        lines.append(
            f"  {isoformat_z(call.event_time)}  {source}:{safe_text(call.event_name)}"
            f"  {safe_text(call.region)}  {safe_text(call.source_ip)}{error}"
        )
    return "\n".join(lines) + "\n"


def key_report_json(report: KeyReport) -> str:
    data = {
        "access_key_id": report.access_key_id,
        "window": {
            "start": isoformat_z(report.window.start),
            "end": isoformat_z(report.window.end),
        },
        "creation": report.creation.to_record() if report.creation else None,
        "iam": None
        if report.last_use is None
        else {
            "user_name": report.last_use.user_name,
            "last_used": isoformat_z(report.last_use.last_used)
            if report.last_use.last_used
            else None,
            "service": report.last_use.service,
            "region": report.last_use.region,
            "keys": [
                {
                    "access_key_id": k.access_key_id,
                    "status": k.status,
                    "create_date": isoformat_z(k.create_date) if k.create_date else None,
                }
                for k in report.owner_keys or ()
            ],
        },
        "activity": [
            {
                "event_id": a.event_id,
                "event_time": isoformat_z(a.event_time),
                "event_source": a.event_source,
                "event_name": a.event_name,
                "region": a.region,
                "account_id": a.account_id,
                "source_ip": a.source_ip,
                "user_agent": a.user_agent,
                "error_code": a.error_code,
            }
            for a in report.activity
        ],
        "errors": [str(e) for e in report.errors],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


class Progress:
    """`hunting: 3/20 targets · 41 pages · 2 throttled` on one line of a terminal, rewritten in
    place as targets finish; shown only once the hunt has run `after` seconds (a quick hunt
    prints nothing) and wiped by `close`. Give it a stream that is a terminal: piped output
    never gets one."""

    def __init__(
        self,
        stream: TextIO,
        after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.after, self.clock = stream, after, clock
        self.started = clock()
        self.done = self.pages = self.throttled = 0
        self.shown = False
        self._lock = threading.Lock()

    def target_done(self, target: Target, stats: HuntStats, total: int) -> None:
        with self._lock:
            self.done += 1
            self.pages += stats.lookup_calls
            self.throttled += stats.throttled
            if self.clock() - self.started < self.after:
                return
            line = f"hunting: {self.done}/{total} targets · {self.pages} pages"
            if self.throttled:
                line += f" · {self.throttled} throttled"
            self.stream.write(f"\r\033[K{line}")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        with self._lock:
            if self.shown:
                self.stream.write("\r\033[K")
                self.stream.flush()
                self.shown = False


def format_audit(entries: Sequence[AuditEntry]) -> str:
    """`keyhunt audit`: who decided what, when, oldest first; typed reasons shown safely."""
    if not entries:
        return "No decisions in that window.\n"
    rows = [("TIME (UTC)", "WHO", "ACTION", "FINDING", "DETAIL")]
    rows += [
        (
            e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            safe_text(e.user_id, 32),
            safe_text(e.action, 32),
            safe_text(e.event_id or "-", 64),
            safe_text(e.detail or "", 200),
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def audit_jsonl(entries: Sequence[AuditEntry]) -> str:
    return "".join(
        json.dumps(
            {
                "at": isoformat_z(e.at),
                "user_id": e.user_id,
                "action": e.action,
                "event_id": e.event_id,
                "detail": e.detail,
            },
            ensure_ascii=False,
        )
        + "\n"
        for e in entries
    )
