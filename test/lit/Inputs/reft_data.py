"""Writes pyreft-style training data for the tiny LLaMA (vocabulary 64,
sequence 8) as safetensors: a pad token first (masked), a prompt of 3-5
tokens, then an answer that repeats a token chosen by the prompt, labelled
only on the answer; prompt_lengths holds each prompt's length.

Usage: reft_data.py OUT.safetensors [EXAMPLES]
"""
import json
import struct
import sys

SEQ, VOCAB = 8, 64


def examples(count):
    state = 12345
    for _ in range(count):
        state = (state * 1103515245 + 12345) % 2**31
        length = 3 + state % 3
        prompt = []
        for _ in range(length):
            state = (state * 1103515245 + 12345) % 2**31
            prompt.append(1 + state % (VOCAB - 1))
        answer = 1 + (prompt[0] * 7) % (VOCAB - 1)
        ids = [0] + prompt + [answer] * (SEQ - 1 - length)
        mask = [0] + [1] * (SEQ - 1)
        labels = [-100] * (1 + length) + [answer] * (SEQ - 1 - length)
        yield ids, mask, labels, length


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    rows = list(examples(count))
    tensors = {
        "input_ids": ([v for r in rows for v in r[0]], [count, SEQ]),
        "attention_mask": ([v for r in rows for v in r[1]], [count, SEQ]),
        "labels": ([v for r in rows for v in r[2]], [count, SEQ]),
        "prompt_lengths": ([r[3] for r in rows], [count]),
    }
    header, data = {}, b""
    for name, (values, shape) in tensors.items():
        raw = struct.pack("<%dq" % len(values), *values)
        header[name] = {"dtype": "I64", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


if __name__ == "__main__":
    main()
