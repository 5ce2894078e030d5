"""The words an alert uses come from the rules: checks.rules' helpers for the renderer.

The expected strings are written out here, exactly as bot/render.py's HEADLINES and
REASON_WORDS tables held them before the rules carried them, so moving the words changed no
alert.
"""

from __future__ import annotations

import itertools

import pytest

from checks.rules import (
    DEFAULT_HEADLINE,
    SUPPRESSED,
    SUPPRESSED_WORDS,
    Rule,
    about,
    all_rules,
    headline_for,
    reason_words,
    rule_by_id,
    rules_by_id,
    words_for,
)

# bot/render.py's tables as they were, in their order.
HEADLINES = {
    "root_actor": ("root user created an access key", "root user tried to create an access key"),
    "key_for_other_user": (
        "access key created for another user",
        "failed attempt to create a key for another user",
    ),
    "self_service": (
        "user created their own access key",
        "user tried to create their own access key",
    ),
    "malformed": (
        "access key created; keyhunt could not read all of its record",
        "attempt to create an access key; keyhunt could not read all of its record",
    ),
}
REASON_WORDS = {
    "root_actor": "made by the root user",
    "key_for_other_user": "created for a different user",
    "self_service": "a user made their own key",
    "failed_attempt": "the call failed, so no key exists",
    "console": "made in the AWS console",
    "likely_rotation": "the user's other key was retired nearby (likely rotation)",
    "suppressed": "matches a configured suppression",
    "malformed": "part of the CloudTrail record could not be read",
}
ALL_REASONS = [*(rule.id for rule in all_rules()), SUPPRESSED]


def old_headline(reasons: list[str], failed: bool) -> str:
    """bot/render.py headline(), as it was."""
    done, tried = next(
        (HEADLINES[r] for r in HEADLINES if r in reasons),
        ("access key created", "failed attempt to create an access key"),
    )
    return tried if failed else done


def old_reasons_in_words(reasons: list[str]) -> str:
    """bot/render.py reasons_in_words(), as it was."""
    return " · ".join(REASON_WORDS.get(r, r) for r in reasons)


def test_rule_headlines_are_the_old_table() -> None:
    assert {r.id: r.headline for r in all_rules() if r.headline is not None} == HEADLINES
    assert DEFAULT_HEADLINE == ("access key created", "failed attempt to create an access key")


def test_headline_order_is_the_old_table_order() -> None:
    """A better-known reason gives the headline: root first, malformed last."""
    assert [r.id for r in all_rules() if r.headline is not None] == list(HEADLINES)


def test_rule_words_are_the_old_table() -> None:
    words = {r.id: r.words for r in all_rules()}
    assert {**words, SUPPRESSED: SUPPRESSED_WORDS} == REASON_WORDS
    assert SUPPRESSED == "suppressed"


def _combinations() -> list[list[str]]:
    return [
        list(combo)
        for size in range(len(ALL_REASONS) + 1)
        for combo in itertools.combinations(ALL_REASONS, size)
    ]


@pytest.mark.parametrize("failed", [False, True])
def test_headline_for_matches_the_old_headline(failed: bool) -> None:
    for reasons in _combinations():
        assert headline_for(reasons, failed) == old_headline(reasons, failed), reasons
        backwards = reasons[::-1]  # the first rule in registry order wins, not the first reason
        assert headline_for(backwards, failed) == old_headline(backwards, failed), backwards
        assert headline_for(tuple(reasons), failed) == old_headline(reasons, failed)


def test_headline_for_examples() -> None:
    assert headline_for(["self_service", "root_actor"], False) == "root user created an access key"
    assert headline_for(["malformed", "self_service"], True) == (
        "user tried to create their own access key"
    )
    assert headline_for(["malformed"], False) == (
        "access key created; keyhunt could not read all of its record"
    )
    assert headline_for(["console", "failed_attempt"], True) == (
        "failed attempt to create an access key"
    )
    assert headline_for([], False) == "access key created"
    assert headline_for(["from_a_newer_version"], False) == "access key created"


def test_reason_words_matches_the_old_function() -> None:
    for reasons in _combinations():
        assert reason_words(reasons) == old_reasons_in_words(reasons), reasons
        assert reason_words(iter(reasons)) == old_reasons_in_words(reasons)


def test_reason_words_examples() -> None:
    assert reason_words(["key_for_other_user", "console", "suppressed"]) == (
        "created for a different user · made in the AWS console · matches a configured suppression"
    )
    assert reason_words([]) == ""
    # A code this version does not know is shown as itself, never dropped.
    assert reason_words(["root_actor", "from_a_newer_version"]) == (
        "made by the root user · from_a_newer_version"
    )
    assert words_for("from_a_newer_version") == "from_a_newer_version"


def test_rule_by_id() -> None:
    for rule in all_rules():
        assert rule_by_id(rule.id) is rule
    assert rule_by_id(SUPPRESSED) is None
    assert rule_by_id("nope") is None
    assert list(rules_by_id()) == [r.id for r in all_rules()]
    with pytest.raises(TypeError):
        rules_by_id()["x"] = all_rules()[0]  # type: ignore[index]


def test_about() -> None:
    root = rule_by_id("root_actor")
    assert root is not None
    assert about(root) == (
        "About root_actor: Root user created an access key. Known false positives: "
        "Break-glass procedures that are documented and announced in advance."
    )
    console = rule_by_id("console")
    assert console is not None
    assert about(console) == "About console: Made in the AWS console."
    other = rule_by_id("key_for_other_user")
    assert other is not None
    assert about(other).endswith(
        "Administrators provisioning keys for service users through a ticketed process. "
        "Automation (CloudFormation, Terraform) run by a role that creates service-user keys."
    )


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_about_is_one_plain_line(rule: Rule) -> None:
    text = about(rule)
    prefix = f"About {rule.id}: "
    assert text.startswith(f"{prefix}{rule.title}.")
    assert "\n" not in text
    words = text.removeprefix(prefix)  # the id has underscores; the words have no markup
    assert not set(words) & set("*_`<>~"), "plain text: the renderer escapes and formats"


def test_every_rule_has_a_place_in_the_next_step_order() -> None:
    from checks.rules import NEXT_STEP_ORDER, next_step_for

    assert sorted(NEXT_STEP_ORDER) == sorted(rule.id for rule in all_rules())
    assert len(set(NEXT_STEP_ORDER)) == len(NEXT_STEP_ORDER)
    # The failed call says more than who it was for; root says more than anything.
    assert next_step_for(["key_for_other_user", "failed_attempt"]).startswith("No key exists")
    assert next_step_for(["self_service", "root_actor"]).startswith("Root keys should not")
    assert next_step_for(["suppressed"]) is None
