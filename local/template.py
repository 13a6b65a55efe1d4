"""Read template.yaml into what the local stack needs: functions, their events, queues, the authorizer.

The template is the single source of truth for the local stack as it is for AWS: routes, batch sizes,
batching windows, visibility timeouts, delays, redrive policies and schedules are read from it, never
restated in ``local/``. Only the subset of CloudFormation the local stack needs is interpreted:

- Short tags (``!Ref``, ``!GetAtt``, ``!Sub``, ``!If``, ...) load as :class:`Tag` values through a
  ``SafeLoader`` subclass; the long forms (``{"Fn::GetAtt": ...}``) are understood too.
- ``!Ref`` to a parameter resolves to its ``Default``; ``!If`` evaluates ``Conditions`` built from
  ``Fn::Equals``/``Not``/``And``/``Or`` over those defaults; ``!Sub`` substitutes parameters and
  pseudo parameters (``AWS::StackName`` is ``replyflow``).
- Queue logical names are the part of ``QueueName`` after ``${AWS::StackName}-`` ("events-high"); a
  queue without ``QueueName`` is named from its logical id (``EventsHighQueue`` -> "events-high").
- The default authorizer comes from an ``AWS::Serverless::Api``'s ``Auth`` (or ``Globals.Api.Auth``)
  or from an ``AWS::ApiGateway::Authorizer`` resource; events with ``Auth: {Authorizer: NONE}`` are open.

Route matching follows API Gateway's resource tree: the most specific resource wins segment by
segment (literal > ``{param}`` > ``{proxy+}``), then the method (exact before ``ANY``) is looked up on
that resource only, so a path whose best resource lacks the method does not fall back to a greedy one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STACK_NAME = "replyflow"
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_MAX_RECEIVE_COUNT = 5


class TemplateError(ValueError):
    """The template cannot be read into the local stack's model."""


@dataclass(frozen=True)
class Tag:
    """A CloudFormation intrinsic function as written with a short tag: ``!GetAtt A.Arn``."""

    name: str
    value: Any


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps ``!Tag value`` nodes as :class:`Tag` instead of failing on them."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tag:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported node for !{suffix}")
    return Tag(suffix, value)


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader subclass
    if not isinstance(data, dict):
        raise TemplateError("template is not a mapping")
    return data


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ApiEvent:
    name: str
    method: str  # upper case; "ANY" matches every method
    path: str
    auth: str  # "NONE" or "default"


@dataclass(frozen=True)
class SqsEvent:
    name: str
    queue: str  # logical queue name, "events-high"
    batch_size: int
    maximum_batching_window: float  # seconds; 0 when the template sets none
    report_batch_item_failures: bool
    maximum_concurrency: int | None
    enabled: bool = True


@dataclass(frozen=True)
class ScheduleEvent:
    name: str
    expression: str  # "rate(1 hour)" or "cron(0 3 * * ? *)"
    input: Any  # the decoded Input JSON, or None
    enabled: bool = True
    timezone: str = "UTC"
    maximum_retry_attempts: int = 0


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str  # "webhook.handler.lambda_handler"
    timeout: int
    memory: int
    api_events: tuple[ApiEvent, ...] = ()
    sqs_events: tuple[SqsEvent, ...] = ()
    schedule_events: tuple[ScheduleEvent, ...] = ()
    dead_letter_queue: str | None = None  # logical queue name of an async-invocation DLQ


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    visibility_timeout: int
    delay_seconds: int
    dlq: str | None  # logical name of the dead-letter queue
    max_receive_count: int | None
    retention_seconds: int = 345600

    @property
    def arn(self) -> str:
        return queue_arn(self.name)


@dataclass(frozen=True)
class AuthorizerSpec:
    name: str
    function: str  # logical id of the authorizer function
    identity_header: str  # "Authorization"
    ttl: int
    kind: str = "REQUEST"


