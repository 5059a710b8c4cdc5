#!/usr/bin/env python3
"""Generates the PEFT parity goldens under test/goldens/.

Each case is a tiny transformers model (built from a config with a fixed seed:
nothing is downloaded), a Hugging Face PEFT configuration and a short AdamW
run in float64, recorded so that peftc's reference evaluator can replay it
without PyTorch:

  test/goldens/<model>/model.onnx       the base model (f32, eval mode), exported
                                        before PEFT wraps it
  test/goldens/<case>/spec.yaml         the peftc spec (PEFT field names + training:)
  test/goldens/<case>/data.safetensors  input_ids, attention_mask, labels (int64)
  test/goldens/<case>/initial_adapter/  PEFT save_pretrained before step 1
  test/goldens/<case>/final_adapter/    PEFT save_pretrained after the last step
  test/goldens/<case>/final_trainable.safetensors
                                        every trainable tensor after the last step,
                                        under PEFT's parameter names
  test/goldens/<case>/losses.json       per-step losses, grad norms, lrs, PEFT's
                                        print_trainable_parameters() line, ...

Set up once (from the repository root):

  python3 -m venv .venv-goldens
  .venv-goldens/bin/pip install -r scripts/gen_goldens/requirements.txt

then regenerate every case (or a few with --only NAME ...):

  .venv-goldens/bin/python scripts/gen_goldens/generate.py

The training loop is Hugging Face Trainer's, written out: base model in eval
mode (no dropout anywhere), loss = mean cross-entropy over the non-ignored
tokens of each micro-batch (labels shifted by one, ignore_index -100),
averaged over gradient-accumulation micro-batches, global-norm clipping
(torch.nn.utils.clip_grad_norm_) before the step, torch.optim.AdamW with the
Trainer's two parameter groups (no weight decay for biases and norm weights:
transformers' get_parameter_names(model, ALL_LAYERNORM_LAYERS,
["bias", "layernorm", "rmsnorm"])), and transformers' get_scheduler stepped
once per optimizer step.

The run is in float64 (model.double() before get_peft_model) and computes
exactly what the exported f32 graph computes when evaluated in f64 (peftc's
reference evaluator): transformers' f32 islands (LLaMA's RMSNorm and rotary
tables, eager attention's softmax(dtype=float32)) are evaluated in the input's
dtype, as scripts/gen_models/generate.py does, and the scalar constants the
graph stores in f32 (norm epsilons, LLaMA's attention scale, gelu_new's
coefficients) are used at their f32 values. The generator checks this: the
graph with its f32 tensors made f64, on onnx.reference, matches the torch f64
model to ~1e-15. The loss is computed here in f64 (transformers' own
ForCausalLMLoss casts logits to f32).

Every case starts from its initial_adapter/ (PEFT draws A, and B with
init_lora_weights false, from torch's RNG, which peftc does not reproduce).

Prompt tuning (PEFT's PROMPT_TUNING) runs as PEFT runs it: P virtual token
embeddings in front of every example, the attention mask prefixed with ones
and the labels with -100 (as PeftModelForCausalLM.forward does when given
labels).

Prefix tuning (PEFT's PREFIX_TUNING) runs as PEFT runs it: get_prompt's
past_key_values (a DynamicCache of P positions per layer) in front of every
layer's keys and values, the attention mask prefixed with P ones; transformers
then starts the real tokens' positions (LLaMA's rotary cache_position) at P.
The labels are not prefixed (the logits cover the T real tokens). With
prefix_projection, PEFT's save_pretrained writes the encoder's output
(prompt_embeddings [P, num_layers*2*token_dim]), not the encoder: such a case
also writes initial_prefix_encoder.safetensors, the encoder's initial weights
under PEFT's parameter names less the adapter name
(prompt_encoder.embedding.weight, prompt_encoder.transform.0.weight, ...),
which is where peftc starts from.

Bottleneck adapters (`seq_bn`, `double_seq_bn`, `par_bn`) are trained with the
`adapters` library itself (adapter-hub, 1.2.0: the release pinned to
transformers ~=4.51.3; `pip install --no-deps adapters==1.2.0`): adapters.init
on the f64 model, add_adapter with the library's SeqBnConfig /
DoubleSeqBnConfig / ParBnConfig, train_adapter. Their initial_adapter/ and
final_adapter/ are the library's save_adapter(use_safetensors=True) folders
(adapter.safetensors + adapter_config.json), and trainable_line is PEFT's
print_trainable_parameters() format computed on that model (trainable =
the adapter's parameters, all = base + adapter); losses.json also keeps the
library's own adapter_summary().
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import onnx
import torch
import yaml
from safetensors.numpy import save_file
from safetensors.torch import load_file as load_torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "test", "goldens")
MODEL_SEED = 20240611
DATA_SEED = 1234
BATCH = 2
SEQ = 8
VOCAB = 64
PAD_ID = 0
MAX_CASE_BYTES = 1024 * 1024
MIN_LOSS_DROP = 0.10


# --- The base models ----------------------------------------------------------


def llama_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=32,
                       rms_norm_eps=1e-6, rope_theta=10000.0, hidden_act="silu",
                       initializer_range=0.2, attention_dropout=0.0,
                       tie_word_embeddings=False, pad_token_id=PAD_ID,
                       bos_token_id=1, eos_token_id=2,
                       attn_implementation="eager")


def gpt2_config():
    from transformers import GPT2Config
    return GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2,
                      n_head=4, activation_function="gelu_new",
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      initializer_range=0.2, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=PAD_ID,
                      attn_implementation="eager")


def build_base(model: str) -> torch.nn.Module:
    from transformers import GPT2LMHeadModel, LlamaForCausalLM
    torch.manual_seed(MODEL_SEED)
    if model == "llama":
        m = LlamaForCausalLM(llama_config())
    elif model == "gpt2":
        m = GPT2LMHeadModel(gpt2_config())
        assert m.lm_head.weight is m.transformer.wte.weight, "lm_head must be tied to wte"
    else:
        raise ValueError(model)
    # Small noise on every parameter so that no weight is exactly 0 or 1 (norm
    # weights, biases): a kernel that ignores one then shows up.
    g = torch.Generator().manual_seed(MODEL_SEED + 1)
    with torch.no_grad():
        for _, p in sorted(m.named_parameters()):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)
    return m.eval()


MODEL_DESCRIPTIONS = {
    "llama": "LlamaForCausalLM: vocab 64, hidden 32, 2 layers, 4 heads / 2 KV heads "
             "(GQA), ffn 64, RMSNorm, SiLU, rotary, eager attention, untied lm_head",
    "gpt2": "GPT2LMHeadModel: vocab 64, n_embd 32, 2 layers, 4 heads, gelu_new, "
            "Conv1D (c_attn fused qkv), lm_head tied to wte, eager attention",
}


TOKENS = {0: "batch", 1: "sequence"}


def export_onnx(model: str, base: torch.nn.Module, data: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    out_dir = os.path.join(OUT, model)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.onnx")
    args = (data["input_ids"], data["attention_mask"])
    # Exported without a wrapper module, so that the node scopes are PEFT's
    # module paths (/model/layers.0/self_attn/q_proj/MatMul for
    # model.layers.0.self_attn.q_proj): the model's own forward is replaced
    # for the export by one with the graph's signature (logits only, no cache).
    cls_forward = type(base).forward

    def forward(self, input_ids, attention_mask):
        return cls_forward(self, input_ids=input_ids, attention_mask=attention_mask,
                           use_cache=False, return_dict=True).logits

    base.forward = forward.__get__(base)
    try:
        with torch.no_grad():
            ref = base(*args).numpy()
            torch.onnx.export(base, args, path, dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"],
                              output_names=["logits"],
                              dynamic_axes={"input_ids": TOKENS, "attention_mask": TOKENS,
                                            "logits": TOKENS},
                              do_constant_folding=True)
    finally:
        del base.forward
    proto = onnx.load(path)
    if [i.name for i in proto.graph.input] != ["input_ids", "attention_mask"] or \
            [o.name for o in proto.graph.output] != ["logits"]:
        raise RuntimeError(f"{path}: unexpected graph signature")
    onnx.checker.check_model(proto)
    from onnx.reference import ReferenceEvaluator
    got = ReferenceEvaluator(path).run(None, {k: data[k].numpy() for k in
                                              ("input_ids", "attention_mask")})[0]
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    if err > 1e-5:
        raise RuntimeError(f"{path}: onnx.reference differs from torch by {err:.2e}")
    # The torch f64 model (what the goldens train) is the graph evaluated in f64.
    with torch.no_grad(), softmax_keeps_f64():
        ref64 = f64_model(base)(input_ids=args[0], attention_mask=args[1],
                                use_cache=False).logits.numpy()
    got64 = ReferenceEvaluator(onnx_in_f64(proto)).run(
        None, {"input_ids": args[0].numpy(), "attention_mask": args[1].numpy()})[0]
    err64 = float(np.max(np.abs(got64 - ref64)) / np.max(np.abs(ref64)))
    if got64.dtype != np.float64 or err64 > 1e-13:
        raise RuntimeError(f"{path}: the graph in f64 differs from torch f64 by {err64:.2e}")
    return {"size": os.path.getsize(path), "onnx_ref_rel_err": err, "onnx_f64_rel_err": err64,
            "params": sum(p.numel() for p in base.parameters())}


# --- f64 (see the module docstring) ---------------------------------------------


def rmsnorm_in_input_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def rotary_in_input_dtype(self, x, position_ids):
    inv_freq = self.inv_freq[None, :, None].to(x.dtype).expand(position_ids.shape[0], -1, 1)
    pos = position_ids[:, None, :].to(x.dtype)
    freqs = (inv_freq @ pos).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


def f32(x: float) -> float:
    """x rounded to float32, as the exported graph stores it."""
    return float(np.float32(x))


def gelu_new_graph_constants(self, input):
    return 0.5 * input * (1.0 + torch.tanh(f32(math.sqrt(2.0 / math.pi)) *
                                           (input + f32(0.044715) * torch.pow(input, 3.0))))


def swap_f32_islands(model: torch.nn.Module) -> None:
    """Makes the torch f64 run compute what the f32 ONNX graph computes when it
    is evaluated in f64: no f32 islands, and the scalar constants the graph
    stores in f32 (norm epsilons, LLaMA's attention scale, gelu_new's
    coefficients) at their f32 values."""
    from transformers.activations import NewGELUActivation
    from transformers.models.llama.modeling_llama import (LlamaAttention, LlamaRMSNorm,
                                                          LlamaRotaryEmbedding)
    for mod in model.modules():
        if isinstance(mod, LlamaRMSNorm):
            mod.forward = rmsnorm_in_input_dtype.__get__(mod)
            mod.variance_epsilon = f32(mod.variance_epsilon)
        elif isinstance(mod, LlamaRotaryEmbedding):
            mod.forward = rotary_in_input_dtype.__get__(mod)
        elif isinstance(mod, LlamaAttention):
            mod.scaling = f32(mod.scaling)
        elif isinstance(mod, torch.nn.LayerNorm):
            mod.eps = f32(mod.eps)
        elif isinstance(mod, NewGELUActivation):
            mod.forward = gelu_new_graph_constants.__get__(mod)


def onnx_in_f64(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with every f32 initializer, constant and cast made f64 (how
    peftc's reference evaluator runs an f32 model in f64)."""
    from onnx import TensorProto, numpy_helper
    g = proto.graph
    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT:
            a = numpy_helper.to_array(init).astype(np.float64)
            g.initializer[i].CopyFrom(numpy_helper.from_array(a, init.name))
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
    for o in g.output:
        if o.type.tensor_type.elem_type == TensorProto.FLOAT:
            o.type.tensor_type.elem_type = TensorProto.DOUBLE
    del g.value_info[:]
    return proto


