"""Resume and crash safety of a peftc-compiled trainer.

usage: resume_check.py TRAINER DATA WORK

1. Stopped after 4 steps and resumed to 8, the trainer logs exactly the
   losses and writes exactly the adapter of an uninterrupted 8-step run.
2. Killed (PEFTRT_CRASH_AFTER=n: _exit after the n-th write, fsync or
   rename of a checkpoint) at every checkpoint operation of a 4-step run
   saving every 2 steps, it resumes from the last complete checkpoint and
   ends with the uninterrupted run's adapter, byte for byte.
"""
import json
import os
import shutil
import subprocess
import sys

CRASH_EXIT = 86
trainer, data, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("PEFTRT_CRASH_AFTER", None)
    e.update(env or {})
    p = subprocess.run([trainer, "--data", data, "--threads", "1", *args],
                       env=e, capture_output=True, text=True)
    return p.returncode, p.stderr


def check(ok, what):
    if not ok:
        sys.exit("FAIL: " + what)


def losses(path):
    with open(path) as f:
        return [(r["step"], r["loss"]) for r in map(json.loads, f)]


def adapter(folder):
    with open(os.path.join(folder, "adapter_model.safetensors"), "rb") as f:
        return f.read()


full, split = os.path.join(work, "full"), os.path.join(work, "split")
rc, err = run("--steps", "8", "--out", full, "--log", full + ".jsonl")
check(rc == 0, "uninterrupted run: " + err)
rc, err = run("--steps", "4", "--out", split, "--log", split + ".jsonl")
check(rc == 0, "first half: " + err)
rc, err = run("--steps", "8", "--resume", split, "--log", split + ".jsonl")
check(rc == 0, "resumed half: " + err)
check(losses(split + ".jsonl") == losses(full + ".jsonl"),
      "resumed losses differ: %s vs %s" % (losses(split + ".jsonl"),
                                           losses(full + ".jsonl")))
check(adapter(split) == adapter(full), "resumed adapter differs")
print("resume: 8 losses identical, adapter identical")

reference = os.path.join(work, "reference")
rc, err = run("--steps", "4", "--save-every", "2", "--out", reference)
check(rc == 0, "reference run: " + err)
want = adapter(reference)
crashes = 0
for n in range(1, 200):
    out = os.path.join(work, "run%d" % n)
    rc, err = run("--steps", "4", "--save-every", "2", "--out", out,
                  env={"PEFTRT_CRASH_AFTER": str(n)})
    if rc == 0:
        break
    check(rc == CRASH_EXIT, "crash %d: exit %d: %s" % (n, rc, err))
    crashes += 1
    latest = os.path.exists(os.path.join(out, "latest"))
    rc, err = run("--steps", "4", "--save-every", "2",
                  *(["--resume", out] if latest else ["--out", out]))
    check(rc == 0, "resume after crash %d: %s" % (n, err))
    check(adapter(out) == want, "adapter after crash %d differs" % n)
    shutil.rmtree(out)
check(crashes >= 30, "only %d checkpoint operations were crashed" % crashes)
print("crashes: %d, each resumed to the same adapter" % crashes)
