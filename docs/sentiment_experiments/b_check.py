from harness_b import *
from dikkat.training.heads import ShippedReference
sh = ShippedReference.load(enc)
print("shipped head:", metrics(sh.head, XF, TESTS_FULL))
print("FULL rows", len(FULL), "R75 rows", len(R75))
res = run({}, seeds=(0,))
print("seed 0 retrained:", res)
