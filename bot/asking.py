"""Asking the owner: "Was this you?" to the actor, and escalation when the answer is No or
never comes.

The question lives in the store, never in a timer: its deadline is a column, and whoever
runs `escalate_due` (each poll, and a one-minute job in `serve`) after the deadline escalates
it, across restarts and replicas, once (a compare-and-set on the escalation mark).

Order of a new finding: its people are resolved and stored before its alert is posted (so
the alert names them), with the question already marked asked when it is to be asked; the DM
goes out once the alert is in the channel. A DM lost to a crash then escalates at the
deadline, rather than never being asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot import metrics
from bot.owners import ClientSource, OwnerResolver
from bot.posting import redraw_alert
from bot.render import plain_text, section
from bot.render_asking import (
    escalation_reason,
    render_escalation,
    render_question,
    render_question_answered,
)
from bot.settings import Settings
from bot.store import Store, StoredFinding
from bot.stored import ASKED, NOT_ASKED, UNRESOLVED, Engagement

log = logging.getLogger(__name__)
# A burst (200 keys one person made) must not become 200 DMs: the first few are asked, the
# rest say why not; the channel's burst summary covers them.
QUESTIONS_PER_PERSON_PER_CYCLE = 3
SLACK_ERRORS = (SlackApiError, SlackClientError, OSError)


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack answered {exc.response.get('error')}"
    return type(exc).__name__


class Asking:
    """Resolves a finding's people, asks the actor, escalates; shared by every delivery."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        slack: Any,
        clients: Callable[[], ClientSource | None],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.store = store
        self.slack = slack
        self.clients = clients
        self.clock = clock

    def resolver(self) -> OwnerResolver:
        """A resolver for one delivery cycle (its IAM-tag and e-mail lookups are cached)."""
        return OwnerResolver(
            self.settings, self.clients(), self.slack, lambda why: log.info("owner: %s", why)
        )

    # -- before and after the alert is posted ----------------------------------------------
    def before_post(self, stored: StoredFinding, resolver: OwnerResolver) -> StoredFinding:
        """Resolve and store the finding's people (once); the finding as it now stands."""
        if stored.engagement is not None and stored.engagement.state:
            return stored
        finding, now = stored.finding, self.clock()
        actor, target = resolver.actor(finding), resolver.target(finding)
        asked = (
            actor.slack_user is not None
            and finding.severity.value in self.settings.ask_severities
            and bool(finding.event.access_key_id)
            and not finding.event.error_code
        )
        state = UNRESOLVED if actor.slack_user is None else ASKED if asked else NOT_ASKED
        why_not = None
        if state == ASKED and actor.slack_user is not None:
            resolver.asked[actor.slack_user] += 1
            if resolver.asked[actor.slack_user] > QUESTIONS_PER_PERSON_PER_CYCLE:
                state, asked = NOT_ASKED, False
                why_not = "already asked about other keys made at the same time"
        people = Engagement(
            actor_user=actor.slack_user,
            actor_via=actor.via,
            target_user=target.slack_user,
            target_via=target.via,
            state=state,
            deadline=now + self.settings.ask_timeout if asked else None,
            reason=why_not,
        )
        self.store.record_people(stored.event_id, people, now)
        return self.store.get(stored.event_id) or stored

    def after_post(self, event_id: str) -> None:
        """DM the question, once the alert is in the channel."""
        stored = self.store.get(event_id)
        people = stored.engagement if stored else None
        if stored is None or people is None or people.state != ASKED or people.dm_ts:
            return
        if people.actor_user is None or people.deadline is None:
            return
        text, blocks = render_question(stored, people.deadline)
        try:
            opened = self.slack.conversations_open(users=people.actor_user)
            channel = str((opened.get("channel") or {}).get("id") or "")
            sent = self.slack.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SLACK_ERRORS as exc:
            # Never escalate for our own failure: the channel alert still stands.
            log.warning("could not ask %s about %s: %s", people.actor_user, event_id, _why(exc))
            self.store.not_asked(event_id, f"the DM could not be sent ({_why(exc)})")
            self.refresh(event_id)
            return
        self.store.set_dm(event_id, channel, str(sent["ts"]))
        metrics.OWNER_QUESTIONS.labels("asked").inc()

    # -- answers and escalation ------------------------------------------------------------
    def escalate_due(self) -> int:
        """Time out unanswered questions past their deadline, and escalate each once."""
        now, done = self.clock(), 0
        for event_id in self.store.due_escalations(now):
            stored = self.store.get(event_id)
            if stored is None or stored.engagement is None:
                continue
            if stored.engagement.state == ASKED and self.store.time_out(event_id, now):
                metrics.OWNER_QUESTIONS.labels("timed_out").inc()
            done += self.escalate(event_id)
        return done

    def escalate(self, event_id: str) -> bool:
        """Tell the thread why, mentioning the responders; once, even across replicas."""
        stored = self.store.get(event_id)
        people = stored.engagement if stored else None
        if stored is None or people is None or people.state == ASKED:
            return False
        message = stored.message
        if not message.channel or not message.thread:
            return False  # not in the channel yet: the next cycle, once it is
        why = escalation_reason(people, self.settings.ask_timeout)
        if not self.store.claim_escalation(event_id, why, self.clock()):
            return False
        text = render_escalation(stored, people, why, self.settings.responders)
        try:
            self.slack.chat_postMessage(
                channel=message.channel,
                thread_ts=message.thread,
                text=plain_text(text),
                blocks=[section(text)],
                unfurl_links=False,
                unfurl_media=False,
            )
        except SLACK_ERRORS as exc:
            log.warning("could not post the escalation of %s: %s", event_id, _why(exc))
            self.store.release_escalation(event_id)  # the next cycle tries again
            return False
        metrics.OWNER_QUESTIONS.labels("escalated").inc()
        self.refresh(event_id)
        self.update_question(event_id)
        return True

    def refresh(self, event_id: str) -> None:
        """The channel alert redrawn from the store (best effort: the store has it)."""
        redraw_alert(self.store, self.slack, event_id, self.clock(), self.settings.response_actions)

    def update_question(self, event_id: str) -> None:
        """The DM redrawn once answered or escalated: its buttons gone."""
        stored = self.store.get(event_id)
        people = stored.engagement if stored else None
        if stored is None or people is None or not people.dm_channel or not people.dm_ts:
            return
        text, blocks = render_question_answered(stored, people)
        try:
            self.slack.chat_update(
                channel=people.dm_channel, ts=people.dm_ts, text=text, blocks=blocks
            )
        except SLACK_ERRORS as exc:
            log.warning("could not update the question about %s: %s", event_id, _why(exc))
