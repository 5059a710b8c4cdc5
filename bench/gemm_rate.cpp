// oneDNN's f32 matmul rate on this machine, at the shapes a benchmark names:
// the yardstick the training benchmarks report their GEMM share against.
//
//   gemm_rate M N K [M N K ...]   prints one line per shape:
//   M N K GFLOP/s   (best of 5 timed runs of >= 0.2 s each, all cores)
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
  if (argc < 4 || (argc - 1) % 3 != 0) {
    std::fprintf(stderr, "usage: gemm_rate M N K [M N K ...]\n");
    return 1;
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  for (int i = 1; i + 2 < argc; i += 3) {
    long m = std::atol(argv[i]), n = std::atol(argv[i + 1]),
         k = std::atol(argv[i + 2]);
    if (m <= 0 || n <= 0 || k <= 0) {
      std::fprintf(stderr, "gemm_rate: bad shape %s %s %s\n", argv[i],
                   argv[i + 1], argv[i + 2]);
      return 1;
    }
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    dnnl::memory::desc a({m, k}, dt::f32, tag::ab), b({k, n}, dt::f32, tag::ab),
        c({m, n}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), eng);
    dnnl::matmul mm(pd);
    std::vector<float> av(m * k, 0.5f), bv(k * n, 0.25f), cv(m * n);
    dnnl::memory am(a, eng, av.data()), bm(b, eng, bv.data()),
        cm(c, eng, cv.data());
    auto run = [&] {
      mm.execute(
          strm,
          {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
      strm.wait();
    };
    run(); // warm-up: JIT, page faults
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      long iters = 0;
      double elapsed = 0;
      do {
        run();
        ++iters;
        elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                .count();
      } while (elapsed < 0.2);
      best = std::max(best, 2.0 * m * n * k * iters / elapsed / 1e9);
    }
    std::printf("%ld %ld %ld %.1f\n", m, n, k, best);
  }
  return 0;
}
