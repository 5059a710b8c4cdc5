"""Compares two adapter_model.safetensors files (F32 or F64 tensors, any
mix): the same keys, the same shapes, and each tensor within TOL relative
(||got - want|| / ||want||). Prints one line per key and the worst error;
exits 1 on any difference.

Usage: adapter_close.py GOT.safetensors WANT.safetensors TOL
"""
import json
import math
import struct
import sys

FORMATS = {"F32": ("f", 4), "F64": ("d", 8)}


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for key, info in header.items():
        if info["dtype"] not in FORMATS:
            sys.exit("%s: tensor '%s' is %s, not F32 or F64" %
                     (path, key, info["dtype"]))
        code, size = FORMATS[info["dtype"]]
        begin, end = info["data_offsets"]
        data = blob[8 + n + begin:8 + n + end]
        values = struct.unpack("<%d%s" % (len(data) // size, code), data)
        tensors[key] = (info["shape"], values)
    return tensors


got, want = read(sys.argv[1]), read(sys.argv[2])
tol = float(sys.argv[3])
if sorted(got) != sorted(want):
    sys.exit("keys differ: %s vs %s" % (sorted(got), sorted(want)))
worst = 0.0
for key in sorted(want):
    (gs, gv), (ws, wv) = got[key], want[key]
    if gs != ws:
        sys.exit("'%s': shape %s vs %s" % (key, gs, ws))
    diff = math.sqrt(sum((a - b) ** 2 for a, b in zip(gv, wv)))
    ref = math.sqrt(sum(b * b for b in wv))
    error = diff / ref if ref else diff
    worst = max(worst, error)
    print("%s %s" % (key, gs))
    if not error < tol:
        sys.exit("'%s': relative error %.3g, not below %g" % (key, error, tol))
print("worst relative error %.1e, below %g" % (worst, tol))