@contextlib.contextmanager
def softmax_keeps_f64():
    original = torch.nn.functional.softmax

    def softmax(input, dim=None, _stacklevel=3, dtype=None):
        if dtype is not None and input.dtype == torch.float64:
            dtype = torch.float64
        return original(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    torch.nn.functional.softmax = softmax
    try:
        yield
    finally:
        torch.nn.functional.softmax = original


def f64_model(base: torch.nn.Module) -> torch.nn.Module:
    m = copy.deepcopy(base).double().eval()
    swap_f32_islands(m)
    return m


# --- Data and loss --------------------------------------------------------------


def make_data(rows: int) -> Dict[str, torch.Tensor]:
    """rows x SEQ random tokens (ids >= 3: 0 pad, 1 bos, 2 eos). Row 0 of each
    pair has a 2-token "prompt" whose labels are -100; row 1 is right-padded by
    2 (attention_mask 0, pad id, labels -100)."""
    g = torch.Generator().manual_seed(DATA_SEED)
    ids = torch.randint(3, VOCAB, (rows, SEQ), generator=g, dtype=torch.int64)
    ids[:, 0] = 1
    mask = torch.ones(rows, SEQ, dtype=torch.int64)
    labels = ids.clone()
    for r in range(rows):
        if r % 2 == 0:
            labels[r, :2] = -100
        else:
            ids[r, SEQ - 2:] = PAD_ID
            mask[r, SEQ - 2:] = 0
            labels[r, SEQ - 2:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def causal_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels,
                                             ignore_index=-100, reduction="mean")


# --- Cases ----------------------------------------------------------------------


@dataclass
class Case:
    name: str
    model: str
    peft: Dict[str, Any]  # PEFT config fields (peft_type + the config's own)
    lr: float = 1e-2
    weight_decay: float = 0.01
    steps: int = 10
    schedule: str = "constant"
    warmup_steps: int = 0
    grad_accum: int = 1
    max_grad_norm: float = 0.0  # 0: no clipping
    seed: int = 0
    description: str = ""
    # The spec's methods in peftc's list form, when it differs from the flat
    # PEFT form (e.g. LoRA + BitFit written as two methods).
    spec_methods: Optional[List[Dict[str, Any]]] = None
    # "peft" (Hugging Face PEFT) or "adapters" (the adapters library's
    # bottleneck configs, the spec's peft_type naming the preset).
    library: str = "peft"


CASES = [
    Case("lora_llama_qv", "llama",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": ["q_proj", "v_proj"], "bias": "none"},
         description="LoRA r=4, alpha 8 on q_proj and v_proj of every layer"),
    Case("lora_llama_layers", "llama",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                             "up_proj", "down_proj"],
          "layers_to_transform": [1], "bias": "none"},
         description="LoRA r=4 on every linear layer of layer 1 only (the seven "
                     "projections listed: PEFT refuses layers_to_transform with "
                     "target_modules 'all-linear'; layers_to_transform [1])"),
    Case("rslora_llama", "llama",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": "all-linear", "use_rslora": True,
          "rank_pattern": {"layers.1.self_attn.v_proj": 8},
          "alpha_pattern": {"layers.0.mlp.down_proj": 16},
          "bias": "none"},
         description="rsLoRA (scale alpha/sqrt(r)) on all-linear (every linear layer "
                     "but lm_head); layers.1.self_attn.v_proj r=8, "
                     "layers.0.mlp.down_proj alpha=16"),
    Case("dora_llama_qv", "llama",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": ["q_proj", "v_proj"], "use_dora": True, "bias": "none"},
         description="DoRA r=4, alpha 8 on q_proj and v_proj"),
    Case("ia3_llama", "llama",
         {"peft_type": "IA3", "target_modules": ["k_proj", "v_proj", "down_proj"],
          "feedforward_modules": ["down_proj"]},
         lr=5e-2,
         description="IA3 on k_proj, v_proj (output scaling) and down_proj "
                     "(feed-forward: input scaling)"),
    Case("lora_gpt2_cattn", "gpt2",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": ["c_attn"], "fan_in_fan_out": True, "bias": "lora_only"},
         description="LoRA r=4 on GPT-2's fused Conv1D c_attn (fan_in_fan_out), "
                     "c_attn biases trainable (bias lora_only)"),
    Case("lora_bitfit_head", "gpt2",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": ["c_attn"], "fan_in_fan_out": True, "bias": "all",
          "modules_to_save": ["lm_head"]},
         description="LoRA r=4 on c_attn + every bias trainable (PEFT bias 'all' = "
                     "BitFit) + lm_head trained as modules_to_save (a trainable copy "
                     "of the tied wte; wte itself stays frozen)",
         spec_methods=[
             {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
              "target_modules": ["c_attn"], "fan_in_fan_out": True, "bias": "none",
              "modules_to_save": ["lm_head"]},
             {"peft_type": "BITFIT", "biases": "all"},
         ]),
    Case("lora_llama_trainer", "llama",
         {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
          "target_modules": ["q_proj", "v_proj"], "bias": "none",
          "init_lora_weights": False},
         lr=1e-2, schedule="linear", warmup_steps=2, grad_accum=2, max_grad_norm=0.5,
         description="LoRA on q,v starting from B != 0 (init_lora_weights false: "
                     "start from initial_adapter), linear schedule with 2 warmup "
                     "steps, gradient accumulation 2 (4 data rows), clipping at 0.5"),
    Case("prompt_tuning_llama", "llama",
         {"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4,
          "prompt_tuning_init": "RANDOM"},
         lr=1e-1,
         description="prompt tuning: 4 virtual tokens (RANDOM init) in front of "
                     "every example; the graph is compiled at 8 + 4 positions"),
    Case("prefix_tuning_llama", "llama",
         {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 4},
         lr=1e-1,
         description="prefix tuning: 4 trainable key/value positions in front of "
                     "every layer's attention (GQA: 2 KV heads of 8, token_dim 16), "
                     "real tokens at rotary positions 4..11"),
    Case("prefix_tuning_proj_llama", "llama",
         {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 4,
          "prefix_projection": True, "encoder_hidden_size": 24},
         lr=1e-2,
         description="prefix tuning with prefix_projection: Embedding(4, 16) -> "
                     "Linear(16, 24) -> Tanh -> Linear(24, 64) computes the 2 "
                     "layers' key/value prefixes every step"),
    Case("prefix_tuning_gpt2", "gpt2",
         {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 3},
         lr=1e-1,
         description="prefix tuning on GPT-2: 3 key/value positions per layer "
                     "(4 heads of 8, token_dim 32); the learned position "
                     "embeddings are read at rows 3..10"),
    Case("seq_bn_llama", "llama",
         {"peft_type": "SEQ_BN", "reduction_factor": 4},
         library="adapters",
         description="adapters' seq_bn (Pfeiffer: after the FFN, relu, bert init) "
                     "with reduction_factor 4 (bottleneck 8)"),
    Case("double_seq_bn_llama", "llama",
         {"peft_type": "DOUBLE_SEQ_BN", "reduction_factor": 8},
         library="adapters",
         description="adapters' double_seq_bn (Houlsby: after attention and after "
                     "the FFN, swish) with reduction_factor 8 (bottleneck 4)"),
    Case("par_bn_llama", "llama",
         {"peft_type": "PAR_BN"},
         library="adapters",
         description="adapters' par_bn (parallel to the FFN, relu, scaling 4.0, "
                     "reduction_factor 2, mam_adapter init: the up-projection starts "
                     "at zero)"),
]


