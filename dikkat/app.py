"""Composition root: builds the Store, models, service, retrain job and Router; starts, stops."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from dikkat.bot.ratelimit import RateLimiter
from dikkat.bot.router import Router
from dikkat.config import Settings
from dikkat.inference.backend import InferenceBackend
from dikkat.inference.sentiment import SentimentPipeline
from dikkat.inference.service import InferenceService
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.loading import load_encoder
from dikkat.models.sorter import Sorter
from dikkat.storage.feature_cache import FeatureCache
from dikkat.storage.migrate import shown_url, sqlite_path, sqlite_url
from dikkat.storage.store import Store
from dikkat.storage.versions import HeadNotifications
from dikkat.training.head_sync import ActiveHeadWatcher
from dikkat.training.heads import ensure_active_head
from dikkat.training.retrain import RetrainJob
from dikkat.training.serving import DetachedHeadServer

log = logging.getLogger(__name__)


class App:
    """Everything a role needs, started and stopped in the right order.

    Roles (`settings.role`): `all` (one process: models, retraining, Router), `frontend` (Router
    over a remote InferenceBackend, no models), `inference` (models and the head watcher, no
    Router: what each Ray Serve replica runs), `trainer` (encoder, retrain job, no serving).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        encoder: SentenceEncoder | None = None,
        sorter: Sorter | None = None,
        store: Store | None = None,
        backend: InferenceBackend | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`encoder`, `sorter`, `store` and (frontend role) `backend` replace what the settings
        would load, open or connect (tests, benchmarks); a given store stays open after `stop`.
        `clock` drives the per-user rate limits."""
        self.settings = settings
        self._given_encoder = encoder
        self._given_sorter = sorter
        self._given_store = store
        self._given_backend = backend
        self._clock = clock
        self._stack: AsyncExitStack | None = None
        self.backend: InferenceBackend | None = None
        self.notifications: Any = None  # PostgreSQL LISTEN for head changes
        self.store: Store | None = None
        self.cache: FeatureCache | None = None
        self.service: InferenceService | None = None
        self.retrainer: RetrainJob | None = None
        self.watcher: ActiveHeadWatcher | None = None
        self.router: Router | None = None

    async def start(self) -> Router | None:
        """Open the database, load the models off the event loop, start the batchers.

        On any failure everything opened so far is closed again before the error propagates.
        """
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Router | None:
        settings = self.settings
        stack = self._stack = AsyncExitStack()
        self.store = self._given_store or await open_store(settings)
        if self.store is not self._given_store:
            stack.push_async_callback(self.store.close)
        build = {
            "frontend": self._frontend,
            "trainer": self._trainer,
            "inference": self._inference,
            "all": self._all,
        }[settings.role]
        return await build(stack, self.store)

    async def _frontend(self, stack: AsyncExitStack, store: Store) -> Router:
        """The Router over a remote InferenceBackend; /retrain leaves a request for the trainer."""
        backend = self.backend = self._given_backend or await _remote_backend(self.settings)
        if hasattr(backend, "close"):
            stack.push_async_callback(backend.close)
        from dikkat.scale.remote_retrainer import RetrainRequests

        self.router = self._router(backend, store, RetrainRequests(store, backend.feature_key))
        log.info("ready: frontend over %s", type(backend).__name__)
        return self.router

    async def _trainer(self, stack: AsyncExitStack, store: Store) -> None:
        """The encoder and the retrain job, serving nothing."""
        encoder, _, version = await self._sentiment_model(store)
        self.retrainer = RetrainJob(
            store, DetachedHeadServer(version), self.settings, encoder=encoder, cache=self.cache
        )
        stack.push_async_callback(self.retrainer.stop)
        log.info("ready: trainer for %s, head #%d active", encoder.feature_key, version)

    async def _inference(self, stack: AsyncExitStack, store: Store) -> None:
        """The models, their batchers and the head watcher (what a Ray Serve replica runs)."""
        await self._serving(stack, store)
        log.info("ready: inference, sentiment head #%s", self._service().head_version)

    async def _all(self, stack: AsyncExitStack, store: Store) -> Router:
        """Everything in one process: models, retrain job and Router."""
        encoder = await self._serving(stack, store)
        service = self._service()
        self.retrainer = RetrainJob(
            store, service, self.settings, encoder=encoder, cache=self.cache
        )
        stack.push_async_callback(self.retrainer.stop)
        self.router = self._router(service, store, self.retrainer)
        log.info("ready on %s: sorter, sentiment head #%s", encoder.device, service.head_version)
        return self.router

    async def _sentiment_model(self, store: Store) -> tuple[SentenceEncoder, Any, int]:
        """The encoder (loaded off the event loop) and the active head, one installed if none."""
        settings = self.settings
        interrupted = await store.fail_unfinished_runs()
        if interrupted:
            log.warning("%d retrain run(s) were interrupted by the last stop", interrupted)
        encoder = self._given_encoder or await asyncio.to_thread(
            functools.partial(
                load_encoder, settings.sentiment_encoder, **settings.encoder_options()
            )
        )
        self.cache = FeatureCache.of(store, encoder.feature_key)
        head, version = await ensure_active_head(store, encoder, self.cache, settings)
        return encoder, head, version

    async def _serving(self, stack: AsyncExitStack, store: Store) -> SentenceEncoder:
        """The sorter and sentiment pipeline behind started batchers, and the head watcher."""
        settings = self.settings
        encoder, head, version = await self._sentiment_model(store)
        sorter = self._given_sorter or await asyncio.to_thread(
            Sorter.from_checkpoint, device=str(encoder.device)
        )
        # The model thread holds the GIL between torch kernels; the default 5 ms switch interval
        # then delays the event loop (and an instant "busy") by up to 5 ms.
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(settings.gil_switch_ms / 1000)
        service = self.service = InferenceService(
            settings, sorter, SentimentPipeline(encoder, head, version)
        )
        self.backend = service
        await service.start()
        stack.push_async_callback(service.stop)
        self.notifications = await _head_notifications(settings)
        if self.notifications is not None:
            stack.push_async_callback(self.notifications.close)
        self.watcher = ActiveHeadWatcher(
            store,
            service,
            encoder,
            settings.head_poll_s,
            wakeup=None if self.notifications is None else self.notifications.changed,
        )
        self.watcher.start()
        stack.push_async_callback(self.watcher.stop)
        return encoder

    def _router(self, backend: InferenceBackend, store: Store, retrainer: Any) -> Router:
        return Router(
            backend,
            self.settings,
            store,
            retrainer=retrainer,
            rate_limiter=RateLimiter.for_settings(self.settings, self._clock),
        )

    def _service(self) -> InferenceService:
        assert self.service is not None
        return self.service

    async def stop(self) -> None:
        """Stop what was started, in reverse order: new requests are refused, the retrain job
        interrupted, in-flight requests finished, the database closed last (idempotent)."""
        stack, self._stack = self._stack, None
        self.router = self.retrainer = self.watcher = self.notifications = None
        self.service = self.backend = self.cache = self.store = None
        if stack is not None:
            await stack.aclose()

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Models loaded and database answering: what /healthz reports."""
        if self.service is not None:  # models in this process: their batchers run
            models = all(b.running for b in self.service.batchers)
        else:  # a frontend's remote backend, or a trainer's retrain job
            models = self.backend is not None or self.retrainer is not None
        try:
            database = self.store is not None and await self.store.ping()
        except Exception:
            database = False
        detail = {
            "models": "loaded" if models else "not loaded",
            "database": "ok" if database else "unavailable",
            "head_version": None if self.service is None else self.service.head_version,
        }
        return models and database, detail

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def open_store(settings: Settings) -> Store:
    """The database: DIKKAT_DATABASE_URL when set (PostgreSQL needs the `scale` extra), else
    the SQLite file at DIKKAT_DB_PATH."""
    return await Store.open(database_url(settings))


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the configured database (a secret: it may hold a password)."""
    if settings.database_url is None:
        return sqlite_url(settings.db_path)
    return settings.database_url.get_secret_value()


async def _head_notifications(settings: Settings) -> Any:
    """PostgreSQL pushes head activations (NOTIFY); None with SQLite, where polling does it."""
    url = database_url(settings)
    if sqlite_path(url) is not None:
        return None
    return await HeadNotifications.listen(url)


async def _remote_backend(settings: Settings) -> InferenceBackend:
    """The frontend role's models: the Ray Serve application at DIKKAT_RAY_ADDRESS."""
    from dikkat.scale.ray_backend import RayBackend

    return await RayBackend.connect(settings)


