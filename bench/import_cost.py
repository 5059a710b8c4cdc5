#!/usr/bin/env python3
"""Import cost of a large ONNX model: peftc must import about 500 MB of
weights in under 5 s and with under 300 MB of resident memory beyond what is
mapped from the model files.

It generates a transformer-like model (blocks of an H x H projection and an
H x 4H / 4H x H feed-forward pair with biases and residual adds, all f32
initializers stored as raw_data, as exporters write them) twice into a temporary directory: once with the weights
embedded in the .onnx file and once with them in an external data file. Each
is imported with `PEFTC MODEL --emit=mlir -o /dev/null`; wall time and memory
are measured per run:

  peak RSS    ru_maxrss of the child (exact, from wait4), file-backed pages
              included (the models are generated in another process: a child
              inherits its parent's high-water mark at fork, so a big parent
              would inflate it);
  peak anon   the largest RssAnon seen while polling /proc/PID/status (anonymous
              memory: heap, stacks, private copies; what the importer
              allocates rather than maps);
  peak file   the largest RssFile seen (mapped model/weights and binaries).

The check uses the worst run of each model: wall < --max-seconds and peak anon
< --max-anon-mb. Exit status 0 only if every import passes. One extra run
writes the IR to a file to check that weights stay out of the IR (it must be
small and reference every initializer as a param).

Usage: .venv-bench/bin/python bench/import_cost.py build/bin/peftc
Set up: python3 -m venv .venv-bench && .venv-bench/bin/pip install -r bench/requirements.txt
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

MB = 1000 * 1000


def build_model(hidden, layers, batch, seed):
    """Transformer-style blocks (projection + residual, feed-forward +
    residual) with large initializers. Normalisation and attention scores are
    left out: they carry no weights worth measuring."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def param(name, shape):
        arr = rng.standard_normal(shape, dtype=np.float32)
        arr *= np.float32(1.0 / np.sqrt(shape[0]))
        # from_array stores the bytes as raw_data, as exporters do.
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def linear(x, prefix, n_in, n_out):
        mm = prefix + ".matmul"
        y = prefix + ".out"
        nodes.append(helper.make_node(
            "MatMul", [x, param(prefix + ".weight", [n_in, n_out])], [mm],
            name=prefix + "/MatMul"))
        nodes.append(helper.make_node(
            "Add", [mm, param(prefix + ".bias", [n_out])], [y],
            name=prefix + "/Add"))
        return y

    x = "hidden_states"
    for i in range(layers):
        p = f"layers.{i}"
        h = linear(x, p + ".attn.proj", hidden, hidden)
        r = p + ".residual_1"
        nodes.append(helper.make_node("Add", [x, h], [r], name=r))
        h = linear(r, p + ".mlp.fc_in", hidden, 4 * hidden)
        act = p + ".mlp.act"
        nodes.append(helper.make_node("Relu", [h], [act], name=act))
        h = linear(act, p + ".mlp.fc_out", 4 * hidden, hidden)
        x2 = p + ".residual_2"
        nodes.append(helper.make_node("Add", [r, h], [x2], name=x2))
        x = x2
    nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))

    graph = helper.make_graph(
        nodes, "import_cost",
        [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT,
                                       [batch, hidden])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                       [batch, hidden])],
        initializer=inits)
    model = helper.make_model(
        graph, producer_name="peftc-bench",
        opset_imports=[helper.make_opsetid("", 17)])
    # libonnx 1.12 (what peftc links) reads IR versions up to 8.
    model.ir_version = 8
    weight_bytes = sum(len(t.raw_data) for t in inits)
    return model, len(inits), weight_bytes


