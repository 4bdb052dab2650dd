"""A generalised copy of dikkat.training.sentiment.train_head, for recipe experiments.

Defaults reproduce train_head exactly (checked in check_equal.py)."""
from __future__ import annotations
import copy, math, time
import numpy as np, torch
from torch import nn
from dikkat.models.head import SentimentHead, LABELS
from dikkat.training.data import label_indices
from dikkat.training.metrics import evaluate
from dikkat.training.sentiment import (
    SentimentLoss, TrainResult, _threads, _per_row, _polar_flags, auto_class_weights,
    predictions_correct, POLAR,
)

SHIPPED = {}  # "head": the shipped head (for init="shipped" and distillation)


def _macro_f1_3(logits, y, mask):
    if mask.sum() == 0:
        return 0.0
    p = logits[mask].argmax(-1); t = y[mask]
    f = []
    for c in range(3):
        tp = ((p == c) & (t == c)).sum().item(); s = (p == c).sum().item() + (t == c).sum().item()
        f.append(2 * tp / s if s else 0.0)
    return float(np.mean(f))


class Loss(nn.Module):
    """SentimentLoss + label smoothing + optional distillation of polar rows toward teacher probs."""
    def __init__(self, class_weights=None, smoothing=0.0, distill=0.0, distill_T=1.0, smoothing_polar=None):
        super().__init__()
        self.cw, self.ls, self.distill, self.T = class_weights, smoothing, distill, distill_T
        self.ls_polar = smoothing if smoothing_polar is None else smoothing_polar

    def forward(self, logits, y, polar, row_w=None, teacher=None):
        full = nn.functional.cross_entropy(logits, y, self.cw, reduction="none", label_smoothing=self.ls)
        two = nn.functional.cross_entropy(logits[:, POLAR], (y == POLAR[1]).long(), reduction="none",
                                          label_smoothing=self.ls_polar)
        per = torch.where(polar, two, full)
        if teacher is not None and self.distill > 0:
            # KL(teacher || student) over 3 classes, on polar (rehearsal) rows
            logp = torch.log_softmax(logits / self.T, -1)
            kl = (teacher * (torch.log(teacher.clamp_min(1e-8)) - logp)).sum(-1) * self.T ** 2
            per = torch.where(polar, (1 - self.distill) * two + self.distill * kl, per)
        if row_w is None:
            return per.mean()
        return (per * row_w).sum() / row_w.sum()


