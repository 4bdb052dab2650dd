"""Admin commands and the retrain job: promotion rule, safety, hot swap, rollback, audit."""

import asyncio
from pathlib import Path

import pytest
from held_retrain import signal_when_held

from dikkat.bot.commands.admin import outcome_text
from dikkat.bot.types import ButtonPress, Reply, Request
from dikkat.storage.records import RunInProgress
from dikkat.training import candidate as candidate_module
from dikkat.training import retrain as retrain_module
from dikkat.training.promotion import fixed_metrics

ADMIN, USER = "1", "2"
DEADLINE_S = 60  # only catches a hang: a retrain takes seconds even on a busy machine


def request(command: str, args: str = "", user: str = ADMIN, lang: str | None = None) -> Request:
    return Request("telegram", user, "chat", command, args, lang)


async def give_feedback(bot, items: list[tuple[str, str]], user: str = "voter") -> None:
    bot.router.rate_limiter.burst = 100_000
    for text, label in items:
        reply = await bot.router.handle(request("sentiment", text, user=user))
        data = next(b.data for b in reply.buttons if b.data.endswith(label))
        await bot.router.handle_button(ButtonPress("telegram", user, "chat", data))


@pytest.mark.parametrize("command", ["retrain", "models", "rollback 1", "stats"])
async def test_admin_commands_refuse_non_admins(bot, command: str) -> None:
    name, _, args = command.partition(" ")
    reply = await bot.router.handle(request(name, args, user=USER))
    assert "yalnızca yöneticiler" in reply.text and reply.private
    assert await bot.store.audit_log() == []


async def test_retrain_answers_at_once_then_posts_the_result(bot, cast_vote) -> None:
    await cast_vote(bot.store)
    posted: list[tuple[str, Reply]] = []
    result_posted = asyncio.Event()

    async def notifier(chat_id: str, reply: Reply) -> None:
        posted.append((chat_id, reply))
        result_posted.set()

    bot.router.set_notifier("telegram", notifier)
    reply = await bot.router.handle(request("retrain"))
    assert "#1 başladı" in reply.text
    await asyncio.wait_for(result_posted.wait(), DEADLINE_S)
    chat_id, result = posted[0]
    assert chat_id == "chat"
    assert "Yeniden eğitim #1" in result.text and "Makro-F1 önce" in result.text
    run = await bot.store.get_run(1)
    assert run.status in ("promoted", "rejected")
    assert set(run.metrics_before) == {"fixed", "feedback"}
    assert set(run.metrics_after) == {"fixed", "feedback", "promotion"}
    promotion = run.metrics_after["promotion"]
    assert promotion["promoted"] is (run.status == "promoted") and promotion["confidence"] == 0.9
    assert promotion["p_better"] is None  # no held-out feedback yet: the fixed set decided
    assert promotion["fixed_floor"] is not None  # the shipped head's score minus the tolerance
    assert set(run.metrics_after["fixed"]) == {"n", "accuracy", "macro_f1"}
    assert run.metrics_after["feedback"] == {"n": 0}
    assert [a["action"] for a in await bot.store.audit_log()] == ["retrain"]


async def test_one_run_at_a_time(bot, cast_vote) -> None:
    await cast_vote(bot.store)
    first = await bot.retrainer.start("admin", "telegram:1")
    with pytest.raises(RunInProgress):
        await bot.retrainer.start("admin", "telegram:1")
    assert "zaten sürüyor" in (await bot.router.handle(request("retrain"))).text
    async with asyncio.timeout(DEADLINE_S):  # let the run end before the bot stops
        while (await bot.store.get_run(first)).status == "running":
            await asyncio.sleep(0.05)


async def test_cron_run_is_skipped_with_too_little_new_feedback(bot) -> None:
    await give_feedback(bot, [("Harika bir deneyimdi", "positive")])
    run = await bot.retrainer.run("cron")
    assert run.status == "skipped" and run.n_feedback == 1
    active = await bot.store.active_version(bot.service.feature_key)
    assert active.id == 1 and active.source.startswith("shipped")


