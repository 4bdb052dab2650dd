"""/sentiment and its feedback buttons: the label with a confidence, and the user's correction."""

from __future__ import annotations

import logging

import numpy as np

from dikkat.bot.i18n import LABEL_EMOJI, LABEL_NAMES, store_error_key, t
from dikkat.bot.types import Button, ButtonPress, Reply, Request, parse_id
from dikkat.bot.validation import InvalidInput, clean_text
from dikkat.inference.backend import InferenceBackend
from dikkat.storage.errors import StoreBusy, StoreError
from dikkat.storage.records import LABELS
from dikkat.storage.store import Store

log = logging.getLogger(__name__)

FEEDBACK_PREFIX = "fb"


def feedback_data(prediction_id: int, label: str) -> str:
    """What a feedback button carries: `fb:<prediction id>:<label>`."""
    return f"{FEEDBACK_PREFIX}:{prediction_id}:{label}"


class SentimentCommands:
    """Predicts, logs the prediction and records the votes on it."""

    def __init__(self, service: InferenceBackend, store: Store) -> None:
        self.service = service
        self.store = store

    async def sentiment(self, request: Request, lang: str) -> Reply:
        """Negative / neutral / positive with a confidence, and feedback buttons."""
        text, cut = clean_text(request.args)
        if not text:
            raise InvalidInput("sentiment_usage")
        result = await self.service.sentiment(text)
        prediction_id = await self.store.log_prediction(
            platform=request.platform,
            user_id=request.user_id,
            chat_id=request.chat_id,
            text=text,
            label=result.label,
            probabilities=result.probabilities,
            head_version=result.head_version,
            text_hash=result.text_hash,
        )
        lines = [
            t(
                "sentiment_result",
                lang,
                emoji=LABEL_EMOJI[result.label],
                label=LABEL_NAMES.text(result.label, lang),
                confidence=round(100 * result.probabilities[result.label]),
            ),
            " · ".join(
                f"{LABEL_NAMES.text(label, lang)} {100 * result.probabilities[label]:.0f}%"
                for label in LABELS
            ),
        ]
        if cut or result.truncated:
            lines.append(t("text_truncated", lang))
        lines.append(t("sentiment_ask_feedback", lang))
        buttons = tuple(
            Button(
                f"{LABEL_EMOJI[label]} {LABEL_NAMES.text(label, lang)}",
                feedback_data(prediction_id, label),
            )
            for label in LABELS
        )
        return Reply("\n".join(lines), buttons=buttons)

    async def feedback(self, press: ButtonPress, lang: str) -> Reply:
        """Stores a vote from a feedback button (`fb:<prediction id>:<label>`) pressed in the
        chat where the prediction was made."""
        data, platform, user_id = press.data, press.platform, press.user_id
        prefix, _, rest = data.partition(":")
        raw_id, _, label = rest.partition(":")
        prediction = parse_id(raw_id)
        if prefix != FEEDBACK_PREFIX or prediction is None or label not in LABELS:
            return Reply(t("unknown_button", lang), private=True)
        try:
            outcome = await self.store.add_feedback(
                prediction,
                platform,
                user_id,
                label,
                features=self._remembered_features,
                chat_id=press.chat_id,
            )
        except StoreBusy as error:
            log.warning("feedback not stored: the database stayed locked (%s)", error)
            return Reply(t("store_busy", lang), private=True)
        except StoreError as error:
            log.error("feedback not stored: %s (%s)", type(error).__name__, error)
            return Reply(t(store_error_key(error), lang), private=True)
        except Exception:
            log.exception("feedback could not be stored")
            return Reply(t("internal_error", lang), private=True)
        log.info("feedback on %s: %s", platform, outcome)
        name = LABEL_NAMES.text(label, lang)
        return Reply(t(f"feedback_{outcome}", lang, label=name), private=True)

    def _remembered_features(self, text_hash: str) -> tuple[str, np.ndarray] | None:
        """The voted text's features if the service still remembers them (stored with the vote,
        so retraining never re-runs the encoder for it)."""
        vector = self.service.recent_features(text_hash)
        return None if vector is None else (self.service.feature_key, vector)
