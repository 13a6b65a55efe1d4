"""The local stack: every function of template.yaml in one process, with no AWS.

Start order (and stop order, reversed) matters:

1. migrate the database (SQLite under ``.local/`` unless ``DATABASE_URL`` is set);
2. start the Instagram sandbox, so the settings below can point the Graph API and OAuth at it;
3. build every family's composition root (``Roots``: settings pointing at the sandbox, the broker
   as queue publisher and visibility) and bind each function to it;
4. seed the demo tenant with a token the sandbox just issued (idempotent);
5. start the broker's workers, the scheduler, and last the gateway, so a request that arrives can be
   served end to end; then write ``LOCAL_STATE_DIR/stack.env`` (:mod:`local.stack_env`) for the
   CLI. Stopping closes the gateway first, lets in-flight batches finish (30 s for all of them),
   then ends the worker processes and stops the sandbox; a Ctrl-C reaches this process alone (the
   worker processes ignore SIGINT, the Redis is in a process group of its own), so the batches are
   not killed under it (docs/architecture.md, "Stopping the stack"). The Stripe fake
   (``local/stripe_fake``) starts with the sandbox and delivers its signed events to this stack's
   ``/webhooks/stripe``.

Redis is ``REDIS_URL`` when set; otherwise, with the processor and sender in processes of their own
(the default), a ``redis-server`` the stack starts on a free loopback port (``local/redis_server.py``;
fakeredis's TCP server when none is installed), and fakeredis in-process with ``--in-process-workers``.
The broker's queues and the sandbox's world are SQLite files under ``LOCAL_STATE_DIR``
(``broker.sqlite3``, ``sandbox.sqlite3``): a restart, even after ``kill -9``, resumes every queue
and keeps what the sandbox received. Delete the files to start empty.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local import metrics_store, stack_env
from local.broker import Broker, Consumer
from local.gateway import GatewayServer, LocalGateway
from local.lambda_context import LambdaFunction
from local.queue_store import QueueStore
from local.scheduler import DeadLetter, Scheduler, Target
from local.static_site import StaticSite
from local.template import FunctionSpec, SamTemplate, load_template
from local.worker_process import FunctionProcess, WorkerProcesses
from replyflow.adapters.mail_outbox import OutboxMailer
from replyflow.clock import utcnow
from replyflow.settings import Settings
from replyflow.wiring.core import Clients
from replyflow.wiring.roots import Roots

if TYPE_CHECKING:
    from local.prometheus import StackMetrics
    from local.redis_server import SharedRedis
    from replyflow.ports import QueuePublisher

log = logging.getLogger("local.stack")

# The queue-fed pipeline functions that get processes of their own (StackOptions.worker_processes).
WORKER_HANDLERS = frozenset({"processor.handler.lambda_handler", "sender.handler.lambda_handler"})
PLACEHOLDER_TOKEN = "IGAA-local-placeholder-token"
BROKER_STATE_FILE = "broker.sqlite3"
SANDBOX_STATE_FILE = "sandbox.sqlite3"
STRIPE_STATE_FILE = "stripe_fake.json"
LOCAL_STRIPE_SECRET_KEY = "sk_test_replyflow_local_fake"
LOCAL_STRIPE_WEBHOOK_SECRET = "whsec_replyflow_local_fake"


@dataclass
class StackOptions:
    scheduler: bool = True
    sandbox: bool = True
    visibility_scale: float = 1.0
    workers: int = 4  # per SQS event source, capped by its ScalingConfig.MaximumConcurrency
    template_path: Path | None = None
    durable: bool = True  # queues and sandbox state in LOCAL_STATE_DIR, surviving restarts
    stripe_fake: bool = True  # the Stripe-shaped fake (local/stripe_fake) as Stripe's API
    console_dir: Path | None = None  # the console's built dist/, served at / (None: API only)
    # The queue-fed functions (processor, sender) each in a process of their own (local.worker_process)
    worker_processes: bool = False
    extra_accounts: int = 0  # accounts beyond the demo's (local.extra_accounts), for load on many accounts


@dataclass
class DemoInfo:
    email: str
    password: str
    tenant_id: str
    account_id: str
    ig_user_id: str


def client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host  # noqa: S104 - comparison only


def describe_database(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database != ":memory:":
            database = str(Path(database).resolve())
        return f"SQLite {database}"
    return parsed.render_as_string(hide_password=True)


def describe_redis(url: str | None) -> str:
    if not url:
        return "in-process fakeredis"
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def migrate(settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    from replyflow.db.migrate import upgrade, upgrade_all

    parsed = make_url(settings.database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if settings.database_shard_urls:  # the directory and every shard
        upgrade_all(settings.database_url, settings.database_shard_urls)
    else:
        upgrade(settings.database_url)


def seed(clients: Clients, access_token: str) -> DemoInfo:
    """Plans + the demo tenant, on the database and token cipher of ``clients``."""
    from replyflow.db.engine import session_scope
    from replyflow.services.demo_seed import seed_demo

    with session_scope(clients.writer_sessions) as session:
        demo = seed_demo(session, clients.cipher, access_token=access_token, now=utcnow())
    return DemoInfo(demo.email, demo.password, demo.tenant_id, demo.account_id, demo.ig_user_id)


@dataclass
class LocalStack:
    base: Settings
    options: StackOptions = field(default_factory=StackOptions)
    template: SamTemplate | None = None
    settings: Settings | None = None
    broker: Broker | None = None
    scheduler: Scheduler | None = None
    server: GatewayServer | None = None
    sandbox: Any = None
    stripe: Any = None
    demo: DemoInfo | None = None
    functions: dict[str, LambdaFunction] = field(default_factory=dict)
    roots: Roots | None = None
    stack_env: Path | None = None
    prometheus: StackMetrics | None = None
    worker_pool: WorkerProcesses | None = None
    shared_redis: SharedRedis | None = None

    @property
    def api_url(self) -> str:
        return f"http://{client_host(self.base.replyflow_host)}:{self.base.replyflow_port}"

    @property
    def sandbox_url(self) -> str | None:
        return str(self.sandbox.url) if self.sandbox is not None else None

    @property
    def state_dir(self) -> Path:
        return Path(self.base.local_state_dir)

    def start(self) -> None:
        template = self.template or load_template(self.options.template_path)
        self.template = template
        migrate(self.base)

        token = PLACEHOLDER_TOKEN
        site = self._site()
        updates: dict[str, Any] = self._shared_redis_settings()
        # With the console served, Instagram sends the browser back to its page, which completes the
        # connection under the signed-in user's session; without it, to the API's own landing page.
        callback = "/accounts/callback" if site is not None else "/v1/accounts/oauth/callback"
        updates["oauth_redirect_uri"] = f"{self.api_url}{callback}"
        if self.options.sandbox:
            from local.sandbox import SandboxServer
            from replyflow.services.demo_seed import DEMO_IG_USER_ID, DEMO_USERNAME

            self.sandbox = SandboxServer(
                self.base.replyflow_host,
                self.base.replyflow_sandbox_port,
                app_id=self.base.instagram_app_id,
                app_secret=self.base.instagram_app_secret.get_secret_value(),
                graph_version=self.base.graph_api_version,
                state_path=self.state_dir / SANDBOX_STATE_FILE if self.options.durable else None,
            )
            self.sandbox.start()
            sandbox_url = f"http://{client_host(self.base.replyflow_host)}:{self.sandbox.port}"
            token = self.sandbox.issue_token(DEMO_IG_USER_ID, DEMO_USERNAME)
            updates.update(
                graph_api_base_url=sandbox_url,
                instagram_oauth_authorize_url=f"{sandbox_url}/oauth/authorize",
                instagram_oauth_token_url=f"{sandbox_url}/oauth/access_token",
                sandbox_tools=True,  # the Graph API is this sandbox: the console's test comments
            )
        if self.options.stripe_fake:
            updates.update(self._start_stripe_fake())
        self.settings = self.base.model_copy(update=updates)

        self.functions = {name: self._function(spec) for name, spec in template.functions.items()}
        self.prometheus = self._prometheus()
        consumers = [
            Consumer.from_event(event, fn.name, fn.invoke, max_workers=self.options.workers)
            for fn in self.functions.values()
            for event in fn.spec.sqs_events
            if event.enabled
        ]
        self.broker = Broker(
            template.queues.values(),
            consumers,
            visibility_scale=self.options.visibility_scale,
            dead_letter_queues=template.function_dead_letter_queues,
            store=QueueStore(self.state_dir / BROKER_STATE_FILE) if self.options.durable else None,
        )
        self.roots = self.roots_for(self.settings, self.broker)
        for fn in self.functions.values():
            fn.use_roots(self.roots)
        self.demo = seed(self.roots.api.clients, token)
        if self.options.extra_accounts and self.sandbox is not None:
            from local.extra_accounts import seed_accounts

            seed_accounts(self.roots.api.clients, self.sandbox.issue_token, self.options.extra_accounts)
        self._start_worker_processes()
        self.broker.start()

        if self.options.scheduler:
            self.scheduler = Scheduler(
                Target(event, fn.invoke, self._dead_letter(fn))
                for fn in self.functions.values()
                for event in fn.spec.schedule_events
            )
            self.scheduler.start()

        gateway = LocalGateway(
            template,
            self.functions,
            broker=self.broker,
            outbox=self._outbox(),
            jobs=self.roots.jobs,
            site=site,
        )
        self.prometheus.watch_broker(self.broker)
        self.prometheus.watch_pools(lambda: self.roots.api.clients if self.roots else None)
        self.prometheus.instrument_gateway(gateway)
        self.server = GatewayServer(gateway, self.base.replyflow_host, self.base.replyflow_port)
        self.server.start()
        # Last: the CLI in another terminal reads it to work on this stack's database and sandbox.
        self.stack_env = stack_env.write(self.settings, pid=os.getpid())

    def _shared_redis_settings(self) -> dict[str, Any]:
        """Worker processes and no ``REDIS_URL``: a Redis every process of the stack reaches."""
        if not self.options.worker_processes or self.base.redis_url:
            return {}
        from local.redis_server import SharedRedis

        self.shared_redis = SharedRedis()
        self.shared_redis.start()
        return {"redis_url": self.shared_redis.url}

    def _function(self, spec: FunctionSpec) -> LambdaFunction:
        """The processor and sender run in a process of their own when ``worker_processes`` is set."""
        if not (self.options.worker_processes and spec.handler in WORKER_HANDLERS):
            return LambdaFunction(spec)
        return FunctionProcess(spec)

    def _start_worker_processes(self) -> None:
        remote = [fn for fn in self.functions.values() if isinstance(fn, FunctionProcess)]
        if not remote:
            return
        assert self.broker is not None
        assert self.settings is not None
        assert self.prometheus is not None
        self.worker_pool = WorkerProcesses(self.broker, self.state_dir)
        for fn in remote:
            fn.emf_sink = self.prometheus.observe_emf
        self.worker_pool.start(remote, self.settings)

    def worker_pids(self) -> dict[str, int]:
        """``processor``/``sender`` -> its worker process id (empty when the workers run in-process)."""
        return self.worker_pool.pids() if self.worker_pool is not None else {}

    def _prometheus(self) -> StackMetrics:
        """``GET /metrics`` (local.prometheus): every function timed, the EMF metrics bridged."""
        from local.prometheus import StackMetrics

        prometheus = StackMetrics()
        for fn in self.functions.values():
            prometheus.instrument_function(fn)
        prometheus.bridge_emf()
        return prometheus

    def _start_stripe_fake(self) -> dict[str, Any]:
        """The fake on REPLYFLOW_STRIPE_PORT, delivering its signed events to this stack's webhook;
        the settings that point the Stripe client at it (local test keys unless set)."""
        from pydantic import SecretStr

        from local.stripe_fake import StripeFakeServer

        hook = self.base.stripe_webhook_secret
        hook_secret = hook.get_secret_value() if hook else LOCAL_STRIPE_WEBHOOK_SECRET
        key = self.base.stripe_secret_key
        self.stripe = StripeFakeServer(
            self.base.replyflow_host,
            self.base.replyflow_stripe_port,
            webhook_secret=hook_secret,
            state_path=self.state_dir / STRIPE_STATE_FILE if self.options.durable else None,
        )
        self.stripe.start()
        self.stripe.deliver_to(f"{self.api_url}/webhooks/stripe")
        return {
            "stripe_api_base": f"http://{client_host(self.base.replyflow_host)}:{self.stripe.port}",
            "replyflow_stripe_port": self.stripe.port,
            "stripe_secret_key": key or SecretStr(LOCAL_STRIPE_SECRET_KEY),
            "stripe_webhook_secret": SecretStr(hook_secret),
        }

    def _site(self) -> StaticSite | None:
        folder = self.options.console_dir
        if folder is None or not (folder / "index.html").is_file():
            return None
        return StaticSite(folder)

    @staticmethod
    def roots_for(settings: Settings, broker: Any, publisher: QueuePublisher | None = None) -> Roots:
        """Every family's dependencies on this stack: the broker as the queues (``publisher``, when
        given, publishes to it), the stack's settings."""
        from replyflow.adapters.queues import BrokerPublisher, BrokerVisibility
        from replyflow.adapters.sqs_admin import BrokerQueueStats
        from replyflow.wiring.api import build_api, build_authorizer
        from replyflow.wiring.jobs import build_jobs
        from replyflow.wiring.pipeline import build_pipeline

        clients = Clients(settings)
        publisher = publisher or BrokerPublisher(broker)
        return Roots(
            pipeline=build_pipeline(
                settings, clients=clients, publisher=publisher, visibility=BrokerVisibility(broker)
            ),
            jobs=build_jobs(
                settings,
                clients=clients,
                publisher=publisher,
                queue_stats=BrokerQueueStats(broker),
                metrics=metrics_store,
            ),
            api=build_api(settings, clients=clients, publisher=publisher),
            authorizer=build_authorizer(settings, clients=clients),
        )

    def _outbox(self) -> OutboxMailer | None:
        """The file the API's mailer writes to when no ``MAIL_FROM`` sends through SES."""
        assert self.settings is not None
        if self.settings.mail_from:
            return None
        return OutboxMailer.in_state_dir(self.settings.local_state_dir)

    def _dead_letter(self, fn: LambdaFunction) -> DeadLetter | None:
        """Where a failed async invocation goes: the function's ``DeadLetterQueue``, like Lambda."""
        queue, broker = fn.spec.dead_letter_queue, self.broker
        if queue is None or broker is None:
            return None

        def send(event: Any, error: BaseException) -> None:
            attributes = {
                "ErrorCode": {"stringValue": "200", "dataType": "Number"},
                "ErrorMessage": {
                    "stringValue": f"{type(error).__name__}: {error}"[:1000],
                    "dataType": "String",
                },
                "RequestID": {"stringValue": str(uuid.uuid4()), "dataType": "String"},
            }
            broker.send_message(queue, json.dumps(event), delay_seconds=0, message_attributes=attributes)
            log.error("%s: the event went to %s after its retries", fn.name, queue)

        return send

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
            if not self.scheduler.wait_running(30):
                log.warning("scheduled invocations still running at shutdown")
        if self.broker is not None:
            self.broker.stop()
        if self.worker_pool is not None:
            self.worker_pool.stop()
        if self.broker is not None:
            self.broker.close()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.prometheus is not None:
            self.prometheus.close()
        if self.stripe is not None:
            self.stripe.stop()
        if self.shared_redis is not None:
            self.shared_redis.stop()

    def banner(self) -> str:
        assert self.settings is not None
        assert self.template is not None
        s = self.settings
        api = self.api_url
        lines = [
            "",
            "Replyflow local stack is running",
            f"  Console        {api}/"
            if self.server and self.server.gateway.site
            else "  Console        not built (`make run` builds it; needs Node.js 20+)",
            f"  API            {api}",
            f"  API docs       {api}/docs  (OpenAPI: {api}/openapi.json)",
            f"  Webhook        {api}/webhooks/instagram",
            f"  Metrics        {api}/metrics  (Prometheus; infra/monitoring/ has a scrape config)",
        ]
        if self.sandbox_url:
            lines.append(
                f"  IG sandbox     {self.sandbox_url}  (sent messages: {self.sandbox_url}/_sandbox/messages)"
            )
        else:
            lines.append("  IG sandbox     disabled (Graph API calls go to " + s.graph_api_base_url + ")")
        if self.stripe is not None:
            lines.append(
                f"  Stripe fake    {s.stripe_api_base}  (events signed to {api}/webhooks/stripe; "
                "replyflow simulate stripe paid --tenant SLUG)"
            )
        if self.demo is not None:
            lines += [
                f"  Demo login     {self.demo.email} / {self.demo.password}",
                f"  Demo account   @replyflow.demo, IG id {self.demo.ig_user_id} "
                "(automation: comment LINK -> private reply)",
            ]
        queues = [q for q in self.template.queues.values() if q.dlq]
        lines += [
            # Secrets stay off the terminal (and out of CI logs): say where they come from.
            "  App secret     "
            + (
                "INSTAGRAM_APP_SECRET (set; `replyflow simulate` signs with it)"
                if s.instagram_app_secret != Settings.model_fields["instagram_app_secret"].default
                else "the local default (`replyflow simulate` signs with it)"
            ),
            "  Verify token   INSTAGRAM_VERIFY_TOKEN (the webhook handshake's hub.verify_token)",
            f"  Database       {describe_database(s.database_url)}",
            f"  Redis          {describe_redis(s.redis_url)}"
            + (f" ({self.shared_redis.kind}, shared by the stack's processes)" if self.shared_redis else ""),
            "  Workers        "
            + (
                ", ".join(f"{name} pid {pid}" for name, pid in self.worker_pids().items())
                + " (a process each)"
                if self.worker_pool
                else "in this process (threads)"
            ),
            f"  Queues         {'durable' if self.options.durable else 'in-memory'} broker, "
            f"{len(queues)} queues with DLQs "
            f"(visibility timeouts x{self.options.visibility_scale:g}); inspect {api}/_local/queues",
            "  Scheduler      "
            + (
                f"{len(self.scheduler.schedules)} schedules"
                if self.scheduler
                else "disabled (--no-scheduler)"
            ),
            "",
            f"  CLI settings   {self.stack_env} (the replyflow CLI reads it)",
            "",
            "  Simulate a comment:   replyflow simulate comment --text LINK",
            "  Emails sent:          replyflow outbox   (or " + api + "/_local/outbox)",
            "  Ctrl-C stops everything.",
            "",
        ]
        return "\n".join(lines)
