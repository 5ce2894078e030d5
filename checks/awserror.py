"""What an AWS call that failed says, in one shape: the error code and message a person sees.

botocore raises `ClientError` (AWS answered with an error) or `BotoCoreError` (no answer: no
credentials, endpoint unreachable, ...). Every read in checks/ turns either into
`AwsReadFailed`, so callers catch one exception and report `code: message`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class AwsReadFailed(Exception):
    """An AWS read failed; `code` (AWS's error code, or ours: "Throttled", "EndpointError")
    and `message` are what a person should see."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def error_of(exc: ClientError) -> tuple[str, str]:
    """(code, message) of an error AWS answered with."""
    error: Any = exc.response.get("Error", {})
    return str(error.get("Code", "ClientError")), str(error.get("Message", ""))


def retries_of(response: Any) -> int:
    """How many times botocore retried the call whose response (or error response) this is."""
    return int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