# --- Running a case ---------------------------------------------------------------


def peft_config(fields: Dict[str, Any]):
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig
    kw = {k: v for k, v in fields.items() if k != "peft_type"}
    if fields["peft_type"] == "PROMPT_TUNING":
        return PromptTuningConfig(task_type="CAUSAL_LM", **kw)
    if fields["peft_type"] == "PREFIX_TUNING":
        return PrefixTuningConfig(task_type="CAUSAL_LM", **kw)
    if fields["peft_type"] == "LORA":
        return LoraConfig(task_type="CAUSAL_LM", **kw)
    if fields["peft_type"] == "IA3":
        return IA3Config(task_type="CAUSAL_LM", **kw)
    raise ValueError(fields["peft_type"])


def trainable_line(model) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        model.print_trainable_parameters()
    return buf.getvalue().strip()


def decay_names(model) -> List[str]:
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names
    return get_parameter_names(model, ALL_LAYERNORM_LAYERS, ["bias", "layernorm", "rmsnorm"])


def spec_yaml(case: Case, data: Dict[str, torch.Tensor]) -> str:
    training = {
        "inputs": {k: [BATCH, SEQ] for k in data},
        "batch_size": BATCH,
        "shuffle": False,
        "pad_token_id": PAD_ID,
        "seed": case.seed,
        "loss": {"type": "cross_entropy", "logits": "logits", "labels": "labels",
                 "shift": "causal", "ignore_index": -100},
        "optimizer": {"type": "adamw", "lr": case.lr, "betas": [0.9, 0.999],
                      "eps": 1e-8, "weight_decay": case.weight_decay,
                      "no_decay": ["bias", "norm"]},
        "schedule": {"type": case.schedule, "warmup_steps": case.warmup_steps,
                     "total_steps": case.steps},
        "max_grad_norm": case.max_grad_norm,
        "gradient_accumulation_steps": case.grad_accum,
    }
    if case.spec_methods is not None:
        doc = {"methods": case.spec_methods, "training": training}
    else:
        doc = dict(case.peft)
        doc["training"] = training
    head = (f"# {case.name}: {case.description}.\n"
            f"# Model: test/goldens/{case.model}/model.onnx. Data: data.safetensors "
            f"(rows taken in order, {BATCH} per micro-batch).\n"
            f"# Generated by scripts/gen_goldens/generate.py; PEFT's own config is "
            f"initial_adapter/adapter_config.json.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


def save_adapter(model, path: str) -> None:
    """PEFT's save_pretrained, less the model-card README.md it writes."""
    model.save_pretrained(path)
    readme = os.path.join(path, "README.md")
    if os.path.exists(readme):  # the adapters library writes none
        os.remove(readme)


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def bottleneck_config(fields: Dict[str, Any]):
    from adapters import DoubleSeqBnConfig, ParBnConfig, SeqBnConfig
    kw = {k: v for k, v in fields.items() if k != "peft_type"}
    return {"SEQ_BN": SeqBnConfig, "DOUBLE_SEQ_BN": DoubleSeqBnConfig,
            "PAR_BN": ParBnConfig}[fields["peft_type"]](**kw)


BOTTLENECK_NAME = "bottleneck"


def adapters_init(model: torch.nn.Module) -> None:
    """adapters.init, with transformers' own LLaMA attention forward put back:
    adapters 1.2.0's LlamaAttentionWithAdapters transposes the attention
    output a second time under transformers 4.51 (whose eager_attention_forward
    already returns [batch, seq, heads, head_dim]), which scrambles heads and
    positions; upstream fixed it in 55fa9baf7 ("Upgrade Transformers to
    v4.57.x"). Without prefix tuning the two forwards are otherwise the same.
    The library's decoder layer (where the bottleneck layers are called) and
    its bottleneck modules are kept."""
    import adapters
    from adapters.models.llama.modeling_llama import LlamaAttentionWithAdapters
    from transformers.models.llama.modeling_llama import LlamaAttention
    adapters.init(model)
    for mod in model.modules():
        if isinstance(mod, LlamaAttentionWithAdapters):
            mod.forward = LlamaAttention.forward.__get__(mod)


class AdaptersModel:
    """The adapters library's model with a PEFT-like face for run_case."""

    def __init__(self, base: torch.nn.Module, fields: Dict[str, Any]):
        self.model = base
        adapters_init(self.model)
        self.model.add_adapter(BOTTLENECK_NAME, config=bottleneck_config(fields))
        self.model.train_adapter(BOTTLENECK_NAME)
        # The library builds its modules in the default dtype.
        for name, p in self.model.named_parameters():
            if ".adapters." in name:
                p.data = p.data.double()
        self.model.eval()

    def __call__(self, **kw):
        return self.model(**kw)

    def named_parameters(self):
        return self.model.named_parameters()

    def eval(self):
        self.model.eval()
        return self

    def print_trainable_parameters(self):
        # PEFT's format and arithmetic (peft_model.get_nb_trainable_parameters).
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || "
              f"trainable%: {100 * trainable / total:.4f}")

    def save_pretrained(self, path: str) -> None:
        self.model.save_adapter(path, BOTTLENECK_NAME, with_head=False,
                                use_safetensors=True)

    def summary(self) -> str:
        return self.model.adapter_summary()


