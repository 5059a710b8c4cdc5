// Gemm steps through oneDNN against a naive loop (transposes, batch
// broadcast, padded batch strides, alpha/beta, bias, epilogues, k = 0) and
// the threading of launches (blocks per thread, the small-launch cost model,
// one thread pool shared with oneDNN).
#include "TestProgram.h"

#include "peft/runtime.h"
#include "runtime/lib/Parallel.h"

#include <gtest/gtest.h>

#include <dirent.h>

#include <cmath>

extern "C" int omp_get_thread_num(void);

using namespace peft;
using namespace peft::program;
using testprog::Builder;

namespace {

struct GemmCase {
  const char *name;
  int64_t batch, m, n, k;
  bool transA, transB;
  double alpha, beta;
  // Batch strides: -1 dense, 0 broadcast, else as given.
  int64_t strideA, strideB, strideC;
  bool bias;
  Gemm::Epilogue epilogue;
};

double epilogue(Gemm::Epilogue e, double x) {
  switch (e) {
  case Gemm::Epilogue::None:
    return x;
  case Gemm::Epilogue::Relu:
    return x > 0 ? x : 0;
  case Gemm::Epilogue::GeluErf:
    return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  case Gemm::Epilogue::GeluTanh:
    return 0.5 * x *
           (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  }
  return x;
}

std::vector<float> pattern(int64_t n, float seed) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = std::sin(seed + 0.37f * i + 0.011f * i * i);
  return v;
}

Tensor tensorOf(const std::vector<float> &v) {
  Tensor t(DType::F32, {(int64_t)v.size()});
  if (!v.empty())
    std::memcpy(t.mutableBytes(), v.data(), v.size() * 4);
  return t;
}

class GemmSteps : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmSteps, MatchNaiveLoop) {
  const GemmCase &c = GetParam();
  auto stride = [&](int64_t s, int64_t dense) { return s < 0 ? dense : s; };
  int64_t sA = stride(c.strideA, c.m * c.k), sB = stride(c.strideB, c.k * c.n),
          sC = stride(c.strideC, c.m * c.n);
  int64_t nA = (c.batch - 1) * sA + c.m * c.k,
          nB = (c.batch - 1) * sB + c.k * c.n,
          nC = (c.batch - 1) * sC + c.m * c.n;
  std::vector<float> a = pattern(nA, 0.1f), b = pattern(nB, 1.3f),
                     cInit = pattern(nC, 2.9f), bias = pattern(c.n, 4.2f);

  Builder builder;
  uint32_t A = builder.arena("a", {nA}), B = builder.arena("b", {nB}),
           C = builder.arena("c", {nC}), Bias = builder.arena("bias", {c.n});
  Step s = Builder::gemm(A, B, C, c.m, c.n, c.k, c.transA, c.transB);
  s.gemm.batch = c.batch;
  s.gemm.alpha = c.alpha;
  s.gemm.beta = c.beta;
  s.gemm.strideA = c.batch > 1 ? sA : 0;
  s.gemm.strideB = c.batch > 1 ? sB : 0;
  s.gemm.strideC = c.batch > 1 ? sC : 0;
  s.gemm.hasBias = c.bias;
  s.gemm.bias = Bias;
  s.gemm.epilogue = c.epilogue;
  Function f;
  f.name = "gemm";
  f.args = {{A, "a", false}, {B, "b", false}, {C, "c", false}};
  if (c.bias)
    f.args.push_back({Bias, "bias", false});
  f.results = {{C, "", "c"}};
  f.steps = {s};
  builder.p.functions = {f};

  // C[b] = epilogue(alpha op(A[b]) op(B[b]) + beta C[b] + bias), in double.
  std::vector<double> want(cInit.begin(), cInit.end());
  for (int64_t bi = 0; bi < c.batch; ++bi)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < c.k; ++p) {
          double x =
              c.transA ? a[bi * sA + p * c.m + i] : a[bi * sA + i * c.k + p];
          double y =
              c.transB ? b[bi * sB + j * c.k + p] : b[bi * sB + p * c.n + j];
          acc += x * y;
        }
        double &out = want[bi * sC + i * c.n + j];
        double v = c.alpha * acc + (c.beta != 0 ? c.beta * out : 0.0);
        if (c.bias)
          v += bias[j];
        out = epilogue(c.epilogue, v);
      }

  for (int threads : {1, 2}) {
    std::string error;
    auto program = rt::Program::fromParts(encodeProgram(builder.p), {}, error);
    ASSERT_TRUE(program) << error;
    rt::Options options;
    options.threads = threads;
    auto session = rt::Session::create(program, options, error);
    ASSERT_TRUE(session) << error;
    rt::Batch inputs{
        {"a", tensorOf(a)}, {"b", tensorOf(b)}, {"c", tensorOf(cInit)}};
    if (c.bias)
      inputs["bias"] = tensorOf(bias);
    std::vector<Tensor> results;
    ASSERT_TRUE(session->run("gemm", inputs, 0, results, error)) << error;
    ASSERT_EQ(results.size(), 1u);
    const float *got = results[0].data<float>();
    for (int64_t i = 0; i < nC; ++i)
      ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + c.k) * (1 + std::abs(want[i])))
          << "element " << i << ", " << threads << " threads";
  }
}

