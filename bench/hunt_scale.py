"""How the hunt scales: LookupEvents calls per target, accounts in parallel, memory.

    python -m bench.hunt_scale [--accounts 20] [--events 120] [--latency 0.2]
                               [--memory-events 100000] [--traced-events 10000]
                               [--skip a,b,c,d]
    python -m bench hunt_scale --accounts 1000          # (d): an Organization, 10 events each

(a) and (b) run `checks.hunt.run_hunt` with the product's default options (bot.aws
hunt_options over default Settings: 2 LookupEvents/s per target spaced with the limiter's
margin, 32 workers, IAM enrichment on) against FakeAWS, a real HTTP server on loopback, with
the caller's account read directly and every other one through sts:AssumeRole, exactly as
`keyhunt hunt` does. (a) counts calls with enrichment off; (b) times one account and all of
them in a spawned child process (the fake stays in this one), enrichment on and then off,
and prints the most calls one account received in any second, as the fake saw them arrive.

(c) measures memory over a 100,000-event window. Through the fake at the CloudTrail rate that
is 2,000 pages at 2/s, about 17 minutes, and the fake's own store would sit in the measured
process. So the pages are served instead from a botocore `before-call` hook inside a spawned
child process: keyhunt's real client, parsing, classification and collection run; HTTP and
the rate limiter's waits do not. Peak RSS is taken over the full window; tracemalloc, which
slows the hunt several-fold, over a smaller one.

(d), instead of (b) when --accounts is over 50: `keyhunt hunt` itself as a child process with
KEYHUNT_ACCOUNTS=organization over moto's Organization of that many active accounts: wall
time against the floor (the busiest account's own calls at 2/s), the most calls one account
saw in a second, AssumeRole calls counted at the fake, the child's peak RSS and CPU.
Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from multiprocessing import get_context
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from bot.aws import hunt_options
from bot.settings import Settings
from checks.hunt import HuntOptions, run_hunt
from checks.model import HuntResult, Target, Window
from checks.sessions import AwsSessions
from keyhunt_dev.aws import FakeAWS, LookupCall
from tests.scenario import (
    CALLER,
    assumed_role,
    bulk_creations,
    create_access_key,
    iam_user,
    root,
)

REGION = "us-east-1"
PAGE = 50
DUMMY_KEY, DUMMY_SECRET = "AKIAIOSFODNN7EXAMPLE", "dummy"
CALL_SIZES = (0, 1, 50, 51, 120, 260)
SERVICE_USERS = tuple(f"svc-{i:03d}" for i in range(4))
CPU_FIELDS = ("ru_utime", "ru_stime")
ORGANIZATION_FROM = 50  # more accounts than this: (d), the Organization through the CLI


# --------------------------------------------------------------------------- plumbing


def isolate_from_real_aws(endpoint_url: str) -> None:
    """This process talks to the fake only: no profile, no config file, no instance metadata."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )


def new_sessions() -> AwsSessions:
    base = boto3.Session(
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET, region_name=REGION
    )
    return AwsSessions(base)


def account(index: int, series: int) -> str:
    return CALLER if index == 0 else f"{series}{index:011d}"


def window_until(now: datetime) -> Window:
    return Window(now - timedelta(hours=24), now)


def max_in_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most calls in any half-open interval (t - width, t]."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - width:
            first += 1
        best = max(best, last - first + 1)
    return best


def calls_by_target(calls: Sequence[LookupCall]) -> dict[tuple[str, str], list[LookupCall]]:
    grouped: dict[tuple[str, str], list[LookupCall]] = defaultdict(list)
    for call in calls:
        grouped[(call.account_id, call.region)].append(call)
    return grouped


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    elapsed: list[float] = []
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.append(time.perf_counter() - started)


def timed_hunt(targets: Sequence[Target], sessions: AwsSessions, opts: HuntOptions) -> float:
    now = datetime.now(UTC)
    with stopwatch() as took:
        result = run_hunt(targets, window_until(now), sessions, replace(opts, now=lambda: now))
    check_complete(result)
    return took[0]


