"""Generates the ReFT parity goldens (test/goldens/loreft_llama, nodireft_llama)
with pyreft itself, on the tiny LLaMA of scripts/gen_goldens/generate.py
(test/goldens/llama/model.onnx, rebuilt here from the same config and seed).

pyreft 0.1.0 and pyvene 0.1.8 pin GPU-era dependencies, so they live in their
own environment, installed without dependencies on top of the goldens
environment (from the repository root):

  python3 -m venv .venv-reft
  echo "$PWD/$(ls -d .venv-goldens/lib/python3*/site-packages)" \
      > "$(ls -d .venv-reft/lib/python3*/site-packages)/goldens.pth"
  .venv-reft/bin/pip install -r scripts/gen_goldens/requirements-reft.txt
  .venv-reft/bin/pip install --no-deps pyreft==0.1.0 pyvene==0.1.8
  .venv-reft/bin/python scripts/gen_goldens/generate_reft.py

Each case is pyreft's ReftModel (get_reft_model) on the f64 model, trained as
pyreft's ReftTrainer does (HF Trainer: AdamW, mean causal cross-entropy over
the non-ignored labels), the intervention locations given per example by
pyreft's get_intervention_locations from the prompt lengths, shifted by one
for the pad token pyreft's datasets put before every prompt. Files:

  data.safetensors             input_ids, attention_mask, labels, prompt_lengths
  initial_interventions.safetensors
                               every intervention tensor before step 1 (the
                               orthogonal parametrization's `original` and its
                               `base` buffer included), named
                               <pyvene key>.<parameter name>
  final_trainable.safetensors  every trainable tensor after the last step
  losses.json                  as generate.py writes it, plus pyreft's
                               print_trainable_parameters() lines
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
from contextlib import redirect_stdout

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (the tiny models, f64 conversion, the loss)

import pyreft  # noqa: E402

CASES = [
    {"name": "loreft_llama", "intervention": "LoreftIntervention",
     "peft_type": "LOREFT", "layers": [0, 1], "positions": "f5+l5", "rank": 4,
     "share_weights": False, "lr": 2e-2,
     "description": "LoReFT (pyreft LoreftIntervention), rank 4, f5+l5 with separate "
                    "weights for first and last positions, after layers 0 and 1"},
    {"name": "nodireft_llama", "intervention": "NodireftIntervention",
     "peft_type": "NODIREFT", "layers": [1], "positions": "f2+l2", "rank": 2,
     "share_weights": True, "lr": 2e-2,
     "description": "NoDiReFT (pyreft NodireftIntervention, the paper's DiReFT), rank 2, "
                    "f2+l2 with shared weights, after layer 1"},
    {"name": "direft_llama", "intervention": "DireftIntervention",
     "peft_type": "DIREFT", "layers": [0], "positions": "l3", "rank": 3,
     "share_weights": False, "lr": 2e-2,
     "description": "pyreft's own DireftIntervention (R orthonormal), rank 3, the last "
                    "3 prompt tokens, after layer 0"},
]
STEPS = 10
# Prompt lengths of the two examples (tokens after the leading pad token).
PROMPT_LENGTHS = [5, 4]


def make_data() -> dict:
    """pyreft's dataset layout: a pad token (mask 0, label -100) before the
    prompt, the prompt (labels -100), then the response; row 1 is right-padded
    by one."""
    gen = torch.Generator().manual_seed(g.DATA_SEED)
    rows = len(PROMPT_LENGTHS)
    ids = torch.randint(3, g.VOCAB, (rows, g.SEQ), generator=gen, dtype=torch.int64)
    mask = torch.ones(rows, g.SEQ, dtype=torch.int64)
    labels = ids.clone()
    for r, length in enumerate(PROMPT_LENGTHS):
        ids[r, 0] = g.PAD_ID
        mask[r, 0] = 0
        labels[r, :1 + length] = -100
    ids[1, g.SEQ - 1] = g.PAD_ID
    mask[1, g.SEQ - 1] = 0
    labels[1, g.SEQ - 1] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "prompt_lengths": torch.tensor(PROMPT_LENGTHS, dtype=torch.int64)}


def locations(case: dict, num_interventions: int) -> torch.Tensor:
    """[batch, num_interventions, P] as pyreft's ReftDataset stores them."""
    per_example = []
    for length in PROMPT_LENGTHS:
        locs = pyreft.dataset.get_intervention_locations(
            last_position=length, positions=case["positions"],
            num_interventions=num_interventions,
            share_weights=case["share_weights"], pad_mode="first")
        per_example.append([[p + 1 for p in row] for row in locs])
    return torch.tensor(per_example, dtype=torch.int64)


def spec_yaml(case: dict) -> str:
    layers = ", ".join(str(l) for l in case["layers"])
    return f"""# {case['name']}: {case['description']}.
# Model: test/goldens/llama/model.onnx. Data: data.safetensors (prompt_lengths per example;
# a pad token before each prompt, as pyreft's datasets). Generated by
# scripts/gen_goldens/generate_reft.py with pyreft {pyreft_version()}.
peft_type: {case['peft_type']}
layers: [{layers}]
positions: {case['positions']}
low_rank_dimension: {case['rank']}
share_weights: {'true' if case['share_weights'] else 'false'}
component: block_output
dropout: 0.0
prompt_lengths: prompt_lengths
position_offset: 1
training:
  inputs:
    input_ids: [{g.BATCH}, {g.SEQ}]
    attention_mask: [{g.BATCH}, {g.SEQ}]
    labels: [{g.BATCH}, {g.SEQ}]
  batch_size: {g.BATCH}
  shuffle: false
  pad_token_id: {g.PAD_ID}
  seed: 0
  loss: {{type: cross_entropy, logits: logits, labels: labels, shift: causal, ignore_index: -100}}
  optimizer:
    type: adamw
    lr: {case['lr']}
    betas: [0.9, 0.999]
    eps: 1.0e-08
    weight_decay: 0.0
  schedule: {{type: constant, warmup_steps: 0, total_steps: {STEPS}}}
  max_grad_norm: 0.0
  gradient_accumulation_steps: 1
"""


