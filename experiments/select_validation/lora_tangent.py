"""LoRA attribution with and without the tangent-space restriction, on the planted case.

A tiny GPT-2 (2 layers, width 32, V = 64) and 40 documents of 24 uniformly random tokens;
LoRA rank 4 is fine-tuned (SGD, lr 0.1, full batch) on documents 3, 11, 25, 37 for 15, 50
and 150 steps, on ``c_attn`` + ``c_fc`` or also ``c_proj``. For each of the six settings:
how many of the 4 training documents the greedy top 4 holds, scoring raw gradients and
their tangent parts (:func:`layerscope.probes.attribution.delta_from_lora`).

    PYTHONPATH=src python -m experiments.select_validation.lora_tangent
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

from layerscope.adapters.peft import open_lora
from layerscope.probes.attribution import attribute, delta_from_lora

TRUE = (3, 11, 25, 37)


def main() -> int:
    import peft
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    base = transformers.GPT2LMHeadModel(config).eval()
    docs = torch.randint(0, 64, (40, 24), generator=torch.Generator().manual_seed(1))
    print("steps  targets                 raw  tangent   (training documents in the top 4)")
    for steps in (15, 50, 150):
        for targets in (["c_attn", "c_fc"], ["c_attn", "c_fc", "c_proj"]):
            lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets)
            lora.fan_in_fan_out = True
            model = peft.get_peft_model(copy.deepcopy(base), lora)
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
            for _ in range(steps):
                opt.zero_grad()
                x = docs[list(TRUE)]
                model(x, labels=x).loss.backward()
                opt.step()
            where = Path(tempfile.mkdtemp())
            model.save_pretrained(where)
            delta, tangents = delta_from_lora(base, open_lora(where), fan_in_fan_out=True, where="")
            found = []
            for tan in (None, tangents):
                result = attribute(base, delta, list(docs), top=4, projection_dim=512, tangents=tan)
                found.append(len(set(TRUE) & set(result.selected.tolist())))
            print(f"{steps:5d}  {'+'.join(targets):22s} {found[0]:3d}/4  {found[1]:3d}/4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
