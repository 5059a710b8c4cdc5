// A hand-built program for end-to-end tests of the trainer without peftc:
// least-squares regression y ~ x . w + b with momentum SGD, written as the
// program format (arena buffers, params with optimizer state, a kernel per
// function, Copy steps writing the params) with kernels in plain C++.
#pragma once

#include "peft/runtime.h"

#include <memory>
#include <string>

namespace peft::test {

/// Examples per micro-batch and features of the tiny program.
constexpr int64_t kTinyBatch = 2;
constexpr int64_t kTinyFeatures = 2;
/// Micro-batches per step of the accumulating variant.
constexpr int64_t kTinyAccumulation = 2;

/// train_step(x [2,2] f32, y [2] f32, step) -> loss, grad_norm, lr and the
/// updated w (trainable, PEFT key "base_model.model.fc.lora_A.weight"), b
/// (trainable, no PEFT key) and their momentum buffers; loss(x, y) -> loss.
/// The spec says shuffle with seed 3. With `accumulate`, the program follows
/// peft-optimizer's accumulation contract instead (gradient_accumulation_steps
/// kTinyAccumulation): train_step(x, y) -> loss and the gradients divided by
/// the micro-batch count, apply_update(g.w, g.b, step) -> grad_norm, lr and
/// the param writes.
std::shared_ptr<const rt::Program> tinyProgram(bool accumulate,
                                               std::string &error);

} // namespace peft::test
