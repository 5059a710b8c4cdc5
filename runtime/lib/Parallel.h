// Parallel loops on libgomp, the OpenMP runtime Debian's oneDNN is built
// on, so that generated kernels and oneDNN's GEMMs share one thread pool.
// clang's -fopenmp emits calls into LLVM's libomp, which cannot share that
// pool, so the runtime calls libgomp's entry points directly instead.
#pragma once

#include <cstdint>

namespace peft::rt {

/// Sets the thread count of OpenMP regions started from the calling thread
/// (oneDNN's and ours). OpenMP keeps this per thread, so the session sets it
/// again before every run.
void setThreads(int threads);
/// omp_get_max_threads() of the calling thread.
int maxThreads();

/// Calls body(begin, end, context) on `threads` threads (1: inline on the
/// caller), splitting [0, extent) into contiguous blocks that differ in size
/// by at most one.
using RangeFn = void (*)(int64_t begin, int64_t end, void *context);
void parallelFor(int64_t extent, int threads, RangeFn body, void *context);

/// How many threads a launch should use: each thread gets at least
/// kMinBytesPerThread of the launch's buffers (the bytes a kernel touches
/// are the best proxy for its work that the program carries, since one
/// iteration may be one element or a whole row), at most one per iteration.
constexpr uint64_t kMinBytesPerThread = 32 * 1024;
int threadsFor(int64_t extent, uint64_t bytesTouched, int maxThreads);

} // namespace peft::rt
