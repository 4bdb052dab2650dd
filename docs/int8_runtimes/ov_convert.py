"""OpenVINO IR: fp32 (ov.convert_model of the torch model), int8 weight compression (NNCF),
int8 post-training quantization (nncf.quantize, 300 calibration texts from the store train part)."""
import sys, time
sys.path.insert(0, "/tmp/rt")
import numpy as np, torch, openvino as ov, nncf
from transformers import AutoModel
from rtcommon import ART, E5, tokenizer, calibration_ids, pad

what = sys.argv[1:] or ["fp32", "wc", "ptq"]
if "fp32" in what:
    model = AutoModel.from_pretrained(str(E5), local_files_only=True, add_pooling_layer=False).eval()
    ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 1000, 2, 1, 1]])
    example = {"input_ids": ids, "attention_mask": (ids != 1).long()}
    t = time.time()
    with torch.no_grad():
        ovm = ov.convert_model(model, example_input=example)
    # name the first output; shapes stay dynamic
    ovm.outputs[0].get_tensor().set_names({"last_hidden_state"})
    ov.save_model(ovm, str(ART / "ov-fp32.xml"), compress_to_fp16=False)
    print("ov convert", round(time.time() - t, 1), [i.get_any_name() for i in ovm.inputs], ovm.outputs[0].partial_shape)

core = ov.Core()
if "wc" in what:
    t = time.time()
    m = nncf.compress_weights(core.read_model(str(ART / "ov-fp32.xml")), mode=nncf.CompressWeightsMode.INT8_ASYM)
    ov.save_model(m, str(ART / "ov-int8-wc.xml"), compress_to_fp16=False)
    print("ov wc", round(time.time() - t, 1))
if "ptq" in what:
    t = time.time()
    tok = tokenizer()
    items = []
    for row in calibration_ids(tok):
        i, m_ = pad([row])
        items.append({"input_ids": i, "attention_mask": m_})
    m = nncf.quantize(core.read_model(str(ART / "ov-fp32.xml")), nncf.Dataset(items),
                      model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
                      subset_size=len(items))
    ov.save_model(m, str(ART / "ov-int8-ptq.xml"), compress_to_fp16=False)
    print("ov ptq", round(time.time() - t, 1))
