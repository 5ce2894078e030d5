"""One Slack message drawn as Slack shows it, to PNG: the README's picture of an alert.

    keyhunt demo --json | python -m keyhunt_dev.draw OUT.png [--finding EVENT_ID | --message N]

It reads the Block Kit the demo really posted, so the picture follows the renderer
(`make readme-image` regenerates docs/alert.png). Drawn with Pillow rather than a headless
browser: no browser build to fetch, and the same picture on every machine with the fonts.
What keyhunt posts is drawn as Slack lays it out (sections with mrkdwn text and two-column
fields, context, buttons, code blocks); other blocks are drawn roughly or left out.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

# Where DejaVu lives on Debian and Ubuntu, Fedora, Arch, and in local or Homebrew installs. The
# committed PNG is what readers see: a machine without these fonts only cannot regenerate it.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu-sans-fonts",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/local/share/fonts",
    "/opt/homebrew/share/fonts",
    "~/.local/share/fonts",
    "~/Library/Fonts",
)
FACES = {
    "sans": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",  # optional: plain mono stands in
}

# Slack's light theme.
INK = "#1D1C1D"
GREY = "#616061"
LINK = "#1264A3"
MENTION_BG = "#E1F0F8"
CODE_INK = "#E01E5A"
CODE_BG = "#F7F7F7"
CODE_EDGE = "#DEDEDE"
EDGE = "#DDDDDD"
BUTTON_FILL = {"primary": "#007A5A", "danger": "#E01E5A"}
BUTTON_EDGE = "#BBBBBB"

WIDTH = 760  # logical pixels: a Slack message pane on a laptop
GUTTER = 64  # where a message's content starts: 20 margin, 36 avatar, 8 gap
RIGHT = 24


class FontsNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class Fonts:
    paths: Mapping[str, Path]

    @classmethod
    def find(cls, dirs: Sequence[str] = FONT_DIRS) -> Fonts:
        """The first directory holding DejaVu Sans, Sans Bold and Sans Mono."""
        for name in dirs:
            folder = Path(name).expanduser()
            found = {face: folder / file for face, file in FACES.items()}
            if all(found[face].is_file() for face in ("sans", "bold", "mono")):
                if not found["mono_bold"].is_file():
                    found["mono_bold"] = found["mono"]
                return cls(found)
        raise FontsNotFound(
            "keyhunt_dev.draw needs the DejaVu fonts (DejaVuSans.ttf, DejaVuSans-Bold.ttf, "
            f"DejaVuSansMono.ttf) in one of {', '.join(dirs)}; on Debian or Ubuntu: "
            "apt-get install fonts-dejavu-core"
        )


# -- mrkdwn ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """Text in one style. kind: text, code (a code span), mention (a user: blue on light blue),
    link (blue), pre (a code block's text)."""

    text: str
    kind: str = "text"
    bold: bool = False


@dataclass(frozen=True)
class Pre:
    """A ``` code block: monospace in a box as wide as the message, shown as it is."""

    text: str


Flow = list[list[Run]]  # lines of runs, wrapped when drawn
Paragraph = Flow | Pre

_FENCE = re.compile(r"```(.*?)```", re.DOTALL)
_TOKEN = re.compile(r"`[^`\n]+`|<[^<>\n]+>|\*|\n")


def parse_mrkdwn(text: str, names: Mapping[str, str]) -> list[Paragraph]:
    """mrkdwn as Slack shows it. keyhunt puts whatever CloudTrail said in code spans, so a code
    span is shown literally (a `*` or `<!channel>` in it too); outside them each `*` is
    keyhunt's own bold marker, as the demo's terminal printer also reads it."""
    paragraphs: list[Paragraph] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        # A code block is a block of its own: the line breaks around its fences are not lines.
        before = text[pos : fence.start()]
        paragraphs.append(_flow(before.removeprefix("\n") if pos else before, names))
        paragraphs.append(Pre(html.unescape(fence.group(1).strip("\n"))))
        pos = fence.end()
    paragraphs.append(_flow(text[pos:].removeprefix("\n") if pos else text, names))
    return [p for p in paragraphs if isinstance(p, Pre) or any(p)]


def _flow(text: str, names: Mapping[str, str]) -> Flow:
    lines: Flow = [[]]
    bold = False
    pos = 0

    def add(part: str, kind: str = "text") -> None:
        line = lines[-1]
        if part and kind == "text" and line and line[-1].kind == "text" and line[-1].bold == bold:
            line[-1] = Run(line[-1].text + part, kind, bold)  # a date's fallback joins the text
        elif part:
            line.append(Run(part, kind, bold))

    for match in _TOKEN.finditer(text):
        add(html.unescape(text[pos : match.start()]))
        token = match.group()
        if token == "*":
            bold = not bold
        elif token == "\n":
            lines.append([])
        elif token.startswith("`"):
            add(html.unescape(token[1:-1]), "code")
        else:
            kind, label = _angle(token[1:-1], names)
            add(html.unescape(label), kind)
        pos = match.end()
    add(html.unescape(text[pos:]))
    if lines and not lines[-1]:
        lines.pop()  # a text's last line break (before a code block, say) ends a line, no more
    return lines


def _angle(inner: str, names: Mapping[str, str]) -> tuple[str, str]:
    """Slack's <…> tokens: a user, a channel, a date (its fallback), a special mention, a link."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return "mention", "@" + (label or names.get(target[1:], target[1:]))
    if target.startswith("#"):
        return "link", "#" + (label or names.get(target[1:], target[1:]))
    if target.startswith("!date^"):
        return "text", label
    if target.startswith("!subteam^"):
        return "mention", label or "@group"
    if target.startswith("!"):
        return "mention", "@" + target[1:]
    return "link", label or target


def plain_lines(text: str) -> Flow:
    """plain_text: no markup at all."""
    return [[Run(line)] if line else [] for line in text.split("\n")] if text else []


# -- emoji ----------------------------------------------------------------------------------
# DejaVu has no colour emoji, so the ones keyhunt posts are drawn as small shapes in Twemoji's
# colours; any other character no font has becomes a grey dot, never a missing-glyph box.
Painter = Callable[[ImageDraw.ImageDraw, float, float, float], None]


def _disc(fill: str, edge: str | None = None) -> Painter:
    def paint(draw: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
        inset = s * 0.1
        box = (x + inset, y + inset, x + s - inset, y + s - inset)
        draw.ellipse(box, fill=fill, outline=edge, width=max(1, round(s / 14)))

    return paint


def _siren(draw: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    red, rays = "#DD2E44", "#FFAC33"
    draw.rounded_rectangle(
        (x + s * 0.14, y + s * 0.74, x + s * 0.86, y + s * 0.94), s * 0.05, fill="#8899A6"
    )
    draw.pieslice((x + s * 0.24, y + s * 0.22, x + s * 0.76, y + s * 0.98), 180, 360, fill=red)
    draw.rectangle((x + s * 0.24, y + s * 0.58, x + s * 0.76, y + s * 0.75), fill=red)
    draw.ellipse((x + s * 0.36, y + s * 0.36, x + s * 0.47, y + s * 0.54), fill="#F7A4B0")
    for x0, y0, x1, y1 in ((0.5, 0.02, 0.5, 0.15), (0.1, 0.22, 0.2, 0.3), (0.9, 0.22, 0.8, 0.3)):
        line = (x + s * x0, y + s * y0, x + s * x1, y + s * y1)
        draw.line(line, fill=rays, width=max(1, round(s / 10)))


def _tick(draw: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    box = (x + s * 0.08, y + s * 0.08, x + s * 0.92, y + s * 0.92)
    draw.rounded_rectangle(box, s * 0.16, fill="#77B255")
    points = [
        (x + s * 0.27, y + s * 0.52),
        (x + s * 0.43, y + s * 0.68),
        (x + s * 0.73, y + s * 0.33),
    ]
    draw.line(points, fill="white", width=max(2, round(s / 7)), joint="curve")


def _magnifier(draw: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    handle = (x + s * 0.58, y + s * 0.58, x + s * 0.9, y + s * 0.9)
    draw.line(handle, fill="#31373D", width=max(2, round(s / 6)))
    lens = (x + s * 0.08, y + s * 0.08, x + s * 0.66, y + s * 0.66)
    draw.ellipse(lens, fill="#BBDDF5", outline="#66757F", width=max(2, round(s / 9)))


def _warning(draw: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    corners = [
        (x + s * 0.5, y + s * 0.08),
        (x + s * 0.97, y + s * 0.9),
        (x + s * 0.03, y + s * 0.9),
    ]
    draw.polygon(corners, fill="#FFCC4D")
    bar = max(1, round(s / 9))
    draw.line((x + s * 0.5, y + s * 0.36, x + s * 0.5, y + s * 0.62), fill="#231F20", width=bar)
    draw.ellipse((x + s * 0.445, y + s * 0.7, x + s * 0.555, y + s * 0.81), fill="#231F20")


EMOJI: dict[str, Painter] = {
    "🚨": _siren,
    "🔴": _disc("#DD2E44"),
    "🟠": _disc("#F4900C"),
    "🟡": _disc("#FDCB58"),
    "⚪": _disc("#E6E7E8", "#CCD6DD"),
    "✅": _tick,
    "🔎": _magnifier,
    "🔍": _magnifier,
    "⚠": _warning,
}
UNKNOWN_EMOJI = _disc("#CCD6DD")
# 👉 has a stand-in in DejaVu itself: the pointing hand, in the emoji's yellow.
GLYPH_EMOJI = {"👉": ("☛", "#F4A62A")}
# Presentation selectors, the zero-width joiner and skin tones: nothing to draw on their own.
_INVISIBLE = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")


# -- drawing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    size: float  # font size, logical pixels
    line: float  # line height
    ink: str
    bold: bool = False  # every run bold (a header, a button)


BODY = Style(14, 22, INK)
SMALL = Style(11.5, 18, GREY)
HEADER = Style(17, 26, INK, bold=True)
BUTTON = Style(12.5, 28, INK, bold=True)


@dataclass
class Piece:
    """A run cut at spaces and around emoji: what wrapping moves as one (unless too long)."""

    text: str
    kind: str  # a Run's kind, or: space, emoji (drawn), glyph (a font's stand-in for an emoji)
    bold: bool
    group: int  # which run it came from: a code span's box goes round its pieces on a line
    first: bool = False  # the run's first and last pieces, where a box's padding goes
    last: bool = False


Line = list[tuple[float, Piece]]  # (x offset, piece)


@dataclass
class Canvas:
    fonts: Fonts
    scale: float = 2.0
    width: int = WIDTH
    height: int = 1200  # logical pixels to draw on; the message is cropped to what it needs
    image: Image.Image = field(init=False)
    draw: ImageDraw.ImageDraw = field(init=False)
    _fonts: dict[tuple[str, float], ImageFont.FreeTypeFont] = field(default_factory=dict)
    _glyphs: dict[tuple[str, float, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image = Image.new("RGB", (self.u(self.width), self.u(self.height)), "white")
        self.draw = ImageDraw.Draw(self.image)

    def u(self, logical: float) -> int:
        """Logical pixels to the image's."""
        return round(logical * self.scale)

    def font(self, face: str, size: float) -> ImageFont.FreeTypeFont:
        key = (face, size)
        if key not in self._fonts:
            self._fonts[key] = ImageFont.truetype(str(self.fonts.paths[face]), self.u(size))
        return self._fonts[key]

    def has_glyph(self, face: str, size: float, char: str) -> bool:
        """Whether the font draws `char` as itself rather than as its missing-glyph box."""
        key = (face, size, char)
        if key not in self._glyphs:
            font = self.font(face, size)
            side = self.u(size) * 3

            def ink(c: str) -> bytes:
                scratch = Image.new("L", (side, side))
                ImageDraw.Draw(scratch).text((side // 3, side // 3), c, font=font, fill=255)
                return scratch.tobytes()

            self._glyphs[key] = ink(char) != ink("\U000efffd")  # unassigned: in no font
        return self._glyphs[key]

    # -- one piece ----------------------------------------------------------------------------
    @staticmethod
    def face(kind: str, bold: bool) -> str:
        if kind in ("code", "pre"):
            return "mono_bold" if bold else "mono"
        return "bold" if bold else "sans"

    @staticmethod
    def size(kind: str, style: Style) -> float:
        return style.size - 1.5 if kind in ("code", "pre") else style.size

    def pad(self, piece: Piece) -> float:
        return self.u({"code": 3.0, "mention": 2.0}.get(piece.kind, 0.0))

    def emoji_side(self, style: Style) -> float:
        return self.u(style.size * 1.3)

    def measure(self, piece: Piece, style: Style) -> float:
        if piece.kind == "emoji":
            return self.emoji_side(style) + self.u(1)
        if piece.kind == "glyph":
            return self.font("sans", style.size * 1.2).getlength(GLYPH_EMOJI[piece.text][0])
        face = self.face(piece.kind, piece.bold)
        return self.font(face, self.size(piece.kind, style)).getlength(piece.text)

    def outer(self, piece: Piece, style: Style) -> float:
        """Its width with its run's box padding, where it has some."""
        return self.measure(piece, style) + self.pad(piece) * (piece.first + piece.last)

    # -- cutting runs -------------------------------------------------------------------------
    def pieces(self, runs: Sequence[Run], style: Style) -> list[Piece]:
        out: list[Piece] = []
        for group, run in enumerate(runs):
            start = len(out)
            bold = run.bold or style.bold
            for part in re.findall(r" +|[^ ]+", _INVISIBLE.sub("", run.text)):
                if part.startswith(" "):
                    kind = "space" if run.kind in ("text", "mention", "link") else run.kind
                    out.append(Piece(part, kind, bold, group))
                else:
                    out.extend(self._emoji_apart(part, run.kind, bold, group, style))
            if len(out) > start:
                out[start].first = True
                out[-1].last = True
        return out

    def _emoji_apart(
        self, word: str, kind: str, bold: bool, group: int, style: Style
    ) -> Iterator[Piece]:
        """The word in pieces: each emoji, or character its font lacks, on its own. In code
        spans a character the font has is always shown as it is (CloudTrail's text)."""
        face, size = self.face(kind, bold), self.size(kind, style)
        literal = kind in ("code", "pre")
        plain = ""
        for char in word:
            drawable = self.has_glyph(face, size, char)
            if drawable and (literal or (char not in EMOJI and char not in GLYPH_EMOJI)):
                plain += char
                continue
            if plain:
                yield Piece(plain, kind, bold, group)
                plain = ""
            if char in GLYPH_EMOJI:
                yield Piece(char, "glyph", bold, group)
            elif char in EMOJI or not self.has_glyph("sans", style.size, char):
                yield Piece(char, "emoji", bold, group)
            else:  # the monospace font lacks it, the sans one has it
                yield Piece(char, "text", bold, group)
        if plain:
            yield Piece(plain, kind, bold, group)

    # -- wrapping -----------------------------------------------------------------------------
    def wrap(self, runs: Sequence[Run], style: Style, width: float) -> list[Line]:
        """Lines of placed pieces: broken at spaces; a word longer than a line (an ARN) is
        broken where the line ends, as Slack's overflow-wrap does: never cut."""
        words: list[list[Piece]] = []
        for piece in self.pieces(runs, style):
            gap = piece.text.isspace()
            if gap or not words or words[-1][0].text.isspace():
                words.append([piece])
            else:
                words[-1].append(piece)
        lines: list[Line] = [[]]
        x = 0.0
        for word in words:
            if word[0].text.isspace():
                # Kept at the start of a code block's line (indentation), dropped where wrapped.
                if lines[-1] or (word[0].kind == "pre" and len(lines) == 1):
                    lines[-1].append((x, word[0]))
                    x += self.measure(word[0], style)
                continue
            if lines[-1] and x + sum(self.outer(p, style) for p in word) > width:
                lines.append([])
                x = 0.0
            for piece in word:
                x = self._place(lines, x, piece, style, width)
        return [_trim(line) for line in lines]

    def _place(
        self, lines: list[Line], x: float, piece: Piece, style: Style, width: float
    ) -> float:
        if piece.first or not lines[-1]:
            x += self.pad(piece)
        rest, first = piece.text, piece.first
        while rest:
            fits = self._fitting(rest, piece, style, width - x - self.pad(piece) * piece.last)
            if fits == 0 and not lines[-1]:
                fits = 1  # not even one character fits: it goes anyway
            if fits:
                part = Piece(rest[:fits], piece.kind, piece.bold, piece.group, first)
                lines[-1].append((x, part))
                x += self.measure(part, style)
                rest, first = rest[fits:], False
            if rest:
                lines.append([])
                x = self.pad(piece)
        if piece.last:
            x += self.pad(piece)
        return x

    def _fitting(self, text: str, piece: Piece, style: Style, room: float) -> int:
        """How many of the text's first characters fit in `room`."""

        def width(n: int) -> float:
            return self.measure(Piece(text[:n], piece.kind, piece.bold, 0), style)

        if width(len(text)) <= room:
            return len(text)
        count = 0
        while count < len(text) and width(count + 1) <= room:
            count += 1
        return count

    def natural_width(self, lines: Flow, style: Style) -> float:
        """The widest line's width, unwrapped."""
        return max(
            (sum(self.outer(p, style) for p in self.pieces(runs, style)) for runs in lines),
            default=0.0,
        )

    # -- painting -----------------------------------------------------------------------------
    def flow(self, x: float, y: float, width: float, lines: Flow, style: Style) -> float:
        """Draws the lines wrapped to `width` from (x, y) (image pixels); the y below them."""
        for runs in lines:
            for line in self.wrap(runs, style, width):
                self.paint_line(x, y, line, style)
                y += self.u(style.line)
        return y

    def paint_line(self, x0: float, top: float, line: Line, style: Style) -> None:
        height = self.u(style.line)
        ascent, descent = self.font("sans", style.size).getmetrics()
        baseline = top + (height - ascent - descent) / 2 + ascent
        # Boxes first: one round each code span's (or mention's) pieces on this line.
        spans: dict[int, Line] = {}
        for x, piece in line:
            if piece.kind in ("code", "mention"):
                spans.setdefault(piece.group, []).append((x, piece))
        for span in spans.values():
            (x_first, first), (x_last, last) = span[0], span[-1]
            left = x0 + x_first - self.pad(first)
            right = x0 + x_last + self.measure(last, style) + self.pad(last)
            if first.kind == "code":
                up, down = self.font("mono", self.size("code", style)).getmetrics()
                box = (left, baseline - up - self.u(1), right, baseline + down + self.u(1.5))
                self.draw.rounded_rectangle(
                    box, self.u(3), fill=CODE_BG, outline=CODE_EDGE, width=self.u(0.5)
                )
            else:
                box = (left, baseline - ascent, right, baseline + descent)
                self.draw.rounded_rectangle(box, self.u(3), fill=MENTION_BG)
        for x, piece in line:
            at = x0 + x
            if piece.kind == "space":
                continue
            if piece.kind == "emoji":
                side = self.emoji_side(style)
                EMOJI.get(piece.text, UNKNOWN_EMOJI)(self.draw, at, top + (height - side) / 2, side)
            elif piece.kind == "glyph":
                glyph, colour = GLYPH_EMOJI[piece.text]
                font = self.font("sans", style.size * 1.2)
                self.draw.text((at, baseline), glyph, font=font, fill=colour, anchor="ls")
            else:
                ink = {"code": CODE_INK, "mention": LINK, "link": LINK}.get(piece.kind, style.ink)
                font = self.font(self.face(piece.kind, piece.bold), self.size(piece.kind, style))
                self.draw.text((at, baseline), piece.text, font=font, fill=ink, anchor="ls")


def _trim(line: Line) -> Line:
    while line and line[-1][1].text.isspace():
        line = line[:-1]
    return line


# -- a message ------------------------------------------------------------------------------
@dataclass
class Message:
    """Lays out one message's blocks down the canvas, Slack's spacing in logical pixels."""

    canvas: Canvas
    names: Mapping[str, str]
    y: float = 0.0

    @property
    def left(self) -> float:
        return self.canvas.u(GUTTER)

    @property
    def width(self) -> float:
        return self.canvas.u(self.canvas.width - GUTTER - RIGHT)

    def gap(self, logical: float) -> None:
        self.y += self.canvas.u(logical)

    def header_line(self, name: str, ts: str | None) -> None:
        c = self.canvas
        self.avatar(c.u(20), self.y + c.u(3), c.u(36))
        x = self.left
        baseline = self.y + c.u(16)
        name_font = c.font("bold", 14.5)
        c.draw.text((x, baseline), name, font=name_font, fill=INK, anchor="ls")
        x += name_font.getlength(name) + c.u(5)
        badge_font = c.font("bold", 8.5)
        badge = (x, baseline - c.u(11), x + badge_font.getlength("APP") + c.u(7), baseline + c.u(2))
        c.draw.rounded_rectangle(badge, c.u(2), fill="#E8E8E8")
        c.draw.text(
            (x + c.u(3.5), baseline - c.u(1)), "APP", font=badge_font, fill=GREY, anchor="ls"
        )
        x = badge[2] + c.u(7)
        if ts:
            when = datetime.fromtimestamp(float(ts), UTC).strftime("%H:%M")
            c.draw.text((x, baseline), when, font=c.font("sans", 11.5), fill=GREY, anchor="ls")
        self.y += c.u(22)

    def avatar(self, x: float, y: float, side: float) -> None:
        """keyhunt's: a gold key on dark blue."""
        draw, s = self.canvas.draw, side
        draw.rounded_rectangle((x, y, x + s, y + s), s * 0.16, fill="#1B365D")
        gold, line = "#F2C14E", max(2, round(s / 11))
        draw.ellipse(
            (x + s * 0.17, y + s * 0.33, x + s * 0.47, y + s * 0.63), outline=gold, width=line
        )
        draw.line((x + s * 0.46, y + s * 0.48, x + s * 0.84, y + s * 0.48), fill=gold, width=line)
        for tooth in (0.68, 0.8):
            stub = (x + s * tooth, y + s * 0.48, x + s * tooth, y + s * 0.62)
            draw.line(stub, fill=gold, width=line)

    def blocks(self, blocks: Sequence[Mapping[str, Any]]) -> None:
        for index, block in enumerate(blocks):
            if index:
                self.gap(6)
            kind = block.get("type")
            if kind == "section":
                self.section(block)
            elif kind == "context":
                self.context(block.get("elements") or [])
            elif kind == "actions":
                self.gap(2)
                self.buttons(block.get("elements") or [])
            elif kind == "header":
                self.text(_text_of(block.get("text")), HEADER, plain=True)
            elif kind == "divider":
                c = self.canvas
                c.draw.line(
                    (self.left, self.y + c.u(4), self.left + self.width, self.y + c.u(4)),
                    fill=EDGE,
                    width=c.u(1),
                )
                self.gap(8)
            elif kind == "rich_text":
                self.text(_rich_text(block), BODY, plain=True)
            # Other blocks (images, inputs) are not in keyhunt's messages: left out.

    def text(
        self, text: str, style: Style, plain: bool = False, width: float | None = None
    ) -> None:
        width = self.width if width is None else width
        paragraphs: list[Paragraph] = (
            [plain_lines(text)] if plain else parse_mrkdwn(text, self.names)
        )
        for paragraph in paragraphs:
            if isinstance(paragraph, Pre):
                self.pre(paragraph, style, self.left, width)
            else:
                self.y = self.canvas.flow(self.left, self.y, width, paragraph, style)

    def pre(self, pre: Pre, style: Style, x: float, width: float) -> None:
        c = self.canvas
        inset = c.u(8)
        top = self.y + c.u(4)
        lines = [[Run(line, "pre")] if line else [] for line in pre.text.split("\n")]
        inner = Style(style.size, style.line - 3, INK)  # set tighter than prose, as Slack does
        # The box goes under the text, so the wrapped lines are counted before either is drawn.
        count = sum(len(c.wrap(runs, inner, width - 2 * inset)) for runs in lines)
        box = (x, top, x + width, top + count * c.u(inner.line) + 2 * inset)
        c.draw.rounded_rectangle(box, c.u(4), fill=CODE_BG, outline=CODE_EDGE, width=c.u(1))
        c.flow(x + inset, top + inset, width - 2 * inset, lines, inner)
        self.y = box[3] + c.u(4)

    def section(self, block: Mapping[str, Any]) -> None:
        c = self.canvas
        accessory = block.get("accessory") or {}
        width, top = self.width, self.y
        if accessory.get("type") == "button":
            right = self.left + self.width
            button_width = self.button(accessory, right, self.y, measure_only=True)
            self.button(accessory, right - button_width, self.y)
            width -= button_width + c.u(12)
        if "text" in block:
            self.text(
                _text_of(block["text"]),
                BODY,
                plain=block["text"].get("type") == "plain_text",
                width=width,
            )
        fields = block.get("fields") or []
        if fields and "text" in block:
            self.gap(6)
        column = (self.width - c.u(16)) / 2
        for row in range(0, len(fields), 2):
            if row:
                self.gap(4)
            top, bottom = self.y, self.y
            for i, item in enumerate(fields[row : row + 2]):
                self.y = top
                x = self.left + i * (column + c.u(16))
                plain = item.get("type") == "plain_text"
                paragraphs = (
                    [plain_lines(_text_of(item))]
                    if plain
                    else parse_mrkdwn(_text_of(item), self.names)
                )
                for paragraph in paragraphs:
                    if isinstance(paragraph, Pre):
                        self.pre(paragraph, BODY, x, column)
                    else:
                        self.y = c.flow(x, self.y, column, paragraph, BODY)
                bottom = max(bottom, self.y)
            self.y = bottom
        if accessory.get("type") == "button":
            self.y = max(self.y, top + c.u(BUTTON.line))

    def context(self, elements: Sequence[Mapping[str, Any]]) -> None:
        """Elements side by side while they fit, as Slack's flex row does; a long one wraps."""
        c = self.canvas
        gap = c.u(8)
        x, row_top, row_bottom = 0.0, self.y, self.y
        for element in elements:
            if element.get("type") == "image":
                side = c.u(16)
                if x and x + side > self.width:
                    x, row_top = 0.0, row_bottom
                top = row_top + (c.u(SMALL.line) - side) / 2
                c.draw.rounded_rectangle(
                    (self.left + x, top, self.left + x + side, top + side), c.u(3), fill="#E8E8E8"
                )
                x += side + gap
                row_bottom = max(row_bottom, row_top + c.u(SMALL.line))
                continue
            text = _text_of(element)
            flows = (
                [plain_lines(text)]
                if element.get("type") == "plain_text"
                else [p for p in parse_mrkdwn(text, self.names) if not isinstance(p, Pre)]
            )
            lines = [line for flow in flows for line in flow]
            natural = c.natural_width(lines, SMALL)
            if x and x + natural > self.width:
                x, row_top = 0.0, row_bottom
            if len(lines) == 1 and x + natural <= self.width:
                c.paint_line(self.left + x, row_top, c.wrap(lines[0], SMALL, natural + 1)[0], SMALL)
                x += natural + gap
                row_bottom = max(row_bottom, row_top + c.u(SMALL.line))
            else:
                row_bottom = c.flow(self.left, row_top, self.width, lines, SMALL)
                x, row_top = 0.0, row_bottom
        self.y = row_bottom

    def buttons(self, elements: Sequence[Mapping[str, Any]]) -> None:
        c = self.canvas
        x, top = self.left, self.y
        for element in elements:
            width = self.button(element, x, top, measure_only=True)
            if x > self.left and x + width > self.left + self.width:
                x, top = self.left, top + c.u(BUTTON.line + 8)
            self.button(element, x, top)
            x += width + c.u(8)
        self.y = top + c.u(BUTTON.line)

    def button(
        self, element: Mapping[str, Any], x: float, top: float, measure_only: bool = False
    ) -> float:
        """A button (a select is drawn as one with its placeholder and a ▾); its width."""
        c = self.canvas
        label = _text_of(element.get("text") or element.get("placeholder"))
        if element.get("type") == "overflow":
            label = "⋯"  # an overflow menu is a small button of three dots
        elif element.get("type") != "button":
            label += "  ▾"
        lines = plain_lines(label)[:1]
        width = c.natural_width(lines, BUTTON) + c.u(24)
        if measure_only:
            return width
        fill = BUTTON_FILL.get(str(element.get("style")))
        box = (x, top, x + width, top + c.u(BUTTON.line))
        if fill:
            c.draw.rounded_rectangle(box, c.u(4), fill=fill)
        else:
            c.draw.rounded_rectangle(box, c.u(4), fill="white", outline=BUTTON_EDGE, width=c.u(1))
        style = Style(BUTTON.size, BUTTON.line, "white" if fill else INK, bold=True)
        c.paint_line(x + c.u(12), top, c.wrap(lines[0], style, width)[0], style)
        return width

    def replies(self, count: int, last_ts: str | None) -> None:
        """The thread's summary under the message: "2 replies  Last reply at 14:04"."""
        c = self.canvas
        self.gap(6)
        self.avatar(self.left, self.y + c.u(2), c.u(20))
        baseline = self.y + c.u(16)
        x = self.left + c.u(28)
        said = f"{count} repl{'y' if count == 1 else 'ies'}"
        bold = c.font("bold", 12)
        c.draw.text((x, baseline), said, font=bold, fill=LINK, anchor="ls")
        if last_ts:
            when = datetime.fromtimestamp(float(last_ts), UTC).strftime("%H:%M")
            x += bold.getlength(said) + c.u(8)
            c.draw.text(
                (x, baseline),
                f"Last reply at {when}",
                font=c.font("sans", 11.5),
                fill=GREY,
                anchor="ls",
            )
        self.y += c.u(24)


def _text_of(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return str(obj.get("text") or obj.get("alt_text") or "")
    return "" if obj is None else str(obj)


def _rich_text(block: Mapping[str, Any]) -> str:
    """A rich_text block's words, without their styling (keyhunt posts none)."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, Mapping):
            if isinstance(node.get("text"), str):
                yield node["text"]
            for child in node.get("elements") or []:
                yield from walk(child)

    return "".join(walk(block))


def draw_message(
    message: Mapping[str, Any],
    fonts: Fonts,
    names: Mapping[str, str] | None = None,
    replies: Sequence[Mapping[str, Any]] = (),
    scale: float = 2.0,
    width: int = WIDTH,
    bot_name: str = "keyhunt",
) -> Image.Image:
    """The message as Slack shows it in a channel: the bot's name line, its blocks (its text
    only when it has none: the text is the notification's), and its thread's replies counted."""
    tall = 1200
    while True:
        canvas = Canvas(fonts, scale, width, tall)
        layout = Message(canvas, names or {}, y=canvas.u(14))
        layout.header_line(str(message.get("username") or bot_name), message.get("ts"))
        blocks = message.get("blocks") or []
        if blocks:
            layout.blocks(blocks)
        else:
            layout.text(str(message.get("text") or ""), BODY)
        if replies:
            layout.replies(len(replies), replies[-1].get("ts"))
        height = round(layout.y + canvas.u(14))
        if height <= canvas.image.height:
            break
        tall = round(height / scale) + 1  # it ran off the canvas: again, on one long enough
    image = canvas.image.crop((0, 0, canvas.image.width, height))
    # A card with rounded corners: what is outside them is transparent (dark themes).
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (0, 0, image.width - 1, image.height - 1), canvas.u(8), fill=255
    )
    ImageDraw.Draw(image).rounded_rectangle(
        (0, 0, image.width - 1, image.height - 1), canvas.u(8), outline=EDGE, width=canvas.u(1)
    )
    image.putalpha(mask)
    return image


def save(image: Image.Image, path: Path) -> None:
    """As a palette PNG, a third of the size: antialiased text needs far fewer than 256 colours.
    Median cut keeps the background pure white (an octree's averaging greys it); the corners
    outside the card get a transparent entry of their own."""
    paletted = image.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    palette = (paletted.getpalette() or [])[: 255 * 3]
    paletted.putpalette(palette + [0] * (255 * 3 - len(palette)) + [255, 255, 255])
    outside = image.getchannel("A").point(lambda a: 255 if a < 128 else 0)
    paletted.paste(255, mask=outside)
    paletted.save(path, optimize=True, transparency=255)


# -- the command ----------------------------------------------------------------------------
def pick(
    posted: Any, index: int | None, finding: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The message asked for, from the demo's JSON (or one message's), and its replies."""
    if isinstance(posted, dict) and isinstance(posted.get("messages"), list):
        messages = [m for m in posted["messages"] if isinstance(m, dict)]
    elif isinstance(posted, dict) and ("blocks" in posted or "text" in posted):
        messages = [posted]
    else:
        raise ValueError("expected `keyhunt demo --json` output or one Slack message")
    if finding is not None:
        chosen = [
            m
            for m in messages
            if (m.get("metadata") or {}).get("event_payload", {}).get("finding") == finding
        ]
        if not chosen:
            raise ValueError(f"no message is the alert for {finding}")
        message = chosen[0]
    else:
        position = index or 0
        if not -len(messages) <= position < len(messages):
            raise ValueError(f"--message {position}: there are {len(messages)} messages")
        message = messages[position]
    ts = message.get("ts")
    replies = [m for m in messages if ts and m.get("thread_ts") == ts and m.get("ts") != ts]
    return message, replies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keyhunt_dev.draw",
        description="Draw one Slack message from `keyhunt demo --json` (on stdin) as a PNG.",
    )
    parser.add_argument("out", type=Path, help="the PNG to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--message", type=int, help="the Nth message of the JSON (from 0)")
    which.add_argument("--finding", metavar="EVENT_ID", help="the alert for this CloudTrail event")
    parser.add_argument("--scale", type=float, default=2.0, help="image pixels per CSS pixel")
    args = parser.parse_args(argv)
    if sys.stdin.isatty():
        parser.error("pipe the messages in: keyhunt demo --json | python -m keyhunt_dev.draw OUT")
    text = sys.stdin.read()
    if not text.strip():
        print(
            "keyhunt_dev.draw: nothing on stdin (did `keyhunt demo --json` fail?)", file=sys.stderr
        )
        return 2
    try:
        message, replies = pick(json.loads(text), args.message, args.finding)
        fonts = Fonts.find()
    except (ValueError, FontsNotFound) as exc:
        print(f"keyhunt_dev.draw: {exc}", file=sys.stderr)
        return 2
    from keyhunt_dev.demo import NAMES  # the demo workspace's users and channels

    image = draw_message(message, fonts, NAMES, replies, scale=args.scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save(image, args.out)
    kib = args.out.stat().st_size / 1024
    print(f"{args.out}: {image.width}×{image.height}, {kib:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
