// Crash-safe file replacement: readers (and a run resumed after a crash)
// see the old content or the new one, never a mix.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace peft {

/// Writes `bytes` to a sibling temp file, fsyncs it, renames it over `path`
/// and fsyncs the directory. Errors name the file and the reason.
bool writeFileAtomic(const std::string &path, const std::string &bytes,
                     std::string &error);

/// One run of bytes of a file written in pieces.
struct ByteSpan {
  const void *data;
  size_t size;
};
/// The same, for a file whose content is `pieces` one after another
/// (written without joining them: a safetensors file's tensors).
bool writeFileAtomic(const std::string &path,
                     const std::vector<ByteSpan> &pieces, std::string &error);

} // namespace peft
