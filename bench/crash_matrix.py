"""Kill the poller at every step of a burst and count what was lost or repeated.

    python -m bench.crash_matrix [--alerts 12] [--runs 1] [--steps before_post,after_accept,...]

A burst of `--alerts` new findings (above the threshold of 10: one summary, the alerts in its
thread) is delivered by the real `keyhunt poll --once` in its own process, which
tests/crashpoint.py SIGKILLs at a step of its Nth chat.postMessage (N = 1 is the summary,
2 … alerts+1 the alerts):

- `before_post`   claimed and marked as attempted, never sent;
- `after_accept`  Slack accepted it; the process dies before recording it;
- `after_mark`    the store recorded it; the process dies before the next one;
- `dropped`       no kill: Slack accepts the Nth post and the connection drops before the
                  answer (FakeSlack.drop_next), so the poster cannot know whether it landed.

Then the dead poller's lease and claims are expired (what production waits a minute or two
for) and a second `keyhunt poll --once` runs. For every N and step the channel is read:
`lost` counts alerts missing, `repeated` the extra copies of alerts and summaries. The Slack
calls the second look costs (conversations.history/replies, auth.test) are counted too, and
`off-thread` counts alerts that ended up in the channel outside the burst's thread.
Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack
from tests.crashpoint import STEPS, alerts_in_channel, expire_dead_poller, poll_env, run_poll
from tests.slackbot import (
    BOT_TOKEN,
    CALLER,
    CHANNEL,
    REGION,
    event_id_of,
    events_in,
    key_for_other,
    now_utc,
    self_key,
)

SEARCH_METHODS = ("conversations.history", "conversations.replies", "auth.test")


def burst(count: int) -> list[dict[str, object]]:
    now = now_utc()
    return [
        (self_key if i % 2 else key_for_other)(now - timedelta(minutes=30, seconds=-10 * i))
        for i in range(count)
    ]


def one_run(
    aws: FakeAWS, slack: FakeSlack, events: list[str], tmp: Path, step: str, n: int
) -> tuple[int, int, int, int, bool]:
    """(lost, repeated, alerts outside the thread, extra Slack calls, killed as asked) for
    one crash and its recovery."""
    slack.reset()
    db = tmp / f"crash-{step}-{n}-{time.monotonic_ns()}.db"
    env = poll_env(aws, slack.api_url, f"sqlite:///{db}", tmp)
    if step == "dropped":
        slack.drop_next("chat.postMessage", skip=n - 1)
        first = run_poll(env, tmp)
        killed = first.returncode == 0
    else:
        first = run_poll(env, tmp, crash_at=f"{step}:{n}")
        killed = first.returncode == -9
    expire_dead_poller(env["KEYHUNT_DATABASE_URL"])
    run_poll(env, tmp)
    extra = sum(len(slack.calls_to(m)) for m in SEARCH_METHODS)  # over both runs
    seen = alerts_in_channel(slack, CHANNEL)
    lost = sum(1 for e in events if seen.get(e, 0) == 0)
    top = slack.channel_messages(CHANNEL, top_level_only=True)
    summaries = [m for m in top if not events_in(m.blocks)]
    repeated = sum(c - 1 for c in seen.values() if c > 1) + max(len(summaries) - 1, 0)
    outside = sum(1 for m in top if events_in(m.blocks))  # alerts not in the burst's thread
    return lost, repeated, outside, extra, killed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crash_matrix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--alerts", type=int, default=12)
    parser.add_argument("--runs", type=int, default=1, help="repetitions of the whole matrix")
    parser.add_argument("--steps", default=",".join((*STEPS, "dropped")))
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    posts = args.alerts + 1
    print(
        f"keyhunt crash matrix — Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s); "
        f"{args.alerts} alerts + 1 summary, every post N = 1..{posts}, {args.runs} run(s)"
    )
    print(
        f"  {'step':<13} {'runs':>5} {'lost':>5} {'repeated':>9} {'off-thread':>11} "
        f"{'extra calls/run':>16}"
    )
    totals = [0, 0]
    with tempfile.TemporaryDirectory(prefix="keyhunt-bench-crash-") as name:
        tmp = Path(name)
        with FakeAWS() as aws, FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as slack:
            records = burst(args.alerts)
            aws.add_events(CALLER, REGION, records)
            events = [event_id_of(r) for r in records]
            for step in steps:
                started = time.monotonic()
                lost = repeated = outside = runs = not_killed = 0
                extras: list[int] = []
                for _ in range(args.runs):
                    for n in range(1, posts + 1):
                        one_lost, one_repeated, one_outside, extra, killed = one_run(
                            aws, slack, events, tmp, step, n
                        )
                        lost += one_lost
                        repeated += one_repeated
                        outside += one_outside
                        extras.append(extra)
                        runs += 1
                        not_killed += not killed
                mean = sum(extras) / len(extras)
                note = f"  ({not_killed} run(s) did not crash as asked)" if not_killed else ""
                print(
                    f"  {step:<13} {runs:>5} {lost:>5} {repeated:>9} {outside:>11} "
                    f"{mean:>9.1f} (max {max(extras)})   {time.monotonic() - started:.0f} s{note}",
                    flush=True,
                )
                totals[0] += lost
                totals[1] += repeated
    print(f"  total: lost {totals[0]}, repeated {totals[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
