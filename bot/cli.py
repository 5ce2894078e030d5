"""`keyhunt`: the command line. Each command takes its parts from `bot.compose.Components`.

Exit codes (CONTRACT section 1): 0 success, 1 partial result (some target unread; what was
found elsewhere is still printed and each failure is named on stderr), 2 usage or config error.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.exits import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, say_if_nothing_was_read
from bot.settings import ConfigError, load_settings
from checks.model import Severity, is_account_id
from checks.timeutil import MAX_LOOKBACK, parse_duration, parse_instant

if TYPE_CHECKING:  # the parts are imported when a command runs, not for --help
    from bot.compose import Components

log = logging.getLogger("keyhunt")


def _arg(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Wrap a parser so argparse reports its ValueError text (exit 2, option named)."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


EPILOG = """\
examples:
  keyhunt hunt --last 24h                       new keys in the last day, every account
  keyhunt hunt --last 7d --min-severity high --format csv > keys.csv
  keyhunt hunt --since 2026-12-01T00:00Z --user deploy-bot
  keyhunt key AKIAIOSFODNN7EXAMPLE              who made one key, what it did since
  keyhunt check                                 is everything reachable? (changes nothing)
  keyhunt demo                                  the whole product locally, no AWS, no Slack
  keyhunt demo --keep                           ...and stay up: `. .keyhunt-demo/env` elsewhere

severities, worst first: critical, high, medium, low, info (the lowest; no rule sets it today).

