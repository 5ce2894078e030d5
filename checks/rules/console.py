"""The call came from the AWS console (a person clicking, not a script)."""

from checks.model import KeyEvent
from checks.rules import Rule, RuleContext


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    return event.actor.console_session


RULE = Rule(
    id="console",
    title="Made in the AWS console",
    description="userAgent or invokedBy is the console sign-in service; severity unchanged.",
    matches=matches,
    words="made in the AWS console",
    next_step=(
        "A person clicked this in the console: ask whoever was signed in whether they made it."
    ),
    references=(
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html",
    ),
)
