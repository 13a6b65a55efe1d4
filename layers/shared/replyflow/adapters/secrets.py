"""Secrets at run time.

These readers live here:

- :class:`SecretsManagerReader`: plain JSON secrets (the database credentials the migrate function
  reads while it provisions the schema);
- :class:`AppSecrets`: the app's own secrets (Instagram and Meta app secrets, the webhook verify
  token, the JWT signing keys, the token encryption keys and the Redis AUTH token) as one validated
  :class:`SecretValues`, read lazily on first use and cached for ``max_age`` seconds. In AWS they are
  read from Secrets Manager with the Powertools parameters utility (the function's configuration
  holds only the secrets' ARNs); on the local stack they come from the settings (the environment);
- :func:`secret_string_loader` under a :class:`RotatingSecret`: one secret whose value is a plain
  string (the console's origin header, ``adapters/console_origin.py``), with the same cache and
  refresh. :class:`AppSecrets` is the :class:`RotatingSecret` of :class:`SecretValues`.

A caller whose check fails on a secret (a webhook signature, a JWT of an unknown kid, a token blob
sealed under an unknown key) calls :meth:`RotatingSecret.refresh` once and retries with what it returns:
a rotation is then picked up at once instead of after ``max_age``. Refreshes are rate-limited
(``min_refresh_seconds``), so a flood of forged signatures cannot turn into a flood of Secrets
Manager calls; a refresh that brings nothing new lets the failure stand. Values never reach a log:
validation errors name the field, never the value.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from replyflow.errors import ReplyflowError
from replyflow.redacted import Secret

if TYPE_CHECKING:
    from replyflow.settings import Settings
    from replyflow.settings_view import ApiSettings, WebhookSettings

DEFAULT_MAX_AGE_SECONDS = 300
MIN_REFRESH_SECONDS = 30.0


class SecretsManagerReader:
    def __init__(self, client: Any) -> None:
        self._client = client

    def json(self, secret_id: str) -> dict[str, Any]:
        value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise ValueError(f"secret {secret_id} is not a JSON object")
        return parsed


class SecretsUnavailableError(ReplyflowError):
    """A secret could not be read or does not hold valid values (the message names the secret and
    fields only): a configuration error of the deployment, so a 5xx (nothing the caller did)."""

    code = "secrets_unavailable"
    status = 503


def _json_if_string(value: object) -> object:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else None
    return value


def _parsed(value: object, bad: list[str], name: str) -> object:
    """``value`` decoded when it is a JSON string (empty: None); undecodable JSON marks ``name`` bad."""
    try:
        return _json_if_string(value)
    except ValueError:
        bad.append(name)
        return None


_SECRETS = ("instagram_app_secret", "instagram_verify_token", "token_encryption_key")
_PREVIOUS = "token_encryption_previous_keys"
_OPTIONAL_SECRETS = ("meta_app_secret", "redis_auth_token", "stripe_secret_key", "stripe_webhook_secret")


@dataclass(frozen=True)
class SecretValues:
    """One consistent set of the app's secrets. ``token_encryption_key`` seals new blobs; it and
    ``token_encryption_previous_keys`` open old ones. ``jwt_active_kid`` signs; every key verifies.

    Each secret is a :class:`~replyflow.redacted.Secret` (a ``SecretStr`` or a string given is
    wrapped): no repr shows a value, the JWT keys included. :meth:`parse` validates a mapping (the
    app secret's JSON); plain pydantic-free code, so a function reading its secrets imports no
    pydantic (docs/architecture.md#cold-starts)."""

    instagram_app_secret: Secret
    instagram_verify_token: Secret
    token_encryption_key: Secret
    jwt_signing_keys: dict[str, str] = field(repr=False)
    jwt_active_kid: str
    meta_app_secret: Secret | None = None
    token_encryption_previous_keys: tuple[Secret, ...] = ()
    redis_auth_token: Secret | None = None
    # Billing: Stripe's API key and webhook signing secret (docs/billing.md); absent in the app secret,
    # the billing calls are refused (503) rather than run without them.
    stripe_secret_key: Secret | None = None
    stripe_webhook_secret: Secret | None = None

    def __post_init__(self) -> None:
        for name in _SECRETS:
            object.__setattr__(self, name, Secret.of(getattr(self, name)))
        for name in _OPTIONAL_SECRETS:
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else Secret.of(value))
        previous = tuple(Secret.of(key) for key in self.token_encryption_previous_keys)
        object.__setattr__(self, "token_encryption_previous_keys", previous)
        object.__setattr__(self, "jwt_signing_keys", dict(self.jwt_signing_keys))

    @classmethod
    def parse(cls, fields: Mapping[str, Any]) -> SecretValues:
        """The values of ``fields`` (lower-case names; unknown ones ignored): JSON (or a string of it)
        for the JWT keys and the previous keys, strings for the rest. Raises
        :class:`SecretsUnavailableError` naming every invalid or missing field, never a value."""
        bad: list[str] = []
        values: dict[str, Any] = {}
        for name in (*_SECRETS, "jwt_active_kid"):
            values[name] = fields.get(name)
            if not isinstance(values[name], str):
                bad.append(name)
        for name in _OPTIONAL_SECRETS:
            values[name] = fields.get(name)
            if values[name] is not None and not isinstance(values[name], str):
                bad.append(name)
        keys = _parsed(fields.get("jwt_signing_keys"), bad, "jwt_signing_keys")
        if not (isinstance(keys, dict) and all(isinstance(v, str) for v in keys.values())):
            bad.append("jwt_signing_keys")
        previous = _parsed(fields.get(_PREVIOUS), bad, _PREVIOUS)
        previous = () if previous is None else previous
        if not (isinstance(previous, list | tuple) and all(isinstance(k, str) for k in previous)):
            bad.append(_PREVIOUS)
        if bad:
            names = ", ".join(name.upper() for name in sorted(set(bad)))
            raise SecretsUnavailableError(f"the app secret does not hold valid values: {names}")
        previous_keys = tuple(Secret(key) for key in cast("list[str]", previous))
        return cls(
            **values,
            jwt_signing_keys=cast("dict[str, str]", keys),
            token_encryption_previous_keys=previous_keys,
        )

    @property
    def named_app_secrets(self) -> list[tuple[str, bytes]]:
        """The secrets a webhook signature or a ``signed_request`` may be made with, by name."""
        pairs = [
            ("instagram_app_secret", self.instagram_app_secret),
            ("meta_app_secret", self.meta_app_secret),
        ]
        return [(name, s.get_secret_value().encode()) for name, s in pairs if s and s.get_secret_value()]

    @property
    def app_secrets(self) -> list[bytes]:
        return [secret for _name, secret in self.named_app_secrets]

    @property
    def token_keys(self) -> list[str]:
        """Every token encryption key, the sealing one first."""
        keys = [self.token_encryption_key, *self.token_encryption_previous_keys]
        return [k.get_secret_value() for k in keys]

    def weak_reason(self) -> str | None:
        """Why these values must not run a deployed stack (names the field, never the value)."""
        from replyflow.settings import weak_aes_key_reason, weak_secret_reason

        if self.jwt_active_kid not in self.jwt_signing_keys:
            return "JWT_ACTIVE_KID is not in JWT_SIGNING_KEYS"
        named = [
            ("INSTAGRAM_APP_SECRET", self.instagram_app_secret.get_secret_value()),
            ("INSTAGRAM_VERIFY_TOKEN", self.instagram_verify_token.get_secret_value()),
        ]
        if self.meta_app_secret is not None and self.meta_app_secret.get_secret_value():
            named.append(("META_APP_SECRET", self.meta_app_secret.get_secret_value()))
        named += [(f"JWT_SIGNING_KEYS[{kid}]", key) for kid, key in self.jwt_signing_keys.items()]
        for name, value in named:
            reason = weak_secret_reason(value)
            if reason:
                return f"{name} {reason}"
        for index, key in enumerate(self.token_keys):
            reason = weak_aes_key_reason(key)
            if reason:
                name = f"TOKEN_ENCRYPTION_PREVIOUS_KEYS[{index - 1}]" if index else "TOKEN_ENCRYPTION_KEY"
                return f"{name} {reason}"
        return None


def values_from_settings(settings: Settings) -> SecretValues:
    """The local stack's secrets: the settings' own values (the environment)."""
    optional = (settings.meta_app_secret, settings.stripe_secret_key, settings.stripe_webhook_secret)
    meta, stripe_key, stripe_hook = (None if v is None else Secret.of(v) for v in optional)
    return SecretValues(
        instagram_app_secret=Secret.of(settings.instagram_app_secret),
        meta_app_secret=meta,
        instagram_verify_token=Secret.of(settings.instagram_verify_token),
        token_encryption_key=Secret.of(settings.token_encryption_key),
        token_encryption_previous_keys=tuple(map(Secret.of, settings.token_encryption_previous_keys)),
        jwt_signing_keys=dict(settings.jwt_signing_keys),
        jwt_active_kid=settings.jwt_active_kid,
        stripe_secret_key=stripe_key,
        stripe_webhook_secret=stripe_hook,
    )


def values_from_secrets(app: Mapping[str, Any], redis_token: str | None) -> SecretValues:
    """Validated values of the app secret's JSON (keys named like the settings: ``JWT_SIGNING_KEYS``)."""
    fields = {name.lower(): value for name, value in app.items()}
    # A secret written before META_APP_SECRET was named holds it as INSTAGRAM_APP_SECRET_SECONDARY:
    # read that, so an upgrade needs no edit of the secret.
    legacy = fields.pop("instagram_app_secret_secondary", None)
    if legacy and not fields.get("meta_app_secret"):
        fields["meta_app_secret"] = legacy
    fields["redis_auth_token"] = redis_token
    values = SecretValues.parse(fields)
    reason = values.weak_reason()
    if reason:
        raise SecretsUnavailableError(f"the app secret is not fit for a deployed stack: {reason}")
    return values


_V = TypeVar("_V")
Loader = Callable[[bool], _V]
"""Reads a secret's current value; ``True`` skips every cache (a refresh)."""


def _provider(client: Any) -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client)