@dataclass(frozen=True)
class CorsSpec:
    """The API's ``Cors`` block: SAM answers ``OPTIONS`` on every resource with these headers."""

    allow_origin: str
    allow_headers: str | None
    allow_methods: str | None
    max_age: str | None

    def headers(self) -> dict[str, str]:
        found = {
            "Access-Control-Allow-Origin": self.allow_origin,
            "Access-Control-Allow-Headers": self.allow_headers,
            "Access-Control-Allow-Methods": self.allow_methods,
            "Access-Control-Max-Age": self.max_age,
        }
        return {name: value for name, value in found.items() if value}


@dataclass(frozen=True)
class Route:
    function: FunctionSpec
    event: ApiEvent
    segments: tuple[str, ...]

    @property
    def resource(self) -> str:
        return self.event.path


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


@dataclass
class SamTemplate:
    functions: dict[str, FunctionSpec]
    queues: dict[str, QueueSpec]  # by logical name
    authorizer: AuthorizerSpec | None
    routes: list[Route] = field(default_factory=list)
    cors: CorsSpec | None = None

    def function(self, logical_id: str) -> FunctionSpec:
        try:
            return self.functions[logical_id]
        except KeyError:
            raise TemplateError(f"no function {logical_id!r} in the template") from None

    def resource(self, path: str) -> tuple[list[Route], dict[str, str]] | None:
        """The routes of the resource API Gateway would pick for ``path`` (all its methods)."""
        parts = _split(path)
        best: tuple[tuple[int, ...], list[Route], dict[str, str]] | None = None
        by_resource: dict[str, list[Route]] = {}
        for route in self.routes:
            by_resource.setdefault(route.resource, []).append(route)
        for routes in by_resource.values():
            matched = _match_segments(routes[0].segments, parts)
            if matched is None:
                continue
            rank, params = matched
            if best is None or rank > best[0]:
                best = (rank, routes, params)
        return None if best is None else (best[1], best[2])

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route API Gateway would pick for ``method path``, or None (no resource or no method)."""
        found = self.resource(path)
        if found is None:
            return None
        routes, params = found
        method = method.upper()
        for wanted in (method, "ANY"):
            for route in routes:
                if route.event.method == wanted:
                    return RouteMatch(route, params)
        return None

    @property
    def dead_letter_queues(self) -> dict[str, str]:
        """DLQ logical name -> source queue logical name."""
        return {q.dlq: q.name for q in self.queues.values() if q.dlq}

    @property
    def function_dead_letter_queues(self) -> dict[str, str]:
        """Async-invocation DLQ logical name -> function logical id (``DeadLetterQueue``)."""
        return {fn.dead_letter_queue: name for name, fn in self.functions.items() if fn.dead_letter_queue}


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _match_segments(
    segments: Sequence[str], parts: Sequence[str]
) -> tuple[tuple[int, ...], dict[str, str]] | None:
    rank: list[int] = []
    params: dict[str, str] = {}
    for index, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("+}"):
            rest = parts[index:]
            if not rest:  # API Gateway's {proxy+} needs at least one segment
                return None
            params[segment[1:-2]] = "/".join(rest)
            rank.append(0)
            return tuple(rank), params
        if index >= len(parts):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = parts[index]
            rank.append(1)
        elif segment == parts[index]:
            rank.append(2)
        else:
            return None
    if len(parts) != len(segments):
        return None
    # A longer exact match beats a shorter one at equal prefix rank: add a terminal marker.
    rank.append(3)
    return tuple(rank), params


# ------------------------------------------------------------------------------------------- reading


class _Resolver:
    """Evaluates the few intrinsic functions whose value the local stack needs."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.parameters = {
            name: (spec or {}).get("Default") for name, spec in (doc.get("Parameters") or {}).items()
        }
        self.pseudo = {
            "AWS::StackName": STACK_NAME,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        self.conditions: Mapping[str, Any] = doc.get("Conditions") or {}
        self._condition_cache: dict[str, bool] = {}

    @staticmethod
    def intrinsic(value: Any) -> tuple[str, Any] | None:
        if isinstance(value, Tag):
            return value.name, value.value
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref":
                return "Ref", inner
            if key.startswith("Fn::"):
                return key[4:], inner
            if key == "Condition":
                return "Condition", inner
        return None

    def resolve(self, value: Any) -> Any:
        fn = self.intrinsic(value)
        if fn is None:
            if isinstance(value, dict):
                return {k: self.resolve(v) for k, v in value.items()}
            if isinstance(value, list):
                return [self.resolve(v) for v in value]
            return value
        name, arg = fn
        if name == "Ref":
            if arg in self.pseudo:
                return self.pseudo[arg]
            if arg in self.parameters:
                return self.parameters[arg]
            return Tag("Ref", arg)  # a resource reference: kept symbolic
        if name == "Sub":
            return self._sub(arg)
        if name == "If":
            cond, when_true, when_false = arg
            return self.resolve(when_true if self.condition(cond) else when_false)
        if name == "Condition":
            return self.condition(arg)
        if name in {"Equals", "Not", "And", "Or"}:
            return self._evaluate(name, arg)
        if name == "Join":
            sep, items = arg
            return str(sep).join(str(self.resolve(item)) for item in self.resolve(items))
        return value  # GetAtt, ImportValue, ...: symbolic

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            spec = self.conditions.get(name)
            if spec is None:
                raise TemplateError(f"unknown condition {name!r}")
            self._condition_cache[name] = bool(self.resolve(spec))
        return self._condition_cache[name]

    def _evaluate(self, name: str, arg: Any) -> bool:
        values = [self.resolve(item) for item in arg]
        if name == "Equals":
            return str(values[0]) == str(values[1])
        if name == "Not":
            return not values[0]
        if name == "And":
            return all(values)
        return any(values)

    def _sub(self, arg: Any) -> str:
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        resolved = {k: self.resolve(v) for k, v in (variables or {}).items()}

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in resolved:
                return str(resolved[key])
            if key in self.pseudo:
                return str(self.pseudo[key])
            if key in self.parameters and self.parameters[key] is not None:
                return str(self.parameters[key])
            return "${" + key + "}"

        return re.sub(r"\$\{([^}]+)\}", replace, template)


def _ref_target(value: Any) -> str | None:
    """The logical id in ``!GetAtt X.Arn``, ``!Ref X``, ``{"Fn::GetAtt": [X, "Arn"]}``, ``!Sub ${X.Arn}``."""
    fn = _Resolver.intrinsic(value)
    if fn is None:
        return value if isinstance(value, str) and value else None
    name, arg = fn
    if name == "GetAtt":
        return (arg.split(".", 1)[0] if isinstance(arg, str) else str(arg[0])) or None
    if name == "Ref":
        return str(arg)
    if name == "Sub" and isinstance(arg, str):
        found = re.search(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", arg)
        return found.group(1) if found else None
    return None


def _kebab_from_logical_id(logical_id: str) -> str:
    stem = re.sub(r"Queue$", "", logical_id)
    stem = re.sub(r"(DLQ|Dlq|DeadLetter)$", "Dlq", stem)
    return re.sub(r"(?<!^)(?=[A-Z])", "-", stem).lower()


def _as_int(value: Any, default: int) -> int:
    if value is None or isinstance(value, Tag):
        return default
    return int(value)


def _queue_name(resolver: _Resolver, logical_id: str, props: Mapping[str, Any]) -> str:
    raw = props.get("QueueName")
    if raw is None:
        return _kebab_from_logical_id(logical_id)
    name = str(resolver.resolve(raw))
    prefix = f"{STACK_NAME}-"
    if name.startswith(prefix):
        name = name[len(prefix) :]
    return name.removesuffix(".fifo")


def _parse_queues(resolver: _Resolver, resources: Mapping[str, Any]) -> dict[str, QueueSpec]:
    names: dict[str, str] = {}
    raw: dict[str, Mapping[str, Any]] = {}
    for logical_id, resource in resources.items():
        if (resource or {}).get("Type") == "AWS::SQS::Queue":
            props = resource.get("Properties") or {}
            raw[logical_id] = props
            names[logical_id] = _queue_name(resolver, logical_id, props)
    queues: dict[str, QueueSpec] = {}
    for logical_id, props in raw.items():
        dlq: str | None = None
        max_receive: int | None = None
        policy = resolver.resolve(props.get("RedrivePolicy"))
        if isinstance(policy, str):
            policy = json.loads(policy)
        if isinstance(policy, dict):
            target = _ref_target(policy.get("deadLetterTargetArn"))
            if target is None or target not in names:
                raise TemplateError(f"{logical_id}: RedrivePolicy target {target!r} is not a queue here")
            dlq = names[target]
            max_receive = _as_int(policy.get("maxReceiveCount"), DEFAULT_MAX_RECEIVE_COUNT)
        name = names[logical_id]
        queues[name] = QueueSpec(
            logical_id=logical_id,
            name=name,
            visibility_timeout=_as_int(
                resolver.resolve(props.get("VisibilityTimeout")), DEFAULT_VISIBILITY_TIMEOUT
            ),
            delay_seconds=_as_int(resolver.resolve(props.get("DelaySeconds")), 0),
            dlq=dlq,
            max_receive_count=max_receive,
            retention_seconds=_as_int(resolver.resolve(props.get("MessageRetentionPeriod")), 345600),
        )
    return queues


def _identity_header(source: Any) -> str | None:
    if isinstance(source, list):
        source = source[0] if source else None
    if not isinstance(source, str):
        return None
    first = source.split(",")[0].strip()
    prefix = "method.request.header."
    return first[len(prefix) :] if first.startswith(prefix) else None


def _parse_authorizer(
    resolver: _Resolver, doc: Mapping[str, Any], resources: Mapping[str, Any]
) -> AuthorizerSpec | None:
    """A SAM ``Auth.DefaultAuthorizer`` (an Api's, then ``Globals.Api``'s) wins over a raw
    ``AWS::ApiGateway::Authorizer`` resource."""
    auth_blocks: list[Mapping[str, Any]] = [
        auth
        for resource in resources.values()
        if (resource or {}).get("Type") == "AWS::Serverless::Api"
        and (auth := (resource.get("Properties") or {}).get("Auth"))
    ]
    global_auth = (((doc.get("Globals") or {}).get("Api")) or {}).get("Auth")
    if global_auth:
        auth_blocks.append(global_auth)
    for auth in auth_blocks:
        spec = _sam_default_authorizer(resolver.resolve(auth))
        if spec is not None:
            return spec
    for logical_id, resource in resources.items():
        if (resource or {}).get("Type") == "AWS::ApiGateway::Authorizer":
            return _apigateway_authorizer(logical_id, resolver.resolve(resource.get("Properties") or {}))
    return None


def _sam_default_authorizer(auth: Mapping[str, Any]) -> AuthorizerSpec | None:
    default = auth.get("DefaultAuthorizer")
    authorizers = auth.get("Authorizers") or {}
    if not default or default not in authorizers:
        return None
    spec = authorizers[default]
    function = _ref_target(spec.get("FunctionArn"))
    if function is None:
        raise TemplateError(f"authorizer {default}: FunctionArn does not name a function")
    identity = spec.get("Identity") or {}
    kind = str(spec.get("FunctionPayloadType", "TOKEN")).upper()
    headers = identity.get("Headers") or ["Authorization"]
    header = identity.get("Header", "Authorization") if kind == "TOKEN" else headers[0]
    return AuthorizerSpec(
        name=default,
        function=function,
        identity_header=header,
        ttl=_as_int(identity.get("ReauthorizeEvery"), 300),
        kind=kind,
    )


def _apigateway_authorizer(logical_id: str, props: Mapping[str, Any]) -> AuthorizerSpec:
    uri = props.get("AuthorizerUri")
    function = _ref_target(uri)
    if isinstance(uri, Tag | dict) or function is None:
        function = _function_in_uri(uri)
    if function is None:
        raise TemplateError(f"{logical_id}: AuthorizerUri does not name a function")
    return AuthorizerSpec(
        name=logical_id,
        function=function,
        identity_header=_identity_header(props.get("IdentitySource")) or "Authorization",
        ttl=_as_int(props.get("AuthorizerResultTtlInSeconds"), 300),
        kind=str(props.get("Type", "REQUEST")).upper(),
    )


def _unquote(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text


def _parse_cors(resolver: _Resolver, doc: Mapping[str, Any], resources: Mapping[str, Any]) -> CorsSpec | None:
    blocks = [
        (resource.get("Properties") or {}).get("Cors")
        for resource in resources.values()
        if (resource or {}).get("Type") == "AWS::Serverless::Api"
    ]
    blocks.append((((doc.get("Globals") or {}).get("Api")) or {}).get("Cors"))
    for block in blocks:
        cors = resolver.resolve(block)
        if isinstance(cors, str):
            return CorsSpec(_unquote(cors) or "*", None, None, None)
        if isinstance(cors, dict) and cors.get("AllowOrigin"):
            return CorsSpec(
                allow_origin=_unquote(cors["AllowOrigin"]) or "*",
                allow_headers=_unquote(cors.get("AllowHeaders")),
                allow_methods=_unquote(cors.get("AllowMethods")),
                max_age=_unquote(cors.get("MaxAge")),
            )
    return None


def _function_in_uri(uri: Any) -> str | None:
    text = json.dumps(uri, default=lambda o: {"tag": o.name, "value": o.value})
    found = re.search(r"\$\{([A-Za-z0-9]+Function)\.Arn\}|\"([A-Za-z0-9]+Function)\.Arn\"", text)
    if found:
        return found.group(1) or found.group(2)
    return None


def _decode_input(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise TemplateError(f"schedule Input is not JSON: {value!r}") from error
    return value


def _parse_function(
    resolver: _Resolver,
    logical_id: str,
    props: Mapping[str, Any],
    globals_: Mapping[str, Any],
    queue_names: Mapping[str, str],
) -> FunctionSpec:
    merged = {**globals_, **props}
    handler = resolver.resolve(merged.get("Handler"))
    if not isinstance(handler, str):
        raise TemplateError(f"{logical_id}: Handler is missing")
    api: list[ApiEvent] = []
    sqs: list[SqsEvent] = []
    schedules: list[ScheduleEvent] = []
    for event_name, event in (props.get("Events") or {}).items():
        kind = event.get("Type")
        ep = resolver.resolve(event.get("Properties") or {})
        if kind == "Api":
            api.append(_api_event(event_name, ep))
        elif kind == "SQS":
            target = _ref_target(event.get("Properties", {}).get("Queue"))
            if target is None or target not in queue_names:
                raise TemplateError(f"{logical_id}.{event_name}: Queue {target!r} is not a queue here")
            sqs.append(_sqs_event(event_name, ep, queue_names[target]))
        elif kind in {"ScheduleV2", "Schedule"}:
            schedules.append(_schedule_event(event_name, ep))
    return FunctionSpec(
        logical_id=logical_id,
        handler=handler,
        timeout=_as_int(resolver.resolve(merged.get("Timeout")), DEFAULT_TIMEOUT),
        memory=_as_int(resolver.resolve(merged.get("MemorySize")), DEFAULT_MEMORY),
        api_events=tuple(api),
        sqs_events=tuple(sqs),
        schedule_events=tuple(schedules),
        dead_letter_queue=_dead_letter_queue(logical_id, props.get("DeadLetterQueue"), queue_names),
    )


def _api_event(name: str, ep: Mapping[str, Any]) -> ApiEvent:
    auth = (ep.get("Auth") or {}).get("Authorizer")
    return ApiEvent(
        name=name,
        method=str(ep["Method"]).upper(),
        path=str(ep["Path"]),
        auth="NONE" if isinstance(auth, str) and auth.upper() == "NONE" else "default",
    )


def _sqs_event(name: str, ep: Mapping[str, Any], queue: str) -> SqsEvent:
    scaling = ep.get("ScalingConfig") or {}
    return SqsEvent(
        name=name,
        queue=queue,
        batch_size=_as_int(ep.get("BatchSize"), 10),
        maximum_batching_window=float(_as_int(ep.get("MaximumBatchingWindowInSeconds"), 0)),
        report_batch_item_failures="ReportBatchItemFailures" in (ep.get("FunctionResponseTypes") or []),
        maximum_concurrency=_as_int(scaling.get("MaximumConcurrency"), 0) or None,
        enabled=ep.get("Enabled", True) is not False,
    )


def _schedule_event(name: str, ep: Mapping[str, Any]) -> ScheduleEvent:
    state = str(ep.get("State") or "ENABLED").upper()
    return ScheduleEvent(
        name=str(ep.get("Name") or name),
        expression=str(ep["ScheduleExpression"]),
        input=_decode_input(ep.get("Input")),
        enabled=ep.get("Enabled", True) is not False and state == "ENABLED",
        timezone=str(ep.get("ScheduleExpressionTimezone") or "UTC"),
        maximum_retry_attempts=_as_int((ep.get("RetryPolicy") or {}).get("MaximumRetryAttempts"), 0),
    )


def _dead_letter_queue(logical_id: str, config: Any, queue_names: Mapping[str, str]) -> str | None:
    """The logical queue name of a function's async-invocation DLQ (``DeadLetterQueue: {Type: SQS}``)."""
    if not isinstance(config, dict) or str(config.get("Type", "")).upper() != "SQS":
        return None
    target = _ref_target(config.get("TargetArn"))
    if target is None or target not in queue_names:
        raise TemplateError(f"{logical_id}: DeadLetterQueue {target!r} is not a queue here")
    return queue_names[target]


def parse_template(text: str) -> SamTemplate:
    doc = load_yaml(text)
    resolver = _Resolver(doc)
    resources: Mapping[str, Any] = doc.get("Resources") or {}
    queues = _parse_queues(resolver, resources)
    queue_names = {spec.logical_id: name for name, spec in queues.items()}
    globals_fn = ((doc.get("Globals") or {}).get("Function")) or {}
    functions: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources.items():
        if (resource or {}).get("Type") == "AWS::Serverless::Function":
            functions[logical_id] = _parse_function(
                resolver, logical_id, resource.get("Properties") or {}, globals_fn, queue_names
            )
    authorizer = _parse_authorizer(resolver, doc, resources)
    if authorizer is not None and authorizer.function not in functions:
        raise TemplateError(f"authorizer function {authorizer.function!r} is not in the template")
    routes = [
        Route(function=fn, event=event, segments=tuple(_split(event.path)))
        for fn in functions.values()
        for event in fn.api_events
    ]
    return SamTemplate(
        functions=functions,
        queues=queues,
        authorizer=authorizer,
        routes=routes,
        cors=_parse_cors(resolver, doc, resources),
    )


def default_template_path() -> Path:
    return Path(__file__).resolve().parent.parent / "template.yaml"


def load_template(path: str | Path | None = None) -> SamTemplate:
    source = Path(path) if path is not None else default_template_path()
    try:
        text = source.read_text()
    except FileNotFoundError:
        raise TemplateError(f"{source} does not exist") from None
    return parse_template(text)
