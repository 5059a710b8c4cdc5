//===- ModelLoader.h - read an ONNX model without copying weights -*- C++ -*-===//
//
// protobuf's parser copies `raw_data`, so a binary model is first scanned at
// the wire-format level: every large tensor payload (raw_data, packed
// float_data/double_data) is cut out and replaced by an external-data
// reference to the model file itself (location "__peftc_self__", offset,
// length). The stripped message is small; weights stay in the mapped file.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "onnx/onnx_pb.h"

#include <cstdint>
#include <string>

namespace peft::onnx_import {

/// The `location` of a tensor whose bytes are inside the model file itself.
inline constexpr const char *kSelfLocation = "__peftc_self__";

struct LoadedModel {
  onnx::ModelProto proto;
  std::string path;      ///< absolute path of the model file
  std::string directory; ///< where external data locations are resolved
  uint64_t fileSize = 0;
};

/// Loads a binary `.onnx` or a textual `.onnxtext` model. On failure returns
/// false with a one-line message in `error` naming the file and the cause.
bool loadModel(const std::string &path, LoadedModel &out, std::string &error);

/// Payloads of at least this many bytes are referenced, not copied.
inline constexpr uint64_t kExternalizeThreshold = 64;

} // namespace peft::onnx_import
