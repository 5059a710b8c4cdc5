#!/usr/bin/env python3
"""LoRA training throughput on the CPU: the peftc trainer against PyTorch +
PEFT eager, measured in the same invocation on the same machine.

Workload (issue 4's baseline): a GPT-2-small-sized model (12 layers, 768
wide, 12 heads, vocabulary 50257) with random weights from a transformers
config, fp32, LoRA r=16 / alpha 32 on `c_attn` (GPT-2's fused q/k/v
Conv1D, fan_in_fan_out), no dropout, causal-LM cross-entropy, AdamW, batch 8
x sequence 128.

For each side it reports tokens/s (steady state: the first --warmup steps are
not timed), peak RSS of the training process (ru_maxrss from wait4: each side
runs in its own child process) and the share of oneDNN's f32 matmul rate the
step's GEMM work reaches:

  share = GEMM FLOPs per step x steps/s / oneDNN rate

GEMM FLOPs per step are counted from the model's shapes (the same for both
sides: forward, input gradients through every layer, LoRA weight gradients;
see gemm_flops()); the oneDNN rate is bench/gemm_rate (built with the
project) at the model's largest GEMM shapes, measured in the same run.

Usage:
  python3 -m venv .venv-goldens && .venv-goldens/bin/pip install -r scripts/gen_goldens/requirements.txt
  .venv-goldens/bin/python bench/train_lora_cpu.py --build build [--steps 6]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

LAYERS, HIDDEN, HEADS, VOCAB, POSITIONS = 12, 768, 12, 50257, 1024
RANK, ALPHA = 16, 32


def make_model(seed):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=LAYERS, n_embd=HIDDEN, n_head=HEADS,
                        vocab_size=VOCAB, n_positions=POSITIONS,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    model.eval()  # as exported: no base dropout
    return model


def gemm_flops(batch, seq):
    """FLOPs of the GEMMs of one LoRA training step (2*M*N*K each)."""
    bt = batch * seq
    head = HIDDEN // HEADS
    per_layer = (2 * bt * HIDDEN * 3 * HIDDEN        # c_attn
                 + 2 * 2 * batch * HEADS * seq * seq * head  # QK^T, AV
                 + 2 * bt * HIDDEN * HIDDEN          # attn c_proj
                 + 2 * 2 * bt * HIDDEN * 4 * HIDDEN)  # mlp c_fc, c_proj
    lora = 2 * bt * HIDDEN * RANK + 2 * bt * RANK * 3 * HIDDEN
    forward = LAYERS * (per_layer + lora) + 2 * bt * HIDDEN * VOCAB
    # Backward: every GEMM needs its input gradient (the lowest adapted op is
    # in layer 0) except the input of the lowest c_attn, and LoRA A and B need
    # weight gradients. Frozen weights get none.
    backward_dx = forward - 2 * bt * HIDDEN * 3 * HIDDEN
    backward_dw = LAYERS * lora
    return forward + backward_dx + backward_dw


def run_child(argv):
    """Runs argv, returns (stdout, peak RSS in MB) from wait4."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(argv)}")
    return out, usage.ru_maxrss / 1024.0


def torch_worker(args):
    """Child process: PyTorch + PEFT eager training, prints one JSON line."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    torch.set_num_threads(args.threads)
    model = make_model(args.seed)
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                        target_modules=["c_attn"], fan_in_fan_out=True)
    model = get_peft_model(model, config)
    data = load_file(args.data)
    ids = data["input_ids"]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=1e-4, weight_decay=0.0)
    times = []
    for step in range(args.steps):
        rows = slice(step * args.batch, (step + 1) * args.batch)
        t0 = time.perf_counter()
        out = model(input_ids=ids[rows], labels=ids[rows])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    timed = times[args.warmup:]
    print(json.dumps({"step_s": sum(timed) / len(timed)}))


def prepare_worker(args):
    """Child process: exports the ONNX model and writes the token data."""
    import torch
    from safetensors.torch import save_file

    model_path = os.path.join(args.work, "gpt2-small.onnx")
    if not os.path.exists(model_path):
        model = make_model(args.seed)

        class Logits(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids):
                return self.m(input_ids=input_ids, use_cache=False).logits

        example = torch.zeros(args.batch, args.seq, dtype=torch.int64)
        torch.onnx.export(Logits(model), (example,), model_path,
                          input_names=["input_ids"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, VOCAB, (args.steps * args.batch, args.seq),
                        generator=g)
    save_file({"input_ids": ids, "labels": ids.clone()},
              os.path.join(args.work, "data.safetensors"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="keep files here (default: a temp dir)")
    parser.add_argument("--worker", choices=["torch", "prepare"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "torch":
        return torch_worker(args)
    if args.worker == "prepare":
        return prepare_worker(args)

    # The driver stays small: it never imports torch. Linux carries a
    # process's peak RSS across fork and exec, so a child forked from a
    # driver holding the model would report the driver's peak as its own.
    work = args.work or tempfile.mkdtemp(prefix="peftc-bench-")
    os.makedirs(work, exist_ok=True)
    peftc = os.path.join(args.build, "bin", "peftc")
    gemm_rate = os.path.join(args.build, "bin", "gemm_rate")
    model_path = os.path.join(work, "gpt2-small.onnx")
    data_path = os.path.join(work, "data.safetensors")
    subprocess.run([sys.executable, __file__, "--worker", "prepare",
                    "--work", work, "--steps", str(args.steps),
                    "--batch", str(args.batch), "--seq", str(args.seq),
                    "--seed", str(args.seed)], check=True)
    spec_path = os.path.join(work, "lora.yaml")
    with open(spec_path, "w") as f:
        f.write(f"""peft_type: LORA
