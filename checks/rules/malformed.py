"""Part of the CreateAccessKey record could not be read: still an alert, never a silent drop."""

from checks.model import KeyEvent, Severity
from checks.rules import Rule, RuleContext


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    return bool(event.problems)


RULE = Rule(
    id="malformed",
    title="CloudTrail record could not be fully read",
    description=(
        "Some fields of the CreateAccessKey record were missing, of the wrong type or not "
        "valid text, so they are unknown (null) and named in malformed_fields. A key may "
        "exist that no other rule could judge: the finding is at least medium, whatever "
        "lowered it; root stays critical."
    ),
    matches=matches,
    words="part of the CloudTrail record could not be read",
    next_step=(
        "Open the raw record in CloudTrail: the unreadable fields are unknown, so check by "
        "hand who made the key and for whom."
    ),
    headline=(
        "access key created; keyhunt could not read all of its record",
        "attempt to create an access key; keyhunt could not read all of its record",
    ),
    at_least=Severity.MEDIUM,
    false_positives=(
        "Exports and third-party pipelines that rewrite CloudTrail records (normalised "
        "fields, truncated text) rather than anything the caller did.",
    ),
    references=(
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html",
        "https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_Event.html",
    ),
)