def run_case(case: Case, bases: Dict[str, torch.nn.Module]) -> Dict[str, Any]:
    from peft import PeftModel, get_peft_model
    from transformers import get_scheduler

    out_dir = os.path.join(OUT, case.name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)

    rows = BATCH * case.grad_accum
    data = make_data(rows)
    save_file({k: np.ascontiguousarray(v.numpy()) for k, v in data.items()},
              os.path.join(out_dir, "data.safetensors"),
              metadata={"generator": "scripts/gen_goldens/generate.py"})
    micro = [{k: v[i * BATCH:(i + 1) * BATCH] for k, v in data.items()}
             for i in range(case.grad_accum)]

    torch.manual_seed(case.seed)
    virtual = case.peft.get("num_virtual_tokens", 0) \
        if case.peft["peft_type"] == "PROMPT_TUNING" else 0
    prefix = case.peft.get("num_virtual_tokens", 0) \
        if case.peft["peft_type"] == "PREFIX_TUNING" else 0
    prompt_learning = bool(virtual or prefix)
    if case.library == "adapters":
        model = AdaptersModel(f64_model(bases[case.model]), case.peft)
    else:
        model = get_peft_model(f64_model(bases[case.model]), peft_config(case.peft))
        if prompt_learning:
            model.prompt_encoder.double()  # PEFT builds it in the default dtype
    model.eval()  # no base dropout; LoRA dropout is 0 anyway
    line = trainable_line(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for n, p in model.named_parameters():
        if p.dtype != torch.float64:
            raise RuntimeError(f"{case.name}: {n} is {p.dtype}, not float64")
    save_adapter(model, os.path.join(out_dir, "initial_adapter"))
    if prefix and case.peft.get("prefix_projection"):
        # save_pretrained keeps the encoder's output only; the encoder itself
        # (under PEFT's names less the adapter name) is where peftc starts.
        save_file({n.replace(".default.", ".").replace("base_model.", ""):
                   np.ascontiguousarray(p.detach().numpy()) for n, p in trainable},
                  os.path.join(out_dir, "initial_prefix_encoder.safetensors"),
                  metadata={"generator": "scripts/gen_goldens/generate.py"})

    decay = set(decay_names(model.model if isinstance(model, AdaptersModel) else model))
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": case.weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=case.lr, betas=(0.9, 0.999), eps=1e-8,
                            foreach=False)
    sched = get_scheduler(case.schedule, opt, num_warmup_steps=case.warmup_steps,
                          num_training_steps=case.steps)
    params = [p for _, p in trainable]

    def loss_of(batch, m=None) -> torch.Tensor:
        logits = (m or model)(input_ids=batch["input_ids"],
                              attention_mask=batch["attention_mask"],
                              use_cache=False, return_dict=True).logits
        labels = batch["labels"]
        if virtual:  # PeftModelForCausalLM.forward's prefix_labels
            labels = torch.cat([torch.full((labels.shape[0], virtual), -100), labels], 1)
        return causal_ce(logits, labels)

    losses, micro_losses, grad_norms, lrs, clipped = [], [], [], [], []
    with softmax_keeps_f64():
        for _ in range(case.steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.zero_grad(set_to_none=True)
            step_loss, parts = 0.0, []
            for mb in micro:
                loss = loss_of(mb)
                (loss / case.grad_accum).backward()
                parts.append(loss.item())
                step_loss += loss.item() / case.grad_accum
            norm = math.sqrt(sum(float((p.grad.double() ** 2).sum())
                                 for p in params if p.grad is not None))
            if case.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, case.max_grad_norm)
            clipped.append(case.max_grad_norm > 0 and norm > case.max_grad_norm)
            opt.step()
            sched.step()
            losses.append(step_loss)
            micro_losses.append(parts)
            grad_norms.append(norm)
        with torch.no_grad():
            final_loss = sum(loss_of(mb).item() for mb in micro) / case.grad_accum

    save_adapter(model, os.path.join(out_dir, "final_adapter"))
    drop = (losses[0] - losses[-1]) / losses[0]

    # Every trainable tensor after the last step, under PEFT's parameter names
    # (what the final adapter holds, plus what PEFT forgets to save).
    final = {n: p.detach().clone() for n, p in trainable}
    save_file({n: np.ascontiguousarray(t.numpy()) for n, t in final.items()},
              os.path.join(out_dir, "final_trainable.safetensors"),
              metadata={"generator": "scripts/gen_goldens/generate.py"})

    # The saved final adapter, loaded by PEFT onto a fresh base, must hold
    # every trained tensor; those it lacks (PEFT <= 0.19 drops the biases of
    # bias="lora_only", huggingface/peft#3306) are listed and patched in from
    # final_trainable before the loss is compared.
    with softmax_keeps_f64(), torch.no_grad():
        if case.library == "adapters":
            reloaded = f64_model(bases[case.model])
            adapters_init(reloaded)
            name = reloaded.load_adapter(os.path.join(out_dir, "final_adapter"),
                                         with_head=False, use_safetensors=True)
            reloaded.set_active_adapters(name)
            reloaded.eval()
            # The library loads into modules of the default dtype (f32): read
            # the f64 file again into f64 parameters.
            stored = load_torch(os.path.join(out_dir, "final_adapter",
                                             "adapter.safetensors"))
            for pname, p in reloaded.named_parameters():
                if pname in stored:
                    p.data = stored[pname].clone()
        else:
            reloaded = PeftModel.from_pretrained(f64_model(bases[case.model]),
                                                 os.path.join(out_dir, "final_adapter")).eval()
            if prompt_learning:
                # PEFT loads into its f32 prompt encoder; read the f64 file again.
                reloaded.prompt_encoder.double()
                reloaded.prompt_encoder.default.embedding.weight.copy_(load_torch(
                    os.path.join(out_dir, "final_adapter", "adapter_model.safetensors"))
                    ["prompt_embeddings"])
        rparams = dict(reloaded.named_parameters())
        # PEFT reloads a projected prefix as its encoder's output (an
        # inference-mode encoder has the embedding only): nothing is missing.
        not_saved = sorted(n for n, t in final.items() if n in rparams and
                           rparams[n].shape == t.shape and not torch.equal(rparams[n], t))
        for n in not_saved:
            rparams[n].copy_(final[n])
        reloaded_loss = sum(loss_of(mb, reloaded).item() for mb in micro) / case.grad_accum
    if abs(reloaded_loss - final_loss) > 1e-12 * abs(final_loss):
        raise RuntimeError(f"{case.name}: final_adapter reloaded gives loss {reloaded_loss!r}, "
                           f"trained model {final_loss!r}")

    saved = load_torch(os.path.join(out_dir, "final_adapter",
                                    "adapter.safetensors" if case.library == "adapters"
                                    else "adapter_model.safetensors"))
    import peft
    import transformers
    record = {
        "case": case.name,
        "description": case.description,
        "model": f"../{case.model}/model.onnx",
        "generator": "scripts/gen_goldens/generate.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "dtype": "float64",
        "steps": case.steps,
        "loss_definition": "losses[k] is the loss at the weights after k optimizer steps "
                           "(forward before step k+1), averaged over the micro-batches; "
                           "final_loss is at the weights after the last step",
        "losses": losses,
        "micro_batch_losses": micro_losses,
        "final_loss": final_loss,
        "grad_norms": grad_norms,
        "grad_norm_definition": "global L2 norm of the trainable gradients "
                                "(accumulated, before clipping)",
        "clipped": clipped,
        "lrs": lrs,
        "loss_drop": drop,
        "trainable_line": line,
        "trainable": {n: list(p.shape) for n, p in trainable},
        "weight_decay_applied_to": sorted(n for n, _ in trainable if n in decay),
        "adapter_keys": {k: list(v.shape) for k, v in sorted(saved.items())},
        "trained_but_not_in_final_adapter": not_saved,
    }
    if case.library == "adapters":
        import adapters
        record["versions"]["adapters"] = adapters.__version__
        record["adapter_summary"] = model.summary()
    if virtual:
        record["compiled_sequence_length"] = SEQ + virtual
    if prefix:
        pc = model.peft_config["default"]
        record["prefix"] = {"num_virtual_tokens": prefix, "num_layers": pc.num_layers,
                            "token_dim": pc.token_dim,
                            "num_attention_heads": pc.num_attention_heads,
                            "encoder_hidden_size": pc.encoder_hidden_size,
                            "prefix_projection": pc.prefix_projection,
                            "first_position": prefix}
    with open(os.path.join(out_dir, "losses.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "spec.yaml"), "w") as f:
        f.write(spec_yaml(case, data))
    size = dir_bytes(out_dir)
    if size > MAX_CASE_BYTES:
        raise RuntimeError(f"{case.name}: {size} bytes, over {MAX_CASE_BYTES}")
    return {"name": case.name, "drop": drop, "size": size, "line": line,
            "losses": losses, "final_loss": final_loss, "clipped": sum(clipped),
            "not_saved": not_saved, "case": case}


README_HEAD = """\
# Parity goldens (PyTorch + Hugging Face PEFT, float64)

Written by `scripts/gen_goldens/generate.py` (this file too); CI needs no
PyTorch. Each case trains a tiny model with a PEFT method for a few AdamW steps
in f64; peftc's reference evaluator (f64) should reproduce every per-step loss
and every final trainable tensor to 1e-9 relative, compiled f32 code to 1e-4.

Models (`<model>/model.onnx`, f32, eval mode, exported before PEFT wraps them
with `torch.onnx.export(dynamo=False, opset_version=17)`, inputs `input_ids`,
`attention_mask` [batch, sequence] → `logits`; no wrapper module, so node scopes
are PEFT's module paths: `/model/layers.0/self_attn/q_proj/MatMul`):

{models}

Per case, in `<case>/`:

| file | what |
|---|---|
| `spec.yaml` | the peftc spec: PEFT's fields + `training:` (below) |
| `data.safetensors` | `input_ids`, `attention_mask`, `labels` (int64, rows × 8); rows in order, 2 per micro-batch, the same rows every step (`shuffle: false`) |
| `initial_adapter/` | PEFT `save_pretrained` before step 1 (`adapter_config.json` + `adapter_model.safetensors`, f64): start from it (`--init-adapter`), torch's RNG is not reproduced |
| `final_adapter/` | PEFT `save_pretrained` after the last step |
| `final_trainable.safetensors` | every trainable tensor after the last step, under PEFT's parameter names (`...lora_A.default.weight`, `...base_layer.bias`, `lm_head.modules_to_save.default.weight`); a superset of `final_adapter/` |
| `losses.json` | `losses[k]` (loss at the weights after k steps, i.e. the forward of step k+1), `final_loss` (after the last step), `micro_batch_losses`, `grad_norms` (global L2 norm of the accumulated gradients before clipping), `clipped`, `lrs` (lr used by each step), `trainable_line` (PEFT's `print_trainable_parameters()` output, exact), `trainable` (names, shapes), `weight_decay_applied_to`, `adapter_keys` |

## Cases

| case | model | method | lr | schedule / accum / clip | loss first → last (drop) | `trainable_line` |
|---|---|---|---|---|---|---|
{cases}

## Prompt tuning, prefix tuning and bottleneck adapters

- `prompt_tuning_llama` is PEFT's PROMPT_TUNING: the data rows are 8 tokens;
  PEFT puts 4 virtual token embeddings in front (mask ones, labels -100), so
  peftc compiles the graph at 12 positions (`losses.json`
  `compiled_sequence_length`). The adapter key is `prompt_embeddings` [4, 32];
  the trained parameter is `prompt_encoder.default.embedding.weight`.
- `prefix_tuning_llama` and `prefix_tuning_proj_llama` are PEFT's
  PREFIX_TUNING with 4 virtual tokens: every layer's attention gets 4 key and
  value positions in front (GQA: PEFT sizes the table by the 2 KV heads,
  token_dim 16, so `prompt_embeddings` is [4, 2 layers × 2 × 16] = [4, 64]),
  the mask is prefixed with ones, and transformers numbers the 8 real tokens
  4..11 (rotary). Labels are not prefixed. With `prefix_projection` (and
  `encoder_hidden_size` 24) the trained tensors are PEFT's PrefixEncoder
  (`prompt_encoder.default.embedding.weight` [4, 16],
  `transform.0` Linear(16, 24), `transform.2` Linear(24, 64)), while
  `save_pretrained` writes only their output `prompt_embeddings` [4, 64]:
  that case's `initial_prefix_encoder.safetensors` holds the encoder's
  initial weights (names less `.default`), where peftc starts.
- `seq_bn_llama`, `double_seq_bn_llama`, `par_bn_llama` are trained with the
  `adapters` library (1.2.0, the release for transformers 4.51.3; installed
  with `pip install --no-deps adapters==1.2.0`), its `SeqBnConfig`,
  `DoubleSeqBnConfig`, `ParBnConfig`. Their `initial_adapter/` and
  `final_adapter/` are the library's `save_adapter(..., with_head=False,
  use_safetensors=True)` folders: `adapter.safetensors` (keys
  `model.layers.N.{attention,output}_adapters.adapters.bottleneck.adapter_{down.0,up}.{weight,bias}`)
  and the library's `adapter_config.json`. `trainable_line` is PEFT's format
  computed on that model; `adapter_summary` is the library's own table.
- adapters 1.2.0's `LlamaAttentionWithAdapters` transposes the attention
  output twice under transformers 4.51 (upstream fixed it in 55fa9baf7), so
  the generator puts transformers' `LlamaAttention.forward` back on the
  attention modules; the library's decoder layer and bottleneck modules are
  used as they are. With the adapter's up-projection at zero (`par_bn`'s
  init) the loss is the base model's, 5.1777.

## Spec fields used

Method (PEFT's names, flat form; `lora_bitfit_head` uses the list form
`methods:` with LoRA + `{peft_type: BITFIT, biases: all}`, which is PEFT's
`bias: all`): `peft_type` (LORA, IA3, BITFIT), `r`, `lora_alpha`,
`lora_dropout`, `target_modules` (list or `all-linear`), `layers_to_transform`,
`rank_pattern`, `alpha_pattern`, `use_rslora`, `use_dora`, `bias`,
`fan_in_fan_out`, `init_lora_weights`, `modules_to_save`,
`feedforward_modules`, `biases`.

`training:`: `inputs` (name → shape, data inputs included), `batch_size`,
`shuffle: false`, `pad_token_id: 0`, `seed`, `loss: {type: cross_entropy,
logits, labels, shift: causal, ignore_index: -100}`, `optimizer: {type: adamw,
lr, betas, eps, weight_decay, no_decay: [bias, norm]}`, `schedule: {type,
warmup_steps, total_steps}`, `max_grad_norm` (0: no clipping),
`gradient_accumulation_steps`. Steps: `losses.json` `steps` (10).

## Semantics the numbers follow (Hugging Face Trainer + PEFT)

- Loss: mean cross-entropy over the non-ignored tokens of a micro-batch
  (logits[:, :-1] against labels[:, 1:]); a step's loss is the mean of its
  micro-batch losses, and the gradient is that mean's.
- Clipping (`torch.nn.utils.clip_grad_norm_`): g *= min(1, max_norm / (‖g‖ + 1e-6)).
- AdamW (torch, per tensor, t = step from 1): p *= 1 − lr·wd; m = β1·m + (1−β1)·g;
  v = β2·v + (1−β2)·g²; p −= (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + eps).
  Weight decay skips biases and norm weights; for LoRA it applies to lora_A,
  lora_B, DoRA magnitudes, IA3 vectors and `modules_to_save` copies.
- Schedules are transformers' `get_scheduler` (`linear` with warmup 2 gives
  lr 0 at step 1: the step still counts for Adam's t and moments).
- The f64 run is the f32 graph evaluated in f64: f32-stored constants (norm
  eps, attention scale, gelu_new coefficients) at their f32 values.

## PEFT (0.15.2) behaviour worth knowing

- Adapter keys drop the adapter name: `base_model.model.<module>.lora_A.weight`
  [r, in], `lora_B.weight` [out, r], DoRA `...lora_magnitude_vector` [out],
  IA3 `...ia3_l` ([out, 1] for k/v, [1, in] for feed-forward `down_proj`),
  `modules_to_save` as `base_model.model.lm_head.weight`, and trainable biases
  of adapted layers as `<module>.base_layer.bias` (others `<module>.bias`).
- GPT-2 `c_attn` (Conv1D, weight [in=32, out=96], exported as Gemm with
  initializer `transformer.h.N.attn.c_attn.weight`): LoRA shapes are the
  Linear ones, A [r, 32], B [96, r], y += s·x·Aᵀ·Bᵀ.
- `bias: lora_only` trains the adapted layers' biases but `save_pretrained`
  drops them (huggingface/peft#3306): `lora_gpt2_cattn/final_adapter` lacks
  `c_attn.base_layer.bias`; `final_trainable.safetensors` has them.
- PEFT refuses `layers_to_transform` with `target_modules: all-linear`, so
  `lora_llama_layers` lists the seven projections.
- `modules_to_save: [lm_head]` on GPT-2 (lm_head tied to wte) trains an untied
  copy initialised from wte; wte stays frozen and is counted once.
- `print_trainable_parameters` counts the base once (tied weights once) plus
  every adapter tensor, `modules_to_save` copies included.

Regenerate (from the repository root; byte-identical on reruns):

```sh
python3 -m venv .venv-goldens
.venv-goldens/bin/pip install -r scripts/gen_goldens/requirements.txt
.venv-goldens/bin/python scripts/gen_goldens/generate.py
```
"""


def write_readme(models: Dict[str, Dict[str, Any]], results: List[Dict[str, Any]]) -> None:
    mlines = [f"- `{m}/`: {MODEL_DESCRIPTIONS[m]}; {info['params']} params, "
              f"{info['size']} bytes" for m, info in sorted(models.items())]
    clines = []
    for r in results:
        c = r["case"]
        sched = (f"{c.schedule}" + (f" warmup {c.warmup_steps}" if c.warmup_steps else "") +
                 f" / {c.grad_accum} / " + (f"{c.max_grad_norm}" if c.max_grad_norm else "none"))
        clines.append(f"| `{c.name}` | {c.model} | {c.description} | {c.lr:g} | {sched} | "
                      f"{r['losses'][0]:.4f} → {r['losses'][-1]:.4f} ({100 * r['drop']:.0f}%) | "
                      "`" + r["line"].replace("|", "\\|") + "` |")
    text = (README_HEAD.replace("{models}", "\n".join(mlines))
            .replace("{cases}", "\n".join(clines)))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(text)


def main() -> int:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="case names to regenerate")
    ap.add_argument("--out", default=OUT, help="output folder (default test/goldens)")
    opts = ap.parse_args()
    OUT = os.path.abspath(opts.out)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = [c.name for c in CASES]
    for n in opts.only or []:
        if n not in names:
            print(f"unknown case {n}; known: {', '.join(names)}", file=sys.stderr)
            return 1
    cases = [c for c in CASES if not opts.only or c.name in opts.only]

    bases, models, results = {}, {}, []
    for model in sorted({c.model for c in cases}):
        bases[model] = build_base(model)
        info = models[model] = export_onnx(model, bases[model], make_data(BATCH))
        print(f"{model}: model.onnx {info['size']} bytes, {info['params']} params, "
              f"onnx.reference vs torch: f32 {info['onnx_ref_rel_err']:.1e}, "
              f"graph in f64 vs torch f64 {info['onnx_f64_rel_err']:.1e}")

    failed = False
    for case in cases:
        r = run_case(case, bases)
        results.append(r)
        ok = r["drop"] >= MIN_LOSS_DROP
        failed |= not ok
        print(f"{r['name']}: loss {r['losses'][0]:.6f} -> {r['losses'][-1]:.6f} "
              f"(final {r['final_loss']:.6f}, drop {100 * r['drop']:.1f}%{'' if ok else ' TOO SMALL'}), "
              f"clipped {r['clipped']}/{case.steps}, {r['size']} bytes")
        print(f"  {r['line']}")
        if r["not_saved"]:
            print(f"  not in final_adapter (PEFT drops them): {', '.join(r['not_saved'])}")
    if not opts.only:
        write_readme(models, results)
    return 1 if failed else 0


if __name__ == "__main__":
    # PEFT keeps target_modules as a set and writes it in iteration order:
    # a fixed hash seed makes adapter_config.json the same on every run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    sys.exit(main())
