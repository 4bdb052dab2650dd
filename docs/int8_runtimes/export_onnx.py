"""torch -> ONNX (fp32, eager attention, legacy TorchScript exporter), then ORT's BERT optimizer."""
import sys, time
import torch
from transformers import AutoModel
sys.path.insert(0, "/tmp/rt")
from rtcommon import ART, E5

class Wrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__(); self.m = m
    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.m(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids).last_hidden_state

model = AutoModel.from_pretrained(str(E5), local_files_only=True, add_pooling_layer=False,
                                  attn_implementation="eager").eval()
ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 1000, 2, 1, 1]])
mask = (ids != 1).long()
t = time.time()
torch.onnx.export(Wrap(model), (ids, mask, torch.zeros_like(ids)), str(ART / "e5-fp32.onnx"),
                  input_names=["input_ids", "attention_mask", "token_type_ids"],
                  output_names=["last_hidden_state"],
                  dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
                  opset_version=17, dynamo=False, external_data=False)
print("export", time.time() - t)