def _read(
    provider: Any, secret_id: str, *, transform: Literal["json"] | None, max_age: int, force: bool
) -> object:
    """The secret through Powertools' cache of ``max_age`` seconds (``force`` skips it); a failure
    names the secret and the error's type, never a value."""
    try:
        value: object = provider.get(secret_id, transform=transform, max_age=max_age, force_fetch=force)
    except Exception as error:  # GetParameterError, TransformParameterError: both name the id only
        reason = type(error).__name__
        raise SecretsUnavailableError(f"secret {secret_id} could not be read: {reason}") from None
    return value


def secrets_manager_loader(
    client: Any, *, app_secret_id: str | None, redis_secret_id: str | None, max_age: int
) -> Loader[SecretValues]:
    """Reads the app secret (and the Redis AUTH secret's ``token``) with Powertools' SecretsProvider,
    which caches each for ``max_age`` seconds; ``force=True`` skips that cache."""
    provider = _provider(client)

    def read(secret_id: str, force: bool) -> dict[str, Any]:
        value = _read(provider, secret_id, transform="json", max_age=max_age, force=force)
        if not isinstance(value, dict):
            raise SecretsUnavailableError(f"secret {secret_id} is not a JSON object")
        return value

    def load(force: bool) -> SecretValues:
        app = read(app_secret_id, force) if app_secret_id else {}
        token = read(redis_secret_id, force).get("token") if redis_secret_id else None
        if not app_secret_id:
            # Functions that read only the Redis token: no app values, placeholders that verify nothing.
            return SecretValues(
                instagram_app_secret=Secret(""),
                instagram_verify_token=Secret(""),
                token_encryption_key=Secret(""),
                jwt_signing_keys={},
                jwt_active_kid="",
                redis_auth_token=Secret(token) if token else None,
            )
        return values_from_secrets(app, token)

    return load


