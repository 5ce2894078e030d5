"""The deployment artifacts say what the code does: the image, the Slack manifest, the config.

Dockerfile and .dockerignore are read as data (no Docker engine is needed; hadolint lints the
file in `make lint`), and the image's HEALTHCHECK command is run against a served app. The
Slack manifest's scopes are derived from the Web API methods the code really calls. The
example config is loaded by the real settings loader.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import slack_sdk.web.client
import yaml
from slack_bolt import App

from bot.server import Health, HttpServer, make_wsgi
from bot.settings import FIELDS, YAML_ONLY, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MANIFEST = ROOT / "config" / "slack-manifest.yaml"
EXAMPLE_CONFIG = ROOT / "config" / "keyhunt.example.yaml"
PLACEHOLDER_URL = "https://keyhunt.example.com/slack/events"


# ======================================================================== Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str
    stage: int  # index of the FROM this instruction belongs to


def read_dockerfile() -> list[Instruction]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))  # join continuations
    instructions: list[Instruction] = []
    stage = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, " ".join(args.split()), stage))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return read_dockerfile()


def only(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def position(instructions: list[Instruction], keyword: str, needle: str) -> int:
    for index, instruction in enumerate(instructions):
        if instruction.keyword == keyword and needle in instruction.args:
            return index
    raise AssertionError(f"no {keyword} containing {needle!r} in the Dockerfile")


def test_base_image_is_a_slim_python_pinned_by_tag_and_digest(
    dockerfile: list[Instruction],
) -> None:
    (image_arg,) = [i for i in only(dockerfile, "ARG") if i.args.startswith("PYTHON_IMAGE=")]
    image = image_arg.args.removeprefix("PYTHON_IMAGE=")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    stages = only(dockerfile, "FROM")
    assert len(stages) >= 2, "multi-stage: build tools and caches stay out of the final image"
    for stage in stages:
        assert stage.args.split()[0] == "${PYTHON_IMAGE}", f"unpinned base: FROM {stage.args}"


def test_dependencies_are_installed_before_the_source_is_copied(
    dockerfile: list[Instruction],
) -> None:
    """Editing bot/ must not invalidate the dependency layer."""
    pyproject = position(dockerfile, "COPY", "pyproject.toml")
    deps = position(dockerfile, "RUN", "pip install --no-cache-dir -r")
    first_source = min(
        position(dockerfile, "COPY", "bot/"), position(dockerfile, "COPY", "checks/")
    )
    assert pyproject < deps < first_source
    assert "--no-deps" in dockerfile[position(dockerfile, "RUN", "--no-deps")].args
    final = len(only(dockerfile, "FROM")) - 1
    assert any(
        i.stage == final and i.args.startswith("--from=build /opt/keyhunt")
        for i in only(dockerfile, "COPY")
    ), "the final stage takes only the built virtualenv"


def test_runs_as_a_non_root_user_with_a_high_uid(dockerfile: list[Instruction]) -> None:
    final = len(only(dockerfile, "FROM")) - 1
    users = [i for i in only(dockerfile, "USER") if i.stage == final]
    assert users, "the final stage must switch away from root"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit(), "a numeric uid: Kubernetes runAsNonRoot can verify it"
    assert int(uid) > 10000, "above 10000, so it never maps onto a host account"
    assert gid.isdigit()
    assert int(gid) > 10000
    assert f"--uid {uid}" in dockerfile[position(dockerfile, "RUN", "useradd")].args


def test_cli_smoke_test_runs_at_build_time_as_the_runtime_user(
    dockerfile: list[Instruction],
) -> None:
    smoke = position(dockerfile, "RUN", "keyhunt --help")
    user = max(i for i, ins in enumerate(dockerfile) if ins.keyword == "USER")
    assert smoke > user
    assert dockerfile[smoke].stage == len(only(dockerfile, "FROM")) - 1


def test_runtime_contract(dockerfile: list[Instruction]) -> None:
    env = " ".join(i.args for i in only(dockerfile, "ENV"))
    assert "KEYHUNT_DATABASE_URL=sqlite:////data/keyhunt.db" in env.split()
    assert [i.args for i in only(dockerfile, "VOLUME")] == ['["/data"]']
    assert [i.args for i in only(dockerfile, "EXPOSE")] == [str(Settings().port)]
    assert json.loads(only(dockerfile, "ENTRYPOINT")[-1].args) == ["keyhunt"]
    assert json.loads(only(dockerfile, "CMD")[-1].args) == ["serve"]
    # The image's database URL is one the settings loader accepts as is.
    url = load_settings(environ={"KEYHUNT_DATABASE_URL": "sqlite:////data/keyhunt.db"})
    assert url.database_url == "sqlite:////data/keyhunt.db"


def healthcheck_command(dockerfile: list[Instruction]) -> list[str]:
    (check,) = only(dockerfile, "HEALTHCHECK")
    assert "--interval=" in check.args
    assert "--timeout=" in check.args
    command = json.loads(check.args[check.args.index("CMD ") + 4 :])
    assert command[0] == "python", "slim has no curl: the probe is the image's own python"
    return [sys.executable, *command[1:]]


@pytest.fixture
def health_server() -> Iterator[tuple[HttpServer, list[Health]]]:
    state = [Health(True, True, 30.0, "ok")]
    app = App(signing_secret="unused", token="xoxb-unused", token_verification_enabled=False)
    server = HttpServer(make_wsgi(app, lambda: state[0]), "127.0.0.1", 0).start()
    try:
        yield server, state
    finally:
        server.stop()


def test_healthcheck_probes_healthz_and_fails_when_the_bot_is_unhealthy(
    dockerfile: list[Instruction], health_server: tuple[HttpServer, list[Health]]
) -> None:
    server, state = health_server
    command = healthcheck_command(dockerfile)
    env = {"PORT": str(server.port), "PATH": "/usr/bin:/bin"}

    healthy = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    assert healthy.returncode == 0, healthy.stderr.decode()

    state[0] = Health(False, False, None, "scheduler stopped")  # /healthz answers 503
    unhealthy = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    assert unhealthy.returncode != 0
    assert b"503" in unhealthy.stderr


# ======================================================================== .dockerignore


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    needed = ["pyproject.toml", "README.md", "bot/cli.py", "bot/py.typed", "checks/hunt.py"]
    for path in needed:
        assert not dockerignore_excludes(path, patterns), f"{path} is needed by the build"
    kept_out = [
        "config/keyhunt.yaml",  # a real config may hold tokens
        ".env",
        "keyhunt.db",
        ".venv/bin/python",
        ".git/config",
        "tests/test_rules.py",
        "bot/__pycache__/cli.cpython-311.pyc",
        "checks/.ruff_cache/CACHEDIR.TAG",
        ".hypothesis/constants/x",
    ]
    for path in kept_out:
        assert dockerignore_excludes(path, patterns), f"{path} must not reach the build context"


# ======================================================================== Slack manifest

# Web API method -> bot scopes it needs (https://docs.slack.dev/reference/methods/<method>).
# A method the code starts calling must be added here, and its scope to the manifest.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    # KEYHUNT_CHANNEL may be public (channels:read) or, as security channels often are,
    # private (groups:read); `keyhunt check` must be able to see either.
    "conversations.info": frozenset({"channels:read", "groups:read"}),
    # The poster looks for its own alert after a crash or a lost answer; the channel may be
    # public or private, likewise.
    "conversations.history": frozenset({"channels:history", "groups:history"}),
    "conversations.replies": frozenset({"channels:history", "groups:history"}),
    "auth.test": frozenset(),
    # Who is behind a finding: an e-mail (SSO session name, IAM tag) to a Slack user. Slack
    # grants users:read.email only together with users:read.
    "users.lookupByEmail": frozenset({"users:read", "users:read.email"}),
    # "Was this you?" goes to the actor as a DM from the bot.
    "conversations.open": frozenset({"im:write"}),
    # Modals (the answer's reason, a snooze's reason) open from a click's trigger_id: no scope.
    "views.open": frozenset(),
}
# Called by Bolt itself, not by our code: SingleTeamAuthorization runs auth.test once.
BOLT_CALLS = frozenset({"auth.test"})
SLASH_COMMAND_SCOPE = "commands"


@functools.cache
def web_client_methods() -> dict[str, str]:
    """slack_sdk.WebClient method name -> Web API method it calls (chat_postMessage ->
    chat.postMessage), read from slack_sdk's own source so the mapping never drifts."""
    tree = ast.parse(inspect.getsource(slack_sdk.web.client))
    client = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "WebClient")
    methods: dict[str, str] = {}
    for function in client.body:
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "api_call"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                methods[function.name] = str(node.args[0].value)
                break
    return methods


