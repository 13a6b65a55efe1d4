"""The sender's pool holds a connection per concurrent send; the other functions keep the settings'."""

from __future__ import annotations

from replyflow.services.send_reply import SEND_CONCURRENCY
from replyflow.settings import Settings
from replyflow.wiring.core import Clients
from replyflow.wiring.pipeline import build_pipeline

MYSQL_URL = "mysql+pymysql://replyflow@127.0.0.1:1/unused"  # never connected to: engines connect on use


def _pool_size(sessions: object) -> int:
    return int(sessions.kw["bind"].pool.size())  # type: ignore[attr-defined]


def test_the_sender_pool_holds_a_connection_per_concurrent_send() -> None:
    settings = Settings(environment="test", database_url=MYSQL_URL, database_pool_size=2)
    clients = Clients(settings)
    deps = build_pipeline(settings, clients=clients, publisher=object())  # type: ignore[arg-type]
    assert _pool_size(clients.writer_sessions) == 2
    assert _pool_size(deps.sender._sessions) == SEND_CONCURRENCY == 10


def test_a_pool_already_large_enough_is_shared() -> None:
    settings = Settings(environment="test", database_url=MYSQL_URL, database_pool_size=12)
    clients = Clients(settings)
    assert clients.writer_sessions_for(SEND_CONCURRENCY) is clients.writer_sessions