def hunt_in_child(accounts: list[str], enrich: bool, each: bool) -> float:
    """Seconds for one hunt over `accounts` (or a loop of one hunt per account), run with
    the product's defaults in this (child) process."""
    opts = replace(hunt_options(Settings()), enrich=enrich)
    targets = [Target(a, REGION) for a in accounts]
    if not each:
        return timed_hunt(targets, new_sessions(), opts)
    sessions = new_sessions()
    with stopwatch() as took:
        for target in targets:
            timed_hunt([target], sessions, opts)
    return took[0]


def check_complete(result: HuntResult) -> None:
    if not result.complete:
        raise RuntimeError(f"hunt was partial: {[str(e) for e in result.errors]}")


def account_records(account_id: str, events: int, now: datetime) -> list[dict[str, Any]]:
    """`events` CreateAccessKey records: a Terraform role provisioning service users."""
    terraform = assumed_role(account_id, "TerraformProvisioner", "tf-apply")
    return bulk_creations(terraform, events, now - timedelta(minutes=1), users=SERVICE_USERS)


# --------------------------------------------------------------------------- (a) call counts


def bench_call_counts(fake: FakeAWS, opts: HuntOptions) -> None:
    print("(a) LookupEvents calls per target vs the minimum, ceil(events / 50) or 1 when empty")
    now = datetime.now(UTC)
    targets = [Target(account(i, 3), REGION) for i in range(len(CALL_SIZES))]
    for target, size in zip(targets, CALL_SIZES, strict=True):
        fake.add_events(target.account_id, REGION, account_records(target.account_id, size, now))
    fake.clear_calls()
    result = run_hunt(targets, window_until(now), new_sessions(), replace(opts, enrich=False))
    check_complete(result)
    print("    events   CreateAccessKey calls   minimum   ratio   rotation-context calls")
    total_calls = total_minimum = 0
    for target, size in zip(targets, CALL_SIZES, strict=True):
        creates = len(fake.lookup_calls(target.account_id, REGION, "CreateAccessKey"))
        minimum = max(1, math.ceil(size / PAGE))
        context = len(fake.lookup_calls(target.account_id, REGION)) - creates
        total_calls, total_minimum = total_calls + creates, total_minimum + minimum
        ratio = creates / minimum
        print(f"    {size:6d}   {creates:21d}   {minimum:7d}   {ratio:5.2f}   {context:22d}")
    print(
        f"    all {len(targets)} targets: {total_calls} CreateAccessKey calls for a minimum of "
        f"{total_minimum} (ratio {total_calls / total_minimum:.2f}); {len(result.findings)} "
        f"findings of {sum(CALL_SIZES)} events"
    )


# --------------------------------------------------------------------------- (b) parallelism


def peak_per_target(calls: Sequence[LookupCall]) -> int:
    """The most LookupEvents calls any one account+region received in a 1 s window."""
    return max(
        (max_in_window([c.at for c in cs]) for cs in calls_by_target(calls).values()), default=0
    )


