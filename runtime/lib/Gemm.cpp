#include "Gemm.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cmath>
#include <unordered_map>

namespace peft::rt {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

struct GemmOp::Impl {
  program::Gemm g;
  void *a = nullptr, *b = nullptr, *c = nullptr, *bias = nullptr;
  // Empty products (k == 0) are computed here: oneDNN rejects zero-sized
  // reductions, and the result is just beta*C + bias through the epilogue.
  bool emptyReduction = false;
  dnnl::engine engine;
  dnnl::stream stream;
  dnnl::matmul primitive;
  std::unordered_map<int, dnnl::memory> args;
};

namespace {

bool dnnlType(DType t, dt &out) {
  switch (t) {
  case DType::F32:
    out = dt::f32;
    return true;
  case DType::BF16:
    out = dt::bf16;
    return true;
  case DType::F16:
    out = dt::f16;
    return true;
  default:
    return false;
  }
}

/// A [rows, cols] operand (op(X), after any transpose) of every batch:
/// a transpose is the same storage read with swapped strides, and a batch
/// stride of 0 is a batch dimension of 1 that oneDNN broadcasts.
dnnl::memory::desc operand(const program::Gemm &g, dt type, int64_t rows,
                           int64_t cols, bool transposed, int64_t batchStride) {
  dnnl::memory::dim rowStride = transposed ? 1 : cols;
  dnnl::memory::dim colStride = transposed ? rows : 1;
  if (g.batch == 1)
    return dnnl::memory::desc(dims{rows, cols}, type,
                              dims{rowStride, colStride});
  int64_t batch = batchStride == 0 ? 1 : g.batch;
  int64_t stride = batchStride == 0 ? rows * cols : batchStride;
  return dnnl::memory::desc(dims{batch, rows, cols}, type,
                            dims{stride, rowStride, colStride});
}

/// The CPU engine is stateless; one per process serves every session.
const dnnl::engine &cpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

double epilogue(program::Gemm::Epilogue e, double x) {
  switch (e) {
  case program::Gemm::Epilogue::None:
    return x;
  case program::Gemm::Epilogue::Relu:
    return x > 0 ? x : 0;
  case program::Gemm::Epilogue::GeluErf:
    return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  case program::Gemm::Epilogue::GeluTanh:
    return 0.5 * x *
           (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  }
  return x;
}

} // namespace

GemmOp::~GemmOp() = default;

std::unique_ptr<GemmOp> GemmOp::create(const program::Gemm &g, void *a, void *b,
                                       void *c, void *bias, DType biasType,
                                       std::string &error) {
  std::unique_ptr<GemmOp> op(new GemmOp());
  op->impl_ = std::make_unique<Impl>();
  Impl &s = *op->impl_;
  s.g = g;
  s.a = a;
  s.b = b;
  s.c = c;
  s.bias = bias;
  dt type, biasDt = dt::f32;
  if (!dnnlType(g.dtype, type) || (bias && !dnnlType(biasType, biasDt))) {
    error = std::string("gemm on ") + std::string(dtypeName(g.dtype)) +
            (bias ? std::string(" with a ") + std::string(dtypeName(biasType)) +
                        " bias"
                  : std::string()) +
            " is not supported (f32, bf16, f16)";
    return nullptr;
  }
  if (g.m == 0 || g.n == 0)
    return op; // nothing to write
  if (g.k == 0) {
    if (g.dtype != DType::F32 || (bias && biasType != DType::F32)) {
      error = "gemm with k = 0 is supported for f32 only";
      return nullptr;
    }
    s.emptyReduction = true;
    return op;
  }
  try {
    s.engine = cpuEngine();
    s.stream = dnnl::stream(s.engine);
    dnnl::memory::desc aMd = operand(g, type, g.m, g.k, g.transA, g.strideA);
    dnnl::memory::desc bMd = operand(g, type, g.k, g.n, g.transB, g.strideB);
    dnnl::memory::desc cMd = operand(g, type, g.m, g.n, false, g.strideC);
    dnnl::memory::desc biasMd =
        g.batch == 1
            ? dnnl::memory::desc(dims{1, g.n}, biasDt, dims{g.n, 1})
            : dnnl::memory::desc(dims{1, 1, g.n}, biasDt, dims{g.n, g.n, 1});

    // oneDNN scales the matmul's own bias with the output scale, so with
    // alpha != 1 the bias is added by a binary post-op after the scale
    // instead. Post-ops run in order: (scale) -> sum(beta) -> bias -> eltwise.
    bool nativeBias = bias && g.alpha == 1.0;
    dnnl::primitive_attr attr;
    if (g.alpha != 1.0)
      attr.set_output_scales(0, {(float)g.alpha});
    dnnl::post_ops ops;
    int binaryIndex = -1;
    if (g.beta != 0.0)
      ops.append_sum((float)g.beta);
    if (bias && !nativeBias) {
      binaryIndex = ops.len();
      ops.append_binary(dnnl::algorithm::binary_add, biasMd);
    }
    switch (g.epilogue) {
    case program::Gemm::Epilogue::None:
      break;
    case program::Gemm::Epilogue::Relu:
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      break;
    case program::Gemm::Epilogue::GeluErf:
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
      break;
    case program::Gemm::Epilogue::GeluTanh:
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
      break;
    }
    attr.set_post_ops(ops);
    dnnl::matmul::desc desc = nativeBias
                                  ? dnnl::matmul::desc(aMd, bMd, biasMd, cMd)
                                  : dnnl::matmul::desc(aMd, bMd, cMd);
    dnnl::matmul::primitive_desc pd(desc, attr, s.engine);
    s.primitive = dnnl::matmul(pd);
    s.args[DNNL_ARG_SRC] = dnnl::memory(aMd, s.engine, a);
    s.args[DNNL_ARG_WEIGHTS] = dnnl::memory(bMd, s.engine, b);
    s.args[DNNL_ARG_DST] = dnnl::memory(cMd, s.engine, c);
    if (nativeBias)
      s.args[DNNL_ARG_BIAS] = dnnl::memory(biasMd, s.engine, bias);
    if (binaryIndex >= 0)
      s.args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(binaryIndex) | DNNL_ARG_SRC_1] =
          dnnl::memory(biasMd, s.engine, bias);
  } catch (const dnnl::error &e) {
    error = std::string("oneDNN matmul: ") + e.what();
    return nullptr;
  }
  return op;
}

bool GemmOp::run(std::string &error) {
  Impl &s = *impl_;
  const program::Gemm &g = s.g;
  if (g.m == 0 || g.n == 0)
    return true;
  if (s.emptyReduction) {
    auto *c = static_cast<float *>(s.c);
    auto *bias = static_cast<const float *>(s.bias);
    for (int64_t b = 0; b < g.batch; ++b)
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) {
          float &out = c[b * g.strideC + i * g.n + j];
          double v = g.beta != 0.0 ? g.beta * out : 0.0;
          if (bias)
            v += bias[j];
          out = (float)epilogue(g.epilogue, v);
        }
    return true;
  }
  try {
    s.primitive.execute(s.stream, s.args);
    s.stream.wait();
  } catch (const dnnl::error &e) {
    error = std::string("oneDNN matmul: ") + e.what();
    return false;
  }
  return true;
}

} // namespace peft::rt