def train_x(
    X_train, y_train, X_val=None, y_val=None, *, epochs=100, patience=8, lr=1e-3, batch_size=64,
    seed=0, class_weights="auto", torch_threads=None, init=None, polar_train=None, polar_val=None,
    weights_train=None, weights_val=None,
    # --- experiment options ---
    init_mode="given",          # given | scratch | shipped
    select="acc",               # acc | loss | f1_3 (macro-F1 of 3-class val rows) | wf1 (feedback rows) | last
    stop="loss",                # loss | f1_3 | none
    swa=0,                      # >0: average weights of the last `swa` epochs up to the stop (+BN refresh)
    soup=1,                     # >1: K runs with seeds seed*100+k averaged into one head
    smoothing=0.0, weight_decay=0.0, distill=0.0, distill_T=1.0,
    rehearsal_ratio=None,       # polar rows per non-polar row sampled anew each epoch (None: all)
    rehearsal_weight=1.0,       # loss weight of polar rows
    fb_weight_override=None,
    min_epochs=0,
    on_epoch=None,
    bias_cal=None,              # "inner3": per-class logit offsets on 3-class inner rows
    dropout=None,
    smoothing_polar=None,
):
    if soup > 1:
        heads, results = [], []
        for k in range(soup):
            r = train_x(X_train, y_train, X_val, y_val, epochs=epochs, patience=patience, lr=lr,
                        batch_size=batch_size, seed=seed * 100 + k, class_weights=class_weights,
                        init=init, polar_train=polar_train, polar_val=polar_val,
                        weights_train=weights_train, weights_val=weights_val, init_mode=init_mode,
                        select=select, stop=stop, swa=swa, soup=1, smoothing=smoothing,
                        weight_decay=weight_decay, distill=distill, distill_T=distill_T,
                        rehearsal_ratio=rehearsal_ratio, rehearsal_weight=rehearsal_weight,
                        fb_weight_override=fb_weight_override, min_epochs=min_epochs, bias_cal=None,
                        dropout=dropout, smoothing_polar=smoothing_polar)
            heads.append(r.head); results.append(r)
        head = copy.deepcopy(heads[0])
        sd = head.state_dict()
        for key in sd:
            if sd[key].is_floating_point():
                sd[key] = torch.stack([h.state_dict()[key] for h in heads]).mean(0)
        head.load_state_dict(sd)
        _refresh_bn(head, X_train, seed)
        head.eval()
        return TrainResult(head=head, history=results[0].history, best_epoch=results[0].best_epoch,
                           metrics=None)
    started = time.perf_counter()
    ytr = label_indices(y_train)
    polar = _polar_flags(polar_train, len(ytr))
    row_w = _per_row(weights_train, len(ytr), np.float32, "row weights")
    if row_w is None:
        row_w = torch.ones(len(ytr))
    fb_mask = row_w != 1.0
    if fb_weight_override is not None:
        row_w = torch.where(fb_mask, torch.tensor(float(fb_weight_override)), row_w)
    row_w = torch.where(polar, row_w * rehearsal_weight, row_w)
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    if class_weights == "auto":
        weights = auto_class_weights(ytr[~polar.numpy()])
    elif class_weights is None:
        weights = None
    else:
        weights = np.asarray(class_weights, dtype=np.float64)
    with _threads(torch_threads):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        xt = torch.as_tensor(np.asarray(X_train, np.float32))
        yt = torch.as_tensor(ytr)
        if init_mode == "scratch":
            init = None
        elif init_mode == "shipped":
            init = SHIPPED["head"]
        head = copy.deepcopy(init).cpu() if init is not None else SentimentHead(xt.shape[1])
        if dropout is not None:
            head.net[2].p = dropout
        teacher_t = None
        if distill > 0:
            teacher_t = torch.as_tensor(SHIPPED["head"].predict_proba(np.asarray(X_train, np.float32)))
        optimiser = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
        weight_t = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        loss_fn = Loss(weight_t, smoothing, distill, distill_T, smoothing_polar)
        eval_loss = SentimentLoss(weight_t)
        if has_val:
            xv = torch.as_tensor(np.asarray(X_val, np.float32))
            yv = torch.as_tensor(label_indices(y_val))
            polar_v = _polar_flags(polar_val, len(yv))
            row_w_v = _per_row(weights_val, len(yv), np.float32, "row weights")
            fb_v = (row_w_v != 1.0) if row_w_v is not None else torch.zeros(len(yv), dtype=torch.bool)
            three_v = ~polar_v
        history = []
        best_state, best_epoch, best_score = None, 0, -math.inf
        best_loss, stale = math.inf, 0
        swa_states = []
        idx_polar = torch.nonzero(polar).flatten()
        idx_rest = torch.nonzero(~polar).flatten()
        for epoch in range(1, epochs + 1):
            head.train()
            if rehearsal_ratio is not None and len(idx_polar):
                k = min(len(idx_polar), int(round(rehearsal_ratio * len(idx_rest))))
                pick = idx_polar[torch.randperm(len(idx_polar), generator=generator)[:k]]
                pool = torch.cat([idx_rest, pick])
                order = pool[torch.randperm(len(pool), generator=generator)]
            else:
                order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                if len(idx) < 2:
                    continue
                optimiser.zero_grad()
                tch = None if teacher_t is None else teacher_t[idx]
                loss_fn(head(xt[idx]), yt[idx], polar[idx], row_w[idx], tch).backward()
                optimiser.step()
            row = {"epoch": epoch}
            if swa:
                swa_states.append(copy.deepcopy(head.state_dict()))
            if has_val:
                head.eval()
                with torch.inference_mode():
                    lv = head(xv)
                    val_loss = float(eval_loss(lv, yv, polar_v, row_w_v))
                    val_acc = float(predictions_correct(lv, yv, polar_v).float().mean())
                    f1_3 = _macro_f1_3(lv, yv, three_v)
                    wf1 = _macro_f1_3(lv, yv, fb_v) if fb_v.any() else f1_3
                row.update(val_loss=val_loss, val_acc=val_acc, f1_3=f1_3, wf1=wf1)
                score = {"acc": val_acc, "loss": -val_loss, "f1_3": f1_3, "wf1": wf1,
                         "last": epoch}[select]
                if score > best_score and epoch >= min_epochs:
                    best_score, best_epoch = score, epoch
                    best_state = copy.deepcopy(head.state_dict())
                stop_val = {"loss": val_loss, "f1_3": -f1_3, "none": 0.0}[stop]
                if stop_val < best_loss - 1e-6:
                    best_loss, stale = stop_val, 0
                else:
                    stale += 1
            if on_epoch is not None:
                on_epoch(head, row)
            history.append(row)
            if has_val and stop != "none" and stale >= patience and epoch >= min_epochs:
                break
        if swa:
            # average the `swa` epochs ending at the chosen epoch
            end = len(history)
            first_kept = end - len(swa_states) + 1
            chosen = best_epoch if best_state is not None else end
            lo = max(first_kept, chosen - swa + 1)
            states = swa_states[lo - first_kept : chosen - first_kept + 1]
            avg = {k: (torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v)
                   for k, v in states[-1].items()}
            head.load_state_dict(avg)
            _refresh_bn(head, xt, seed)
        elif best_state is not None:
            head.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        if dropout is not None:
            head.net[2].p = 0.5  # the serving head's value (only active in training mode)
        if bias_cal == "inner3" and has_val:
            _calibrate_bias(head, xv[three_v], yv[three_v])
        head.eval()
    return TrainResult(head=head, history=history, best_epoch=best_epoch, metrics=None,
                       seconds=time.perf_counter() - started)


@torch.no_grad()
def _refresh_bn(head, X, seed):
    """Recompute BatchNorm running statistics over the training rows (as torch swa_utils.update_bn)."""
    x = torch.as_tensor(np.asarray(X, np.float32))
    bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm1d)]
    for m in bns:
        m.reset_running_stats(); m.momentum = None  # cumulative average
    head.train()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    for s in range(0, len(x), 256):
        idx = order[s:s + 256]
        if len(idx) > 1:
            head(x[idx])
    for m in bns:
        m.momentum = 0.1
    head.eval()


@torch.no_grad()
def _calibrate_bias(head, x, y, grid=np.linspace(-1.5, 1.5, 31)):
    """Add a logit offset to neutral (and to positive vs negative) maximising macro-F1 on (x, y)."""
    head.eval()
    logits = head(x).numpy(); yy = y.numpy()
    best, best_off = -1, (0.0, 0.0)
    for a in grid:
        for b in np.linspace(-0.5, 0.5, 11):
            p = (logits + np.array([0.0, a, b])).argmax(1)
            f = np.mean([2 * ((p == c) & (yy == c)).sum() / max((p == c).sum() + (yy == c).sum(), 1) for c in range(3)])
            if f > best + 1e-9:
                best, best_off = f, (a, b)
    last = head.net[-1]
    last.bias += torch.tensor([0.0, best_off[0], best_off[1]])