def bench_parallel(
    fake: FakeAWS, defaults: HuntOptions, accounts: int, events: int, latency: float
) -> None:
    opts = defaults
    print(
        f"\n(b) {accounts} accounts × 1 region, {events} events each, {latency * 1000:.0f} ms "
        f"latency on every LookupEvents call; product defaults ({opts.rate_per_target:g} "
        f"calls/s per target, none sooner than 1 s after the answer 2 calls back, "
        f"{opts.max_workers} workers, IAM enrichment on: {len(SERVICE_USERS)} users per "
        "account), then the same with enrichment off. The hunts run in a child process, as "
        "`keyhunt hunt` would, and the fake stays in this one"
    )
    now = datetime.now(UTC)
    targets = [Target(account(i, 2), REGION) for i in range(accounts)]
    for target in targets:
        fake.add_events(target.account_id, REGION, account_records(target.account_id, events, now))
    pages = max(1, math.ceil(events / PAGE))
    print(
        f"    per account: {pages} CreateAccessKey pages + 2 rotation-context calls; the "
        f"caller's account read directly, {accounts - 1} through AssumeRole"
    )

    # The hunt runs in a child process, as `keyhunt hunt` would: the fake stays here, so the
    # two do not share one interpreter lock.
    ids = [t.account_id for t in targets]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:

        def run(
            accounts: Sequence[str], enrich: bool = True, each: bool = False
        ) -> tuple[float, list[LookupCall]]:
            fake.clear_calls()
            took = pool.submit(hunt_in_child, list(accounts), enrich, each).result()
            return took, list(fake.calls)

        run(ids[1:2])  # warm-up: imports, first models
        fake.set_latency(latency)
        rows = {enrich: (run(ids[1:2], enrich), run(ids, enrich)) for enrich in (True, False)}
        sequential, _ = run(ids, each=True)
        fake.set_latency(0.0)

    print("    enrichment   one account   all in parallel   ratio   peak calls/s per account")
    for enrich, ((one, _), (parallel, calls)) in rows.items():
        print(
            f"    {'on ' if enrich else 'off'}          {one:8.2f} s   {parallel:12.2f} s   "
            f"{parallel / one:4.2f}×   {peak_per_target(calls)}"
        )
    (_, (parallel, parallel_calls)) = rows[True]
    closest = min(
        later - earlier
        for calls in calls_by_target(parallel_calls).values()
        for earlier, later in pairwise(sorted(c.at for c in calls))
    )
    print(
        f"    sequential loop, one hunt each (enrichment on): {sequential:.2f} s "
        f"({sequential / parallel:.1f}× the parallel hunt); closest two calls of one target "
        f"{closest * 1000:.0f} ms apart (arrivals at the fake); all targets together peaked "
        f"at {max_in_window([c.at for c in parallel_calls])} calls/s"
    )


# --------------------------------------------------------------------------- (d) organization


def seed_organization(fake: FakeAWS, accounts: int, events: int, now: datetime) -> list[str]:
    """An Organization of `accounts` active accounts in moto (the caller's is the management
    account), each with `events` CreateAccessKey records in us-east-1."""
    org = boto3.client(
        "organizations",
        region_name=REGION,
        endpoint_url=fake.endpoint_url,
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_SECRET,
    )
    org.create_organization(FeatureSet="ALL")
    for index in range(1, accounts):
        org.create_account(Email=f"member-{index}@example.com", AccountName=f"member-{index}")
    ids = [
        str(a["Id"])
        for page in org.get_paginator("list_accounts").paginate()
        for a in page["Accounts"]
    ]
    for account_id in ids:
        fake.add_events(account_id, REGION, account_records(account_id, events, now))
    return ids


def bench_organization(fake: FakeAWS, accounts: int, events: int, latency: float) -> None:
    """`keyhunt hunt` itself, as a child process, with KEYHUNT_ACCOUNTS=organization."""
    now = datetime.now(UTC)
    ids = seed_organization(fake, accounts, events, now)
    settings = Settings()
    print(
        f"\n(d) `keyhunt hunt --last 24h --format jsonl` in a child process, "
        f"KEYHUNT_ACCOUNTS=organization: {len(ids)} active accounts, {events} events each, "
        f"{latency * 1000:.0f} ms latency per LookupEvents call, product defaults "
        f"({settings.max_workers} workers, enrichment on) unless KEYHUNT_* says otherwise"
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "KEYHUNT_ACCOUNTS": "organization",
        # no store: a hunt shows stored triage only when the database exists
        "KEYHUNT_DATABASE_URL": f"sqlite:///{tempfile.gettempdir()}/absent-{os.getpid()}.db",
    }
    fake.set_latency(latency)
    fake.clear_calls()
    fake_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "hunt", "--last", "24h", "--format", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = child.communicate()
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    fake_after = resource.getrusage(resource.RUSAGE_SELF)
    fake_cpu = sum(getattr(fake_after, f) - getattr(fake_before, f) for f in CPU_FIELDS)
    fake.set_latency(0.0)
    if child.returncode != 0:
        print(f"    keyhunt hunt exited {child.returncode}: {err.decode()[-2000:]}")
    findings = out.count(b"\n")
    calls = list(fake.calls)
    per_target = calls_by_target(calls)
    most = max(len(cs) for cs in per_target.values())
    # The floor: the busiest account's calls one after the other at CloudTrail's own 2/s,
    # the last one's answer included (keyhunt's spacing margin makes its own pace slower).
    floor = (most - 1) / settings.rate_per_target + latency
    print(
        f"    {findings:,} findings; {len(calls):,} LookupEvents calls over "
        f"{len(per_target):,} targets (at most {most} for one account); "
        f"{len(fake.assumed_roles):,} AssumeRole calls for {len(ids) - 1:,} member accounts"
    )
    print(
        f"    wall time {wall:.2f} s (process start and imports included); floor {floor:.2f} s "
        f"(the busiest account's {most} calls at 2/s), {wall / floor:.1f}× the floor"
    )
    print(
        f"    peak calls/s per account: {peak_per_target(calls)}; peak RSS of the hunt "
        f"process {usage.ru_maxrss / 1024:.0f} MiB; its CPU {usage.ru_utime + usage.ru_stime:.1f} s"
    )
    # The fakes (LookupEvents emulator, moto's STS, IAM and Organizations) answer from this
    # process, on the machine's other core: their CPU is time a real AWS would not cost.
    print(f"    CPU of the fakes answering it, in this process: {fake_cpu:.1f} s")