def read_status(pid):
    """RssAnon/RssFile/RssShmem/VmRSS in bytes, or None once the process is
    gone (a zombie has no memory lines)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    vals = {}
    for key in ("RssAnon", "RssFile", "RssShmem", "VmRSS"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if m:
            vals[key] = int(m.group(1)) * 1024
    return vals or None


def run_measured(cmd, poll_s):
    """Runs cmd, polling its memory until it exits. The child is reaped with
    wait4, which gives its own rusage (RUSAGE_CHILDREN would mix in earlier
    children)."""
    peaks = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0, "VmRSS": 0}
    samples = 0
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            vals = read_status(proc.pid)
            if vals:
                samples += 1
                for k, v in vals.items():
                    peaks[k] = max(peaks[k], v)
            time.sleep(poll_s)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return {
        "rc": proc.returncode,
        "wall": wall,
        "maxrss": ru.ru_maxrss * 1024,  # Linux reports kB
        "anon": peaks["RssAnon"],
        "file": peaks["RssFile"],
        "shmem": peaks["RssShmem"],
        "samples": samples,
        "user": ru.ru_utime,
        "sys": ru.ru_stime,
        "stderr": stderr,
    }


def machine_description(peftc):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            if m:
                cpu = m.group(1).strip()
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M)
            if m:
                mem = f"{int(m.group(1)) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    try:
        version = subprocess.run([peftc, "--version"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    return (f"{cpu}, {os.cpu_count()} CPUs, {mem}; Linux {platform.release()}; "
            f"{version}")


def check_ir(peftc, model, n_params, workdir):
    """The IR must name every initializer as a param and carry no weights."""
    out = os.path.join(workdir, "check.mlir")
    r = subprocess.run([peftc, model, "--emit=mlir", "-o", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"peftc failed: {r.stderr.strip()}"
    size = os.path.getsize(out)
    with open(out) as f:
        text = f.read()
    os.remove(out)
    params = len(re.findall(r"\bpeft\.param\b", text))
    problems = []
    if params < n_params:
        problems.append(f"{params} peft.param ops for {n_params} initializers")
    if size > 2 * MB:
        problems.append(f"the IR is {size / MB:.1f} MB: weights are inlined")
    return "; ".join(problems) or None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("peftc", help="path to the peftc binary (e.g. build/bin/peftc)")
    ap.add_argument("--weights-mb", type=float, default=500,
                    help="approximate total weight size (default 500)")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed imports per model; the worst counts")
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--max-anon-mb", type=float, default=300.0)
    ap.add_argument("--poll-ms", type=float, default=1.0,
                    help="memory polling interval")
    ap.add_argument("--workdir", help="where to put the models (default: a "
                    "new temporary directory, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the models")
    ap.add_argument("--generate-into", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_into:
        return generate(args, args.generate_into)

    peftc = os.path.abspath(args.peftc)
    if not os.access(peftc, os.X_OK):
        sys.exit(f"import_cost: {args.peftc} is not an executable")
    workdir = args.workdir or tempfile.mkdtemp(prefix="peftc-import-cost-")
    os.makedirs(workdir, exist_ok=True)
    try:
        return run(args, peftc, workdir)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def generate(args, workdir):
    """Writes embedded.onnx and external.onnx(+.data) into workdir; prints
    one line "layers n_params weight_bytes"."""
    import onnx

    per_layer = 9 * args.hidden * args.hidden * 4
    layers = max(1, round(args.weights_mb * MB / per_layer))
    model, n_params, weight_bytes = build_model(args.hidden, layers,
                                                args.batch, seed=0)
    onnx.save_model(model, os.path.join(workdir, "embedded.onnx"))
    # Converts `model` in place, so it comes after the embedded save.
    onnx.save_model(model, os.path.join(workdir, "external.onnx"),
                    save_as_external_data=True, all_tensors_to_one_file=True,
                    location="external.onnx.data", size_threshold=1024)
    print(layers, n_params, weight_bytes)
    return 0


def run(args, peftc, workdir):
    t0 = time.perf_counter()
    gen = subprocess.run(
        [sys.executable, os.path.abspath(__file__), peftc, "--generate-into",
         workdir, "--weights-mb", str(args.weights_mb), "--hidden",
         str(args.hidden), "--batch", str(args.batch)],
        capture_output=True, text=True)
    if gen.returncode != 0:
        print(f"FAIL generating the models: {gen.stderr.strip()}")
        return 1
    layers, n_params, weight_bytes = map(int, gen.stdout.split())
    gen_s = time.perf_counter() - t0
    embedded = os.path.join(workdir, "embedded.onnx")
    external = os.path.join(workdir, "external.onnx")

    print(f"machine: {machine_description(peftc)}")
    print(f"model:   {layers} blocks, hidden {args.hidden}, {n_params} "
          f"initializers, {weight_bytes / MB:.1f} MB of f32 weights "
          f"(generated in {gen_s:.1f} s under {workdir})")
    files = {
        "embedded": [embedded],
        "external": [external, external + ".data"],
    }
    for kind, paths in files.items():
        sizes = ", ".join(f"{os.path.basename(p)} {os.path.getsize(p) / MB:.1f} MB"
                          for p in paths)
        print(f"         {kind}: {sizes}")
    print(f"command: {peftc} MODEL --emit=mlir -o /dev/null "
          f"(x{args.repeat}, memory polled every {args.poll_ms:g} ms)")
    print(f"limits:  wall < {args.max_seconds:g} s, peak anon RSS < "
          f"{args.max_anon_mb:g} MB\n")

    header = (f"{'model':<9} {'run':>3} {'wall s':>7} {'user s':>7} "
              f"{'sys s':>6} {'peak RSS MB':>12} {'peak anon MB':>13} "
              f"{'peak file MB':>13} {'samples':>8}")
    print(header)
    print("-" * len(header))
    failures, notes = [], []
    for kind, paths in files.items():
        model_path = paths[0]
        worst_wall, worst_anon, worst_rss = 0.0, 0, 0
        for i in range(args.repeat):
            r = run_measured([peftc, model_path, "--emit=mlir", "-o", "/dev/null"],
                             args.poll_ms / 1000)
            print(f"{kind:<9} {i + 1:>3} {r['wall']:>7.2f} {r['user']:>7.2f} "
                  f"{r['sys']:>6.2f} {r['maxrss'] / MB:>12.1f} "
                  f"{r['anon'] / MB:>13.1f} {r['file'] / MB:>13.1f} "
                  f"{r['samples']:>8}")
            if r["rc"] != 0:
                failures.append(f"{kind}: peftc exited {r['rc']}: "
                                f"{r['stderr'].strip()[:500]}")
                break
            worst_wall = max(worst_wall, r["wall"])
            worst_anon = max(worst_anon, r["anon"])
            worst_rss = max(worst_rss, r["maxrss"])
        else:
            if worst_wall >= args.max_seconds:
                failures.append(f"{kind}: import took {worst_wall:.2f} s "
                                f"(limit {args.max_seconds:g} s)")
            if worst_anon >= args.max_anon_mb * MB:
                failures.append(f"{kind}: peak anonymous RSS "
                                f"{worst_anon / MB:.1f} MB (limit "
                                f"{args.max_anon_mb:g} MB)")
            # Polling can miss a short peak; ru_maxrss cannot, and it bounds
            # the anonymous part from above.
            under = worst_rss < args.max_anon_mb * MB
            notes.append(f"{kind}: worst wall {worst_wall:.2f} s; peak anon "
                         f"{worst_anon / MB:.1f} MB (polled); peak RSS "
                         f"{worst_rss / MB:.1f} MB (exact, mapped pages "
                         f"included) is {'also' if under else 'not'} under "
                         f"{args.max_anon_mb:g} MB")
            problem = check_ir(peftc, model_path, n_params, workdir)
            if problem:
                failures.append(f"{kind}: {problem}")

    print()
    for n in notes:
        print(n)
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        return 1
    print("PASS: every import is under the time and memory limits, and the "
          "IR references the weights as params")
    return 0


if __name__ == "__main__":
    sys.exit(main())
