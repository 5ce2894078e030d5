"""keyhunt_dev.draw: the README's picture of an alert is drawn from Block Kit, whatever blocks
the renderer adds, and CloudTrail's text in code spans is read literally."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from keyhunt_dev import draw

NAMES = {"U0CAROL": "carol", "C0ALERTS": "security-alerts"}
DATE = "<!date^1796618055^{date_short_pretty} {time}|2026-12-07 04:34 UTC>"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


# Every block kind and inline element the drawer knows, and emoji DejaVu lacks.
MESSAGE: dict[str, Any] = {
    "type": "message",
    "ts": "1796618055.000100",
    "text": "🔴 HIGH  alice@example.com created an access key for deploy-bot",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "🚨 keyhunt"}},
        {
            "type": "section",
            "text": _mrkdwn(
                "*🔴 High — access key created for another user*\n"
                "`alice@example.com` created key `AKIA…2IDQ` for `deploy-bot` at "
                f"{DATE} in <#C0ALERTS>, &lt;b&gt; &amp; an ARN that cannot fit on one line: "
                "`arn:aws:sts::222222222222:assumed-role/AWSReservedSSO_AdministratorAccess_"
                "0123456789abcdef/alice@example.com`\n⚠️ the new key attached AdministratorAccess"
            ),
        },
        {
            "type": "section",
            "fields": [
                _mrkdwn("*Source IP*  `203.0.113.50`"),
                _mrkdwn("*User agent*  `Boto3/1.35.0 &lt;!channel&gt; *urgent* 🦄`"),
                _mrkdwn("*`deploy-bot`'s keys (IAM)*  1 active"),
            ],
        },
        {
            "type": "section",
            "text": _mrkdwn("A button beside the text"),
            "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Open"}},
        },
        {"type": "divider"},
        {
            "type": "context",
            "elements": [_mrkdwn(f"🔎 *Investigating* — <@U0CAROL> since {DATE}")],
        },
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "✅ Fine"}},
                {
                    "type": "button",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Expected rotation"},
                },
                {
                    "type": "button",
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Investigate"},
                },
            ],
        },
        {"type": "section", "text": _mrkdwn("*Usage*\n```/keyhunt last <DUR>\n  indented```")},
        {
            "type": "context",
            "elements": [_mrkdwn("👉 Next: 🟠 🟡 ⚪ ask the caller"), _mrkdwn("event `x`")],
        },
        {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": []}]},
    ],
    "metadata": {"event_type": "keyhunt_alert", "event_payload": {"finding": "demo-x"}},
}


@pytest.fixture
def fonts() -> draw.Fonts:
    try:
        return draw.Fonts.find()
    except draw.FontsNotFound as exc:
        pytest.skip(str(exc))


def test_a_message_is_drawn_to_a_png(fonts: draw.Fonts, tmp_path: Path) -> None:
    image = draw.draw_message(MESSAGE, fonts, NAMES, replies=[{"ts": "1796618100.0"}])
    colours = {c[:3] for _, c in image.getcolors(maxcolors=1 << 20) or [] if isinstance(c, tuple)}
    assert (0xE0, 0x1E, 0x5A) in colours  # the danger button, and code spans' ink
    assert (0x00, 0x7A, 0x5A) in colours  # the primary button
    out = tmp_path / "alert.png"
    draw.save(image, out)
    assert out.stat().st_size > 0
    with Image.open(out) as saved:
        saved.load()
        assert saved.format == "PNG"
        assert saved.size == image.size
        assert saved.width == 2 * draw.WIDTH
        assert saved.height > 400


def test_more_blocks_make_a_taller_picture(fonts: draw.Fonts) -> None:
    short = draw.draw_message({**MESSAGE, "blocks": MESSAGE["blocks"][:2]}, fonts, NAMES)
    full = draw.draw_message(MESSAGE, fonts, NAMES)
    # Longer than the first canvas (1200 logical pixels): drawn again on a long enough one.
    long = draw.draw_message({**MESSAGE, "blocks": MESSAGE["blocks"] * 4}, fonts, NAMES)
    assert short.height < full.height < long.height
    assert long.height > 2 * 1200
    assert draw.draw_message({"text": "no blocks: *the text* is drawn"}, fonts).height > 0
    assert long.getpixel((long.width // 2, long.height - 4)) == (255, 255, 255, 255)


def test_emoji_the_fonts_lack_are_drawn_not_left_as_boxes(fonts: draw.Fonts) -> None:
    canvas = draw.Canvas(fonts)
    (flow,) = draw.parse_mrkdwn("🚨 🔴 🦄 👉 ✅ ok", NAMES)
    assert isinstance(flow, list)
    pieces = canvas.pieces(flow[0], draw.BODY)
    kinds = {p.text: p.kind for p in pieces if not p.text.isspace()}
    assert kinds == {
        "🚨": "emoji",
        "🔴": "emoji",
        "🦄": "emoji",
        "👉": "glyph",
        "✅": "emoji",
        "ok": "text",
    }
    assert canvas.has_glyph("sans", 14, "☛")  # 👉's stand-in
    assert not canvas.has_glyph("sans", 14, "🦄")


def test_mrkdwn_is_read_as_slack_shows_it() -> None:
    (flow,) = draw.parse_mrkdwn(
        f"*Bold* `<b> *not bold* &lt;!channel&gt;` <@U0CAROL> <#C0ALERTS> {DATE} &amp;", NAMES
    )
    assert isinstance(flow, list)
    runs = [(r.text, r.kind, r.bold) for r in flow[0]]
    assert runs == [
        ("Bold", "text", True),
        (" ", "text", False),
        ("<b> *not bold* <!channel>", "code", False),
        (" ", "text", False),
        ("@carol", "mention", False),
        (" ", "text", False),
        ("#security-alerts", "link", False),
        (" 2026-12-07 04:34 UTC &", "text", False),
    ]


def test_a_code_block_is_shown_as_it_is() -> None:
    paragraphs = draw.parse_mrkdwn("*Usage*\n```/keyhunt *last* &lt;DUR&gt;\n  more```", {})
    assert paragraphs[1] == draw.Pre("/keyhunt *last* <DUR>\n  more")


def test_the_command_draws_the_alert_of_a_finding(
    fonts: draw.Fonts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = {"ts": "1796618100.0", "thread_ts": MESSAGE["ts"], "text": "Investigation"}
    posted = {"messages": [{"ts": "1.0", "text": "another"}, MESSAGE, reply], "responses": []}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(posted)))
    out = tmp_path / "docs" / "alert.png"
    assert draw.main([str(out), "--finding", "demo-x"]) == 0
    with Image.open(out) as saved:
        assert saved.height > 400
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(posted)))
    assert draw.main([str(out), "--finding", "demo-nothing"]) == 2


def test_fonts_missing_is_said_plainly(tmp_path: Path) -> None:
    with pytest.raises(draw.FontsNotFound, match=r"DejaVuSans\.ttf"):
        draw.Fonts.find([str(tmp_path)])