exit codes:
  0  everything asked for was read
  1  some account or region could not be read (each named on stderr; what was
     read is still printed); a last line says why when nothing could be read
  2  usage or configuration error (the option or key is named)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyhunt",
        description="Hunt new long-term IAM access keys in CloudTrail; alert and triage in Slack.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config (default: $KEYHUNT_CONFIG, else config/keyhunt.yaml when it exists)",
    )
    parser.add_argument("--version", action="version", version=f"keyhunt {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    hunt = commands.add_parser("hunt", help="hunt CreateAccessKey across accounts and regions")
    when = hunt.add_mutually_exclusive_group()
    when.add_argument(
        "--last",
        type=_arg(parse_duration),
        metavar="DUR",
        help="how far back: 90m, 24h, 7d, 2w (max 90d; default 24h)",
    )
    when.add_argument(
        "--since",
        type=_arg(parse_instant),
        metavar="T",
        help="ISO 8601 start, UTC unless it has an offset",
    )
    hunt.add_argument("--until", type=_arg(parse_instant), metavar="T", help="end (with --since)")
    hunt.add_argument("--user", metavar="NAME", help="only keys for this IAM user (exact)")
    hunt.add_argument("--actor", metavar="NAME", help="only keys made by this caller (name/ARN)")
    hunt.add_argument("--account", type=_arg(_account_id), metavar="ID", help="one account only")
    hunt.add_argument(
        "--min-severity",
        type=_arg(Severity.parse),
        metavar="LEVEL",
        help="critical, high, medium, low or info",
    )
    hunt.add_argument(
        "--format",
        choices=("table", "jsonl", "csv"),
        help="default: table on a terminal, jsonl otherwise",
    )

    key = commands.add_parser("key", help="investigate one access key")
    key.add_argument("access_key_id", type=_arg(_key_id), metavar="ACCESS_KEY_ID")
    key.add_argument(
        "--last",
        type=_arg(parse_duration),
        metavar="DUR",
        default=None,
        help="how far back to look (default 90d)",
    )
    key.add_argument("--format", choices=("table", "json"), default="table")

    poll = commands.add_parser("poll", help="run one scheduled poll cycle and exit")
    poll.add_argument("--once", action="store_true", required=True)

    serve = commands.add_parser("serve", help="run the Slack bot")
    serve.add_argument("--socket-mode", action="store_true", help="use Socket Mode, not HTTP")
    serve.add_argument("--port", type=int, help="HTTP port (default $PORT, else 3000)")

    commands.add_parser("check", help="validate config, AWS access and Slack auth")
    audit = commands.add_parser(
        "audit",
        help="who decided what, when: triage, answers, escalations, key actions, snoozes",
    )
    audit.add_argument(
        "--last", type=_arg(parse_duration), metavar="DUR", required=True, help="e.g. 7d"
    )
    audit.add_argument("--format", choices=("table", "jsonl"), default="table")
    demo = commands.add_parser(
        "demo",
        help="run the whole product locally with fakes",
        description="Replays a day in two fake accounts through the real bot. With --keep the "
        "fake AWS, fake Slack and the bot stay up until Ctrl-C, and an env file lets another "
        "shell run keyhunt hunt, key, poll --once and `keyhunt demo slash TEXT` against them.",
    )
    demo.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    demo.add_argument(
        "--keep", action="store_true", help="stay up for exploring; keep the database"
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --keep: where the database and env file stay (default ./.keyhunt-demo)",
    )
    demo.add_argument(
        "--json", action="store_true", help="print every message posted as Block Kit JSON"
    )
    demo_commands = demo.add_subparsers(dest="demo_command", metavar="slash TEXT")
    slash = demo_commands.add_parser(
        "slash", help="send a signed /keyhunt to a kept demo (after sourcing its env file)"
    )
    slash.add_argument("text", help='what follows /keyhunt, e.g. "last 24h"')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        try:
            from keyhunt_dev.demo import run_demo, run_slash  # noqa: TID251 - lazy, the one way in
        except ImportError:
            return _usage("the demo needs the development package: pip install -e ./dev")
        if args.demo_command == "slash":
            return run_slash(args.text)
        if args.dir is not None and not args.keep:
            return _usage("demo: --dir only goes with --keep")
        return run_demo(quiet=args.quiet, keep=args.keep, as_json=args.json, directory=args.dir)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"keyhunt: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from bot.logs import configure_logging

    configure_logging(settings, args.verbose)
    from bot.compose import Components

    parts = Components(settings)
    try:
        return COMMANDS[args.command](args, parts)
    finally:
        parts.close()


def cmd_hunt(args: argparse.Namespace, parts: Components) -> int:
    from bot.hunting import HuntRequest, make_window
    from bot.terminal import Progress, describe_errors, format_csv, format_jsonl, format_table

    if args.until is not None and args.since is None:
        return _usage("argument --until: needs --since")
    try:
        window = make_window(args.last, args.since, args.until)
    except ValueError as exc:
        return _usage(str(exc))
    request = HuntRequest(window, args.user, args.actor, args.account, args.min_severity)
    # A progress line only where a person watches: stderr a terminal (never when piped).
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = parts.hunter.hunt(
            request, on_target_done=progress.target_done if progress else None
        )
    finally:
        if progress is not None:
            progress.close()
    out: TextIO = sys.stdout
    fmt = args.format or ("table" if out.isatty() else "jsonl")
    if fmt == "table":
        terminal = out.isatty()
        width = shutil.get_terminal_size().columns if terminal else None
        out.write(format_table(result, colour=terminal and wants_colour(os.environ), width=width))
    elif fmt == "jsonl":
        out.write(format_jsonl(result.findings))
    else:
        out.write(format_csv(result.findings))
    out.flush()
    for line in describe_errors(result.errors):
        print(f"keyhunt: {line}", file=sys.stderr)
    say_if_nothing_was_read(len(result.targets), result.errors, parts.settings.role_name)
    if result.stats.malformed:
        print(
            f"keyhunt: {result.stats.malformed} CloudTrail record(s) could be read only in part "
            "(CreateAccessKey ones are findings with reason malformed, see malformed_fields)",
            file=sys.stderr,
        )
    if result.stats.unreadable:
        # Fail closed: a record we could not read may be a key we cannot show in full.
        print(
            f"keyhunt: {result.stats.unreadable} CloudTrail record(s) could not be read (not "
            "JSON, or no record text); CreateAccessKey ones are listed as malformed findings",
            file=sys.stderr,
        )
    return EXIT_OK if result.complete and not result.stats.unreadable else EXIT_PARTIAL


def cmd_key(args: argparse.Namespace, parts: Components) -> int:
    from bot.hunting import make_window, planning_errors
    from bot.terminal import describe_errors, format_key_report, key_report_json

    window = make_window(args.last or MAX_LOOKBACK, None, None)
    try:
        report = parts.hunter.investigate(args.access_key_id, window)
    except Exception as exc:  # noqa: BLE001 - the search could not even be planned
        errors = planning_errors(None, exc)
        for line in describe_errors(errors):
            print(f"keyhunt: {line}", file=sys.stderr)
        say_if_nothing_was_read(len(errors), errors, parts.settings.role_name)
        return EXIT_PARTIAL
    sys.stdout.write(
        key_report_json(report) if args.format == "json" else format_key_report(report)
    )
    for line in describe_errors(report.errors):
        print(f"keyhunt: {line}", file=sys.stderr)
    say_if_nothing_was_read(len(report.targets), report.errors, parts.settings.role_name)
    return EXIT_OK if report.complete else EXIT_PARTIAL


def cmd_poll(args: argparse.Namespace, parts: Components) -> int:
    from bot.service import poll_once

    return poll_once(parts)


def cmd_serve(args: argparse.Namespace, parts: Components) -> int:
    from bot.service import serve

    return serve(parts, socket_mode=args.socket_mode, port=args.port)


def cmd_check(args: argparse.Namespace, parts: Components) -> int:
    from bot.preflight import run_checks

    return run_checks(parts)


def cmd_audit(args: argparse.Namespace, parts: Components) -> int:
    from datetime import UTC, datetime

    from bot.terminal import audit_jsonl, format_audit

    store = parts.existing_store()
    entries = store.audit_since(datetime.now(UTC) - args.last) if store is not None else []
    sys.stdout.write(audit_jsonl(entries) if args.format == "jsonl" else format_audit(entries))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Components], int]] = {
    "hunt": cmd_hunt,
    "key": cmd_key,
    "poll": cmd_poll,
    "serve": cmd_serve,
    "check": cmd_check,
    "audit": cmd_audit,
}


def wants_colour(env: Mapping[str, str]) -> bool:
    """Colour unless NO_COLOR is set to anything (no-color.org) or the terminal is dumb."""
    return not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def _usage(message: str) -> int:
    print(f"keyhunt: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _account_id(text: str) -> str:
    if not is_account_id(text):
        raise ValueError(f"bad account ID {text!r}: expected 12 digits")
    return text


def _key_id(text: str) -> str:
    from checks.investigate import validate_key_id

    return validate_key_id(text)


def _version() -> str:
    try:
        return version("keyhunt")
    except PackageNotFoundError:
        return "unknown"
