"""ORT transformer optimizer (bert, fp32) + dynamic int8 variants."""
import sys, time
sys.path.insert(0, "/tmp/rt")
from rtcommon import ART
from onnxruntime.transformers import optimizer
from onnxruntime.quantization import quantize_dynamic, QuantType

import onnx
if not (ART / "ort-fp32-opt.onnx").exists():
  t = time.time()
  opt = optimizer.optimize_model(str(ART / "e5-fp32.onnx"), model_type="bert", num_heads=12, hidden_size=384,
                               opt_level=1, use_gpu=False)  # opt_level 1: fusions, no graph-level ORT tricks baked in
  print("fused ops:", opt.get_fused_operator_statistics())
  opt.save_model_to_file(str(ART / "ort-fp32-opt.onnx"))
  print("optimize", round(time.time() - t, 1))

variants = {
    "ort-int8": dict(per_channel=False, reduce_range=False),
    "ort-int8-pc": dict(per_channel=True, reduce_range=False),
    "ort-int8-rr": dict(per_channel=False, reduce_range=True),
    "ort-int8-pc-rr": dict(per_channel=True, reduce_range=True),
    # word-embedding table left fp32 (only MatMul / Attention quantized)
    "ort-int8-noemb": dict(per_channel=True, reduce_range=False, op_types_to_quantize=["MatMul", "Attention"]),
}
for name, kw in variants.items():
    t = time.time()
    quantize_dynamic(str(ART / "ort-fp32-opt.onnx"), str(ART / f"{name}.onnx"), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **kw)
    print(name, round(time.time() - t, 1))
