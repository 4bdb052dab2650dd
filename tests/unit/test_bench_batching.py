"""The batching benchmark's machinery through App on a tiny BERT, in fp32 and CTranslate2 int8:
well-formed figures, never timings."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from transformers import BertModel

from dikkat.bench.batching import (
    BenchSettings,
    app_opener,
    default_precisions,
    format_table,
    run_benchmark,
    run_precisions,
    write_json,
    write_plot,
)
from dikkat.bench.batching_ceiling import Ceiling, spread_order
from dikkat.bench.batching_load import Prepared, Window, closed_loop
from dikkat.bench.common import ratio
from dikkat.bench.flops import EncoderShape, fp32_peak
from dikkat.bench.lengths import LENGTH_QUANTILES, WORDS, request_texts, synthetic_texts
from dikkat.models.encoder import SentenceEncoder

ROW_KEYS = {
    "mode",
    "concurrency",
    "throughput_rps",
    "p50_ms",
    "p99_ms",
    "mean_batch_size",
    "padding_efficiency",
}


def fake_word_tokens(word: str) -> int:
    """A WordPiece-like count: about one token per four characters."""
    return 1 + len(word) // 4


def _normalised(word: str) -> str:
    """The word as the BERT tokenizer sees it (lower case, accents stripped): no [UNK] tokens."""
    return "".join(
        c for c in unicodedata.normalize("NFD", word.lower()) if not unicodedata.combining(c)
    )


TINY = BenchSettings(
    warmup_s=0.05,
    duration_s=0.25,
    sample_size=400,
    ceiling_budget_s=0.05,
    paired_s=0.2,
    overload_duration_s=0.4,
    overload_max_queue=16,
)


@pytest.fixture(scope="module")
def tiny_bert(make_tiny_bert) -> Path:
    """A 2-layer, 32-wide BERT that knows every word of the synthetic texts."""
    return make_tiny_bert(sorted(set(WORDS) | {_normalised(w) for w in WORDS}))


@pytest.fixture(scope="module")
def report(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One run on services that App builds around the tiny BERT (no shipped head: App trains
    one on the seed corpus, once for the run)."""
    encoder = SentenceEncoder.from_pretrained(tiny_bert, "tiny-bert", max_length=64)
    texts, _ = request_texts(TINY.sample_size, TINY.seed, fake_word_tokens, use_shared=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # two intra-op threads on a busy 2-core machine are much slower
    try:
        opener = app_opener(encoder, tmp_path_factory.mktemp("bench-batching"))
        yield run_benchmark(opener, texts, TINY, progress=False, source="synthetic")
    finally:
        torch.set_num_threads(previous)


def test_every_mode_and_concurrency_is_well_formed(report: dict) -> None:
    rows = report["results"]
    assert [(r["mode"], r["concurrency"]) for r in rows] == [
        (m, c) for c in TINY.concurrency for m in ("unbatched", "batched", "ceiling")
    ]
    for row in rows:
        assert ROW_KEYS <= row.keys()
        assert row["throughput_rps"] > 0
        assert 0 < row["padding_efficiency"] <= 1
        assert row["mean_batch_size"] >= 1
        assert row["forward_ms"] > 0
        if row["mode"] == "ceiling":
            assert row["p50_ms"] is None and row["measured_rps"] > 0
            assert row["batch_size"] == report["ceiling"]["best_batch_size"]
        else:
            assert row["p50_ms"] <= row["p99_ms"]
        if row["mode"] == "batched":
            assert row["cost_ms"] >= 0 and row["queue_wait_ms"] >= 0
            assert row["requests"] > 0
        if row["mode"] == "unbatched":
            assert row["mean_batch_size"] == 1
            assert row["padding_efficiency"] == 1


def test_batching_forms_batches_under_load(report: dict) -> None:
    batched = {r["concurrency"]: r for r in report["results"] if r["mode"] == "batched"}
    assert batched[256]["mean_batch_size"] > 1
    assert batched[256]["mean_batch_size"] <= TINY.max_batch_size
    sweep = report["ceiling"]["sweep"]
    assert [s["batch_size"] for s in sweep] == list(TINY.ceiling_sizes)
    best = max(sweep, key=lambda s: s["throughput_rps"])
    assert report["ceiling"]["best_batch_size"] == best["batch_size"]


def test_paired_single_client_comparison(report: dict) -> None:
    paired = report["paired_c1"]
    assert paired["pairs"] > 0
    assert paired["unbatched_p50_ms"] > 0 and paired["batched_p50_ms"] > 0
    assert paired["ratio"] == pytest.approx(
        paired["batched_p50_ms"] / paired["unbatched_p50_ms"], rel=1e-2
    )


def test_ratios_round_alike() -> None:
    assert ratio(2.0, 3.0) == 0.667
    assert ratio(None, 3.0) is None and ratio(1.0, 0.0) is None


def test_overload_rejects_and_stays_bounded(report: dict) -> None:
    o = report["overload"]
    assert o["rejected"] > 0
    assert o["accepted"] + o["rejected"] == o["arrivals"]
    assert o["completed"] + o["unfinished_at_stop"] == o["accepted"]
    assert o["max_queue_depth_seen"] <= TINY.overload_max_queue
    assert o["in_flight_bound"] == TINY.overload_max_queue + TINY.max_batch_size  # one at a time
    assert o["max_accepted_in_flight"] <= o["in_flight_bound"]
    assert o["reject_p50_ms"] <= o["reject_p99_ms"]
    assert o["peak_rss_after_mb"] >= o["peak_rss_before_mb"] > 0


def test_targets_table_and_settings(report: dict) -> None:
    assert {t["met"] for t in report["targets"]} <= {True, False, None}
    assert all(isinstance(t["target"], str) for t in report["targets"])
    assert report["settings"]["texts"] == "synthetic"
    assert report["settings"]["max_batch_size"] == 32
    table = format_table(report)
    for word in ("unbatched", "batched", "ceiling", "overload", "targets"):
        assert word in table


def test_json_and_png(report: dict, tmp_path: Path) -> None:
    data = json.loads(write_json(report, tmp_path / "out" / "bench.json").read_text())
    assert {"results", "overload", "machine", "settings"} <= data.keys()
    assert all(ROW_KEYS <= row.keys() for row in data["results"])
    assert data["machine"]["torch_threads"] >= 1
    image = imread(write_plot(report, tmp_path / "bench.png"))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_synthetic_length_mix_follows_its_quantiles() -> None:
    texts = synthetic_texts(2500, seed=1, word_tokens=fake_word_tokens)
    lengths = np.array([2 + sum(fake_word_tokens(w) for w in t.split()) for t in texts])
    for q, expected in LENGTH_QUANTILES:
        if 0.05 <= q <= 0.9:  # above, the sampled tail is steep and noisy
            measured = float(np.quantile(lengths, q))
            assert abs(measured - expected) <= max(3, 0.1 * expected), (q, measured, expected)


def test_synthetic_texts_use_only_the_own_word_list() -> None:
    texts, source = request_texts(50, 0, fake_word_tokens, use_shared=False)
    assert source.startswith("synthetic")
    assert len(texts) == 50 and set(" ".join(texts).split()) <= set(WORDS)
    assert texts == request_texts(50, 0, fake_word_tokens, use_shared=False)[0]


def test_ceiling_batch_order_spans_all_lengths_in_every_prefix() -> None:
    order = spread_order(40)
    assert sorted(order) == list(range(40))
    assert max(order[:4]) - min(order[:4]) >= 20
    assert spread_order(1) == [0]


class _SideBySide:
    """A pipeline whose encoder runs two batches at once: each batch waits for the other."""

    def __init__(self) -> None:
        self.encoder = self
        self.parallel_batches = 2
        self.meet = threading.Barrier(2, timeout=30)  # one stream alone never passes it
        self.batches: list[tuple[str, list[int]]] = []

    def padded_tokens(self, costs: list[int]) -> int:
        return max(costs) * len(costs)

    def predict_batch(self, items: list[int]) -> list[int]:
        self.batches.append((threading.current_thread().name, list(items)))
        self.meet.wait()
        return items


def test_the_ceiling_runs_as_many_batches_at_once_as_the_batcher() -> None:
    pipeline = _SideBySide()
    costs = [3, 9, 4, 8, 5, 7]
    ceiling = Ceiling(pipeline, Prepared(costs, costs, [False] * 6, 0.0))
    try:
        window = ceiling.window(2, 0.0)  # each stream stops after its first batch
    finally:
        ceiling.close()
    assert window.stats.batches == 2 and window.stats.batch_items == 4
    (first_thread, first), (second_thread, second) = pipeline.batches
    assert first_thread != second_thread and not set(first) & set(second)


def test_settings_validate_early() -> None:
    with pytest.raises(ValueError):
        BenchSettings(concurrency=(1, 600), max_queue=512)
    with pytest.raises(ValueError):
        BenchSettings(duration_s=0)
    quick = BenchSettings.quick()
    assert quick.concurrency == (1, 8, 64, 256)


def test_ceiling_and_batched_windows_are_taken_in_turn(report: dict) -> None:
    assert [p["concurrency"] for p in report["interleaved"]] == list(TINY.concurrency)
    for point in report["interleaved"]:
        firsts = [w["first"] for w in point["windows"]]
        assert firsts == ["batched", "ceiling"] * (TINY.windows // 2)
        for w in point["windows"]:
            assert w["batched_tokens_per_s"] > 0 and w["ceiling_tokens_per_s"] > 0
            expected = w["batched_tokens_per_s"] / w["ceiling_tokens_per_s"]
            assert w["ratio"] == pytest.approx(expected, rel=1e-2, abs=1e-3)
        ratios = [w["ratio"] for w in point["windows"]]
        assert point["ratio_median"] == pytest.approx(float(np.median(ratios)), abs=1e-3)
        assert point["ratio_min"] <= point["ratio_median"] <= point["ratio_max"]
    c64 = next(p for p in report["interleaved"] if p["concurrency"] == 64)
    (target,) = [t for t in report["targets"] if t["target"].startswith("c=64 batched/ceiling")]
    assert target["value"] == c64["ratio_median"]
    ceiling_rows = [r for r in report["results"] if r["mode"] == "ceiling"]
    assert all(r["batches"] >= TINY.windows for r in ceiling_rows)  # a window runs whole batches


def test_a_closed_loop_window_closes_on_an_answer_after_its_duration() -> None:
    class Echo:
        """Answers after a loop turn; counts answers as its 'batches'."""

        def __init__(self) -> None:
            self.window = Window()

        async def send(self, text: str) -> str:
            await asyncio.sleep(0.001)
            self.window.add_batch([len(text)], 0.0)
            return text

        def snapshot(self) -> Window:
            return self.window.copy()

    texts = ["bir", "iki", "üç"]
    answered = asyncio.run(closed_loop(Echo(), texts, 2, 0.01, 0.05))
    assert answered.seconds >= 0.05  # it closes on the first answer at or after the duration
    assert answered.latencies and answered.throughput == len(answered.latencies) / answered.seconds
    assert set(answered.texts) <= set(range(len(texts)))
    # the counters run from the opening answer to the closing one: as many answers, shifted by one
    assert answered.counters.stats.items == len(answered.latencies)
    costs = [len(t) for t in texts]
    expected = sum(costs[i] for i in answered.texts) / answered.seconds
    assert answered.tokens_per_s(costs) == pytest.approx(expected)


PER_PRECISION = BenchSettings(
    concurrency=(1, 64),
    warmup_s=0.05,
    duration_s=0.3,
    windows=3,
    sample_size=300,
    ceiling_sizes=(16, 32),
    ceiling_budget_s=0.05,
    paired_s=0.2,
    overload_duration_s=0.3,
    overload_max_queue=16,
)


@pytest.fixture(scope="module")
def by_precision(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """One run_precisions over fp32 (torch) and int8 (CTranslate2) on the tiny BERT, and the
    loads it asked for."""
    pytest.importorskip("ctranslate2")
    loads: list[tuple[str, Path]] = []

    def load(precision: str, model_dir: Path) -> SentenceEncoder:
        loads.append((precision, model_dir))
        return SentenceEncoder.from_pretrained(
            tiny_bert,
            "tiny-bert",
            max_length=64,
            precision=precision,
            int8_dir=model_dir / "encoders",
        )

    def draw_texts(encoder: SentenceEncoder) -> tuple[list[str], str]:
        texts, _ = request_texts(PER_PRECISION.sample_size, 0, fake_word_tokens, use_shared=False)
        return texts, "synthetic"

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scratch = tmp_path_factory.mktemp("bench-precisions")
        run = run_precisions(
            load, ("fp32", "int8"), draw_texts, PER_PRECISION, scratch, progress=False
        )
        yield run, loads
    finally:
        torch.set_num_threads(previous)


def test_a_report_per_precision_with_its_runtime_and_start_times(by_precision: tuple) -> None:
    run, loads = by_precision
    parts = run["precisions"]
    assert list(parts) == ["fp32", "int8"]
    assert parts["fp32"]["runtime"] == "torch" and parts["int8"]["runtime"] == "ctranslate2"
    assert parts["int8"]["feature_key"] == parts["fp32"]["feature_key"] + "|int8-ct2"
    # first start on a fresh folder, warm start on the same one; each precision its own folder
    assert [p for p, _ in loads] == ["fp32", "fp32", "int8", "int8"]
    assert loads[0][1] == loads[1][1] != loads[2][1] == loads[3][1]
    for part in parts.values():
        assert part["start"]["first_start_s"] >= 0 and part["start"]["warm_start_s"] >= 0
        assert [(r["mode"], r["concurrency"]) for r in part["results"]] == [
            (m, c) for c in PER_PRECISION.concurrency for m in ("unbatched", "batched", "ceiling")
        ]
        for point in part["interleaved"]:  # an odd count: batched goes first once more
            assert [w["first"] for w in point["windows"]] == ["batched", "ceiling", "batched"]
        assert {"results", "ceiling", "paired_c1", "overload", "targets"} <= part.keys()
    assert run["settings"]["precisions"] == ["fp32", "int8"]
    assert run["settings"]["texts"] == "synthetic"


def test_the_summary_has_a_row_per_precision(by_precision: tuple) -> None:
    run, _ = by_precision
    assert [r["precision"] for r in run["summary"]] == ["fp32", "int8"]
    for row in run["summary"]:
        part = run["precisions"][row["precision"]]
        c64 = next(p for p in part["interleaved"] if p["concurrency"] == 64)
        assert row["batched_over_ceiling_c64"] == c64["ratio_median"]
        assert row["batched_over_ceiling_c64_windows"] == [w["ratio"] for w in c64["windows"]]
        assert row["batched_over_ceiling_met"] == (c64["ratio_median"] >= 0.90)
        assert row["first_start_s"] == part["start"]["first_start_s"]
        assert row["ceiling_rps"] > 0 and row["ceiling_gflops"] >= 0  # GFLOP/s to 0.01
        assert row["runtime"] == part["runtime"]


def test_achieved_gflops_count_the_models_own_parameters(by_precision: tuple, tiny_bert) -> None:
    run, _ = by_precision
    model = BertModel.from_pretrained(tiny_bert)
    own = sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.startswith(("embeddings.", "pooler."))
    )
    for part in run["precisions"].values():
        compute = part["compute"]
        assert compute["non_embedding_params"] == own
        per_text = compute["mflops_per_text"]
        parts = per_text["linear"] + per_text["attention"]
        assert per_text["total"] == pytest.approx(parts, abs=0.011)  # each rounded to 0.01
        gflops = compute["ceiling_rps"] * per_text["total"] / 1000
        # MFLOP per text rounded to 0.01 (0.4% of the tiny BERT's), GFLOP/s to 0.01
        assert compute["ceiling_gflops"] == pytest.approx(gflops, rel=1e-2, abs=0.01)
        assert compute["ceiling_rps"] == part["ceiling"]["all_windows"]["throughput_rps"]
        peak = compute["fp32_peak"]["gflops"]
        if peak:
            assert compute["share_of_fp32_peak"] == ratio(compute["ceiling_gflops"], peak)


def test_multilingual_e5_small_flops_per_text() -> None:
    shape = EncoderShape(layers=12, hidden=384, intermediate=1536)
    assert shape.non_embedding_params == 21_293_568
    flops = shape.flops_per_text([30, 42])  # mean 36 tokens, mean square 1,332
    assert flops["linear"] == 2 * 21_293_568 * 36
    assert flops["attention"] == 4 * 12 * 384 * 1_332


def test_fp32_peak_is_cores_times_clock_times_avx2_fma() -> None:
    peak = fp32_peak(2)
    assert peak["cores"] == 2
    assert peak["flops_per_cycle_per_core"] == (32 if peak["simd"] == "avx2+fma" else 16)
    if peak["clock_ghz"]:
        expected = 2 * peak["clock_ghz"] * peak["flops_per_cycle_per_core"]
        assert peak["gflops"] == pytest.approx(expected, rel=1e-3)


def test_the_per_precision_table_json_and_png(by_precision: tuple, tmp_path: Path) -> None:
    run, _ = by_precision
    table = format_table(run)
    for text in ("== fp32 (torch", "== int8 (ctranslate2", "per precision", "GFLOP/s", "windows"):
        assert text in table
    assert "batched/ceiling per window" in table and "fp32 peak" in table
    data = json.loads(write_json(run, tmp_path / "bench.json").read_text())
    assert data["summary"] == run["summary"]
    image = imread(write_plot(run, tmp_path / "bench.png"))
    one = {**run["precisions"]["fp32"], "machine": run["machine"]}
    single = imread(write_plot(one, tmp_path / "one.png"))
    assert image.shape[0] == 2 * single.shape[0]  # a row of two plots per precision


def test_int8_is_measured_by_default_only_where_it_runs_on_ctranslate2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = importlib.util.find_spec("ctranslate2") is not None
    assert default_precisions("cpu") == (("fp32", "int8") if installed else ("fp32",))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_precisions("cpu") == ("fp32",)
