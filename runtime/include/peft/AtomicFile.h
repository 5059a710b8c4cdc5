// Crash-safe file replacement: readers (and a run resumed after a crash)
// see the old content or the new one, never a mix.
#pragma once

#include <string>

namespace peft {

/// Writes `bytes` to a sibling temp file, fsyncs it, renames it over `path`
/// and fsyncs the directory. Errors name the file and the reason.
bool writeFileAtomic(const std::string &path, const std::string &bytes,
                     std::string &error);

} // namespace peft
