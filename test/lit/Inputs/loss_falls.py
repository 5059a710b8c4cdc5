"""Reads a trainer's JSON-lines log and checks that the mean loss of the last
quarter of the steps is below FRACTION (default 0.9) times the mean of the
first quarter. Prints both means; exits 1 when the loss did not fall.

Usage: loss_falls.py LOG.jsonl [FRACTION]
"""
import json
import sys

losses = [json.loads(line)["loss"] for line in open(sys.argv[1]) if line.strip()]
fraction = float(sys.argv[2]) if len(sys.argv) > 2 else 0.9
quarter = max(1, len(losses) // 4)
first = sum(losses[:quarter]) / quarter
last = sum(losses[-quarter:]) / quarter
print("steps %d first %.4f last %.4f" % (len(losses), first, last))
sys.exit(0 if last < fraction * first else 1)
