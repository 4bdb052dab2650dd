"""CTranslate2: BertModel -> ct2 (float32 weights; int8 is chosen at load time via compute_type).
transformers 5 dropped BertConfig.position_embedding_type, which ct2 4.8.5's BertLoader asserts on:
the source folder is the e5 folder with that key put back into config.json (e5-ct2src/)."""
import sys, time
sys.path.insert(0, "/tmp/rt")
import ctranslate2
from rtcommon import ART, ROOT
t = time.time()
conv = ctranslate2.converters.TransformersConverter(str(ROOT / "e5-ct2src"), load_as_float16=False)
if not (ART / "ct2").exists(): print(conv.convert(str(ART / "ct2"), quantization=None, force=True), round(time.time() - t, 1))
# int8 weights on disk too (smaller file, no float copy read at load)
t = time.time()
print(conv.convert(str(ART / "ct2-int8"), quantization="int8", force=True), round(time.time() - t, 1))
