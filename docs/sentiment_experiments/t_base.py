import time, json
from common import *
from dikkat.bench.retrain_learning import learning_runs
enc, cache, frames = setup()
t=time.time()
r = learning_runs(enc, cache, frames, seeds=(0,), steps=(100,300,1000))
print(time.time()-t)
