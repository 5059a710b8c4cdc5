// Bounds-checked safetensors reader and writer, shared by every tool that
// reads or writes tensors. Reading maps the file; tensors are views into it.
#pragma once

#include "peft/Tensor.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace peft {

struct SafeTensorsFile {
  /// Tensors in file order (safetensors sorts keys when writing).
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  const Tensor *find(const std::string &name) const;
};

/// Reads and validates `path`, replacing `out`. Errors (return false, `out`
/// untouched) name the file and the problem: truncated header, bad JSON,
/// duplicate names, unknown dtype, offsets past the end, overlapping tensors,
/// a shape that does not match the byte length or overflows. Tensors need not
/// be aligned in the file.
bool readSafeTensors(const std::string &path, SafeTensorsFile &out,
                     std::string &error);

/// Writes `tensors` to `path` atomically (temp file, fsync, rename). The
/// header lists tensors in the given order; the data is laid out contiguously
/// with each tensor aligned to its element size. Duplicate names, the name
/// "__metadata__" and tensors without data are errors.
bool writeSafeTensors(
    const std::string &path,
    const std::vector<std::pair<std::string, Tensor>> &tensors,
    const std::map<std::string, std::string> &metadata, std::string &error);

} // namespace peft
