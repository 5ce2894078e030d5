"""Logging: readable text or JSON lines, with every configured secret redacted at any level."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime

from bot.settings import Settings

# Shapes of credentials that may reach a log line through a library's message (botocore at
# DEBUG logs request headers, canonical requests and STS response bodies) or a traceback.
_BARE_SECRETS = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+"
    r"|(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"  # AWS secret access keys
)
_LABELLED_SECRETS = re.compile(
    r"(?P<label>(?i:<(?:SessionToken|SecretAccessKey)>"  # STS XML responses
    r"|(?:x-amz-security-token|aws_secret_access_key|aws_session_token|secret_key"
    r"|session_token|sessiontoken|secretaccesskey|signing_secret)"
    r"['\"]?\s*[:=]\s*b?['\"]?))"
    r"(?P<value>[^\s'\",}<]+)"
)
# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class RedactSecrets(logging.Filter):
    """Replaces known secret values and secret-shaped strings in the final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _LABELLED_SECRETS.sub(r"\g<label>***", text)
        return _BARE_SECRETS.sub("***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redact(message)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings, verbosity: int = 0) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(
        RedactSecrets(
            [
                settings.slack_bot_token,
                settings.slack_signing_secret,
                settings.slack_app_token,
                settings.external_id,
                *(os.environ.get(name, "") for name in SECRET_ENV),
            ]
        )
    )
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # botocore at DEBUG prints signed headers; keep it quiet unless asked twice.
    logging.getLogger("botocore").setLevel(logging.DEBUG if verbosity > 2 else logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
