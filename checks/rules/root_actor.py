"""The root user created an access key. Root keys cannot be scoped down by any policy."""

from checks.model import KeyEvent, Severity
from checks.rules import Rule, RuleContext


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    return event.actor.type == "Root"


RULE = Rule(
    id="root_actor",
    title="Root user created an access key",
    description=(
        "The account's root user called CreateAccessKey, for itself or for an IAM user. "
        "AWS recommends the root user have no access keys at all."
    ),
    matches=matches,
    words="made by the root user",
    next_step=(
        "Root keys should not exist: delete it unless you made it seconds ago, then find out "
        "who signed in as root."
    ),
    headline=("root user created an access key", "root user tried to create an access key"),
    severity=Severity.CRITICAL,
    false_positives=("Break-glass procedures that are documented and announced in advance.",),
    references=(
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user_manage_add-key.html",
        "https://attack.mitre.org/techniques/T1098/001/",
    ),
)