async def test_promotion_hot_swaps_and_results_carry_the_new_version(bot) -> None:
    bot.settings.retrain_tolerance = 1.0  # promote whatever comes out: this test is about the swap
    await give_feedback(bot, [("Kargo bir haftada geldi", "negative")] * 2)
    run = await bot.retrainer.run("admin", "telegram:1")
    assert run.status == "promoted" and run.n_feedback == 1
    assert bot.service.head_version == run.candidate_version
    reply = await bot.router.handle(request("sentiment", "güzel"))
    prediction = int(reply.buttons[0].data.split(":")[1])
    query = "SELECT head_version FROM predictions WHERE id = :id"
    rows = await bot.store._read(query, {"id": prediction})
    assert rows[0].head_version == run.candidate_version
    models = (await bot.router.handle(request("models"))).text
    assert f"✅ #{run.candidate_version}" in models and "#1" in models


async def test_a_worse_candidate_is_rejected_and_the_active_head_stays(bot, cast_vote) -> None:
    await cast_vote(bot.store)
    bot.settings.retrain_tolerance = -1.0  # demand an impossible improvement
    version_before = bot.service.head_version
    run = await bot.retrainer.run("admin", "telegram:1")
    assert run.status == "rejected"
    assert bot.service.head_version == version_before
    assert (await bot.store.get_version(run.candidate_version)).status == "rejected"


async def test_one_user_labelling_1000_items_wrongly_cannot_get_a_worse_head_promoted(bot) -> None:
    seed_train, _ = candidate_module.seed_split()
    flipped = {"negative": "positive", "positive": "negative", "neutral": "negative"}
    poisoned = [
        (f"{text} #{i}", flipped[label])
        for i, (text, label) in enumerate(
            zip(seed_train["text"].tolist() * 2, seed_train["label"].tolist() * 2, strict=True)
        )
    ][:1000]
    for text, label in poisoned:
        prediction = await bot.store.log_prediction(
            platform="telegram",
            user_id="troll",
            chat_id="c",
            text=text,
            label="neutral",
            probabilities={"negative": 0.3, "neutral": 0.4, "positive": 0.3},
            head_version=1,
        )
        await bot.store.add_feedback(prediction, "telegram", "troll", label)
    before = fixed_metrics((await bot.store.active_version(bot.service.feature_key)).metrics)
    run = await bot.retrainer.run("admin", "telegram:1")
    assert run.n_feedback == bot.settings.retrain_max_labels_per_user
    # the troll's own held-out labels favour the candidate; the fixed set must still stop it
    assert run.metrics_after["feedback"]["n"] >= bot.settings.retrain_min_feedback_eval
    active = fixed_metrics((await bot.store.active_version(bot.service.feature_key)).metrics)
    assert active["macro_f1"] >= before["macro_f1"] - bot.settings.retrain_tolerance
    if run.status == "promoted":
        after, previous = run.metrics_after["fixed"], run.metrics_before["fixed"]
        assert after["macro_f1"] >= previous["macro_f1"] - bot.settings.retrain_tolerance


