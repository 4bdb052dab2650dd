#!/bin/sh
# Reproduce issue-23 recipe experiments (about 1.5 h of CPU on a quiet 2-core machine).
# Needs: /work/main/.venv, /tmp/exp/features.db (cached e5 features), /work/shared/data/sentiment.
set -e
cd /tmp/exp23
PY=/work/main/.venv/bin/python
[ -f features.db ] || cp /tmp/exp/features.db features.db
# the project code at HEAD 2d3dbc0 (snap) and with the recommended diffs (snap2: minimal, snap3: full)
[ -d snap ] || { mkdir snap; git -C /work/main archive 2d3dbc0 dikkat | tar -x -C snap; }
for s in snap2 snap3; do
  [ -d $s ] || { mkdir $s; git -C /work/main archive 2d3dbc0 dikkat tests pyproject.toml | tar -x -C $s; }
done
(cd snap2 && patch -p1 -N < ../recommended_minimal.diff || true)
(cd snap3 && patch -p1 -N < ../recommended_full.diff || true)
$PY t_base.py                       # reproduces docs/bench_learning.json seed 0 exactly
$PY check_equal.py                  # variants.train_x with defaults == train_head
$PY diag.py                         # per-epoch store F1 of a 1,000-correction retrain
for r in round1 round1b round2 round3 round4 round6 round8; do $PY $r.py; done   # part A sweeps
$PY build_ls_head.py 0.2            # the LS-0.2 shipped head (seed 0) -> heads/ls0.2
$PY round5.py; $PY round7.py; $PY round9.py        # part A from the LS-0.2 shipped head
for r in b_round1 b_round2 b_round3 b_round4; do $PY $r.py; done   # part B sweeps
$PY b_ens.py; $PY conf_check.py
SNAP=/tmp/exp23/snap2 $PY verify_diff.py A    # the project's learning_runs with the minimal diff
SNAP=/tmp/exp23/snap2 $PY verify_diff.py B 0  # the project's train_seed_head with label smoothing
SNAP=/tmp/exp23/snap3 $PY verify_full.py verify_full_A.json
$PY make_tables.py > tables.md
(cd snap3 && PYTHONPATH=$PWD $PY -m pytest -q -p no:cacheprovider tests/unit/test_sentiment_training.py \
  tests/unit/test_rehearsal.py tests/unit/test_background.py tests/unit/test_seed_head.py \
  tests/integration/test_retrain.py tests/unit/test_bench_retrain.py tests/integration/test_promotion_power.py \
  /tmp/exp23/proposed_tests/test_recipe_issue23.py)
