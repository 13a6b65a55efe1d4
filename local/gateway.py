"""API Gateway (REST, Lambda proxy) in front of the template's functions, on one local port.

:meth:`LocalGateway.handle` is the whole gateway as a function of an :class:`HttpRequest` (unit tests call
it with no sockets); :class:`GatewayServer` is the stdlib ``ThreadingHTTPServer`` adapter around it.

Per request, as API Gateway does:

1. Pick the resource by the most specific path (``SamTemplate.resource``), then the method on it
   (exact, then ``ANY``). ``OPTIONS`` on a resource of an API with ``Cors`` is the preflight mock
   SAM adds, answered here without the authorizer. No resource or no method: 404 (API Gateway says
   403 "Missing Authentication Token", which misleads more than it helps locally).
2. Default-authorizer routes run the REQUEST authorizer: a missing identity header is 401 without a
   call; an exception whose message is ``Unauthorized`` is 401; any other failure is 500; the
   returned policy is evaluated against this request's ``methodArn`` (Deny wins, no Allow is 403)
   and cached per identity-header value for the authorizer's TTL. Note the cache holds the *policy*:
   a policy naming only the first route's ARN denies the next route, exactly as in AWS.
3. The proxy event (version 1.0) carries the raw body as UTF-8 text when it decodes, else base64
   with ``isBase64Encoded``, so a webhook's HMAC over the raw bytes verifies.
4. The proxy response is written back (``multiValueHeaders`` merged over ``headers``, base64 bodies
   decoded; a 204 or 304 goes out with no body and no ``Content-Length``, whatever the function
   returned); a handler exception or a malformed response is a 502, logged with the traceback.

At the HTTP edge, before any of that: a method API Gateway does not know (``FOO``) is 405 with
``Allow``; a body over :data:`MAX_BODY_BYTES` (API Gateway's 10 MB quota) is 413 and is not read, so
the connection closes; a bad ``Content-Length`` or chunk size is 400.

Log lines name a request by its path and query with the values of credential-bearing parameters
(:data:`REDACTED_PARAMS`: OAuth codes and state, the webhook verify token, tokens, secrets) replaced.

Gateway-made errors use the project's one error shape ``{"error": {"code", "message", "details"}}``.
``/_local/...`` routes are local-only controls and never reach a function: ``GET /_local/queues``,
``POST /_local/queues/{queue}/messages[?delay=N]`` (send a raw body), ``GET /_local/idle?timeout=S``,
``GET /_local/dlq/{queue}``, ``POST /_local/dlq/{queue}/redrive``, ``GET /_local/metrics``,
``GET /_local/jobs`` (the job names) and ``POST /_local/jobs/{name}[?deadline=S]``: run one scheduled job
now, inside the stack (its broker, sandbox and caches), and answer its summary (``replyflow jobs run``
uses this when a stack is running), and
``GET /_local/outbox[?to=EMAIL&limit=N]`` (the emails the stack sent; ``DELETE`` empties it).

With a :class:`~local.static_site.StaticSite` (the console's ``dist/``), a ``GET``/``HEAD`` no route
claims, outside ``/v1/``, ``/webhooks/`` and ``/_local/``, is a console file or its ``index.html``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from local import metrics_store
from local.broker import Broker, QueueNotFoundError
from local.http_handler import DispatchingHandler
from local.http_server import AppHTTPServer, BackgroundServer
from local.lambda_context import LambdaFunction
from local.static_site import StaticSite
from local.template import ACCOUNT_ID, REGION, AuthorizerSpec, RouteMatch, SamTemplate
from replyflow.adapters.mail_outbox import OutboxMailer

if TYPE_CHECKING:
    from replyflow.wiring.jobs import JobsDeps

log = logging.getLogger("local.gateway")

API_ID = "local"
STAGE = "local"
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
# The methods API Gateway knows; it refuses any other before a resource is looked at.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# API Gateway's payload quota; a larger request is refused before it is read.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Statuses that never carry a body (RFC 9110 6.4.1): one written anyway desyncs a keep-alive client.
NO_BODY_STATUSES = frozenset({204, 304})
REDACTED_PARAMS = frozenset({"code", "state", "hub.verify_token", "access_token", "client_secret", "token"})


def redacted_target(target: str) -> str:
    """``target`` for a log line: the values of :data:`REDACTED_PARAMS` (any case) replaced."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    fields = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        redact = eq and unquote_plus(name).lower() in REDACTED_PARAMS
        fields.append(f"{name}=REDACTED" if redact else pair)
    return f"{path}?{'&'.join(fields)}"


