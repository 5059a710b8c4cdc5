#include "Parallel.h"

#include <algorithm>

// libgomp's ABI (gcc/libgomp/libgomp_g.h, omp.h). GOMP_parallel runs
// fn(data) on num_threads threads, the caller being thread 0, and returns
// when all are done.
extern "C" {
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads,
                   unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
void omp_set_num_threads(int n);
}

namespace peft::rt {

void setThreads(int threads) { omp_set_num_threads(std::max(1, threads)); }

int maxThreads() { return omp_get_max_threads(); }

namespace {

struct Region {
  int64_t extent;
  RangeFn body;
  void *context;
};

void regionBody(void *data) {
  const Region &r = *static_cast<const Region *>(data);
  // The team may be smaller than asked for (OMP_THREAD_LIMIT, nesting), so
  // split by the size of the team that actually runs.
  int64_t team = omp_get_num_threads(), id = omp_get_thread_num();
  int64_t block = r.extent / team, extra = r.extent % team;
  int64_t begin = id * block + std::min(id, extra);
  int64_t end = begin + block + (id < extra ? 1 : 0);
  if (begin < end)
    r.body(begin, end, r.context);
}

} // namespace

void parallelFor(int64_t extent, int threads, RangeFn body, void *context) {
  if (extent <= 0)
    return;
  if (threads <= 1 || extent == 1) {
    body(0, extent, context);
    return;
  }
  Region region{extent, body, context};
  GOMP_parallel(regionBody, &region,
                (unsigned)std::min<int64_t>(threads, extent), 0);
}

int threadsFor(int64_t extent, uint64_t bytesTouched, int maxThreads) {
  uint64_t byWork = std::max<uint64_t>(1, bytesTouched / kMinBytesPerThread);
  uint64_t n =
      std::min<uint64_t>({byWork, (uint64_t)std::max<int64_t>(1, extent),
                          (uint64_t)std::max(1, maxThreads)});
  return (int)n;
}

} // namespace peft::rt