@functools.cache
def product_sources() -> tuple[tuple[Path, ast.Module], ...]:
    return tuple(
        (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted((ROOT / "bot").rglob("*.py"))
    )  # dev/keyhunt_dev (the fakes and the demo) serves the API against itself: not counted


def web_api_methods_used() -> dict[str, set[str]]:
    """Web API method -> files using it. Any attribute named like a WebClient method counts,
    called or not: preflight passes `web.auth_test` uncalled, which a `\\.name\\(` regex
    would miss."""
    known = web_client_methods()
    used: dict[str, set[str]] = {}
    for path, tree in product_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in known:
                used.setdefault(known[node.attr], set()).add(str(path.relative_to(ROOT)))
    for method in BOLT_CALLS:
        used.setdefault(method, set()).add("slack_bolt")
    return used


def bolt_registrations(kind: str) -> set[str]:
    """First arguments of `app.<kind>("...")` in the product code (`command`, `action`)."""
    found: set[str] = set()
    for _, tree in product_sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == kind
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "app"
                and node.args
            ):
                argument = node.args[0]
                found.add(
                    str(argument.value) if isinstance(argument, ast.Constant) else "<dynamic>"
                )
    return found


@pytest.fixture(scope="module")
def manifest() -> dict[str, object]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_scanner_finds_the_calls_it_must(manifest: dict[str, object]) -> None:
    used = web_api_methods_used()
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral"} <= set(used)
    assert {"conversations.history", "conversations.replies"} <= set(used)
    assert "bot/preflight.py" in used["auth.test"]  # passed uncalled: web.auth_test
    assert "bot/preflight.py" in used["conversations.info"]