r: {RANK}
lora_alpha: {ALPHA}
lora_dropout: 0.0
target_modules: [c_attn]
fan_in_fan_out: true
training:
  inputs:
    input_ids: [{args.batch}, {args.seq}]
    labels: [{args.batch}, {args.seq}]
  loss: {{type: cross_entropy, logits: logits, labels: labels, shift: causal}}
  optimizer: {{type: adamw, lr: 1.0e-4, weight_decay: 0.0}}
  schedule: {{type: constant}}
  max_grad_norm: 0
  seed: {args.seed}
""")

    trainer = os.path.join(work, "trainer")
    t0 = time.perf_counter()
    compiled = subprocess.run([peftc, model_path, "--spec", spec_path, "-o",
                               trainer, "--print-memory-plan"],
                              check=True, capture_output=True, text=True)
    compile_s = time.perf_counter() - t0
    arena = int(compiled.stdout.split("arena peak ")[1].split()[0])
    weights = os.path.getsize(model_path)
    log = os.path.join(work, "log.jsonl")
    _, ours_rss = run_child([trainer, "--data", data_path, "--steps",
                             str(args.steps), "--threads", str(args.threads),
                             "--out", os.path.join(work, "adapter"),
                             "--log", log, "--log-every", "1"])
    with open(log) as f:
        records = [json.loads(line) for line in f if line.strip()]
    elapsed = [r["elapsed_s"] for r in records]
    steps_timed = len(elapsed) - args.warmup
    ours_step_s = (elapsed[-1] - elapsed[args.warmup - 1]) / steps_timed

    out, torch_rss = run_child([sys.executable, __file__, "--worker", "torch",
                                "--data", data_path, "--steps",
                                str(args.steps), "--warmup", str(args.warmup),
                                "--batch", str(args.batch),
                                "--threads", str(args.threads),
                                "--seed", str(args.seed)])
    torch_step_s = json.loads(out.strip().splitlines()[-1])["step_s"]

    bt = args.batch * args.seq
    rates = subprocess.run([gemm_rate, str(bt), str(3 * HIDDEN), str(HIDDEN),
                            str(bt), str(HIDDEN), str(4 * HIDDEN),
                            str(bt), str(VOCAB), str(HIDDEN)],
                           check=True, capture_output=True, text=True).stdout
    onednn = max(float(line.split()[3]) for line in rates.splitlines())
    flops = gemm_flops(args.batch, args.seq)

    def row(name, step_s, rss):
        share = flops / step_s / 1e9 / onednn
        return (f"| {name} | {bt / step_s:.0f} | {step_s:.3f} | {rss:.0f} | "
                f"{100 * share:.1f}% |")

    print(f"date {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, batch {args.batch} x {args.seq}, "
          f"{args.steps} steps ({args.warmup} warm-up), peftc compile {compile_s:.1f} s")
    print(f"oneDNN f32 matmul: {onednn:.0f} GFLOP/s; GEMM work per step: "
          f"{flops / 1e9:.1f} GFLOP")
    print("| side | tokens/s | s/step | peak RSS MB | GEMM share of oneDNN |")
    print("|---|---|---|---|---|")
    print(row("peftc trainer", ours_step_s, ours_rss))
    print(row("PyTorch + PEFT eager", torch_step_s, torch_rss))
    planned = (arena + weights) / 2**20
    print(f"peftc memory plan: arena {arena / 2**20:.0f} MB + mapped model "
          f"{weights / 2**20:.0f} MB = {planned:.0f} MB; measured peak RSS / "
          f"plan = {ours_rss / planned:.3f}")
    print(f"ratio peftc/PyTorch: tokens/s {torch_step_s / ours_step_s:.2f}x, "
          f"peak RSS {ours_rss / torch_rss:.2f}x")


if __name__ == "__main__":
    main()
