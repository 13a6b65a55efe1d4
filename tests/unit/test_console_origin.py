"""The IP the API's own per-IP limits count a request by (adapters/console_origin.py): the viewer's
``X-Replyflow-Viewer-Ip`` only on a request bearing the console distribution's secret
``X-Replyflow-Origin`` (compared in constant time, read from Secrets Manager at run time and
re-read once on a mismatch), the source IP otherwise; no secret read for a request without it."""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from replyflow.adapters import console_origin as module
from replyflow.adapters.console_origin import ConsoleOrigin, canonical_ip, console_origin_for
from replyflow.adapters.secrets import RotatingSecret, secret_string_loader
from replyflow.ports import RateDecision, RateLimiter
from replyflow.settings import Settings
from tests.unit.test_api_support import ApiEnv, make_env
from tests.unit.test_app_secrets import Clock, CountingClient

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
SECRET = "Q7vKp2XwLm9RtYb4Nc6HdJf8Gs3ZaEu5Vx1Wq0PoIkTnMr2B"
EDGE = "130.176.10.20"  # a CloudFront edge address: many viewers behind it
VIEWER = "198.51.100.7"


@pytest.fixture
def sm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def origin_of(client: Any, secret_id: str, clock: Clock) -> tuple[ConsoleOrigin, RotatingSecret[str]]:
    secret = RotatingSecret(
        secret_string_loader(client, secret_id=secret_id, max_age=300),
        max_age=300,
        min_refresh_seconds=30,
        monotonic=clock,
    )
    return ConsoleOrigin(secret), secret


@pytest.fixture
def stored(sm: Any) -> str:
    arn: str = sm.create_secret(Name="replyflow/test/console-origin", SecretString=SECRET)["ARN"]
    return arn


def test_without_the_origin_header_the_source_ip_counts_and_no_secret_is_read(sm: Any, stored: str) -> None:
    counting = CountingClient(sm)
    origin, secret = origin_of(counting, stored, Clock())
    assert origin.client_ip(EDGE, origin=None, viewer_ip=VIEWER) == EDGE
    assert secret.loads == 0
    assert counting.calls == 0


def test_the_secret_and_a_viewer_ip_count_the_viewer(sm: Any, stored: str) -> None:
    counting = CountingClient(sm)
    origin, _secret = origin_of(counting, stored, Clock())
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == VIEWER
    # Canonical form: one limiter key per address however it is spelled.
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=" 2001:DB8:0::0:1 ") == "2001:db8::1"
    assert counting.calls == 1  # cached after the first read


def test_a_wrong_secret_counts_the_source_ip_and_re_reads_at_most_once_per_interval(
    sm: Any, stored: str
) -> None:
    counting = CountingClient(sm)
    origin, secret = origin_of(counting, stored, Clock())
    for forged in ("", SECRET[:-1], SECRET + "x", SECRET.lower(), f"{SECRET},{SECRET}"):
        assert origin.client_ip(EDGE, origin=forged, viewer_ip=VIEWER) == EDGE, forged
    # The first mismatch re-read the secret (a rotation?); the others were refused that re-read.
    assert secret.loads == 2
    assert counting.calls == 2


def test_the_secret_is_compared_in_constant_time(
    sm: Any, stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(module.hmac, "compare_digest", spy)
    origin, _secret = origin_of(sm, stored, Clock())
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == VIEWER
    assert origin.client_ip(EDGE, origin="nope", viewer_ip=VIEWER) == EDGE
    assert compared[0] == (SECRET.encode(), SECRET.encode())
    assert compared[1] == (b"nope", SECRET.encode())
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)


@pytest.mark.parametrize(
    "origin_header",
    ["s\u00e9cret", "\ud800", "\x00" * 48],  # compare_digest refuses non-ASCII str: bytes are compared
)
def test_a_hostile_origin_value_is_a_mismatch_not_an_error(sm: Any, stored: str, origin_header: str) -> None:
    origin, _secret = origin_of(sm, stored, Clock())
    assert origin.client_ip(EDGE, origin=origin_header, viewer_ip=VIEWER) == EDGE


@pytest.mark.parametrize(
    "viewer",
    [None, "", "not-an-ip", "198.51.100.7, 203.0.113.9", "999.1.1.1", "198.51.100.0/24", "198.51.100.7:443"],
)
def test_a_malformed_viewer_ip_counts_the_source_ip_without_reading_the_secret(
    sm: Any, stored: str, viewer: str | None
) -> None:
    origin, secret = origin_of(sm, stored, Clock())
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=viewer) == EDGE
    assert secret.loads == 0
    assert canonical_ip(viewer) is None


