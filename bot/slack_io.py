"""Slack clients that survive Slack misbehaving: 429 (honouring Retry-After), 5xx, resets.

slack_sdk retries only connection errors by default, and Bolt's `respond()` builds a bare
WebhookClient per call; both get the same retry handlers here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_bolt.context.respond import Respond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient, WebhookResponse

from bot.settings import Settings


def retry_handlers() -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=3),
        RateLimitErrorRetryHandler(max_retry_count=6),
        ServerErrorRetryHandler(max_retry_count=4),
    ]


def build_web_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.slack_bot_token or None,
        base_url=settings.slack_api_url,
        timeout=20,
        retry_handlers=retry_handlers(),
    )


def posting_client(client: Any) -> Any:
    """The same Web API client without the retries that could post a message twice.

    chat.postMessage has no idempotency key: after a 5xx or a connection reset Slack may
    already have stored the message, and a blind resend repeats it. Only 429s (Slack refused;
    nothing stored) are retried here; bot.posting looks in the channel before resending
    after anything else. Test doubles that are not a WebClient are used as they are.
    """
    if not isinstance(client, WebClient):
        return client
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=dict(client.headers),
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=6)],
    )


class RetryingRespond(Respond):
    """Bolt's `respond()` with the same retry handlers as the Web API client."""

    def __call__(  # type: ignore[override]
        self,
        text: str = "",
        blocks: Sequence[dict[str, Any]] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        **extra: Any,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        client = WebhookClient(
            url=self.response_url,
            proxy=self.proxy,
            ssl=self.ssl,
            timeout=20,
            retry_handlers=retry_handlers(),
        )
        message = _build_message(
            text=text,
            blocks=blocks,
            response_type=response_type,
            replace_original=replace_original,
            delete_original=delete_original,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        return client.send_dict(message)
