"""`dikkat run`: the chat frontends, the HTTP server and the trainer's leadership around one
App, until SIGINT/SIGTERM; then each part stops receiving, finishes what is in flight, closes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dikkat.aio import Backoff, unless_stopped
from dikkat.app import App, database_url
from dikkat.config import Settings
from dikkat.stopping import interrupt_as_usual, stop_on_signals
from dikkat.storage.errors import StoreBusy, StoreUnavailable, classify
from dikkat.storage.migrate import sqlite_path
from dikkat.storage.records import DatabaseOpenError
from dikkat.storage.store import Store

log = logging.getLogger(__name__)


async def register_telegram_webhook(settings: Settings, **options: Any) -> Any:
    """`dikkat telegram set-webhook`: register the webhook once for every replica (the
    adapter's own URL, secret and update types); the WebhookInfo after it."""
    from dikkat.bot.telegram import register_webhook

    return await register_webhook(settings, **options)


async def serve(settings: Settings) -> None:
    """`dikkat run` (every role but inference, which `dikkat.ray_replicas` deploys): every
    frontend that has a token (sharing one service and store), else the console; SIGINT/SIGTERM
    stop receiving, finish in-flight requests and close cleanly."""
    from dikkat.bot.console import ConsoleFrontend
    from dikkat.http import HttpServer

    stop = asyncio.Event()
    stop_on_signals(stop)  # before loading models: a stop during start-up is a clean exit
    app = await start_app(settings, stop)
    if app is None:
        log.info("stopped during start-up")
        return
    router = app.router
    leading = None
    if app.retrainer is not None:  # one process on the database schedules: the leader
        from dikkat.scale.trainer import lead_retraining

        assert app.store is not None
        leading = asyncio.create_task(
            lead_retraining(app.retrainer, app.store, settings, stop), name="retrain-leadership"
        )
    runners: list[Any] = []
    http: HttpServer | None = None
    ledger: Any = None
    ledger_store: Store | None = None
    try:
        telegram = None
        if router is not None and settings.telegram_token is not None:
            from dikkat.bot.telegram import build_telegram

            telegram = build_telegram(router, settings)
        if telegram is not None and settings.telegram_webhook_url:
            assert app.store is not None
            ledger, ledger_store = await open_update_ledger(settings, app.store)
        http = _http_server(settings, app, telegram, ledger)
        if telegram is not None:
            from dikkat.bot.telegram import run_telegram

            drain = http.drain_webhook if settings.telegram_webhook_url else None
            runners.append(run_telegram(telegram.application, settings, stop, drain))
        if router is not None and settings.discord_token is not None:
            from dikkat.bot.discord import build_discord_client, run_discord

            client = build_discord_client(router, settings)
            token = settings.discord_token.get_secret_value()
            runners.append(run_discord(client, token, stop, settings.drain_s))
        if router is None:
            runners.append(stop.wait())  # the trainer: the scheduler works until a stop signal
        elif not runners:
            log.info("no chat token configured: starting the console")
            interrupt_as_usual()
            frontend = ConsoleFrontend(router, image_dir=settings.db_path.parent / "images")
            await frontend.run(stop=stop)
            return
        await http.start()
        await asyncio.gather(*runners)
    finally:
        try:
            if leading is not None:
                stop.set()
                await leading
        finally:
            if http is not None:
                await http.stop()
            if ledger_store is not None:
                await ledger_store.close()
            await app.stop()
            log.info("stopped")


async def open_update_ledger(settings: Settings, store: Store) -> tuple[Any, Store | None]:
    """Where webhook updates are claimed once: (ledger, a store to close at the end or None).
    SQLite: a file of its own beside the database, so that a claim never waits behind another
    process's long write (every update, /help included, would wait with it); PostgreSQL: the
    shared database itself (row locks only)."""
    path = sqlite_path(database_url(settings))
    if path is None:
        return store, None
    ledger = await Store.open(path.with_name(f"{path.stem}-webhook-updates{path.suffix}"))
    return ledger, ledger


def _http_server(settings: Settings, app: App, telegram: Any, ledger: Any) -> Any:
    from dikkat.http import HttpServer

    webhook = secret = None
    if telegram is not None and settings.telegram_webhook_url:
        from dikkat.bot.telegram import webhook_receiver, webhook_secret

        webhook, secret = webhook_receiver(telegram, ledger), webhook_secret(settings)
    return HttpServer(
        host=settings.http_host,
        port=settings.http_port,
        health=app.health,
        telegram_webhook=webhook,
        webhook_secret=secret,
    )


async def start_app(settings: Settings, stop: asyncio.Event) -> App | None:
    """A started App, or None when `stop` is set first (App.start closes what it opened, and
    a model load in a thread ends by itself). A database that cannot be reached (or stays
    locked) is waited for, with backoff, one log line; any other failure propagates."""
    backoff = Backoff()
    waiting = False
    while not stop.is_set():
        app = App(settings)
        try:
            return app if await unless_stopped(app.start(), stop) else None
        except DatabaseOpenError as error:
            if classify(error.__cause__ or error) not in (StoreUnavailable, StoreBusy):
                raise
            if not waiting:
                log.warning("waiting for the database: %s", error)
            waiting = True
        await unless_stopped(asyncio.sleep(backoff.next()), stop)
    return None