async def test_a_crashing_retrain_leaves_the_active_head_and_no_partial_file(
    bot, cast_vote, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cast_vote(bot.store)

    def crash(*args, **kwargs):
        raise MemoryError("simulated crash")

    monkeypatch.setattr(retrain_module, "train_candidate", crash)
    version_before = bot.service.head_version
    heads = Path(bot.settings.model_dir) / "heads"
    files_before = sorted(heads.iterdir())  # the installed copy of the shipped head
    run = await bot.retrainer.run("admin", "telegram:1")
    assert run.status == "failed" and "simulated crash" in run.error
    assert bot.service.head_version == version_before
    assert sorted(heads.iterdir()) == files_before


async def test_an_interrupted_retrain_is_recorded_and_changes_nothing(
    bot, held_retrain, cast_vote, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cast_vote(bot.store)
    release = held_retrain
    reached_hold = signal_when_held(monkeypatch)
    version_before = bot.service.head_version
    told: list[str] = []
    admin_told = asyncio.Event()

    async def tell_admin(outcome) -> None:
        told.append(outcome_text(outcome, "tr"))
        admin_told.set()

    run_id = await bot.retrainer.start("admin", "telegram:1", tell_admin)
    await asyncio.wait_for(reached_hold.wait(), DEADLINE_S)
    assert (await bot.store.get_run(run_id)).status == "running"
    stopping = asyncio.create_task(bot.retrainer.stop())
    # stop has interrupted the run while its training is still held: the outcome is out
    await asyncio.wait_for(admin_told.wait(), DEADLINE_S)
    release.set()
    await asyncio.wait_for(stopping, DEADLINE_S)
    assert not bot.retrainer.busy
    run = await bot.store.get_run(run_id)
    assert run.status == "failed" and run.error == "interrupted (the bot is stopping)"
    assert len(told) == 1 and "başarısız" in told[0] and "Etkin model değişmedi" in told[0]
    assert bot.service.head_version == version_before
    heads = Path(bot.settings.model_dir) / "heads"
    assert not heads.exists() or not any(p.suffix == ".tmp" for p in heads.iterdir())


async def test_rollback_reactivates_an_older_version(bot, cast_vote) -> None:
    await cast_vote(bot.store)
    bot.settings.retrain_tolerance = 1.0
    run = await bot.retrainer.run("admin", "telegram:1")
    assert bot.service.head_version == run.candidate_version
    assert "#1 artık etkin" in (await bot.router.handle(request("rollback", "1"))).text
    assert bot.service.head_version == 1
    assert "/rollback 2" in (await bot.router.handle(request("rollback", "x"))).text
    assert "#99" in (await bot.router.handle(request("rollback", "99"))).text
    assert [a["action"] for a in await bot.store.audit_log()] == ["rollback"]


async def test_stats_counts_predictions_feedback_and_last_run(bot) -> None:
    await give_feedback(bot, [("Harika", "positive"), ("Kötü", "negative")])
    await bot.retrainer.run("cron")
    text = (await bot.router.handle(request("stats", lang="en"))).text
    assert "Predictions: 2" in text
    assert "Negative 1, Neutral 0, Positive 1" in text
    assert "#1 skipped" in text


async def test_held_out_feedback_is_never_trained_on_and_is_reported(bot) -> None:
    items = [(f"Ürün {i} tam bir hayal kırıklığı", "negative") for i in range(60)]
    await give_feedback(bot, items)
    bot.settings.retrain_feedback_holdout = 0.5
    held = {text for text, _ in items if candidate_module.is_held_out(text, 0.5)}
    seen: list[list[str]] = []
    original = candidate_module.features_for

    def spy(texts, *args, **kwargs):
        seen.append(list(texts))
        return original(texts, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(candidate_module, "features_for", spy)
        run = await bot.retrainer.run("admin", "telegram:1")
    assert 0 < len(held) < len(items)
    fit_rows, inner_rows = set(seen[0]), set(seen[1])
    assert not held & (fit_rows | inner_rows)
    assert run.metrics_after["feedback"]["n"] == len(held) == run.metrics_before["feedback"]["n"]
    models = (await bot.router.handle(request("models"))).text
    assert f"#{run.candidate_version}" in models and "ayrılmış geri bildirim" in models


@pytest.mark.parametrize("arg", ["²", "٣", "99999999999999999999", "0", "-1", "1e3"])
async def test_rollback_with_odd_digits_gets_the_usage_text(bot, arg: str, caplog) -> None:
    reply = await bot.router.handle(request("rollback", arg))
    assert "/rollback 2" in reply.text or f"#{arg}" in reply.text
    assert "ters gitti" not in reply.text
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("data", ["fb:²:positive", "fb:9999999999999999999999:negative", "fb::x"])
async def test_forged_button_data_is_an_unknown_button(bot, data: str, caplog) -> None:
    reply = await bot.router.handle_button(ButtonPress("telegram", "2", "chat", data))
    assert "artık geçerli değil" in reply.text
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_retrain_without_any_vote_is_skipped_and_says_so(bot) -> None:
    run = await bot.retrainer.run("admin", "telegram:1")
    assert run.status == "skipped" and run.candidate_version is None
    assert [v.id for v in await bot.store.list_versions()] == [1]  # no candidate was made