# --------------------------------------------------------------------------- (c) memory


@dataclass(frozen=True)
class MemoryFigures:
    events: int
    findings: int
    pages: int
    seconds: float
    maxrss_before_kb: int
    maxrss_after_kb: int
    traced_peak: int | None = None  # bytes, when tracemalloc was on
    traced_retained: int | None = None  # bytes still held after the hunt (the HuntResult)


class SyntheticTrail:
    """A ClientSource whose CloudTrail client is real botocore, but whose LookupEvents pages
    are generated on demand by a `before-call` hook instead of being fetched over HTTP.

    Records come from tests/scenario.py builders (a Terraform role, an IAM user, the root
    user), turned into templates once; each event then differs in ID, time, key and user."""

    def __init__(self, events: int, newest: datetime) -> None:
        self.events = events
        self.newest = newest
        self.pages = 0
        # One session, so service models load once (see `warm_up`), outside the measurement.
        self._session = boto3.Session(
            aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET, region_name=REGION
        )
        principals = [
            assumed_role(CALLER, "TerraformProvisioner", "tf-apply"),
            iam_user(CALLER, "alice"),
            root(CALLER),
        ]
        self._templates = [
            json.dumps(
                create_access_key(
                    principal,
                    newest,
                    time_text="@TIME@",
                    user="@USER@",
                    key_id="@KEY@",
                    event_id="@ID@",
                ),
                separators=(",", ":"),
            )
            for principal in principals
        ]

    def client(self, account_id: str, service: str, region: str) -> Any:
        if service != "cloudtrail":
            raise RuntimeError(f"{service} is not part of this measurement")
        client = self._session.client(
            "cloudtrail",
            region_name=region,
            endpoint_url="http://127.0.0.1:9",  # never used
        )
        # A before-call handler that returns (response, parsed) stands in for the HTTP call.
        answer: Any = self._answer
        client.meta.events.register("before-call.cloudtrail.LookupEvents", answer)
        return client

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = json.loads(params["body"])
        ok = AWSResponse("http://127.0.0.1:9/", 200, HTTPHeaders(), None)
        if body["LookupAttributes"][0]["AttributeValue"] != "CreateAccessKey":
            return ok, {"Events": []}  # no rotation context in this window
        self.pages += 1
        start = int(body.get("NextToken", "0"))
        stop = min(start + body["MaxResults"], self.events)
        page: dict[str, Any] = {"Events": [self._entry(i) for i in range(start, stop)]}
        if stop < self.events:
            page["NextToken"] = str(stop)
        return ok, page

    def _entry(self, index: int) -> dict[str, Any]:
        event_id = f"00000000-0000-4000-8000-{index:012d}"
        moment = self.newest - timedelta(seconds=index)
        text = (
            self._templates[index % len(self._templates)]
            .replace("@ID@", event_id)
            .replace("@TIME@", moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
            .replace("@KEY@", f"AKIA{index:016d}")
            .replace("@USER@", SERVICE_USERS[index % len(SERVICE_USERS)])
        )
        return {"EventId": event_id, "EventName": "CreateAccessKey", "CloudTrailEvent": text}


def measure_memory(events: int, traced: bool) -> MemoryFigures:
    """One hunt over `events` events; run in a fresh process, so ru_maxrss is its own."""
    newest = datetime.now(UTC)
    trail = SyntheticTrail(events, newest)
    window = Window(newest - timedelta(days=3), newest)
    opts = replace(hunt_options(Settings()), enrich=False, now=lambda: newest)
    trail.client(CALLER, "cloudtrail", REGION)  # load botocore's models before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    result = run_hunt([Target(CALLER, REGION)], window, trail, opts)
    seconds = time.perf_counter() - started
    retained, peak = tracemalloc.get_traced_memory() if traced else (None, None)
    tracemalloc.stop()
    check_complete(result)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return MemoryFigures(
        events, len(result.findings), trail.pages, seconds, before, after, peak, retained
    )


def in_fresh_process(events: int, traced: bool) -> MemoryFigures:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure_memory, events, traced).result()


