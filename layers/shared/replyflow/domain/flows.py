"""A flow: a versioned graph of steps, validated against Instagram's rules before it can run.

A version's graph is immutable JSON (``flow_versions.graph``) read through :class:`FlowGraph`.
Step kinds (``kind``):

- ``send``: a message (text <= 1000 bytes, <= 3 ``web_url``/``postback`` buttons, <= 13 quick
  replies, a generic template of <= 10 cards, or an image), then ``next``;
- ``wait``: wait for the person: a button tap or quick reply whose payload is a key of ``routes``,
  or any text (``on_text``); ``timeout_minutes`` later ``on_timeout`` runs;
- ``condition``: ``follows`` (the account), ``has_tag``, ``field_present``, ``field_matches``
  (a regular expression), ``random`` (an A/B split, ``percent`` to ``then``); ``then`` / ``else``;
- ``delay``: ``minutes`` later, ``next``;
- ``capture``: read an email or a phone number from the inbound message that woke the run (a quick
  reply's payload, or its text), store it on the contact; ``next`` / ``on_invalid``;
- ``tag`` / ``untag``, ``set_field``: change the contact, then ``next``;
- ``public_reply``: a text reply to the triggering comment, then ``next``.
A missing ``next`` ends the run (``completed``).

:func:`validate_graph` refuses what could break a rule at run time, each issue naming the step and
the rule (:class:`FlowIssue`):
- every ``next`` / branch names a step; every step is reachable from ``start``;
- every cycle passes through a ``wait`` or a ``delay`` (a loop never spins within one advance);
- **the window**: a comment-started flow may send one private reply before the person answers,
  nothing else; after an answer, every send must be within 24 h of it on every path, counting the
  delays and wait timeouts in between (the worst case over all paths, loops included);
- a ``public_reply`` needs a comment trigger; a ``capture`` must follow a ``wait`` directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from pydantic import ValidationError as PydanticValidationError

from replyflow.domain.contact_fields import ContactFieldError, parse_field, validate_key, validate_tag
from replyflow.domain.templates import MAX_TEXT_BYTES, Button, QuickReply
from replyflow.errors import ValidationError

MAX_CARDS = 10
MAX_STEPS = 200
WINDOW_MINUTES = 24 * 60
# A run executes at most this many steps for one stimulus: the validator refuses loops without a
# wait, so this only guards against a graph that was never validated.
MAX_STEPS_PER_ADVANCE = 50

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Entry = Literal["comment", "message"]
# The entry a trigger's events give the flow they start: a comment allows one private reply and then
# waits for an answer; every other trigger is a message of the person, so the 24 h window is open.
TRIGGER_ENTRY: dict[str, Entry] = {
    "comment": "comment",
    "live_comment": "comment",
    "dm_keyword": "message",
    "story_mention": "message",
    "story_reply": "message",
    "postback": "message",
    "quick_reply": "message",
}


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StepId


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=80)
    subtitle: str | None = Field(default=None, max_length=80)
    image_url: HttpUrl | None = None
    buttons: list[Button] = Field(default_factory=list, max_length=3)


class MessageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    buttons: list[Button] = Field(default_factory=list, max_length=3)
    quick_replies: list[QuickReply] = Field(default_factory=list, max_length=13)
    cards: list[Card] = Field(default_factory=list, max_length=MAX_CARDS)
    image_url: HttpUrl | None = None

    @field_validator("text")
    @classmethod
    def _text_bytes(cls, text: str | None) -> str | None:
        if text is not None and len(text.encode()) > MAX_TEXT_BYTES:
            raise ValueError(f"text is {len(text.encode())} bytes of UTF-8; at most {MAX_TEXT_BYTES}")
        return text

    def shape_issue(self) -> str | None:
        bodies = sum(1 for present in (self.text, self.cards, self.image_url) if present)
        if bodies != 1:
            return "a message has exactly one of text, cards or image_url"
        if self.buttons and not self.text:
            return "buttons need a text"
        return None

    def to_message(self) -> dict[str, Any]:
        """The Send API ``message`` object."""
        message: dict[str, Any]
        if self.cards:
            elements = []
            for card in self.cards:
                element: dict[str, Any] = {"title": card.title}
                if card.subtitle:
                    element["subtitle"] = card.subtitle
                if card.image_url:
                    element["image_url"] = str(card.image_url)
                if card.buttons:
                    element["buttons"] = [_button(b) for b in card.buttons]
                elements.append(element)
            message = {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": elements},
                }
            }
        elif self.image_url:
            message = {"attachment": {"type": "image", "payload": {"url": str(self.image_url)}}}
        elif self.buttons:
            message = {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": self.text,
                        "buttons": [_button(b) for b in self.buttons],
                    },
                }
            }
        else:
            message = {"text": self.text}
        if self.quick_replies:
            message["quick_replies"] = [qr.model_dump(exclude_none=True) for qr in self.quick_replies]
        return message


def _button(button: Button) -> dict[str, Any]:
    if button.type == "web_url":
        return {"type": "web_url", "title": button.title, "url": str(button.url)}
    return {"type": "postback", "title": button.title, "payload": button.payload}


class MessageStep(_Step):
    kind: Literal["send"]
    message: MessageSpec
    next: StepId | None = None


class WaitStep(_Step):
    kind: Literal["wait"]
    routes: dict[str, StepId] = Field(default_factory=dict)  # button / quick-reply payload -> step
    on_text: StepId | None = None
    timeout_minutes: int = Field(default=60, ge=1, le=WINDOW_MINUTES)
    on_timeout: StepId | None = None


class ConditionStep(_Step):
    kind: Literal["condition"]
    test: Literal["follows", "has_tag", "field_present", "field_matches", "random"]
    tag: str | None = None
    field: str | None = None
    pattern: str | None = None
    percent: int = Field(default=50, ge=0, le=100)
    then: StepId | None = None
    otherwise: StepId | None = Field(default=None, alias="else")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DelayStep(_Step):
    kind: Literal["delay"]
    minutes: int = Field(ge=1, le=WINDOW_MINUTES)
    next: StepId | None = None


class CaptureStep(_Step):
    kind: Literal["capture"]
    field: Literal["email", "phone"]
    next: StepId | None = None
    on_invalid: StepId | None = None


class TagStep(_Step):
    kind: Literal["tag", "untag"]
    tag: str = Field(min_length=1, max_length=64)
    next: StepId | None = None


class SetFieldStep(_Step):
    kind: Literal["set_field"]
    field: str = Field(min_length=1, max_length=64)
    value: str = Field(max_length=1000)
    next: StepId | None = None


class PublicReplyStep(_Step):
    kind: Literal["public_reply"]
    text: str = Field(min_length=1, max_length=2200)
    next: StepId | None = None


Step = Annotated[
    MessageStep
    | WaitStep
    | ConditionStep
    | DelayStep
    | CaptureStep
    | TagStep
    | SetFieldStep
    | PublicReplyStep,
    Field(discriminator="kind"),
]


class FlowGraph(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: Entry = "comment"
    start: StepId
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}


# -- validation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowIssue:
    step_id: str | None
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"step_id": self.step_id, "rule": self.rule, "message": self.message}


class FlowInvalidError(ValidationError):
    """A flow graph that breaks a rule; ``issues`` (and the error's ``details``) name the steps."""

    code = "flow_invalid"

    def __init__(self, issues: list[FlowIssue]) -> None:
        self.issues = issues
        summary = "; ".join(f"{i.step_id or 'flow'}: {i.rule}: {i.message}" for i in issues[:10])
        super().__init__(summary, details=[i.to_dict() for i in issues])


def parse_graph(data: Any) -> FlowGraph:
    """A validated graph, or :class:`FlowInvalidError` naming each step and rule broken."""
    try:
        graph = FlowGraph.model_validate(data)
    except PydanticValidationError as exc:
        raise FlowInvalidError([_pydantic_issue(data, error) for error in exc.errors()]) from None
    issues = validate_graph(graph)
    if issues:
        raise FlowInvalidError(issues)
    return graph


def _pydantic_issue(data: Any, error: Any) -> FlowIssue:
    loc = list(error.get("loc", ()))
    step_id: str | None = None
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(data, dict):
        steps = data.get("steps")
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            raw = steps[loc[1]].get("id")
            step_id = str(raw) if raw is not None else f"steps[{loc[1]}]"
    where = ".".join(str(part) for part in loc[2:])
    return FlowIssue(step_id, "schema", f"{where}: {error.get('msg')}" if where else str(error.get("msg")))


def successors(step: Step) -> list[tuple[str, str]]:
    """(branch, target) pairs of a step."""
    out: list[tuple[str, str | None]]
    if isinstance(step, WaitStep):
        out = [(f"route:{payload}", target) for payload, target in step.routes.items()]
        out += [("text", step.on_text), ("timeout", step.on_timeout)]
    elif isinstance(step, ConditionStep):
        out = [("then", step.then), ("else", step.otherwise)]
    elif isinstance(step, CaptureStep):
        out = [("next", step.next), ("invalid", step.on_invalid)]
    else:
        out = [("next", step.next)]
    return [(branch, target) for branch, target in out if target is not None]


def validate_graph(graph: FlowGraph) -> list[FlowIssue]:
    steps = graph.by_id()
    issues: list[FlowIssue] = []
    if len(steps) != len(graph.steps):
        seen: set[str] = set()
        for step in graph.steps:
            if step.id in seen:
                issues.append(FlowIssue(step.id, "unique_ids", "two steps have this id"))
            seen.add(step.id)
    if graph.start not in steps:
        return [*issues, FlowIssue(None, "start_exists", f"start {graph.start!r} is not a step")]
    for step in graph.steps:
        issues.extend(_step_issues(graph, step, steps))
    if issues:
        return issues
    issues.extend(_reachability(graph, steps))
    issues.extend(_spinning_loops(steps))
    if issues:
        return issues
    return _window_issues(graph, steps)


def _step_issues(graph: FlowGraph, step: Step, steps: dict[str, Step]) -> list[FlowIssue]:
    issues = [
        FlowIssue(step.id, "target_exists", f"{branch} names {target!r}, which is not a step")
        for branch, target in successors(step)
        if target not in steps
    ]
    if isinstance(step, MessageStep) and (shape := step.message.shape_issue()):
        issues.append(FlowIssue(step.id, "message_shape", shape))
    if isinstance(step, ConditionStep):
        issues.extend(_condition_issues(step))
    if isinstance(step, WaitStep) and not (step.routes or step.on_text):
        issues.append(FlowIssue(step.id, "wait_input", "a wait needs routes or on_text"))
    if isinstance(step, PublicReplyStep) and graph.entry != "comment":
        issues.append(FlowIssue(step.id, "public_reply_needs_comment", "only a comment-started flow"))
    if isinstance(step, TagStep | SetFieldStep | ConditionStep):
        issues.extend(_contact_name_issues(step))
    if isinstance(step, CaptureStep) and not _after_wait_input(step.id, steps):
        issues.append(FlowIssue(step.id, "capture_after_wait", "a capture must follow a wait's input"))
    return issues


def _contact_name_issues(step: TagStep | SetFieldStep | ConditionStep) -> list[FlowIssue]:
    """Tags and field names follow the contacts' rules (``domain.contact_fields``)."""
    try:
        if isinstance(step, TagStep) or (isinstance(step, ConditionStep) and step.tag):
            validate_tag(step.tag or "")
        if isinstance(step, SetFieldStep):
            parse_field(step.field, step.value)
        elif isinstance(step, ConditionStep) and step.field:
            validate_key(step.field)
    except ContactFieldError as error:
        return [FlowIssue(step.id, "contact_names", error.message)]
    return []


def _condition_issues(step: ConditionStep) -> list[FlowIssue]:
    if step.test == "has_tag" and not step.tag:
        return [FlowIssue(step.id, "condition_args", "has_tag needs a tag")]
    if step.test in ("field_present", "field_matches") and not step.field:
        return [FlowIssue(step.id, "condition_args", f"{step.test} needs a field")]
    if step.test == "field_matches":
        try:
            re.compile(step.pattern or "")
        except re.error as exc:
            return [FlowIssue(step.id, "condition_args", f"pattern does not compile: {exc}")]
        if not step.pattern:
            return [FlowIssue(step.id, "condition_args", "field_matches needs a pattern")]
    return []


def _after_wait_input(step_id: str, steps: dict[str, Step]) -> bool:
    parents = [
        (parent, branch)
        for parent in steps.values()
        for branch, target in successors(parent)
        if target == step_id
    ]
    return bool(parents) and all(
        isinstance(parent, WaitStep) and branch != "timeout" for parent, branch in parents
    )


def _reachability(graph: FlowGraph, steps: dict[str, Step]) -> list[FlowIssue]:
    seen, stack = {graph.start}, [graph.start]
    while stack:
        for _, target in successors(steps[stack.pop()]):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return [
        FlowIssue(step.id, "reachable", "no path from start reaches this step")
        for step in graph.steps
        if step.id not in seen
    ]


def _spinning_loops(steps: dict[str, Step]) -> list[FlowIssue]:
    """A cycle without a wait or a delay would spin in one advance: refused. Removing the edges out
    of waits and delays must leave an acyclic graph."""
    edges = {
        sid: [] if isinstance(step, WaitStep | DelayStep) else [t for _, t in successors(step)]
        for sid, step in steps.items()
    }
    state: dict[str, int] = {}
    issues: list[FlowIssue] = []

    def visit(node: str) -> None:
        state[node] = 1
        for target in edges[node]:
            if state.get(target) == 1:
                issues.append(FlowIssue(target, "loop_needs_wait", "a loop through this step never waits"))
            elif target not in state:
                visit(target)
        state[node] = 2

    for node in steps:
        if node not in state:
            visit(node)
    return issues


# Window state along a path: minutes since the person's last message (None: they have not written
# yet), and whether the one private reply a comment allows is used.
_Window = tuple[int | None, bool]


def _window_issues(graph: FlowGraph, steps: dict[str, Step]) -> list[FlowIssue]:
    """Worst case over every path: the largest time since the last inbound message at each step
    (longest-path relaxation, capped just past the window so loops terminate)."""
    cap = WINDOW_MINUTES + 1
    start: _Window = (None, False) if graph.entry == "comment" else (0, False)
    worst: dict[tuple[str, bool, bool], int] = {}
    issues: dict[tuple[str, str], FlowIssue] = {}
    stack: list[tuple[str, _Window]] = [(graph.start, start)]
    while stack:
        sid, (elapsed, used) = stack.pop()
        key = (sid, elapsed is None, used)
        level = -1 if elapsed is None else min(elapsed, cap)
        if key in worst and worst[key] >= level:
            continue
        worst[key] = level
        step = steps[sid]
        issue = _send_issue(step, elapsed, used)
        if issue is not None:
            issues.setdefault((issue.step_id or "", issue.rule), issue)
            continue
        for branch, target in successors(step):
            stack.append((target, _after(step, branch, elapsed, used, cap)))
    return list(issues.values())


def _send_issue(step: Step, elapsed: int | None, used: bool) -> FlowIssue | None:
    if not isinstance(step, MessageStep):
        return None
    if elapsed is None and used:
        return FlowIssue(
            step.id,
            "one_private_reply",
            "a comment allows one private reply: wait for the person before sending again",
        )
    if elapsed is not None and elapsed >= WINDOW_MINUTES:
        return FlowIssue(
            step.id,
            "within_24h_window",
            "a path reaches this send 24 h or more after the person's last message",
        )
    return None


def _after(step: Step, branch: str, elapsed: int | None, used: bool, cap: int) -> _Window:
    if isinstance(step, MessageStep):
        return (elapsed, True)
    if isinstance(step, WaitStep):
        if branch == "timeout":
            return (None if elapsed is None else min(elapsed + step.timeout_minutes, cap), used)
        return (0, used)
    if isinstance(step, DelayStep) and elapsed is not None:
        return (min(elapsed + step.minutes, cap), used)
    return (elapsed, used)


# -- the ready-made follow gate ---------------------------------------------------------------------

FOLLOW_GATE_TAP = "GET_LINK"
FOLLOW_GATE_FOLLOWED = "I_FOLLOWED"


def follow_gate_graph(message: str, link: str, *, follow_first: str | None = None) -> dict[str, Any]:
    """Comment -> private reply with a button -> tap -> follows? -> the link : "follow us, then tap
    I followed" -> re-check. Asks nothing before the tap: the follow status needs the person's
    consent, which the tap gives (docs/instagram.md)."""
    nudge = follow_first or "Follow us first, then tap \u201cI followed\u201d and the link is yours."
    return {
        "entry": "comment",
        "start": "offer",
        "steps": [
            {
                "id": "offer",
                "kind": "send",
                "message": {
                    "text": message,
                    "buttons": [
                        {"type": "postback", "title": "Send me the link", "payload": FOLLOW_GATE_TAP}
                    ],
                },
                "next": "wait_tap",
            },
            {"id": "wait_tap", "kind": "wait", "routes": {FOLLOW_GATE_TAP: "check"}, "timeout_minutes": 1440},
            {"id": "check", "kind": "condition", "test": "follows", "then": "link", "else": "follow_first"},
            {
                "id": "follow_first",
                "kind": "send",
                "message": {
                    "text": nudge,
                    "buttons": [{"type": "postback", "title": "I followed", "payload": FOLLOW_GATE_FOLLOWED}],
                },
                "next": "wait_followed",
            },
            {
                "id": "wait_followed",
                "kind": "wait",
                "routes": {FOLLOW_GATE_FOLLOWED: "check", FOLLOW_GATE_TAP: "check"},
                "timeout_minutes": 1440,
            },
            {
                "id": "link",
                "kind": "send",
                "message": {"text": message, "buttons": [{"type": "web_url", "title": "Open", "url": link}]},
            },
        ],
    }
