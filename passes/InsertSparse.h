//===- InsertSparse.h - which weight entries sparse fine-tuning trains -*- C++
//-*-===//
//
// The selection peft-insert-sparse makes at compile time from the frozen
// weight values (docs/adapters.md, "Sparse fine-tuning"). Indices are flat
// row-major positions in PyTorch's layout of the weight ([out, in] for a
// Linear), whatever layout the model stores it in.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "peft/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace peft::sparse {

/// k = ceil(density · numel) computed in double (Python's
/// `math.ceil(density * numel)`), at least 1 and at most numel.
int64_t selectedCount(double density, int64_t numel);

/// Position `p` of PyTorch's layout in a stored tensor of shape `stored`:
/// `p` itself, or with `transposed` (a stored [a, b] matrix that is the
/// transpose of PyTorch's [b, a]) row p mod a, column p div a.
int64_t storedIndex(int64_t p, llvm::ArrayRef<int64_t> stored, bool transposed);

/// The k positions with the largest |W| (ties: the lower position), in
/// increasing order; `weight` as stored. None when W holds a NaN (its
/// magnitude has no order).
std::optional<std::vector<int64_t>>
selectByMagnitude(const Tensor &weight, bool transposed, int64_t k);

/// The stream of a module's random selection: FNV-1a (32 bit) of its path,
/// so each module draws its own entries whatever else the spec targets.
uint32_t randomStream(llvm::StringRef modulePath);

/// The k positions of [0, numel) with the smallest Philox-4x32-10 draws
/// `peft::dropout::draw(seed, /*step=*/0, stream, p)` (ties: the lower
/// position), in increasing order. Integer arithmetic only, so every
/// machine picks the same entries.
std::vector<int64_t> selectAtRandom(int64_t numel, int64_t k, uint64_t seed,
                                    uint32_t stream);

} // namespace peft::sparse
