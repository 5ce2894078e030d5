"""keyhunt's exit codes (README, Commands), and the one line that says why nothing was read.

0: everything asked for was read. 1: some account or region could not be read (CONTRACT
section 1; that includes all of them: no credentials, every AssumeRole refused), each failure
named on stderr and, when nothing at all was read, one line naming the cause and the fix.
2: usage or configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from checks.model import FATAL_STAGES, TargetError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2

# Errors that mean the caller's own credentials are missing or refused (botocore's exception
# names, and the codes STS and the services answer with).
NO_CREDENTIALS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "ProfileNotFound",
        "SSOTokenLoadError",
        "UnauthorizedSSOTokenError",
        "TokenRetrievalError",
    }
)
REFUSED_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)


def why_nothing_was_read(errors: Sequence[TargetError], role_name: str) -> str:
    """One line: what stopped every read, and what to do about it. Only error codes and our
    own words: AWS's messages can quote caller-chosen text and are printed on their own lines."""
    fatal = [e for e in errors if e.stage in FATAL_STAGES] or list(errors)
    codes = [e.code for e in fatal]
    missing = next((c for c in codes if c in NO_CREDENTIALS), None)
    if missing is not None:
        return (
            f"nothing could be read: no usable AWS credentials ({missing}). Check the "
            "credential chain with `aws sts get-caller-identity` (AWS_PROFILE, `aws sso "
            "login`, or the instance role)"
        )
    refused = next((c for c in codes if c in REFUSED_CREDENTIALS), None)
    if refused is not None:
        return (
            f"nothing could be read: AWS refused the credentials ({refused}). Refresh them, "
            "then check with `aws sts get-caller-identity`"
        )
    if fatal and all(e.stage == "assume_role" for e in fatal):
        return (
            f"nothing could be read: every AssumeRole into {role_name} was refused "
            f"({codes[0]}). Deploy config/cross-account-role.yaml in each account, trusting "
            "the caller `aws sts get-caller-identity` names, or set KEYHUNT_ROLE_NAME"
        )
    first = fatal[0] if fatal else None
    cause = f"{first.stage} failed with {first.code}" if first else "no target was read"
    return f"nothing could be read: {cause}; each failure is named above"


def say_if_nothing_was_read(
    targets: int, errors: Sequence[TargetError], role_name: str, stream: TextIO | None = None
) -> None:
    """When none of `targets` could be read, `why_nothing_was_read` on stderr; else nothing."""
    failed = {e.target for e in errors if e.stage in FATAL_STAGES}
    if targets and len(failed) >= targets:
        print(f"keyhunt: {why_nothing_was_read(errors, role_name)}", file=stream or sys.stderr)
