"""The app's secrets at run time: Secrets Manager (moto) through Powertools, cached, re-read on a
key-related failure, and rotations of the JWT keys and token keys that need no redeploy."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

# Imported at collection: its first import sets up the X-Ray recorder, which opens a socket.
from replyflow.adapters import redis_client  # noqa: F401
from replyflow.adapters.crypto import RotatingCipher, TokenCipher, WrongKeyError
from replyflow.adapters.jwt_keys import InvalidTokenError, KeyRing, key_ring_of
from replyflow.adapters.secrets import (
    AppSecrets,
    SecretsUnavailableError,
    SecretValues,
    app_secrets_for,
    secrets_manager_loader,
    values_from_settings,
    with_fresh_retry,
)
from replyflow.errors import SignatureError
from replyflow.redacted import Secret
from replyflow.settings import Settings
from replyflow.wiring.core import Clients

REGION = "us-east-1"
APP = "replyflow/test/app"
REDIS = "replyflow/test/redis"


def aes_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def jwt_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(36)).decode()


def app_document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "INSTAGRAM_APP_SECRET": os.urandom(16).hex(),
        "META_APP_SECRET": os.urandom(16).hex(),
        "INSTAGRAM_VERIFY_TOKEN": os.urandom(16).hex(),
        "TOKEN_ENCRYPTION_KEY": aes_key(),
        # As the stack's template seeds it: the JWT map is a JSON string inside the JSON secret.
        "JWT_SIGNING_KEYS": json.dumps({"k1": jwt_key()}),
        "JWT_ACTIVE_KID": "k1",
    }
    doc.update(changes)
    return doc


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sm() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        client.create_secret(Name=APP, SecretString=json.dumps(app_document()))
        client.create_secret(
            Name=REDIS, SecretString=json.dumps({"token": "redis-auth-" + os.urandom(8).hex()})
        )
        yield client


def put(client: Any, name: str, doc: dict[str, Any]) -> None:
    client.put_secret_value(SecretId=name, SecretString=json.dumps(doc))


def current(client: Any, name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(client.get_secret_value(SecretId=name)["SecretString"])
    return value


class CountingClient:
    """The boto3 client, counting GetSecretValue calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self._client.get_secret_value(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def secrets_of(client: Any, clock: Clock, *, redis: bool = True) -> AppSecrets:
    loader = secrets_manager_loader(
        client, app_secret_id=APP, redis_secret_id=REDIS if redis else None, max_age=300
    )
    return AppSecrets(loader, max_age=300, min_refresh_seconds=30, monotonic=clock)


def test_values_are_read_lazily_once_and_cached(sm: Any) -> None:
    counting = CountingClient(sm)
    secrets = secrets_of(counting, Clock())
    assert counting.calls == 0  # nothing is read before first use
    values = secrets.get()
    doc = current(sm, APP)
    assert values.instagram_app_secret.get_secret_value() == doc["INSTAGRAM_APP_SECRET"]
    assert values.jwt_signing_keys == json.loads(doc["JWT_SIGNING_KEYS"])
    assert values.redis_auth_token is not None
    assert values.redis_auth_token.get_secret_value() == current(sm, REDIS)["token"]
    secrets.get()
    secrets.get()
    assert counting.calls == 2  # the app secret and the Redis secret, once each


def test_values_are_re_read_after_max_age(sm: Any) -> None:
    clock = Clock()
    secrets = secrets_of(sm, clock)
    secrets.get()
    clock.now += 301
    secrets.get()
    assert secrets.loads == 2


def test_refresh_reads_past_every_cache_and_is_rate_limited(sm: Any) -> None:
    clock = Clock()
    secrets = secrets_of(sm, clock)
    before = secrets.get()
    assert secrets.refresh() is None  # nothing changed: the caller's failure stands
    new_doc = app_document()
    put(sm, APP, new_doc)
    assert secrets.refresh() is None  # within min_refresh_seconds of the last refresh: refused
    assert secrets.get() == before
    clock.now += 31
    fresh = secrets.refresh()
    assert fresh is not None
    assert fresh.instagram_app_secret.get_secret_value() == new_doc["INSTAGRAM_APP_SECRET"]
    assert secrets.get() == fresh


def test_invalid_or_weak_values_are_refused_naming_the_field_never_the_value(sm: Any) -> None:
    put(sm, APP, app_document(TOKEN_ENCRYPTION_KEY="REPLACE_ME"))
    with pytest.raises(SecretsUnavailableError, match="TOKEN_ENCRYPTION_KEY") as raised:
        secrets_of(sm, Clock()).get()
    assert "REPLACE_ME" not in str(raised.value)
    weak = "a" * 40
    put(sm, APP, app_document(INSTAGRAM_APP_SECRET=weak))
    with pytest.raises(SecretsUnavailableError, match="INSTAGRAM_APP_SECRET") as raised:
        secrets_of(sm, Clock()).get()
    assert weak not in str(raised.value)
    put(sm, APP, app_document(JWT_ACTIVE_KID="k9"))
    with pytest.raises(SecretsUnavailableError, match="JWT_ACTIVE_KID"):
        secrets_of(sm, Clock()).get()
    doc = app_document()
    del doc["INSTAGRAM_VERIFY_TOKEN"]
    put(sm, APP, doc)
    with pytest.raises(SecretsUnavailableError, match="INSTAGRAM_VERIFY_TOKEN"):
        secrets_of(sm, Clock()).get()


def test_a_missing_secret_is_an_error_that_names_only_the_secret(sm: Any) -> None:
    loader = secrets_manager_loader(sm, app_secret_id="replyflow/test/nope", redis_secret_id=None, max_age=60)
    with pytest.raises(SecretsUnavailableError, match="replyflow/test/nope"):
        loader(False)


def test_a_function_that_reads_only_the_redis_secret_holds_no_app_values(sm: Any) -> None:
    loader = secrets_manager_loader(sm, app_secret_id=None, redis_secret_id=REDIS, max_age=60)
    values = loader(False)
    assert values.redis_auth_token is not None
    assert values.app_secrets == []
    assert values.jwt_signing_keys == {}
    with pytest.raises(ValueError, match="32 bytes"):
        TokenCipher(values.token_keys[0])


def test_jwt_keys_rotate_without_a_redeploy(sm: Any) -> None:
    clock = Clock()
    api = secrets_of(sm, clock)  # one function's cached view
    other = secrets_of(sm, clock)  # a function that picked up the rotation first
    old = key_ring_of(api, issuer="replyflow", audience="replyflow-api")
    token_k1 = old.encode({"sub": "u1"}, ttl_seconds=60)
    # Step 1 of the rotation: add k2 and make it active; k1 stays in the map.
    doc = current(sm, APP)
    keys = json.loads(doc["JWT_SIGNING_KEYS"])
    keys["k2"] = jwt_key()
    put(sm, APP, {**doc, "JWT_SIGNING_KEYS": json.dumps(keys), "JWT_ACTIVE_KID": "k2"})
    clock.now += 31
    token_k2 = key_ring_of(other, issuer="replyflow", audience="replyflow-api").encode(
        {"sub": "u2"}, ttl_seconds=60
    )
    # The API still holds k1 only: the unknown kid makes it re-read the secret once, then it verifies.
    ring = key_ring_of(api, issuer="replyflow", audience="replyflow-api")
    assert set(ring.keys) == {"k1"}
    assert ring.decode(token_k2)["sub"] == "u2"
    assert ring.decode(token_k1)["sub"] == "u1"  # old tokens keep verifying
    assert set(key_ring_of(api, issuer="replyflow", audience="replyflow-api").keys) == {"k1", "k2"}


def test_a_forged_token_reloads_once_and_then_the_failure_stands(sm: Any) -> None:
    secrets = secrets_of(sm, Clock())
    ring = key_ring_of(secrets, issuer="replyflow", audience="replyflow-api")
    forged = KeyRing(keys={"k1": jwt_key()}, active_kid="k1", issuer="replyflow", audience="replyflow-api")
    token = forged.encode({"sub": "x"}, ttl_seconds=60)
    with pytest.raises(InvalidTokenError):
        ring.decode(token)
    loads = secrets.loads
    with pytest.raises(InvalidTokenError):
        ring.decode(token)  # the refresh is rate-limited: no second read
    assert secrets.loads == loads


def test_token_keys_rotate_and_old_blobs_keep_decrypting(sm: Any) -> None:
    clock = Clock()
    sender = RotatingCipher(secrets_of(sm, clock))
    api_secrets = secrets_of(sm, clock)
    api = RotatingCipher(api_secrets)
    old_blob = api.encrypt("token-1", context="acct")
    # Rotation: a new sealing key; the old one moves to the previous keys.
    doc = current(sm, APP)
    put(
        sm,
        APP,
        {
            **doc,
            "TOKEN_ENCRYPTION_KEY": aes_key(),
            "TOKEN_ENCRYPTION_PREVIOUS_KEYS": [doc["TOKEN_ENCRYPTION_KEY"]],
        },
    )
    assert sender.decrypt(old_blob, context="acct") == "token-1"  # cached, still the old key
    clock.now += 31
    assert api._secrets.refresh() is not None
    new_blob = api.encrypt("token-2", context="acct")
    assert new_blob[1:5] != old_blob[1:5]  # sealed under another key id
    # The sender's cache still has only the old key: the unknown key id re-reads the secret once.
    assert sender.decrypt(new_blob, context="acct") == "token-2"
    assert sender.decrypt(old_blob, context="acct") == "token-1"


def test_a_blob_of_a_key_nobody_has_still_fails_as_a_wrong_key(sm: Any) -> None:
    cipher = RotatingCipher(secrets_of(sm, Clock()))
    foreign = TokenCipher(aes_key()).encrypt("t", context="acct")
    with pytest.raises(WrongKeyError):
        cipher.decrypt(foreign, context="acct")


def test_the_token_cipher_opens_blobs_of_previous_keys() -> None:
    old, new = aes_key(), aes_key()
    v2 = TokenCipher(old).encrypt("secret", context="a")
    rotated = TokenCipher(new, [old])
    assert rotated.decrypt(v2, context="a") == "secret"
    assert rotated.encrypt("x", context="a")[1:5] == TokenCipher(new).encrypt("x", context="a")[1:5]
    with pytest.raises(WrongKeyError):
        TokenCipher(new).decrypt(v2, context="a")


def test_with_fresh_retry_retries_once_on_the_named_failures() -> None:
    values = [app_values("s1"), app_values("s2")]
    secrets = AppSecrets(lambda force: values[1] if force else values[0], min_refresh_seconds=0)

    def check(v: SecretValues) -> str:
        if v.instagram_app_secret.get_secret_value() != "s2":
            raise SignatureError("no match")
        return "ok"

    assert with_fresh_retry(secrets, check, (SignatureError,)) == "ok"
    stale = AppSecrets.fixed(values[0])
    with pytest.raises(SignatureError):
        with_fresh_retry(stale, check, (SignatureError,))


def app_values(app_secret: str) -> SecretValues:
    return SecretValues(
        instagram_app_secret=Secret(app_secret),
        instagram_verify_token=Secret("v"),
        token_encryption_key=Secret(aes_key()),
        jwt_signing_keys={"k": "x" * 32},
        jwt_active_kid="k",
    )


def test_locally_the_values_are_the_settings() -> None:
    settings = Settings(environment="test")
    secrets = app_secrets_for(settings, lambda: pytest.fail("no AWS client locally"))
    assert secrets.get() == values_from_settings(settings)
    assert secrets.refresh() is None


def test_deployed_settings_name_secrets_instead_of_holding_them(sm: Any) -> None:
    # No secret in the environment: the settings model does not refuse to start on local defaults.
    settings = Settings(
        environment="prod", app_secrets_arn=APP, redis_auth_secret_arn=REDIS, aws_region=REGION
    )
    values = app_secrets_for(settings, lambda: sm).get()
    assert values.instagram_app_secret.get_secret_value() == current(sm, APP)["INSTAGRAM_APP_SECRET"]
    with pytest.raises(ValueError, match="INSTAGRAM_APP_SECRET must be set"):
        Settings(environment="prod")


def test_the_redis_auth_token_is_the_clients_password_not_part_of_the_url(sm: Any) -> None:
    settings = Settings(
        environment="test",
        redis_url="rediss://cache.example.internal:6379/0",
        redis_auth_secret_arn=REDIS,
        aws_region=REGION,
    )
    client = Clients(settings).redis  # builds the client; no connection is opened yet
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == current(sm, REDIS)["token"]
    assert kwargs["host"] == "cache.example.internal"
    local = Clients(Settings(environment="test", redis_url="redis://:pw@127.0.0.1:1/0")).redis
    assert local.connection_pool.connection_kwargs["password"] == "pw"  # locally the URL's own


def test_a_secret_from_before_meta_app_secret_was_named_needs_no_edit() -> None:
    """The old key INSTAGRAM_APP_SECRET_SECONDARY is read as META_APP_SECRET; the new key wins."""
    from replyflow.adapters.secrets import values_from_secrets

    doc = app_document()
    meta = doc.pop("META_APP_SECRET")
    legacy = values_from_secrets({**doc, "INSTAGRAM_APP_SECRET_SECONDARY": meta}, None)
    assert legacy.meta_app_secret is not None
    assert legacy.meta_app_secret.get_secret_value() == meta
    assert len(legacy.app_secrets) == 2
    both = values_from_secrets(
        {**doc, "META_APP_SECRET": meta, "INSTAGRAM_APP_SECRET_SECONDARY": "x" * 32}, None
    )
    assert both.meta_app_secret is not None
    assert both.meta_app_secret.get_secret_value() == meta


def test_secret_values_never_show_a_value_and_compare_by_value() -> None:
    values = values_from_settings(Settings(environment="test", instagram_app_secret="shown-nowhere-1"))
    assert "shown-nowhere-1" not in f"{values!r} {values} {values.instagram_app_secret}"
    assert "local-only-jwt-secret" not in repr(values)  # the JWT keys are not in the repr either
    assert values == values_from_settings(
        Settings(environment="test", instagram_app_secret="shown-nowhere-1")
    )
    assert values != values_from_settings(
        Settings(environment="test", instagram_app_secret="shown-nowhere-2")
    )
    assert values.instagram_app_secret.get_secret_value() == "shown-nowhere-1"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"instagram_app_secret": 7}, "INSTAGRAM_APP_SECRET"),
        ({"jwt_signing_keys": "{not json"}, "JWT_SIGNING_KEYS"),
        ({"jwt_signing_keys": '["k"]'}, "JWT_SIGNING_KEYS"),
        ({"jwt_signing_keys": {"k1": 1}}, "JWT_SIGNING_KEYS"),
        ({"token_encryption_previous_keys": '{"a": 1}'}, "TOKEN_ENCRYPTION_PREVIOUS_KEYS"),
        ({"token_encryption_previous_keys": [3]}, "TOKEN_ENCRYPTION_PREVIOUS_KEYS"),
        ({"stripe_webhook_secret": ["whsec"]}, "STRIPE_WEBHOOK_SECRET"),
        ({"jwt_active_kid": None}, "JWT_ACTIVE_KID"),
    ],
)
def test_invalid_fields_are_named(fields: dict[str, Any], named: str) -> None:
    valid = {
        "instagram_app_secret": "a",
        "instagram_verify_token": "v",
        "token_encryption_key": aes_key(),
        "jwt_signing_keys": '{"k1": "key"}',
        "jwt_active_kid": "k1",
    }
    assert SecretValues.parse(valid).jwt_signing_keys == {"k1": "key"}
    with pytest.raises(SecretsUnavailableError) as raised:
        SecretValues.parse({**valid, **fields})
    assert raised.value.message.endswith(f": {named}")
