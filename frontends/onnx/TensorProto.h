//===- TensorProto.h - ONNX TensorProto decoding ---------------*- C++ -*-===//
#pragma once

#include "frontends/onnx/ModelLoader.h"
#include "peft/Tensor.h"

#include <optional>
#include <string>

namespace peft::onnx_import {

/// Where a tensor's bytes live on disk, when they are a raw byte range.
struct ByteRange {
  std::string file; ///< absolute path
  uint64_t offset = 0, length = 0;
};

/// Resolves a tensor stored externally (ONNX external data, or a payload the
/// loader referenced inside the model file) to a checked byte range. Errors
/// name the tensor, the file and what is wrong (missing, too short, ...).
bool externalRange(const onnx::TensorProto &t, const LoadedModel &model,
                   ByteRange &out, std::string &error);

/// Decodes a tensor's value into an owned or mapped host tensor.
bool decodeTensor(const onnx::TensorProto &t, const LoadedModel &model,
                  Tensor &out, std::string &error);

Shape tensorShape(const onnx::TensorProto &t);

/// The byte size `t`'s shape implies for `dtype`; false with a message for
/// negative dimensions or shapes too large to exist.
bool tensorByteSize(const onnx::TensorProto &t, DType dtype, uint64_t &bytes,
                    std::string &error);

} // namespace peft::onnx_import