def test_a_rotated_secret_is_picked_up_at_the_first_request_bearing_it(sm: Any, stored: str) -> None:
    clock = Clock()
    origin, secret = origin_of(sm, stored, clock)
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == VIEWER
    rotated = SECRET[::-1]
    sm.put_secret_value(SecretId=stored, SecretString=rotated)
    # The distribution was deployed with the new value before this instance's cache expired: the
    # mismatch re-reads the secret past every cache, and the new value counts the viewer at once.
    assert origin.client_ip(EDGE, origin=rotated, viewer_ip=VIEWER) == VIEWER
    assert secret.loads == 2
    # The old value no longer vouches (the re-read it causes is refused within 30 s).
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == EDGE
    assert secret.loads == 2
    # Rotated back: after max_age (and the 30 s) the old value vouches again.
    sm.put_secret_value(SecretId=stored, SecretString=SECRET)
    clock.now += 301
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == VIEWER


def test_an_unreadable_secret_counts_the_source_ip_and_logs_no_value(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(module.logger, "warning", lambda *args, **kw: warnings.append(json.dumps([args, kw])))
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:replyflow/none-AbCdEf"
    origin, _secret = origin_of(sm, missing, Clock())
    assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == EDGE
    assert len(warnings) == 1
    assert "console origin secret unavailable" in warnings[0]
    assert missing in warnings[0]  # the secret's name, never a value (nor the header's)
    assert SECRET not in warnings[0]


def test_locally_no_secret_is_configured_and_every_request_counts_its_source_ip() -> None:
    factories: list[str] = []

    def factory() -> Any:
        factories.append("client")
        raise AssertionError("no Secrets Manager client locally")

    for settings in (
        Settings(environment="local"),
        Settings(environment="test", console_origin_secret_arn=""),
    ):
        origin = console_origin_for(settings, factory)
        assert origin.client_ip(EDGE, origin=SECRET, viewer_ip=VIEWER) == EDGE
    assert factories == []


def test_the_api_handler_does_not_import_the_module_before_a_request_bears_the_header() -> None:
    probe = "import sys, api.handler; print('replyflow.adapters.console_origin' in sys.modules)"
    env = {"PYTHONPATH": f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


# ----------------------------------------------------------------------------- through the API


@dataclass
class RecordingLimiter:
    """The env's limiter, recording the keys it is asked to count."""

    inner: RateLimiter
    keys: list[str] = field(default_factory=list)

    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        self.keys.append(key)
        return self.inner.hit(key, limit, window_seconds)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(self.inner, name)
        return method


@pytest.fixture
def console_env(sqlite_url: str, sm: Any, stored: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url, console_origin_secret_arn=stored, aws_region=REGION)


def login_keys(env: ApiEnv, headers: dict[str, str]) -> list[str]:
    recording = RecordingLimiter(env.deps.limiter)
    env.use(limiter=recording)
    body = {"email": "nobody@example.com", "password": "wrong password!"}
    assert env.client(EDGE).request("POST", "/v1/auth/login", body=body, headers=headers).status == 401
    return [key for key in recording.keys if key.startswith("login:ip:")]


def test_the_login_limit_counts_the_viewer_behind_the_distribution(console_env: ApiEnv) -> None:
    through = {"X-Replyflow-Origin": SECRET, "X-Replyflow-Viewer-Ip": VIEWER}
    assert login_keys(console_env, through) == [f"login:ip:{VIEWER}"]
    # A direct caller that names a viewer without the secret is counted by its own address.
    forged = {"X-Replyflow-Origin": "guess", "X-Replyflow-Viewer-Ip": VIEWER}
    assert login_keys(console_env, forged) == [f"login:ip:{EDGE}"]
    assert login_keys(console_env, {"X-Replyflow-Viewer-Ip": VIEWER}) == [f"login:ip:{EDGE}"]
    malformed = {"X-Replyflow-Origin": SECRET, "X-Replyflow-Viewer-Ip": "' OR 1=1"}
    assert login_keys(console_env, malformed) == [f"login:ip:{EDGE}"]


def test_a_request_without_the_header_builds_no_console_origin(console_env: ApiEnv) -> None:
    assert login_keys(console_env, {}) == [f"login:ip:{EDGE}"]
    assert "console_origin" not in console_env.deps.__dict__  # no client, no secret read