@dataclass
class HttpRequest:
    method: str
    target: str  # path and query as sent: "/v1/plans?x=1"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.target).path) or "/"

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        found = [value for key, value in self.headers if key.lower() == lowered]
        return found[-1] if found else None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def error_response(
    status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()
) -> HttpResponse:
    body = json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()
    return HttpResponse(status, [("Content-Type", "application/json"), *headers], body)


def json_response(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


class AuthorizerFailure(Exception):
    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _CachedPolicy:
    expires_at: float
    principal_id: str
    statements: list[dict[str, Any]]
    context: dict[str, str]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def policy_allows(statements: Sequence[Mapping[str, Any]], method_arn: str) -> bool:
    """IAM evaluation for one ``execute-api:Invoke`` on ``method_arn``: explicit Deny wins."""
    allowed = False
    for statement in statements:
        actions = [str(a) for a in _as_list(statement.get("Action"))]
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", pattern) for pattern in actions):
            continue
        resources = [str(r) for r in _as_list(statement.get("Resource"))]
        if not any(fnmatch.fnmatchcase(method_arn, pattern) for pattern in resources):
            continue
        effect = str(statement.get("Effect", "")).capitalize()
        if effect == "Deny":
            return False
        if effect == "Allow":
            allowed = True
    return allowed


def _stringify_context(context: Any) -> dict[str, str]:
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise ValueError("authorizer context must be an object")
    out: dict[str, str] = {}
    for key, value in context.items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[str(key)] = str(value)
        elif value is None:
            continue
        else:
            raise ValueError(f"authorizer context value {key!r} is not a string, number or boolean")
    return out


class LocalGateway:
    def __init__(
        self,
        template: SamTemplate,
        functions: Mapping[str, LambdaFunction],
        *,
        broker: Broker | None = None,
        outbox: OutboxMailer | None = None,
        jobs: JobsDeps | None = None,
        site: StaticSite | None = None,
        stage: str = STAGE,
        host_header: str = "127.0.0.1:3000",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.template = template
        self.functions = functions
        self.broker = broker
        self.outbox = outbox
        self.jobs = jobs
        self.site = site
        self.stage = stage
        self.host_header = host_header
        self._clock = clock
        self._cache: dict[str, _CachedPolicy] = {}
        self._cache_lock = threading.Lock()
        self._gateway_headers: list[tuple[str, str]] = (
            [("Access-Control-Allow-Origin", template.cors.allow_origin)] if template.cors else []
        )

    # --------------------------------------------------------------------------------- dispatch

    def handle(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        try:
            response = self._handle(request)
        except Exception:
            log.exception("gateway error on %s %s", request.method, redacted_target(request.target))
            response = self._error(500, "internal_error", "The local gateway failed; see its log")
        log.info(
            "%s %s -> %d (%.1f ms)",
            request.method,
            redacted_target(request.target),
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _error(self, status: int, code: str, message: str) -> HttpResponse:
        extra = [*self._gateway_headers, ("X-Content-Type-Options", "nosniff")]
        if status == 401:
            extra.append(("WWW-Authenticate", "Bearer"))
        return error_response(status, code, message, extra)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        method = request.method.upper()
        if method not in HTTP_METHODS:
            allow = [("Allow", ", ".join(sorted(HTTP_METHODS)))]
            return error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not an HTTP method this API serves",
                [*self._gateway_headers, *allow],
            )
        path = request.path
        if path == "/_local" or path.startswith("/_local/"):
            return self._control(request)
        if method == "OPTIONS" and self.template.cors is not None:
            found = self.template.resource(path)
            if found is not None:
                return HttpResponse(200, list(self.template.cors.headers().items()))
        match = self.template.match(method, path)
        if match is None and self.site is not None and self.site.claims(method, path):
            page = self.site.serve(path)
            return HttpResponse(page.status, page.headers, b"" if method == "HEAD" else page.body)
        if match is None:
            return self._error(404, "not_found", f"No route for {method} {path}")
        function = self.functions.get(match.route.function.logical_id)
        if function is None:
            return self._error(502, "internal_error", f"{match.route.function.logical_id} is not loaded")
        request_context = self._request_context(request, match)
        if match.route.event.auth == "default" and self.template.authorizer is not None:
            try:
                request_context["authorizer"] = self._authorize(
                    self.template.authorizer, request, match, request_context
                )
            except AuthorizerFailure as failure:
                return failure.response
        event = self.proxy_event(request, match, request_context)
        try:
            result = function.invoke(event)
        except Exception:
            log.exception("%s raised on %s %s", function.name, method, redacted_target(request.target))
            return self._error(502, "internal_error", f"{function.name} failed; see the local stack log")
        try:
            return self.proxy_response(result)
        except ValueError as error:
            log.error("%s returned a malformed proxy response: %s", function.name, error)
            return self._error(502, "internal_error", f"{function.name} returned a malformed response")

    # ------------------------------------------------------------------------------ the events

    def _method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{self.stage}/{method}{path}"

    def _request_context(self, request: HttpRequest, match: RouteMatch) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": request.header("Host") or self.host_header,
            "domainPrefix": API_ID,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "httpMethod": request.method.upper(),
            "identity": {
                "accountId": None,
                "apiKey": None,
                "caller": None,
                "cognitoIdentityId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": request.header("User-Agent"),
                "userArn": None,
            },
            "path": f"/{self.stage}{request.path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": match.route.resource,
            "resourcePath": match.route.resource,
            "stage": self.stage,
        }

    @staticmethod
    def _headers(request: HttpRequest) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
        if not request.headers:
            return None, None
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        return single, multi

    @staticmethod
    def _query(request: HttpRequest) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
        pairs = request.query
        if not pairs:
            return None, None
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in pairs:
            single[name] = value
            multi.setdefault(name, []).append(value)
        return single, multi

    def proxy_event(
        self, request: HttpRequest, match: RouteMatch, request_context: dict[str, Any]
    ) -> dict[str, Any]:
        headers, multi_headers = self._headers(request)
        query, multi_query = self._query(request)
        body: str | None
        is_base64 = False
        if not request.body:
            body = None
        else:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                body = base64.b64encode(request.body).decode("ascii")
                is_base64 = True
        return {
            "resource": match.route.resource,
            "path": request.path,
            "httpMethod": request.method.upper(),
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": dict(match.path_parameters) or None,
            "stageVariables": None,
            "requestContext": request_context,
            "body": body,
            "isBase64Encoded": is_base64,
        }

    def authorizer_event(
        self, request: HttpRequest, match: RouteMatch, request_context: dict[str, Any]
    ) -> dict[str, Any]:
        headers, multi_headers = self._headers(request)
        query, multi_query = self._query(request)
        return {
            "type": "REQUEST",
            "methodArn": self._method_arn(request.method.upper(), request.path),
            "resource": match.route.resource,
            "path": request.path,
            "httpMethod": request.method.upper(),
            "headers": headers or {},
            "multiValueHeaders": multi_headers or {},
            "queryStringParameters": query or {},
            "multiValueQueryStringParameters": multi_query or {},
            "pathParameters": dict(match.path_parameters),
            "stageVariables": {},
            "requestContext": dict(request_context),
        }

    # ----------------------------------------------------------------------------- authorizer

    def _authorize(
        self,
        spec: AuthorizerSpec,
        request: HttpRequest,
        match: RouteMatch,
        request_context: dict[str, Any],
    ) -> dict[str, Any]:
        identity = request.header(spec.identity_header)
        if not identity:
            raise AuthorizerFailure(self._error(401, "unauthorized", "Missing or invalid credentials"))
        method_arn = self._method_arn(request.method.upper(), request.path)
        started = time.monotonic()
        cached = self._cached(identity)
        if cached is None:
            cached = self._call_authorizer(spec, request, match, request_context)
            if spec.ttl > 0:
                with self._cache_lock:
                    self._cache[identity] = cached
        if not policy_allows(cached.statements, method_arn):
            raise AuthorizerFailure(self._error(403, "forbidden", "Access denied"))
        return {
            **cached.context,
            "principalId": cached.principal_id,
            "integrationLatency": int((time.monotonic() - started) * 1000),
        }

    def _cached(self, identity: str) -> _CachedPolicy | None:
        with self._cache_lock:
            cached = self._cache.get(identity)
            if cached is not None and cached.expires_at <= self._clock():
                del self._cache[identity]
                return None
            return cached

    def _call_authorizer(
        self,
        spec: AuthorizerSpec,
        request: HttpRequest,
        match: RouteMatch,
        request_context: dict[str, Any],
    ) -> _CachedPolicy:
        function = self.functions.get(spec.function)
        if function is None:
            raise AuthorizerFailure(self._error(500, "internal_error", f"{spec.function} is not loaded"))
        event = self.authorizer_event(request, match, request_context)
        try:
            result = function.invoke(event)
        except Exception as error:
            if str(error) == "Unauthorized":
                raise AuthorizerFailure(
                    self._error(401, "unauthorized", "Missing or invalid credentials")
                ) from None
            log.exception("authorizer %s failed", spec.function)
            raise AuthorizerFailure(
                self._error(500, "internal_error", "The authorizer failed; see the local stack log")
            ) from None
        try:
            if not isinstance(result, dict):
                raise ValueError("the authorizer must return an object")
            principal = result.get("principalId")
            document = result.get("policyDocument")
            if not principal or not isinstance(document, dict):
                raise ValueError("principalId and policyDocument are required")
            statements = [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]
            context = _stringify_context(result.get("context"))
        except ValueError as error:
            log.error("authorizer %s returned an invalid response: %s", spec.function, error)
            raise AuthorizerFailure(
                self._error(500, "internal_error", "The authorizer returned an invalid response")
            ) from None
        return _CachedPolicy(self._clock() + spec.ttl, str(principal), statements, context)

    def clear_authorizer_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # ------------------------------------------------------------------------------- response

    @staticmethod
    def proxy_response(result: Any) -> HttpResponse:
        if not isinstance(result, dict):
            raise ValueError(f"expected an object, got {type(result).__name__}")
        status = result.get("statusCode")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"statusCode {status!r} is not an HTTP status")
        merged: dict[str, list[str]] = {}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            merged[str(name)] = [str(v) for v in _as_list(values)]
        for name, value in (result.get("headers") or {}).items():
            if str(name) not in merged:
                merged[str(name)] = [str(value)]
        headers = [
            (name, value)
            for name, values in merged.items()
            if name.lower() not in HOP_BY_HOP
            for value in values
        ]
        raw = result.get("body")
        if raw is None or status in NO_BODY_STATUSES:
            body = b""
        elif not isinstance(raw, str):
            raise ValueError("body must be a string")
        elif result.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw, validate=True)
            except binascii.Error as error:
                raise ValueError("isBase64Encoded body is not base64") from error
        else:
            body = raw.encode("utf-8")
        return HttpResponse(status, headers, body)

    # ------------------------------------------------------------------------- local controls

    def _control(self, request: HttpRequest) -> HttpResponse:
        parts = [p for p in request.path.split("/") if p][1:]
        method = request.method.upper()
        if parts == ["metrics"] and method == "GET":
            return json_response(200, {"metrics": metrics_store.snapshot()})
        if parts and parts[0] == "jobs":
            return self._jobs(parts[1:], method, request)
        if parts == ["outbox"]:
            return self._outbox(request, method)
        if self.broker is None:
            return self._error(404, "not_found", "No broker in this gateway")
        try:
            response = self._broker_control(self.broker, request, *_control_route(method, parts))
        except QueueNotFoundError as error:
            return self._error(404, "not_found", str(error.args[0]))
        except (ValueError, UnicodeDecodeError) as error:
            return self._error(400, "bad_request", str(error))
        return response or self._error(404, "not_found", f"No local control route {method} {request.path}")

    @staticmethod
    def _broker_control(broker: Broker, request: HttpRequest, route: str, queue: str) -> HttpResponse | None:
        query = dict(request.query)
        if route == "GET queues":
            return json_response(200, {"queues": broker.stats(), "idle": broker.is_idle()})
        if route == "POST queues/{}/messages":
            delay = query.get("delay")
            message_id = broker.send_message(
                queue, request.body.decode("utf-8"), delay_seconds=int(delay) if delay is not None else None
            )
            return json_response(200, {"queue": queue, "messageId": message_id})
        if route == "GET idle":
            timeout = float(query.get("timeout", "30"))
            return json_response(200, {"idle": broker.wait_idle(min(timeout, 300.0))})
        if route == "GET dlq/{}":
            return json_response(200, {"queue": queue, "messages": broker.dlq_messages(queue)})
        if route == "POST dlq/{}/redrive":
            return json_response(200, {"queue": queue, "moved": broker.redrive(queue)})
        return None

    def _jobs(self, parts: list[str], method: str, request: HttpRequest) -> HttpResponse:
        from replyflow.wiring import jobs

        if self.jobs is None:
            return self._error(404, "not_found", "No scheduled jobs in this gateway")
        if not parts and method == "GET":
            return json_response(200, {"jobs": list(jobs.JOB_NAMES)})
        if len(parts) != 1 or method != "POST":
            return self._error(404, "not_found", f"No local control route {method} {request.path}")
        name = parts[0]
        if name not in jobs.JOB_NAMES:
            return self._error(
                404, "unknown_job", f"unknown job {name!r}; known: {', '.join(jobs.JOB_NAMES)}"
            )
        raw = dict(request.query).get("deadline")
        try:
            deadline = float(raw) if raw is not None else None
        except ValueError:
            return self._error(400, "bad_request", "deadline must be a number of seconds")
        try:
            summary = jobs.run(self.jobs, name, deadline_seconds=deadline)
        except Exception as error:  # the job logged its traceback; the caller gets one line
            return self._error(500, "job_failed", f"job {name} failed: {type(error).__name__}: {error}")
        return json_response(200, {"summary": summary})

    def _outbox(self, request: HttpRequest, method: str) -> HttpResponse:
        if self.outbox is None:
            return self._error(404, "not_found", "No outbox in this gateway (MAIL_FROM sends through SES)")
        if method == "DELETE":
            return json_response(200, {"deleted": self.outbox.clear()})
        if method != "GET":
            return self._error(405, "method_not_allowed", "GET or DELETE /_local/outbox")
        query = dict(request.query)
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            return self._error(400, "bad_request", "limit must be a number")
        return json_response(200, {"messages": self.outbox.messages(to=query.get("to"), limit=limit)})


