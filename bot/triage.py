"""Triage as a state machine: the states, the transitions a message offers, and the button
values that say which version of the message a click was made on.

A click is accepted only when the finding is still in the state its message was rendered
for and the button it carries is a transition from that state. A replayed click (signed and
fresh, but made on a message that has changed since), a button from an old copy of the
message, or the second of two concurrent clicks therefore changes nothing. The store applies
the same rule in one compare-and-set (`Store.decide(..., expected=...)`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

OPEN, EXPECTED_ROTATION, INVESTIGATING = "open", "expected_rotation", "investigating"
# The actor answered "Yes, this was me" (bot.asking): lowered, still shown and still open to
# triage; never reached by a button, only by the asked person's answer.
CONFIRMED_BY_ACTOR = "confirmed_by_actor"
STATUSES = (OPEN, EXPECTED_ROTATION, INVESTIGATING, CONFIRMED_BY_ACTOR)

# state -> the states its message offers a button for (render.triage_buttons draws these)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    OPEN: (EXPECTED_ROTATION, INVESTIGATING),
    CONFIRMED_BY_ACTOR: (EXPECTED_ROTATION, INVESTIGATING),
    INVESTIGATING: (EXPECTED_ROTATION,),
    EXPECTED_ROTATION: (),
}


def allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, ())


@dataclass(frozen=True)
class ButtonValue:
    event_id: str
    # The status the message showed when it was rendered; None for buttons posted before
    # values carried it (then any state that offers this button is taken as the version).
    rendered_for: str | None


def encode_value(event_id: str, status: str) -> str:
    """A button's value: the finding and the state its message was rendered in. Compact
    JSON, well within Slack's 2,000 characters (event IDs are bounded to 128)."""
    return json.dumps([event_id, status], separators=(",", ":"))


def decode_value(value: str) -> ButtonValue | None:
    """None for a value keyhunt never wrote."""
    if not value:
        return None
    if not value.startswith("["):
        # Alerts posted before keyhunt 0.2 carry the bare event ID. Their buttons were drawn
        # for `open` (both) or `investigating` (Expected rotation only), so a legacy click is
        # accepted where its button is a transition from the current state: the state
        # machine still holds, only a replay of such an old click cannot be told apart.
        return ButtonValue(value, None)
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or not all(isinstance(part, str) and part for part in decoded)
        or decoded[1] not in STATUSES
    ):
        return None
    return ButtonValue(decoded[0], decoded[1])
