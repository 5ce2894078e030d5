"""An IAM user created an access key for itself: the retired origin detection's only case."""

from checks.model import KeyEvent, Severity
from checks.rules import Rule, RuleContext, same_user


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    return event.actor.type == "IAMUser" and same_user(event.actor.name, event.target_user)


RULE = Rule(
    id="self_service",
    title="IAM user created an access key for itself",
    description=(
        "An IAM user called CreateAccessKey on its own user: routine rotation, or an attacker "
        "with a stolen session minting durable credentials."
    ),
    matches=matches,
    words="a user made their own key",
    next_step=(
        "Confirm with the user that they made this key; if not, deactivate it and end the "
        "user's sessions."
    ),
    headline=(
        "user created their own access key",
        "user tried to create their own access key",
    ),
    severity=Severity.MEDIUM,
    false_positives=("Engineers rotating their own keys.",),
    references=(
        "https://research.splunk.com/deprecated/",
        "https://attack.mitre.org/techniques/T1098/001/",
    ),
)