def secret_string_loader(client: Any, *, secret_id: str, max_age: int) -> Loader[str]:
    """Reads a secret whose value is one plain string (not JSON), cached like the app secret's."""
    provider = _provider(client)

    def load(force: bool) -> str:
        value = _read(provider, secret_id, transform=None, max_age=max_age, force=force)
        if not isinstance(value, str) or not value:
            raise SecretsUnavailableError(f"secret {secret_id} is not a non-empty string")
        return value

    return load


class RotatingSecret(Generic[_V]):
    """A secret's current value, loaded on first use and re-read after ``max_age`` seconds.

    ``refresh()`` re-reads now (bypassing every cache), at most once per ``min_refresh_seconds``; it
    returns the new value, or None when nothing changed (or it was refused), so the caller's
    failure stands."""

    def __init__(
        self,
        load: Loader[_V],
        *,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_age = max_age
        self._min_refresh = min_refresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._values: _V | None = None
        self._loaded_at = 0.0
        self._refreshed_at = -float("inf")
        self.loads = 0  # how many times the loader ran (tests and metrics)

    def get(self) -> _V:
        now = self._monotonic()
        with self._lock:
            if self._values is None or now - self._loaded_at >= self._max_age:
                self._store(self._load(False), now)
            assert self._values is not None
            return self._values

    def refresh(self) -> _V | None:
        now = self._monotonic()
        with self._lock:
            if now - self._refreshed_at < self._min_refresh:
                return None
            self._refreshed_at = now
            before = self._values
            self._store(self._load(True), now)
            return None if self._values == before else self._values

    def _store(self, values: _V, now: float) -> None:
        self.loads += 1
        self._values = values
        self._loaded_at = now


class AppSecrets(RotatingSecret[SecretValues]):
    """The current :class:`SecretValues` (every function's app and Redis secrets)."""

    @classmethod
    def fixed(cls, values: SecretValues) -> AppSecrets:
        return cls(lambda _force: values, max_age=float("inf"))


def app_secrets_for(settings: Settings, client_factory: Callable[[], Any]) -> AppSecrets:
    """Secrets Manager when the settings name a secret (AWS), else the settings' own values (local)."""
    if not settings.secrets_from_secrets_manager:
        return AppSecrets.fixed(values_from_settings(settings))
    return secrets_manager_secrets(settings, client_factory)


def secrets_manager_secrets(
    settings: Settings | WebhookSettings | ApiSettings, client_factory: Callable[[], Any]
) -> AppSecrets:
    """The secrets the settings name in Secrets Manager, re-read after ``secrets_max_age_seconds``."""
    max_age = settings.secrets_max_age_seconds
    loader = secrets_manager_loader(
        client_factory(),
        app_secret_id=settings.app_secrets_arn,
        redis_secret_id=settings.redis_auth_secret_arn,
        max_age=max_age,
    )
    return AppSecrets(loader, max_age=max_age)


_T = TypeVar("_T")


class PerSecretsVersion(Generic[_T]):
    """What ``build`` makes of the current secret values, rebuilt only when they change.

    ``get()`` asks ``secrets`` for its current values at every call (its own cache makes that cheap)
    and rebuilds when they differ from those of the last build: after ``max_age`` re-read brings a
    rotation, or a forced ``refresh()`` does. An unchanged re-read (an equal ``SecretValues``) keeps
    the built value. ``builds`` counts the rebuilds (tests)."""

    def __init__(self, secrets: AppSecrets, build: Callable[[SecretValues], _T]) -> None:
        self._secrets = secrets
        self._build = build
        self._lock = threading.Lock()
        self._built: tuple[SecretValues, _T] | None = None
        self.builds = 0

    def get(self) -> _T:
        values = self._secrets.get()
        with self._lock:
            built = self._built
            if built is None or (built[0] is not values and built[0] != values):
                built = (values, self._build(values))
                self._built = built
                self.builds += 1
            return built[1]


def with_fresh_retry(
    secrets: RotatingSecret[_V], use: Callable[[_V], _T], failures: tuple[type[Exception], ...]
) -> _T:
    """``use`` the current values; on one of ``failures`` re-read the secrets once and retry, unless
    the refresh brings nothing new (then the first failure stands)."""
    try:
        return use(secrets.get())
    except failures:
        fresh = secrets.refresh()
        if fresh is None:
            raise
    return use(fresh)