def test_every_method_the_code_calls_is_covered_by_a_manifest_scope(
    manifest: dict[str, object],
) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    used = web_api_methods_used()
    unknown = sorted(set(used) - set(METHOD_SCOPES))
    assert not unknown, (
        f"Web API methods without a scope entry in METHOD_SCOPES: {unknown} "
        f"(used in {[sorted(used[m]) for m in unknown]}); look up their scopes"
    )
    missing = {m: sorted(METHOD_SCOPES[m] - scopes) for m in used if METHOD_SCOPES[m] - scopes}
    assert not missing, f"scopes missing from {MANIFEST.name}: {missing}"
    if bolt_registrations("command"):
        assert SLASH_COMMAND_SCOPE in scopes


def test_no_manifest_scope_is_unused(manifest: dict[str, object]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    needed = set().union(*(METHOD_SCOPES[m] for m in web_api_methods_used()))
    if bolt_registrations("command"):
        needed.add(SLASH_COMMAND_SCOPE)
    assert not scopes - needed, f"unused scopes: {sorted(scopes - needed)}"
    assert "user" not in manifest["oauth_config"]["scopes"]  # type: ignore[index]


def test_manifest_routes_every_request_to_the_bot(manifest: dict[str, object]) -> None:
    features: dict[str, list[dict[str, object]]] = manifest["features"]  # type: ignore[assignment]
    commands = {c["command"]: c for c in features["slash_commands"]}
    assert set(commands) == bolt_registrations("command") == {"/keyhunt"}
    keyhunt = commands["/keyhunt"]
    assert keyhunt["url"] == PLACEHOLDER_URL
    hint = str(keyhunt["usage_hint"])
    for word in ("last", "since", "until", "user", "actor", "account", "key", "status", "help"):
        assert word in hint, f"usage hint does not mention {word!r}"

    settings: dict[str, object] = manifest["settings"]  # type: ignore[assignment]
    interactivity: dict[str, object] = settings["interactivity"]  # type: ignore[assignment]
    assert bolt_registrations("action"), "buttons are handled, so interactivity is needed"
    assert interactivity == {"is_enabled": True, "request_url": PLACEHOLDER_URL}
    assert urlsplit(PLACEHOLDER_URL).path == "/slack/events"  # where bot/server.py serves
    assert "event_subscriptions" not in settings, "no Events API listener exists"


def test_socket_mode_is_off_and_documented_as_an_option(manifest: dict[str, object]) -> None:
    settings: dict[str, object] = manifest["settings"]  # type: ignore[assignment]
    assert settings["socket_mode_enabled"] is False
    text = MANIFEST.read_text(encoding="utf-8")
    assert "--socket-mode" in text
    assert "SLACK_APP_TOKEN" in text


# ======================================================================== example config


def test_example_config_is_valid_and_holds_the_defaults() -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={})
    assert replace(settings, suppressions=()) == Settings()
    assert len(settings.suppressions) == 2
    assert all(s.comment for s in settings.suppressions)


def test_example_config_documents_every_setting_with_its_variable() -> None:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert set(data) == set(FIELDS) | set(YAML_ONLY), "every setting, and nothing else"
    lines = text.splitlines()
    for key, (variable, _) in FIELDS.items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        comment = []
        for line in reversed(lines[:at]):
            if not line.startswith("#"):
                break
            comment.append(line)
        assert comment, f"{key} has no comment above it"
        assert any(variable in line for line in comment), f"{key}: comment must name {variable}"
