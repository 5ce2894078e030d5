"""Block Kit rendering. Pure functions: data in, (text, blocks) out; no Slack calls here.

Everything that came from CloudTrail is attacker-chosen. It is shown through `code()` (an
inline code span with &, <, > escaped, backticks and line breaks neutralised, and the length
bounded) inside mrkdwn objects marked `verbatim`, so Slack never turns it into a mention, a
link or formatting. Notification `text` carries only escaped, formatting-free text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.health import QueueState
from bot.present import (
    account_label,
    hunt_headline,
    is_own_key,
    plural,
    short_key,
    tally,
    visible,
)
from bot.stored import (
    ASKED,
    CONFIRMED,
    DENIED,
    NOT_ASKED,
    TIMED_OUT,
    Engagement,
    PollRun,
    Snooze,
    StoredFinding,
    TargetHealth,
    Triage,
)
from bot.triage import (
    CONFIRMED_BY_ACTOR,
    EXPECTED_ROTATION,
    INVESTIGATING,
    OPEN,
    TRANSITIONS,
    encode_value,
)
from checks.danger import rank
from checks.investigate import KeyReport
from checks.model import Finding, HuntResult, KeyRetirement, TargetError
from checks.rules import about, headline_for, next_step_for, reason_words, rule_by_id

Blocks = list[dict[str, Any]]

ACTION_EXPECTED = "keyhunt_expected_rotation"
ACTION_INVESTIGATE = "keyhunt_investigate"
# Beside triage: containment (opt-in) and "Snooze similar" (an overflow menu, so the alert's
# buttons stay the contract's two unless a response action is turned on).
ACTION_DEACTIVATE = "keyhunt_deactivate"
ACTION_REACTIVATE = "keyhunt_reactivate"
ACTION_SNOOZE = "keyhunt_snooze"
SNOOZE_DAYS = (1, 7, 30)

SECTION_LIMIT = 3000
MAX_BLOCKS = 50

EMOJI = {
    "critical": "🚨",
    "high": "🔴",
    "medium": "🟠",
    "low": "🟡",
    "info": "⚪",
}
MAX_PROBLEMS_SHOWN = 5
# What a problem line may show outside a code span: our own words, never markup.
_PLAIN_PROBLEM = re.compile(r"[A-Za-z0-9 ,.()+'/-]*")
STATUS_WORDS = {
    OPEN: "open",
    EXPECTED_ROTATION: "expected rotation",
    INVESTIGATING: "investigating",
    CONFIRMED_BY_ACTOR: "confirmed by the actor",
}


# -- escaping ------------------------------------------------------------------------------
def escape(text: object) -> str:
    """Slack's three control characters, as its docs require for any text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object, limit: int = 200) -> str:
    """Untrusted text as an inline code span: no mention, link or formatting can form."""
    value = visible(text, limit).replace("`", "ˋ").strip()
    return f"`{escape(value)}`" if value else "—"


def plain(text: object, limit: int = 200) -> str:
    """Untrusted text for notification `text`: escaped, no formatting characters."""
    value = visible(text, limit)
    for ch in "*_~`":
        value = value.replace(ch, " ")
    return escape(" ".join(value.split()))


def plain_text(text: str) -> str:
    """A notification `text` from mrkdwn keyhunt wrote: mentions and date tokens kept (Slack
    renders them in notifications too), code-span and bold markers dropped."""
    return re.sub(r"[`*]", "", text)


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _bound(text), "verbatim": True}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def context(*parts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(p) for p in parts[:10]]}


