"""Shared pieces: texts, tokenization (as dikkat does it), mean pooling, and one runner per mode."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/rt")
E5 = ROOT / "e5"  # copy of /work/main/var/models/encoders/multilingual-e5-small-q4-1571fc982750
ART = ROOT / "art"
CSV = Path("/work/shared/data/sentiment/store_reviews_3class.csv")
PREFIX = "query: "  # dikkat.models.loading.E5_PREFIX
MAX_LEN = 128
THREADS = 2
PAD_ID = 1


def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(E5), local_files_only=True)


def tokenize(tok, texts):
    """Token ids as SentenceEncoder.tokenize gives them (prefix, special tokens, cut at 128)."""
    return [tok(PREFIX + t, truncation=True, max_length=MAX_LEN)["input_ids"] for t in texts]


def pad(batch):
    width = max(len(ids) for ids in batch)
    ids = np.full((len(batch), width), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def mean_pool(hidden, mask):
    w = mask[:, :, None].astype(np.float32)
    return ((hidden * w).sum(1) / np.maximum(w.sum(1), 1.0)).astype(np.float32)


def load_texts():
    import pandas as pd
    frame = pd.read_csv(CSV)
    return frame["text"].astype(str).tolist(), frame["label"].tolist()


def sorted_batches(ids, size=32):
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # stable
    return [order[i : i + size] for i in range(0, len(order), size)]


def encode_all(runner, ids, size=32):
    """Pooled features in input order, length-sorted batches of `size` (as features_for does)."""
    out = np.zeros((len(ids), 384), dtype=np.float32)
    for chunk in sorted_batches(ids, size):
        out[chunk] = runner([ids[i] for i in chunk])
    return out


# ---------------------------------------------------------------- runners: batch of id lists -> (B, 384)

def torch_runner(kind="fp32", layers=None):
    import torch
    from transformers import AutoModel
    torch.set_num_threads(THREADS)
    extra = {"num_hidden_layers": layers} if layers else {}
    model = AutoModel.from_pretrained(str(E5), local_files_only=True, add_pooling_layer=False, **extra)
    model.eval().requires_grad_(False)
    if kind == "int8":
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    elif kind == "int8-pc":  # same API, per-channel weight scales (one per output row)
        import warnings
        from torch.ao.quantization import per_channel_dynamic_qconfig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)

    def run(batch):
        ids, mask = pad(batch)
        ids, m = torch.from_numpy(ids), torch.from_numpy(mask)
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=m).last_hidden_state
            w = m.unsqueeze(-1).to(h.dtype)
            return ((h * w).sum(1) / w.sum(1).clamp(min=1.0)).numpy()
    return run


def ort_runner(path, spinning=False):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:  # several runtimes share 2 cores in the bench process: no busy-waiting pool
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def run(batch):
        ids, mask = pad(batch)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        (h,) = sess.run(["last_hidden_state"], feed)
        return mean_pool(h, mask)
    return run


def ov_runner(path):
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {
        "INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    names = {p.get_any_name() for p in compiled.inputs}

    def run(batch):
        ids, mask = pad(batch)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        h = req.infer(feed)[compiled.output(0)]
        return mean_pool(np.asarray(h), mask)
    return run


def ct2_runner(path, compute_type):
    import ctranslate2
    enc = ctranslate2.Encoder(str(path), device="cpu", compute_type=compute_type,
                              intra_threads=THREADS, inter_threads=1)

    def run(batch):
        out = enc.forward_batch([list(b) for b in batch])
        h = np.asarray(out.last_hidden_state)
        _, mask = pad(batch)
        return mean_pool(h, mask)
    return run


MODES = {
    "torch-fp32": lambda: torch_runner("fp32"),
    "torch-int8-dyn": lambda: torch_runner("int8"),
    "torch-int8-dyn-pc": lambda: torch_runner("int8-pc"),
    "torch-fp32-L8": lambda: torch_runner("fp32", 8),
    "torch-fp32-L10": lambda: torch_runner("fp32", 10),
    "ort-fp32-opt": lambda: ort_runner(ART / "ort-fp32-opt.onnx"),
    "ort-int8": lambda: ort_runner(ART / "ort-int8.onnx"),
    "ort-int8-pc": lambda: ort_runner(ART / "ort-int8-pc.onnx"),
    "ort-int8-rr": lambda: ort_runner(ART / "ort-int8-rr.onnx"),
    "ort-int8-pc-rr": lambda: ort_runner(ART / "ort-int8-pc-rr.onnx"),
    "ort-int8-noemb": lambda: ort_runner(ART / "ort-int8-noemb.onnx"),
    "ov-fp32": lambda: ov_runner(ART / "ov-fp32.xml"),
    "ov-int8-wc": lambda: ov_runner(ART / "ov-int8-wc.xml"),
    "ov-int8-ptq": lambda: ov_runner(ART / "ov-int8-ptq.xml"),
    "ct2-fp32": lambda: ct2_runner(ART / "ct2", "float32"),
    "ct2-int8": lambda: ct2_runner(ART / "ct2-int8", "int8"),
}


def store_split():
    """Row indices of dikkat's store split: split_train_val(frame, 0.25, 0) (sklearn, stratified)."""
    import pandas as pd
    from sklearn.model_selection import train_test_split
    frame = pd.read_csv(CSV)
    train, test = train_test_split(np.arange(len(frame)), test_size=0.25, random_state=0,
                                   stratify=frame["label"], shuffle=True)
    return train, test


def calibration_ids(tok, n=300):
    """n texts of the store split's training part (never the test part)."""
    texts, _ = load_texts()
    train, _ = store_split()
    pick = np.random.default_rng(0).choice(train, n, replace=False)
    return tokenize(tok, [texts[i] for i in pick])
