"""A principal created an access key for a different IAM user: the classic persistence move."""

from checks.model import KeyEvent, Severity
from checks.rules import Rule, RuleContext, same_user


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    if event.actor.type == "Root":
        return False  # root_actor covers every key root makes
    if event.actor.type is None:
        return False  # userIdentity unreadable: who made it is unknown (malformed says so)
    target = event.target_user
    if target is None:
        return False
    if event.actor.type != "IAMUser":
        # Roles, SSO sessions, federated users and services own no access keys, so any key
        # they create belongs to somebody else.
        return True
    return not same_user(event.actor.name, target)


RULE = Rule(
    id="key_for_other_user",
    title="Access key created for another user",
    description=(
        "The caller created a long-term key for an IAM user other than itself: an IAM user for "
        "a different user, or a role, SSO session or federated session for any user. Names "
        "are compared exactly, IAM paths stripped."
    ),
    matches=matches,
    words="created for a different user",
    next_step=(
        "Ask the caller who requested a key for this user; if nobody did, deactivate the key "
        "and review what the caller did."
    ),
    headline=(
        "access key created for another user",
        "failed attempt to create a key for another user",
    ),
    severity=Severity.HIGH,
    false_positives=(
        "Administrators provisioning keys for service users through a ticketed process.",
        "Automation (CloudFormation, Terraform) run by a role that creates service-user keys.",
    ),
    references=(
        "https://stratus-red-team.cloud/attack-techniques/AWS/aws.persistence.iam-backdoor-user/",
        "https://attack.mitre.org/techniques/T1098/001/",
    ),
)
