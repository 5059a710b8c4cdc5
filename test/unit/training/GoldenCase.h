//===- GoldenCase.h - reading the PyTorch + PEFT parity goldens -*- C++ -*-===//
//
// test/goldens/<case>/: spec.yaml, data.safetensors, losses.json,
// final_trainable.safetensors, initial_adapter/ (or pyreft's
// initial_interventions.safetensors), made by scripts/gen_goldens. Shared by
// the reference-evaluator, lowered-IR and compiled-code parity tests.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "peft/Tensor.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace peft::golden {

inline std::string goldenPath(const std::string &relative) {
  return std::string(PEFT_GOLDENS_DIR) + "/" + relative;
}

/// PEFT's parameter name -> the key it saves the tensor under
/// (`...lora_A.default.weight` -> `...lora_A.weight`,
/// `lm_head.modules_to_save.default.weight` -> `lm_head.weight`).
inline std::string keyOfPeftName(std::string name) {
  auto erase = [&](const std::string &what, const std::string &with) {
    size_t at = name.find(what);
    if (at != std::string::npos)
      name.replace(at, what.size(), with);
  };
  erase(".lora_magnitude_vector.default.weight", ".lora_magnitude_vector");
  // Prompt tuning's table is saved as `prompt_embeddings`.
  erase("prompt_encoder.default.embedding.weight", "prompt_embeddings");
  erase(".modules_to_save.default", "");
  erase(".default", "");
  return name;
}

inline double relative(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

/// Rows [first, first + count) of a [rows, ...] tensor.
inline Tensor rows(const Tensor &t, int64_t first, int64_t count) {
  Shape shape = t.shape();
  int64_t width = t.numel() / shape[0];
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  for (int64_t i = 0; i < count * width; ++i) {
    if (isFloat(t.dtype()))
      out.setDouble(i, t.getDouble(first * width + i));
    else
      out.setInt(i, t.getInt(first * width + i));
  }
  return out;
}

struct Golden {
  llvm::json::Object json;
  std::string model;
  int64_t steps = 0;
  std::vector<double> losses, gradNorms, lrs;
  std::vector<std::vector<double>> microLosses;
  double finalLoss = 0;
};

inline std::vector<double> numbers(const llvm::json::Array *array) {
  std::vector<double> out;
  if (array)
    for (const llvm::json::Value &v : *array)
      out.push_back(v.getAsNumber().value_or(std::nan("")));
  return out;
}

inline bool readGolden(const std::string &caseName, Golden &g,
                       std::string &error) {
  auto buffer =
      llvm::MemoryBuffer::getFile(goldenPath(caseName + "/losses.json"));
  if (!buffer) {
    error = "cannot read losses.json";
    return false;
  }
  llvm::Expected<llvm::json::Value> value =
      llvm::json::parse((*buffer)->getBuffer());
  if (!value || !value->getAsObject()) {
    if (!value)
      llvm::consumeError(value.takeError());
    error = "losses.json is not a JSON object";
    return false;
  }
  g.json = *value->getAsObject();
  g.model = g.json.getString("model").value_or("").str();
  g.steps = g.json.getInteger("steps").value_or(0);
  g.losses = numbers(g.json.getArray("losses"));
  g.gradNorms = numbers(g.json.getArray("grad_norms"));
  g.lrs = numbers(g.json.getArray("lrs"));
  g.finalLoss = g.json.getNumber("final_loss").value_or(std::nan(""));
  if (const llvm::json::Array *micro = g.json.getArray("micro_batch_losses"))
    for (const llvm::json::Value &step : *micro)
      g.microLosses.push_back(numbers(step.getAsArray()));
  if (g.steps < 1 || (int64_t)g.losses.size() != g.steps ||
      (int64_t)g.gradNorms.size() != g.steps ||
      (int64_t)g.lrs.size() != g.steps) {
    error = "losses.json lacks steps/losses/grad_norms/lrs";
    return false;
  }
  return true;
}

} // namespace peft::golden