def _control_route(method: str, parts: list[str]) -> tuple[str, str]:
    """``POST`` + ``["dlq", "events-high", "redrive"]`` -> ``("POST dlq/{}/redrive", "events-high")``."""
    if len(parts) < 2:
        return f"{method} {'/'.join(parts)}", ""
    rest = "/".join(parts[2:])
    return f"{method} {parts[0]}/{{}}{'/' + rest if rest else ''}", parts[1]


# ------------------------------------------------------------------------------------ HTTP server


class _BodyTooLarge(Exception):
    pass


class _GatewayHandler(DispatchingHandler):
    server_version = "ReplyflowLocalGateway/1.0"

    def _dispatch(self) -> None:
        gateway: LocalGateway = cast(AppHTTPServer, self.server).app
        try:
            body = self._read_body()
        except ValueError as error:
            self.close_connection = True
            self._write(error_response(400, "bad_request", str(error)))
            return
        except _BodyTooLarge:
            # The rest of the body is never read, so the connection cannot carry another request.
            self.close_connection = True
            message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
            self._write(error_response(413, "payload_too_large", message))
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        self._write(gateway.handle(request))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
                size = int(size_line, 16)
                if size < 0:
                    raise ValueError("bad chunk size")
                if size + sum(map(len, chunks)) > MAX_BODY_BYTES:
                    raise _BodyTooLarge
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.isascii() or not length.isdigit():
            raise ValueError("bad Content-Length")
        if int(length) > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(int(length))

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        if response.status not in NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.status not in NO_BODY_STATUSES:
            self.wfile.write(response.body)


class GatewayServer(BackgroundServer):
    handler = _GatewayHandler
    thread_name = "gateway"
    poll_interval_s = 0.1
    backlog = 256

    def __init__(self, gateway: LocalGateway, host: str = "127.0.0.1", port: int = 3000) -> None:
        super().__init__(host, port)
        self.gateway = gateway

    def _app(self) -> LocalGateway:
        return self.gateway

    def _bound(self) -> None:
        self.gateway.host_header = f"{self.host}:{self.port}"
        log.info("gateway listening on %s", self.url)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