using E = Gemm::Epilogue;
const GemmCase kGemmCases[] = {
    {"plain", 1, 5, 7, 3, false, false, 1, 0, -1, -1, -1, false, E::None},
    {"trans_a", 1, 5, 7, 3, true, false, 1, 0, -1, -1, -1, false, E::None},
    {"trans_b", 1, 5, 7, 3, false, true, 1, 0, -1, -1, -1, false, E::None},
    {"trans_ab_alpha_beta", 1, 6, 4, 9, true, true, 0.5, 0.7, -1, -1, -1, false,
     E::None},
    {"batch", 3, 4, 5, 6, false, false, 1, 0, -1, -1, -1, false, E::None},
    {"batch_broadcast_a", 3, 4, 5, 6, false, false, 1, 0, 0, -1, -1, false,
     E::None},
    {"batch_broadcast_b_trans_bias_relu", 3, 4, 5, 6, false, true, 1, 0, -1, 0,
     -1, true, E::Relu},
    {"bias_alpha2_beta1", 1, 5, 7, 3, false, false, 2, 1, -1, -1, -1, true,
     E::None},
    {"bias_gelu_erf", 1, 8, 5, 4, false, false, 1, 0, -1, -1, -1, true,
     E::GeluErf},
    {"padded_batch_stride_gelu_tanh", 2, 3, 4, 5, true, false, 1, 0.5, 17, 23,
     15, false, E::GeluTanh},
    {"alpha_beta_bias_relu_batch", 2, 3, 4, 5, false, false, -1.5, 0.25, -1, -1,
     -1, true, E::Relu},
    {"empty_reduction", 2, 3, 4, 0, false, false, 1, 0.5, -1, -1, -1, true,
     E::Relu},
    {"large", 2, 64, 96, 80, true, true, 1, 0, -1, -1, -1, true, E::None},
};

INSTANTIATE_TEST_SUITE_P(Variants, GemmSteps, ::testing::ValuesIn(kGemmCases),
                         [](const ::testing::TestParamInfo<GemmCase> &info) {
                           return std::string(info.param.name);
                         });

/// out[i] = the OpenMP thread running iteration i.
void whoAmI(void *const *args, int64_t begin, int64_t end) {
  int32_t *out = (int32_t *)args[0];
  for (int64_t i = begin; i < end; ++i)
    out[i] = omp_get_thread_num();
}

int threadsOfThisProcess() {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  while (dirent *e = readdir(d))
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

std::vector<int32_t> runWhoAmI(int64_t extent, int threads,
                               bool withGemm = false) {
  Builder builder;
  uint32_t out = builder.arena("out", {extent}, DType::I32);
  uint32_t k = builder.kernel("who_am_i", 1);
  Function f;
  f.name = "run";
  f.results = {{out, "", "out"}};
  f.steps = {Builder::launch(k, {out}, extent)};
  if (withGemm) {
    uint32_t a = builder.arena("a", {256, 256}),
             c = builder.arena("c", {256, 256});
    f.steps.push_back(Builder::gemm(a, a, c, 256, 256, 256, false, true));
  }
  builder.p.functions = {f};
  std::string error;
  auto program = rt::Program::fromParts(encodeProgram(builder.p),
                                        {{"who_am_i", whoAmI}}, error);
  EXPECT_TRUE(program) << error;
  rt::Options options;
  options.threads = threads;
  auto session = rt::Session::create(program, options, error);
  EXPECT_TRUE(session) << error;
  std::vector<Tensor> results;
  EXPECT_TRUE(session && session->run("run", {}, 0, results, error)) << error;
  std::vector<int32_t> ids(extent);
  if (!results.empty())
    std::memcpy(ids.data(), results[0].bytes(), extent * 4);
  return ids;
}

TEST(Launches, SplitIntoOneBlockPerThread) {
  // 100000 i32 = 400 kB: worth two threads, each a contiguous half.
  std::vector<int32_t> ids = runWhoAmI(100000, 2);
  for (int64_t i = 0; i < 100000; ++i)
    ASSERT_EQ(ids[i], i < 50000 ? 0 : 1) << i;
  // An odd extent: the first block takes the extra iteration.
  ids = runWhoAmI(40000 + 1, 2);
  EXPECT_EQ(ids[20000], 0);
  EXPECT_EQ(ids[20001], 1);
}

TEST(Launches, SmallLaunchesStayOnOneThread) {
  // 1000 i32 = 4 kB, below kMinBytesPerThread: not worth waking a thread.
  for (int32_t id : runWhoAmI(1000, 2))
    ASSERT_EQ(id, 0);
  EXPECT_EQ(rt::threadsFor(1000, 4000, 8), 1);
  EXPECT_EQ(rt::threadsFor(1 << 20, 3 * 32 * 1024, 8), 3);
  EXPECT_EQ(rt::threadsFor(2, 1 << 30, 8), 2);
  EXPECT_EQ(rt::threadsFor(1 << 20, 1 << 30, 8), 8);
}

TEST(Launches, KernelsAndOneDnnShareOnePool) {
  // This process runs only this test (ctest starts one per test). A second
  // runtime's pool (oneDNN on its own threads, or clang's libomp next to
  // libgomp) would show up as more threads than the session asked for.
  int before = threadsOfThisProcess();
  std::vector<int32_t> ids = runWhoAmI(100000, 2, /*withGemm=*/true);
  EXPECT_EQ(ids[99999], 1);
  EXPECT_EQ(threadsOfThisProcess(), std::max(before, 2));
}

} // namespace