async def check(settings: Settings) -> dict[str, Any]:
    """`dikkat run --check`: load configuration, models and database; report what was found.

    Roles without models in this process check what they have: a frontend asks its backend, a
    trainer its database; the inference role deploys nothing here (it checks as `all` would)."""
    role = "all" if settings.role == "inference" else settings.role
    async with App(settings.model_copy(update={"role": role})) as app:
        assert app.store is not None
        healthy, detail = await app.health()
        found: dict[str, Any] = {
            "healthy": healthy,
            **detail,
            "role": settings.role,
            "database": _database_shown(settings),
            "schema_version": await app.store.schema_version(),
        }
        if app.backend is not None:
            sort_answer = await app.backend.sort("CBABBC")
            sentiment = await app.backend.sentiment("Bu bir deneme cümlesidir.")
            found |= {
                "encoder": app.backend.feature_key,
                "sorter_check": f"CBABBC -> {sort_answer}",
                "sentiment_check": sentiment.label,
            }
        if app.router is not None:
            found["frontends"] = [
                name
                for name, token in (
                    ("telegram", settings.telegram_token),
                    ("discord", settings.discord_token),
                )
                if token is not None
            ] or ["console"]
        return found


def _database_shown(settings: Settings) -> str:
    """The database for people: the SQLite path, or the shared URL without its password."""
    if settings.database_url is None:
        return str(settings.db_path)
    return shown_url(settings.database_url.get_secret_value())
