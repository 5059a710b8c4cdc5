//===- Dropout.h - the counter-based dropout mask ---------------*- C++ -*-===//
//
// peftc's dropout (`peft.dropout`) draws its mask from Philox-4x32-10
// (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the
// generator of Random123 and cuRAND) keyed by the run's seed, with the
// element's position as the counter. Each element's keep/drop decision is a
// pure function of (seed, step, stream, element index): no generator state
// advances, so a resumed run redraws exactly the masks of the run it
// continues, every element can be decided independently (one CUDA thread
// per element, any order), and backward redraws the forward's mask instead
// of storing it.
//
// Header-only, C++17 and CUDA C (host and device), no dependencies: the CPU
// and CUDA code generators emit the same arithmetic.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define PEFT_HOST_DEVICE __host__ __device__
#else
#define PEFT_HOST_DEVICE
#endif

namespace peft::dropout {

/// Philox-4x32 with 10 rounds: the four 32-bit words for `counter` under
/// `key` (Random123's philox4x32_R(10, ...)).
struct Philox4x32 {
  uint32_t v[4];
};

PEFT_HOST_DEVICE inline Philox4x32 philox4x32_10(const uint32_t counter[4],
                                                 const uint32_t key[2]) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = (uint64_t)kMul0 * c0, p1 = (uint64_t)kMul1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

/// The 32-bit uniform draw of one element: word 0 of Philox-4x32-10 with
/// counter (index low, index high, step, stream) and key (seed low, seed
/// high). `step` and `stream` are taken modulo 2^32.
PEFT_HOST_DEVICE inline uint32_t draw(uint64_t seed, uint64_t step,
                                      uint64_t stream, uint64_t index) {
  const uint32_t counter[4] = {(uint32_t)index, (uint32_t)(index >> 32),
                               (uint32_t)step, (uint32_t)stream};
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  return philox4x32_10(counter, key).v[0];
}

/// Elements whose draw is below this are dropped: floor(p · 2^32), so an
/// element is dropped with probability threshold / 2^32 (p within 2^-32).
/// p ≥ 1 drops everything, p ≤ 0 nothing.
PEFT_HOST_DEVICE inline uint64_t dropThreshold(double p) {
  if (!(p > 0))
    return 0;
  if (p >= 1)
    return uint64_t(1) << 32;
  return (uint64_t)(p * 4294967296.0);
}

/// Whether element `index` is kept.
PEFT_HOST_DEVICE inline bool keep(uint64_t threshold, uint64_t seed,
                                  uint64_t step, uint64_t stream,
                                  uint64_t index) {
  return (uint64_t)draw(seed, step, stream, index) >= threshold;
}

/// The factor kept elements are multiplied by: 1 / (1 − p), as PyTorch's
/// dropout (0 when p = 1, where PyTorch returns zeros).
PEFT_HOST_DEVICE inline double keepScale(double p) {
  return p >= 1 ? 0.0 : 1.0 / (1.0 - p);
}

} // namespace peft::dropout
