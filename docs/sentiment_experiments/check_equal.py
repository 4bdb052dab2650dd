import functools
from common import *
from variants import train_x
from dikkat.bench.retrain_learning import learning_runs
import dikkat.bench.retrain_learning as rl
enc, cache, frames = setup()
orig = rl.train_candidate
rl.train_candidate = functools.partial(orig, fit=train_x)
r = learning_runs(enc, cache, frames, seeds=(0,), steps=(100,300,1000), say=lambda s: None)
print([ (p['n'],p['promoted'],p['candidate']) for p in r['runs'][0]['points']])