def measure_memory_in_children(args: argparse.Namespace) -> tuple[MemoryFigures, MemoryFigures]:
    full = in_fresh_process(args.memory_events, traced=False)
    # tracemalloc slows this code several-fold, so it watches a smaller window.
    sample = in_fresh_process(args.traced_events, traced=True)
    return full, sample


def print_memory(full: MemoryFigures, sample: MemoryFigures) -> None:
    print(
        f"\n(c) memory of one hunt over a {full.events:,}-event window in one target. Pages "
        "are served in-process by a botocore before-call hook (keyhunt's client, parsing, "
        "classification and collection all run; no HTTP, so the rate limiter never waits), "
        "each measurement in a fresh child process; IAM enrichment off"
    )
    mib = 1024 * 1024
    grown = (full.maxrss_after_kb - full.maxrss_before_kb) * 1024
    print(
        f"    {full.findings:,} findings from {full.pages:,} pages in {full.seconds:.1f} s "
        f"({full.events / full.seconds:,.0f} events/s)"
    )
    print(
        f"    peak RSS (ru_maxrss): {full.maxrss_before_kb / 1024:.1f} MiB before the hunt → "
        f"{full.maxrss_after_kb / 1024:.1f} MiB after it: +{grown / mib:.1f} MiB, "
        f"{grown / full.events:,.0f} bytes per event"
    )
    peak, retained = sample.traced_peak or 0, sample.traced_retained or 0
    print(
        f"    tracemalloc over a {sample.events:,}-event window (it slows the hunt "
        f"several-fold, {sample.seconds:.1f} s here): peak {peak / mib:.1f} MiB "
        f"({peak / sample.events:,.0f} bytes per event), {retained / mib:.1f} MiB still held "
        f"by the HuntResult ({retained / sample.findings:,.0f} bytes per finding)"
    )


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hunt_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=20,
        help=f"accounts in (b); over {ORGANIZATION_FROM}, (d) instead: an Organization",
    )
    parser.add_argument(
        "--events", type=int, default=None, help="events per account: 120 in (b), 10 in (d)"
    )
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per call in (b)")
    parser.add_argument("--memory-events", type=int, default=100_000, help="window size in (c)")
    parser.add_argument(
        "--traced-events", type=int, default=10_000, help="window size under tracemalloc in (c)"
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c,d")
    args = parser.parse_args(argv)
    skip = set(args.skip.split(",")) - {""}

    print(f"keyhunt hunt scale — Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    # (c) runs first, while this process is small: a child's ru_maxrss starts from the size
    # of the process it was forked from.
    memory = None if "c" in skip else measure_memory_in_children(args)
    with FakeAWS() as fake:
        isolate_from_real_aws(fake.endpoint_url)
        opts = hunt_options(Settings())
        if "a" not in skip:
            bench_call_counts(fake, opts)
            fake.reset()
        if "b" not in skip and args.accounts <= ORGANIZATION_FROM:
            bench_parallel(fake, opts, args.accounts, args.events or 120, args.latency)
        if "d" not in skip and args.accounts > ORGANIZATION_FROM:
            fake.reset()
            bench_organization(fake, args.accounts, args.events or 10, args.latency)
    if memory is not None:
        print_memory(*memory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