def _bound(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(value: datetime, now: datetime) -> str:
    return f"{slack_time(value)} ({ago(value, now)})"


def slack_time(value: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """A time each reader sees in their own time zone (Slack's date token), UTC where a client
    cannot show the token (the fallback after `|`: notifications, old clients)."""
    fallback = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(value.timestamp())}^{fmt}|{fallback}>"


def ago(value: datetime, now: datetime) -> str:
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "just now"
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min ago"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def waited(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours < 1:
        return f"{int(delta.total_seconds() // 60)} min"
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


def account_of(finding: Finding) -> str:
    """'prod (222222222222)': the account as the on-call knows it, its ID beside the name."""
    return account_label(finding.account_id, finding.account_name)


# -- the alert -----------------------------------------------------------------------------
def alert_text(finding: Finding) -> str:
    """The notification line: complete on its own, like the mockup."""
    e, severity = finding.event, finding.severity.value
    actor = plain(e.actor.name or e.actor.type, 64) or "an unknown caller"
    target = plain(e.target_user, 64) or "an unknown user"
    where = f"in {plain(account_of(finding), 100)}, {plain(finding.region, 32)}"
    if e.error_code:
        error = plain(e.error_code, 64)
        what = f"{actor} tried to create an access key for {target} ({error})"
    elif is_own_key(finding):
        what = f"{actor} created their own access key"
    else:
        what = f"{actor} created an access key for {target}"
    unread = " (keyhunt could not read all of its record)" if e.problems else ""
    return f"{EMOJI.get(severity, '')} {severity.upper()}  {what} {where}{unread}"


def could_not_read(problems: Sequence[object]) -> str:
    """One line naming what could not be read: `field` (what was wrong) · ..., bounded.

    The field is CloudTrail's (shown as code); what was wrong is keyhunt's own words, shown
    bare only when it holds no character Slack could read as markup, else as code too.
    """
    parts = []
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        field, _, what = str(problem).partition(": ")
        what = visible(what, 120).strip()
        if not what:
            parts.append(code(field, 80))
        elif _PLAIN_PROBLEM.fullmatch(what):
            parts.append(f"{code(field, 80)} ({escape(what)})")
        else:
            parts.append(f"{code(field, 80)} ({code(what, 120)})")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        parts.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    return "⚠ keyhunt could not read: " + " · ".join(parts)


def render_alert(
    stored: StoredFinding, now: datetime, actions: Sequence[str] = ()
) -> tuple[str, Blocks]:
    """The channel alert; `actions` are the response actions turned on (`deactivate`)."""
    finding = stored.finding
    e, severity = finding.event, finding.severity.value
    # The rule that set the severity names what happened.
    what = headline_for(finding.reasons, bool(e.error_code))
    title = f"*{EMOJI.get(severity, '')} {severity.capitalize()} — {what}*"
    people = stored.engagement
    if people is not None and people.escalated_at is not None:
        title = f"*🚨 Escalated* · {title}"
    key = e.access_key_id
    made = "tried to create a key" if e.error_code else f"created key {code(short_key(key))}"
    summary = (
        f"{code(e.actor.name or '?', 64)} "
        f"({escape(visible(e.actor.type, 32))} {code(e.actor.arn, 200)}) "
        f"{made} for {code(e.target_user, 64)}\n"
        f"in {code(account_of(finding), 100)} · {code(finding.region, 32)} · "
        f"{when(e.event_time, now)}"
    )
    # Two columns of one-line facts (label and value on one line), as the mockup: the alert
    # stays about 8 lines. Long values are bounded here; the investigation has them whole.
    fields = [
        mrkdwn(f"*Source IP*  {code(e.source_ip, 64)}"),
        mrkdwn(f"*New key*  {code(key, 128)}" if key else "*New key*  none (the call failed)"),
        mrkdwn(f"*Why*  {escape(reason_words(finding.reasons))}"),
        mrkdwn(f"*User agent*  {code(e.user_agent, 120)}"),
    ]
    if e.error_code:
        fields.append(mrkdwn(f"*Error*  {code(e.error_code, 100)}"))
    if finding.user_keys is not None:
        fields.append(
            mrkdwn(
                f"*{code(e.target_user, 64)}'s keys (IAM)*  "
                f"{escape(describe_user_keys(finding, now))}"
            )
        )
    if finding.followups:  # the single most important fact: say it before the details
        more = len(finding.followups) - 1
        summary += f"\n⚠ *the new key has since {plain(finding.followups[0])}*"
        summary += f" (and {plural(more, 'more call')} that matters)" if more else ""
    blocks: Blocks = [
        section(f"{title}\n{summary}"),
        {"type": "section", "fields": fields[:10]},
    ]
    if e.problems:
        blocks.append(context(could_not_read(e.problems)))
    if people is not None:
        blocks.extend(context(line) for line in people_lines(people, now))
    status_line = render_status_line(stored.triage)
    if status_line:
        blocks.append(context(status_line))
    buttons = [
        *triage_buttons(stored.triage.status, stored.event_id),
        *response_elements(stored, actions),
    ]
    if buttons:
        blocks.append({"type": "actions", "block_id": "triage", "elements": buttons})
    step = next_step_for(finding.reasons)
    footer = [f"event {code(stored.event_id, 128)} · keyhunt"]
    if step and stored.triage.status != EXPECTED_ROTATION:  # closed: nothing left to do
        footer.insert(0, f"👉 Next: {escape(step)}")
    people_part = who_is_who(people, e.target_user) if people is not None else None
    if people_part:
        footer.insert(0, people_part)
    blocks.append(context(*footer))
    return alert_text(finding), blocks


def who_is_who(people: Engagement, target_user: str | None) -> str | None:
    """'👤 actor <@U…> (the SSO session name) · bob's owner <@U…>', for the alert's footer."""
    if not people.state:
        return None
    # How it was found can name an IAM user: attacker-chosen text, so in a code span.
    via = code(people.actor_via, 120)
    if people.actor_user:
        line = f"👤 actor <@{people.actor_user}> ({via})"
    else:
        line = f"👤 no Slack user for the actor ({via}): nobody asked"
    if people.target_user:
        line += f" · {code(target_user, 64)}'s owner <@{people.target_user}>"
    return line


def people_lines(people: Engagement, now: datetime) -> list[str]:
    """What the actor was asked and answered, what was done to the key, snoozes."""
    lines: list[str] = []
    asked = f"<@{people.actor_user}>"
    if people.state == ASKED and people.deadline is not None:
        lines.append(
            f"❓ Asked {asked} “Was this you?”; escalates at "
            f"{slack_time(people.deadline, '{time}')} if unanswered"
        )
    elif people.state == CONFIRMED and people.answered_at is not None:
        reason = f": “{plain(people.reason, 300)}”" if people.reason else ""
        lines.append(
            f"🙋 {asked} answered *Yes, this was me* at "
            f"{slack_time(people.answered_at, '{time}')}{reason}"
        )
    elif people.state == DENIED and people.answered_at is not None:
        lines.append(
            f"🚨 {asked} answered *No, I didn't* at "
            f"{slack_time(people.answered_at, '{time}')}: escalated"
        )
    elif people.state == TIMED_OUT:
        lines.append(f"🚨 No answer from {asked} in time: escalated")
    elif people.state == NOT_ASKED and people.actor_user and people.reason:
        lines.append(f"❔ {asked} not asked: {code(people.reason, 120)}")
    action = people.key_action
    if action is not None:
        at = slack_time(action.at, "{date_short_pretty} {time}")
        key = code(action.access_key_id, 128)
        if action.action == "deactivate":
            watch = (
                f"; any new key for {code(action.user_name, 64)} is alerted on until "
                f"{slack_time(action.watch_until, '{time}')}"
                if action.watch_until and action.watch_until > now
                else ""
            )
            lines.append(f"🔒 *Key {key} deactivated* by <@{action.user_id}> at {at}{watch}")
        elif action.action == "reactivate":
            lines.append(f"🔓 Key {key} reactivated by <@{action.user_id}> at {at}")
        elif action.action == "second_key":
            lines.append(
                f"🚨 *A second key*: made after <@{action.user_id}> deactivated {key} of "
                f"{code(action.user_name, 64)} at {at}. Whoever holds the first may hold this one"
            )
    snooze = people.snooze
    if snooze is not None and snooze.expires_at > now:
        lines.append(
            f"💤 Similar alerts snoozed by <@{snooze.created_by}> until "
            f"{slack_time(snooze.expires_at)} (`{escape(snooze.id)}`)"
        )
    return [line for line in lines if line]


def response_elements(stored: StoredFinding, actions: Sequence[str]) -> list[dict[str, Any]]:
    """Deactivate or Reactivate (when turned on, for a key that exists), and the snooze menu
    (never for root: a root key is never "similar" to anything)."""
    finding, elements = stored.finding, []
    e = finding.event
    value = encode_value(stored.event_id, stored.triage.status)
    containable = bool(e.access_key_id) and not e.error_code and e.actor.type != "Root"
    containable = containable and e.target_user not in (None, "root")
    if "deactivate" in actions and containable:
        action = stored.engagement.key_action if stored.engagement else None
        if action is not None and action.action == "deactivate":
            elements.append(_button(ACTION_REACTIVATE, "Reactivate key", value))
        else:
            who = f"{visible(e.target_user, 64)} in {visible(account_of(finding), 100)}"
            key = visible(e.access_key_id, 128)
            button = _button(ACTION_DEACTIVATE, "Deactivate key", value, "danger")
            button["confirm"] = {
                "title": {"type": "plain_text", "text": "Deactivate this key?"},
                "text": {
                    "type": "plain_text",
                    "text": f"Deactivate {key} of {who}? It stops working at once. "
                    "Nothing is deleted: Reactivate undoes it."[:300],
                },
                "confirm": {"type": "plain_text", "text": "Deactivate"},
                "deny": {"type": "plain_text", "text": "Cancel"},
                "style": "danger",
            }
            elements.append(button)
    if e.actor.type != "Root" and e.target_user != "root":
        elements.append(
            {
                "type": "overflow",
                "action_id": ACTION_SNOOZE,
                "options": [
                    {
                        "text": {"type": "plain_text", "text": f"Snooze similar for {days}d"},
                        "value": json.dumps([stored.event_id, days], separators=(",", ":")),
                    }
                    for days in SNOOZE_DAYS
                ],
            }
        )
    return elements


def _button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def describe_user_keys(finding: Finding, now: datetime) -> str:
    """The target user's keys as IAM lists them now (status, age), and what CloudTrail says
    happened to the others around the new key's creation (which one, and when)."""
    keys, new_key = finding.user_keys or (), finding.event.access_key_id
    if not keys:
        return "none (user deleted, or keys already removed)"
    retired = {r.access_key_id: r for r in finding.retired}
    active = [k for k in keys if k.status == "Active"]
    parts = [f"{len(active)} active"]
    for k in keys:
        if k.access_key_id == new_key:
            continue
        what = retirement_words(retired.pop(k.access_key_id, None), finding, now)
        state = what or visible(k.status, 16).lower()
        age = f", {waited(now - k.create_date)} old" if k.create_date else ""
        parts.append(f"other key {short_key(k.access_key_id)}, {state}{age}")
    for gone in retired.values():  # deleted: IAM no longer lists it
        parts.append(f"key {short_key(gone.access_key_id)}, {retirement_words(gone, finding, now)}")
    return "; ".join(parts)


def retirement_words(retired: KeyRetirement | None, finding: Finding, now: datetime) -> str:
    """'deactivated 10 min after the new key (4 h ago)': the rotation, told with its times."""
    if retired is None:
        return ""
    gap = retired.at - finding.event.event_time
    relation = "before" if gap.total_seconds() < 0 else "after"
    return f"{retired.action} {waited(abs(gap))} {relation} the new key ({ago(retired.at, now)})"


def render_status_line(triage: Triage) -> str | None:
    if triage.status == OPEN or not triage.decided_by:
        return None
    at = slack_time(triage.decided_at, "{time}") if triage.decided_at else ""
    user = f"<@{triage.decided_by}>"  # a Slack user ID from Slack itself, validated on input
    if triage.status == EXPECTED_ROTATION:
        return f"✅ *Expected rotation* — marked by {user} at {at}"
    if triage.status == INVESTIGATING:
        return f"🔎 *Investigating* — {user} since {at}; findings in the thread"
    return f"*{escape(triage.status)}* — {user} at {at}"


def render_stale_click(triage: Triage) -> str:
    """The ephemeral answer to a click on a message that no longer shows the alert's state."""
    state = STATUS_WORDS.get(triage.status, escape(triage.status))
    who = f" by <@{triage.decided_by}>" if triage.decided_by else ""
    at = (
        f" at {triage.decided_at.astimezone(UTC).strftime('%H:%M UTC')}"
        if triage.decided_at
        else ""
    )
    return (
        f"This alert is already *{state}*{who}{at}; that button was from an earlier version "
        "of the message, so nothing changed."
    )


def triage_buttons(status: str, event_id: str) -> list[dict[str, Any]]:
    """The buttons of the transitions the status offers (bot.triage.TRANSITIONS), each
    carrying the status it was drawn for, so a click on an outdated message is refused."""
    value = encode_value(event_id, status)
    buttons = {
        EXPECTED_ROTATION: {
            "type": "button",
            "action_id": ACTION_EXPECTED,
            "text": {"type": "plain_text", "text": "Expected rotation"},
            "value": value,
        },
        INVESTIGATING: {
            "type": "button",
            "action_id": ACTION_INVESTIGATE,
            "text": {"type": "plain_text", "text": "Investigate"},
            "value": value,
            "style": "danger",
        },
    }
    return [buttons[target] for target in TRANSITIONS.get(status, ())]


# -- a burst -------------------------------------------------------------------------------
def render_burst(findings: Sequence[StoredFinding]) -> tuple[str, Blocks]:
    accounts = Counter(account_of(f.finding) for f in findings)
    worst = max((f.finding.severity for f in findings), key=lambda s: s.rank)
    text = (
        f"{EMOJI[worst.value]} {len(findings)} new access keys in {len(accounts)} "
        f"account{'s' * (len(accounts) != 1)} in the last poll — alerts are in the thread"
    )
    per_severity = tally((f.finding.severity for f in findings), with_info=True)
    per_account = ", ".join(f"{escape(visible(a, 100))} {n}" for a, n in accounts.most_common(10))
    return text, [section(f"*{escape(text)}*\n{per_severity}      (per account: {per_account})")]


# -- hunts -------------------------------------------------------------------------------
def render_hunt(result: HuntResult, max_rows: int = 40) -> tuple[str, Blocks]:
    """The /keyhunt answer: summary, unread targets, then findings newest first, bounded."""
    total = len(result.findings)
    head = hunt_headline(result)
    counts = tally(f.severity for f in result.findings)
    blocks: Blocks = [section(f"*{escape(head)}*\n{counts}")]
    if result.errors:
        blocks.append(section(render_errors(result.errors)))
    unreadable = result.stats.unreadable
    if unreadable:
        blocks.append(section(f"⚠ {unreadable_records(unreadable)}"))
    rows = [_hunt_row(f) for f in result.findings[:max_rows]]
    packed_blocks, shown = _pack(rows, budget=MAX_BLOCKS - len(blocks) - 1)
    blocks.extend(packed_blocks)
    if total > shown:
        blocks.append(
            context(
                f"{total - shown} more not shown. Narrow the hunt (`user`, `actor`, `account`, a "
                "shorter `last`), or get them all with `keyhunt hunt --format csv`."
            )
        )
    text = f"{head} ({counts})"
    if result.errors:
        text += f"; {plural(len(result.failed_targets), 'target')} could not be read"
    if unreadable:
        text += f"; {plural(unreadable, 'CloudTrail record')} could not be read"
    return text, blocks[:MAX_BLOCKS]


def unreadable_records(count: int) -> str:
    return (
        f"{plural(count, 'CloudTrail record')} could not be read (not JSON); "
        "any CreateAccessKey among them is listed as malformed"
    )


def _hunt_row(finding: Finding) -> str:
    e = finding.event
    who = code(e.actor.name or e.actor.type, 40)
    whom = "(self)" if is_own_key(finding) else code(e.target_user, 40)
    # The whole key ID, copyable from its code span (IDs are at most 128 characters).
    key = f"({code(e.error_code, 40)})" if e.error_code else code(e.access_key_id, 128)
    status = STATUS_WORDS.get(finding.status, escape(finding.status))
    unread = "  ⚠ partly unreadable" if e.problems else ""
    return (
        f"{EMOJI.get(finding.severity.value, '')} "
        f"{e.event_time.astimezone(UTC).strftime('%m-%d %H:%M')}  {who} → "
        f"{whom}  {code(account_of(finding), 100)}  {key}  {status}{unread}"
    )


def _chunked_sections(rows: list[str], budget: int) -> Blocks:
    """Pack rows into as few sections as fit under Slack's 3000-character limit."""
    return _pack(rows, budget)[0]


def _pack(rows: list[str], budget: int) -> tuple[Blocks, int]:
    """Sections holding as many whole rows as fit in `budget` blocks; and how many fitted."""
    blocks: Blocks = []
    current: list[str] = []
    size = packed = 0
    for row in rows:
        if current and size + len(row) + 1 > SECTION_LIMIT:
            if len(blocks) + 1 >= budget:
                break
            blocks.append(section("\n".join(current)))
            packed += len(current)
            current, size = [], 0
        current.append(row)
        size += len(row) + 1
    if current and len(blocks) < budget:
        blocks.append(section("\n".join(current)))
        packed += len(current)
    return blocks, packed


def render_errors(errors: Sequence[TargetError]) -> str:
    lines = [
        f"⚠ {code(e.target.account_id, 16)} {code(e.target.region, 24)}: {escape(e.stage)} "
        f"failed: {code(e.code, 64)} {code(e.message, 160)}"
        for e in errors[:10]
    ]
    if len(errors) > 10:
        lines.append(f"…and {len(errors) - 10} more")
    return "\n".join(lines)


# -- investigation ---------------------------------------------------------------------------
def about_rules(reasons: Iterable[str]) -> list[str]:
    """ "About this rule" for each rule that matched: its title and known false positives,
    so the on-call can weigh the alert against what the rule is known to get wrong."""
    rules = [rule for rule in (rule_by_id(r) for r in reasons) if rule is not None]
    return [f"ℹ️ {escape(visible(about(rule), 600))}" for rule in rules]


def render_investigation(
    report: KeyReport, now: datetime, max_rows: int = 30, reasons: Sequence[str] = ()
) -> tuple[str, Blocks]:
    """What a key did since it was made; `reasons` (the alert's) add the rules' notes."""
    key = short_key(report.access_key_id)
    since = report.creation.event.event_time if report.creation else report.window.start
    lines = [
        f"*What {code(key)} has done since {slack_time(since)}*"
        f" (CloudTrail, {plural(len({t.region for t in report.targets}), 'region')})"
    ]
    # The calls that matter first, worst first, each with what it did (checks.danger); then
    # the rest in time order.
    creator_ip = report.creation.event.source_ip if report.creation else None
    ranked = rank(report.activity, created_from_ip=creator_ip)
    marked = sum(1 for item in ranked if item.marks)
    if marked:
        lines.append(f"⚠ *{plural(marked, 'call')} that matter{'s' * (marked == 1)}*, worst first:")
    for n, item in enumerate(ranked[:max_rows]):
        call = item.call
        if marked and n == marked:
            lines.append("Every other call, in time order:")
        source = visible(call.event_source or "", 64).removesuffix(".amazonaws.com")
        if item.marks:
            # Bold around text whose formatting characters plain() has taken out.
            flag = "  ⚠ " + " · ".join(f"*{plain(m.words)}*" for m in item.marks[:3])
        else:
            flag = f"  ⚠ {code(call.error_code, 40)}" if call.error_code else ""
        lines.append(
            f"`{call.event_time.astimezone(UTC).strftime('%m-%d %H:%M')}`  "
            f"{code(f'{source}:{call.event_name}', 80)}  {code(call.source_ip, 48)}{flag}"
        )
    if not report.activity:
        lines.append("No API calls recorded with this key in the window searched.")
    elif len(report.activity) > max_rows:
        lines.append(
            f"…and {len(report.activity) - max_rows} more: "
            f"`keyhunt key {escape(report.access_key_id)}`"
        )
    use = report.last_use
    if use is not None:
        last = (
            use.last_used.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            if use.last_used
            else "never"
        )
        where = f" in {code(use.region, 24)} by {code(use.service, 40)}" if use.service else ""
        lines.append(f"IAM: owner {code(use.user_name, 64)} · last used {last}{where}")
    for other in report.owner_keys or ():
        age = f", {waited(now - other.create_date)} old" if other.create_date else ""
        which = (
            "this key"
            if other.access_key_id == report.access_key_id
            else f"other key {code(short_key(other.access_key_id))}"
        )
        lines.append(f"IAM says {which} is {escape(visible(other.status, 16))}{age}")
    blocks: Blocks = _chunked_sections(lines, budget=MAX_BLOCKS - 3)
    if report.errors:
        blocks.append(section(render_errors(report.errors)))
    notes = about_rules(reasons)
    if notes:
        blocks.append(context(*notes))
    text = f"Investigation of {key}: {plural(len(report.activity), 'API call')} since creation"
    return text, blocks


# -- status and digest ---------------------------------------------------------------------
def render_status(
    health: Sequence[TargetHealth],
    runs: Sequence[PollRun],
    pending: int,
    now: datetime,
    poll_minutes: int,
    scheduler_error: str | None = None,
    names: Mapping[str, str] | None = None,
    queue: QueueState | None = None,
) -> tuple[str, Blocks]:
    """`queue`: this replica's SQS consumer, when KEYHUNT_SQS_QUEUE_URL is set."""
    last_ok = max((r.finished_at for r in runs if r.ok and r.finished_at), default=None)
    failures = [r for r in runs if not r.ok]
    head = (
        f"Poller: every {poll_minutes} min, last success "
        f"{ago(last_ok, now) if last_ok else 'never'}, "
        f"{plural(len(failures), 'failed poll')} in 24 h, {plural(pending, 'post')} pending"
    )
    lines = [f"*{escape(head)}*"]
    if queue is not None:
        lines.append(render_queue_line(queue, now))
    if scheduler_error:
        lines.append(f"⚠ last job error: {code(scheduler_error, 300)}")
    unreadable = unreadable_in(runs)
    if unreadable:
        lines.append(f"⚠ {unreadable_records(unreadable)}, in the polls shown")
    shown = 40
    for h in health[:shown]:
        ok = ago(h.last_success_at, now) if h.last_success_at else "never"
        where = account_label(h.account_id, (names or {}).get(h.account_id))
        line = f"{code(where, 100)} {code(h.region, 24)}: last read {ok}"
        if h.consecutive_failures:
            line += f" · ⚠ {plural(h.consecutive_failures, 'failure')}: {code(h.last_error, 200)}"
        lines.append(line)
    if len(health) > shown:
        lines.append(f"…and {len(health) - shown} more account/region pairs not shown")
    if not health:
        lines.append("No account has been polled yet.")
    return head, _chunked_sections(lines, budget=MAX_BLOCKS)


def render_queue_line(queue: QueueState, now: datetime) -> str:
    """The real-time path as this replica sees it; the poll reconciles whatever it misses."""
    if not queue.running():
        return "⚠ Real time: this replica's queue consumer has stopped; the poll still reconciles"
    last = ago(queue.last_receive, now) if queue.last_receive else "never"
    if queue.failures:
        return (
            f"⚠ Real time: {plural(queue.failures, 'failed receive')} in a row "
            f"({code(queue.last_error or 'unknown', 100)}), last answer {last}; "
            "the poll still reconciles"
        )
    return f"Real time: receiving from the SQS queue, last answer {last}"


def render_digest(
    day: Sequence[StoredFinding],
    still_open: Sequence[StoredFinding],
    runs: Sequence[PollRun],
    poll_minutes: int,
    now: datetime,
    health: Sequence[TargetHealth] = (),
    names: Mapping[str, str] | None = None,
    reconciled: int | None = None,
    expired: Sequence[Snooze] = (),
) -> tuple[str, Blocks]:
    """`reconciled`: with an SQS queue configured, how many of the day's keys only the poll
    found (the real-time path missed them); None without a queue. `expired`: the snoozes that
    ran out in the day (their alerts are posted again)."""
    triaged = sum(1 for f in day if f.triage.status != OPEN)
    counts = tally(f.finding.severity for f in day)
    first = (
        f"Yesterday: {plural(len(day), 'new key event')} ({counts}); {triaged} triaged, "
        f"{len(day) - triaged} still open"
    )
    lines = [f"*{escape(first)}*"]
    if still_open:
        oldest = still_open[0]
        e = oldest.finding.event
        lines.append(
            f"Oldest open: {code(e.actor.name, 40)} → {code(e.target_user, 40)} in "
            f"{code(account_of(oldest.finding), 100)}, waiting {waited(now - oldest.stored_at)} "
            f"({len(still_open)} open in all)"
        )
    last_ok = max((r.finished_at for r in runs if r.ok and r.finished_at), default=None)
    failures = sum(1 for r in runs if not r.ok)
    lines.append(
        f"Poller: every {poll_minutes} min, last success "
        f"{ago(last_ok, now) if last_ok else 'never'}, {plural(failures, 'failure')} in 24 h"
    )
    if reconciled:
        # How lossy the real-time path is: each of these waited for the reconcile.
        lines.append(
            f"⚠ {plural(reconciled, 'key')} reached keyhunt only through the reconciling "
            f"poll, every {poll_minutes} min (the real-time path missed "
            f"{'it' if reconciled == 1 else 'them'})"
        )
    elif reconciled == 0 and day:
        lines.append("Real time: no key of the day needed the reconciling poll")
    for snooze in expired[:10]:
        lines.append(
            f"💤 snooze `{escape(snooze.id)}` expired ({code(snooze.actor_arn, 120)} → "
            f"{code(snooze.target_user, 64)} in {code(snooze.account_id, 32)}, by "
            f"<@{snooze.created_by}>): those alerts are posted again"
        )
    unread = [h for h in health if h.consecutive_failures]
    for h in unread[:10]:  # never let "0 new keys" read as "all clear" for an unread account
        where = account_label(h.account_id, (names or {}).get(h.account_id))
        lines.append(
            f"⚠ could not read {code(where, 100)} {code(h.region, 24)} "
            f"({plural(h.consecutive_failures, 'poll')} in a row): {code(h.last_error, 200)}"
        )
    if len(unread) > 10:
        lines.append(f"…and {len(unread) - 10} more unread account/region pairs")
    unreadable = unreadable_in(runs)
    if unreadable:
        lines.append(f"⚠ {unreadable_records(unreadable)}, in 24 h")
    if unread:
        first += f"; ⚠ {plural(len(unread), 'account/region pair')} could not be read"
    if unreadable:
        first += f"; ⚠ {plural(unreadable, 'CloudTrail record')} could not be read"
    return first, [section("\n".join(lines))]


def unreadable_in(runs: Sequence[PollRun]) -> int:
    """CloudTrail records the polls could not read (PollRun.unreadable; 0 for older rows)."""
    return sum(int(run.unreadable or 0) for run in runs)


USAGE = escape(
    "/keyhunt last <DUR> [user <name>] [actor <name>] [account <id>] [severity <level>]\n"
    "    hunt, e.g. /keyhunt last 24h user bob\n"
    "/keyhunt since <T> [until <T>] [...]\n"
    "    hunt an exact window (ISO 8601, UTC unless it has an offset)\n"
    "/keyhunt key <ACCESS_KEY_ID>\n"
    "    who made one key, and what it has done since\n"
    "/keyhunt status\n"
    "    poller health per account and region, pending posts\n"
    "/keyhunt snoozes  ·  /keyhunt unsnooze <ID>\n"
    "    the snoozes in force; lift one\n"
    "DUR is <n>m, <n>h, <n>d or <n>w, at most 90d."
)


def render_usage(problem: str | None = None) -> tuple[str, Blocks]:
    lead = f"⚠ {code(problem, 300)}\n" if problem else ""
    return "keyhunt usage", [section(f"{lead}*Usage*\n```{USAGE}```")]