def pyreft_version() -> str:
    from importlib.metadata import version
    return version("pyreft")


def run_case(case: dict, base: torch.nn.Module) -> dict:
    out_dir = os.path.join(g.OUT, case["name"])
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    data = make_data()
    save_file({k: np.ascontiguousarray(v.numpy()) for k, v in data.items()},
              os.path.join(out_dir, "data.safetensors"),
              metadata={"generator": "scripts/gen_goldens/generate_reft.py"})
    with open(os.path.join(out_dir, "spec.yaml"), "w") as f:
        f.write(spec_yaml(case))

    layers = list(case["layers"])
    if "+" in case["positions"] and not case["share_weights"]:
        layers += layers  # examples/loreft/train.py
    model = g.f64_model(base)
    torch.manual_seed(0)
    # pyreft builds rotate_layer in the default dtype.
    torch.set_default_dtype(torch.float64)
    cls = getattr(pyreft, case["intervention"])
    reps = [{"layer": l, "component": "block_output", "low_rank_dimension": case["rank"],
             "intervention": cls(embed_dim=model.config.hidden_size,
                                 low_rank_dimension=case["rank"], dtype=torch.float64,
                                 add_bias=False)}
            for l in layers]
    reft_model = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=reps))
    torch.set_default_dtype(torch.float32)
    reft_model.model.eval()
    line = io.StringIO()
    with redirect_stdout(line):
        reft_model.print_trainable_parameters()

    named = {}
    initial = {}
    for key, intervention in reft_model.interventions.items():
        module = intervention[0] if isinstance(intervention, (tuple, list)) else intervention
        for n, p in module.named_parameters():
            if p.requires_grad:
                named[f"{key}.{n}"] = p
            initial[f"{key}.{n}"] = p.detach().clone()
        for n, b in module.named_buffers():
            if b.is_floating_point():  # pyvene keeps embed_dim etc. as int buffers
                initial[f"{key}.{n}"] = b.detach().clone()
    for n, t in initial.items():
        if t.dtype != torch.float64:
            raise RuntimeError(f"{case['name']}: {n} is {t.dtype}, not float64")
    save_file({n: np.ascontiguousarray(t.numpy()) for n, t in initial.items()},
              os.path.join(out_dir, "initial_interventions.safetensors"),
              metadata={"generator": "scripts/gen_goldens/generate_reft.py"})

    locs = locations(case, len(layers))
    unit_locations = {"sources->base": (None, locs.permute(1, 0, 2).tolist())}
    params = list(named.values())
    opt = torch.optim.AdamW(params, lr=case["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0, foreach=False)

    def loss_of() -> torch.Tensor:
        _, out = reft_model({"input_ids": data["input_ids"],
                             "attention_mask": data["attention_mask"]},
                            unit_locations=unit_locations, use_cache=False)
        return g.causal_ce(out.logits, data["labels"])

    losses, grad_norms, lrs = [], [], []
    with g.softmax_keeps_f64():
        for _ in range(STEPS):
            lrs.append(opt.param_groups[0]["lr"])
            opt.zero_grad(set_to_none=True)
            loss = loss_of()
            loss.backward()
            grad_norms.append(math.sqrt(sum(float((p.grad ** 2).sum())
                                            for p in params if p.grad is not None)))
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            final_loss = loss_of().item()
    drop = (losses[0] - final_loss) / losses[0]
    if drop < 0.1:
        raise RuntimeError(f"{case['name']}: loss falls by {drop:.1%} only")
    save_file({n: np.ascontiguousarray(p.detach().numpy()) for n, p in named.items()},
              os.path.join(out_dir, "final_trainable.safetensors"),
              metadata={"generator": "scripts/gen_goldens/generate_reft.py"})
    import transformers
    import pyvene
    record = {
        "case": case["name"], "description": case["description"],
        "model": "../llama/model.onnx",
        "generator": "scripts/gen_goldens/generate_reft.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "pyreft": pyreft_version(), "pyvene": getattr(pyvene, "__version__", "0.1.8")},
        "dtype": "float64", "steps": STEPS,
        "loss_definition": "losses[k] is the loss before optimizer step k+1",
        "losses": losses, "grad_norms": grad_norms, "lrs": lrs, "final_loss": final_loss,
        "loss_drop": drop,
        "intervention_locations": locs.tolist(),
        "trainable_line": line.getvalue().strip(),
    }
    with open(os.path.join(out_dir, "losses.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"{case['name']}: loss {losses[0]:.6f} -> {final_loss:.6f} ({drop:.1%}); "
          f"{line.getvalue().strip()}")
    return record


def main() -> int:
    base = g.build_base("llama")
    for case in CASES:
        run_case(case, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
