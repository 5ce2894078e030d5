"""The CreateAccessKey call failed: no key exists, but somebody tried."""

from checks.model import KeyEvent, Severity
from checks.rules import Rule, RuleContext

# A denied call means the caller tried something it may not do: worth a look. Other errors
# (quota reached, no such user) are mostly honest mistakes.
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    return event.failed


def cap_for(event: KeyEvent) -> Severity:
    """The rule's cap: a failed call is never above medium, and only a denied one reaches it."""
    return Severity.MEDIUM if event.error_code in DENIED_CODES else Severity.LOW


RULE = Rule(
    id="failed_attempt",
    title="CreateAccessKey failed",
    description=(
        "The call returned an error, so no key was made. Access denied is kept at medium "
        "(probing); other errors such as the two-key quota are low."
    ),
    matches=matches,
    words="the call failed, so no key exists",
    next_step=(
        "No key exists: if access was denied, find out why this caller tried; otherwise "
        "check the user got the key they needed."
    ),
    cap=cap_for,
    false_positives=("Users hitting the two-keys-per-user quota while rotating.",),
    references=("https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateAccessKey.html",),
)
