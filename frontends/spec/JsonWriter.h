//===- JsonWriter.h - Number formatting shared by the JSON writers -*- C++
//-*-===//
#pragma once

#include "llvm/Support/JSON.h"

#include <string>

namespace peft::spec {

/// The shortest decimal text that reads back as exactly `value`.
std::string formatJsonNumber(double value);

/// Writes `value` as formatJsonNumber does.
void writeNumber(llvm::json::OStream &out, double value);

} // namespace peft::spec
