//===- ModelLoader.h - read an ONNX model, weights by ref ------*- C++ -*-===//
//
// protobuf's parser copies `raw_data`, so a binary model is first scanned at
// the wire-format level: every tensor payload that is a contiguous range of
// little-endian element bytes (raw_data, packed float_data/double_data) of
// the graph's initializers and of node attributes is cut out and replaced by
// an external-data reference to the model file itself (location
// "__peftc_self__", offset, length). The stripped message is small (so files
// over protobuf's 2 GB limit load too); weights stay in the mapped file and
// every param the importer makes can point at its bytes.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "onnx/onnx_pb.h"

#include "peft/MappedFile.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace peft::onnx_import {

/// The `location` of a tensor whose bytes are inside the model file itself.
inline constexpr const char *kSelfLocation = "__peftc_self__";

struct LoadedModel {
  onnx::ModelProto proto;
  std::string path;      ///< absolute path of the model file
  std::string directory; ///< where external data locations are resolved
  uint64_t fileSize = 0;

  /// Maps `file` once per model (tensors decoded from it are views that keep
  /// the mapping alive). Returns null with a message in `error`.
  std::shared_ptr<MappedFile> map(const std::string &file,
                                  std::string &error) const;

private:
  mutable std::map<std::string, std::shared_ptr<MappedFile>> mapped_;
};

/// Loads a binary `.onnx` or a textual `.onnxtext` model. On failure returns
/// false with a one-line message in `error` naming the file and the cause.
bool loadModel(const std::string &path, LoadedModel &out, std::string &error);

/// Payloads of at least this many bytes are referenced, not copied. Every
/// non-empty payload is: a param must point at its bytes whatever its size,
/// and constants decoded from the mapped file cost no more than copies.
inline constexpr uint64_t kExternalizeThreshold = 1;

} // namespace peft::onnx_import
