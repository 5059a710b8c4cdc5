// A program built by hand, as peftc would emit it, with its kernels written
// in C++ against the kernel ABI: a two-layer MLP trained with MSE and SGD,
//   h = relu(x W1 + b1)    W1 [4,3] frozen, read from the weights file
//   y = h W2               W2 [3,2] trainable (saved transposed, as PEFT
//                          stores lora_B), b1 [3] trainable
//   loss = mean((y - t)^2), lr = lr0 / step, p -= lr * grad
// Used by the session tests and by the shared object that tests
// Program::loadShared and the embedding example.
#pragma once

#include "peft/KernelABI.h"
#include "peft/Program.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace peft::testprog {

constexpr int64_t kRows = 2, kIn = 4, kHidden = 3, kOut = 2;
constexpr float kLr0 = 0.1f;
/// Bytes before W1 in the weights file, so the offset is exercised.
constexpr uint64_t kWeightsPrefix = 24;

//===----------------------------------------------------------------------===//
// Kernels (the ABI: args, then [begin, end) of the parallel dimension)
//===----------------------------------------------------------------------===//

/// loss = mean((y - t)^2); dy = scale * 2 (y - t) / numel. Extent 1.
inline void mseKernel(void *const *args, int64_t begin, int64_t end) {
  const float *y = (const float *)args[0], *t = (const float *)args[1];
  const float *scale = (const float *)args[2];
  float *loss = (float *)args[3], *dy = (float *)args[4];
  const int64_t n = kRows * kOut;
  for (int64_t it = begin; it < end; ++it) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      double d = (double)y[i] - t[i];
      sum += d * d;
      dy[i] = (float)(*scale * 2 * d / n);
    }
    *loss = (float)(sum / n);
  }
}

/// dpre = dh * (h > 0). Extent rows*hidden.
inline void reluBackwardKernel(void *const *args, int64_t begin, int64_t end) {
  const float *h = (const float *)args[0], *dh = (const float *)args[1];
  float *dpre = (float *)args[2];
  for (int64_t i = begin; i < end; ++i)
    dpre[i] = h[i] > 0 ? dh[i] : 0.f;
}

/// db[j] = sum_i d[i, j]. Extent hidden.
inline void columnSumKernel(void *const *args, int64_t begin, int64_t end) {
  const float *d = (const float *)args[0];
  float *db = (float *)args[1];
  for (int64_t j = begin; j < end; ++j) {
    float s = 0;
    for (int64_t i = 0; i < kRows; ++i)
      s += d[i * kHidden + j];
    db[j] = s;
  }
}

/// gn = sqrt(|db1|^2 + |dW2|^2). Extent 1.
inline void gradNormKernel(void *const *args, int64_t begin, int64_t end) {
  const float *db1 = (const float *)args[0], *dw2 = (const float *)args[1];
  float *gn = (float *)args[2];
  for (int64_t it = begin; it < end; ++it) {
    double s = 0;
    for (int64_t i = 0; i < kHidden; ++i)
      s += (double)db1[i] * db1[i];
    for (int64_t i = 0; i < kHidden * kOut; ++i)
      s += (double)dw2[i] * dw2[i];
    *gn = (float)std::sqrt(s);
  }
}

/// lr = lr0 / step. Extent 1.
inline void lrKernel(void *const *args, int64_t begin, int64_t end) {
  const int64_t *step = (const int64_t *)args[0];
  float *lr = (float *)args[1];
  for (int64_t it = begin; it < end; ++it)
    *lr = kLr0 / (float)*step;
}

/// out = p - lr * g. Extent numel.
inline void sgdKernel(void *const *args, int64_t begin, int64_t end) {
  const float *p = (const float *)args[0], *g = (const float *)args[1];
  const float *lr = (const float *)args[2];
  float *out = (float *)args[3];
  for (int64_t i = begin; i < end; ++i)
    out[i] = p[i] - *lr * g[i];
}

inline std::vector<peft_kernel_entry> kernelTable() {
  return {{"mse", mseKernel},
          {"relu_backward", reluBackwardKernel},
          {"column_sum", columnSumKernel},
          {"grad_norm", gradNormKernel},
          {"lr", lrKernel},
          {"sgd", sgdKernel}};
}

//===----------------------------------------------------------------------===//
// Initial values
//===----------------------------------------------------------------------===//

inline float w1Init(int64_t i) { return 0.8f * std::sin(0.5f + 1.7f * i); }
inline float b1Init(int64_t i) { return 0.3f * std::sin(2.0f + 1.3f * i); }
inline float w2Init(int64_t i) { return 0.9f * std::sin(4.0f + 0.9f * i); }

/// The weights file's bytes: kWeightsPrefix bytes of noise, then W1.
inline std::string weightsFileBytes() {
  std::string bytes(kWeightsPrefix, '\x5a');
  for (int64_t i = 0; i < kIn * kHidden; ++i) {
    float v = w1Init(i);
    bytes.append((const char *)&v, 4);
  }
  return bytes;
}

//===----------------------------------------------------------------------===//
// The program
//===----------------------------------------------------------------------===//

struct Builder {
  program::Program p;

  uint32_t arena(const std::string &name, std::vector<int64_t> shape,
                 DType dtype = DType::F32) {
    program::Buffer b;
    b.kind = program::Buffer::Kind::Arena;
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.name = name;
    int64_t n = 1;
    for (int64_t d : b.shape)
      n *= d;
    b.bytes = (uint64_t)n * dtypeSize(dtype);
    b.offset = p.arenaBytes;
    p.arenaBytes += (b.bytes + 63) / 64 * 64;
    p.bufferBytesSum += b.bytes;
    p.buffers.push_back(b);
    return (uint32_t)p.buffers.size() - 1;
  }
  uint32_t param(const program::Param &q) {
    p.params.push_back(q);
    program::Buffer b;
    b.kind = program::Buffer::Kind::Param;
    b.dtype = q.dtype;
    b.shape = q.shape;
    b.param = (uint32_t)p.params.size() - 1;
    b.name = q.name;
    int64_t n = 1;
    for (int64_t d : b.shape)
      n *= d;
    b.bytes = (uint64_t)n * dtypeSize(q.dtype);
    p.buffers.push_back(b);
    return (uint32_t)p.buffers.size() - 1;
  }
  uint32_t constantF32(const std::string &name, float v) {
    program::Buffer b;
    b.kind = program::Buffer::Kind::Constant;
    b.dtype = DType::F32;
    b.bytes = 4;
    b.constant.assign((const char *)&v, 4);
    b.name = name;
    p.buffers.push_back(b);
    return (uint32_t)p.buffers.size() - 1;
  }
  uint32_t kernel(const std::string &symbol, uint32_t numArgs) {
    for (uint32_t i = 0; i < p.kernels.size(); ++i)
      if (p.kernels[i].symbol == symbol)
        return i;
    p.kernels.push_back({symbol, numArgs});
    return (uint32_t)p.kernels.size() - 1;
  }
  static program::Step launch(uint32_t kernel, std::vector<uint32_t> args,
                              int64_t extent) {
    program::Step s;
    s.kind = program::Step::Kind::Launch;
    s.launch.kernel = kernel;
    s.launch.args = std::move(args);
    s.launch.extent = extent;
    return s;
  }
  static program::Step gemm(uint32_t a, uint32_t b, uint32_t c, int64_t m,
                            int64_t n, int64_t k, bool transA, bool transB) {
    program::Step s;
    s.kind = program::Step::Kind::Gemm;
    s.gemm.a = a;
    s.gemm.b = b;
    s.gemm.c = c;
    s.gemm.m = m;
    s.gemm.n = n;
    s.gemm.k = k;
    s.gemm.transA = transA;
    s.gemm.transB = transB;
    return s;
  }
  static program::Step copy(uint32_t src, uint32_t dst) {
    program::Step s;
    s.kind = program::Step::Kind::Copy;
    s.copy.src = src;
    s.copy.dst = dst;
    return s;
  }
};

/// The MLP program. With `accumulation` > 1, train_step returns the loss and
/// the gradients scaled by 1/accumulation, and apply_update(step, grads)
/// returns grad_norm and lr and writes the params (peft-optimizer's
/// contract); otherwise train_step(step, x, t) does everything.
inline program::Program mlpProgram(const std::string &weightsPath,
                                   int accumulation = 1) {
  Builder b;
  b.p.producer = "hand-built test program";
  b.p.weightsPath = weightsPath;
  b.p.adapterConfigJson =
      R"({"peft_type": "LORA", "r": 2, "target_modules": ["fc2"]})";

  program::Param w1;
  w1.name = "fc1.weight";
  w1.shape = {kIn, kHidden};
  w1.init = program::Param::Init::File;
  w1.fileOffset = kWeightsPrefix;
  w1.fileLength = kIn * kHidden * 4;
  uint32_t W1 = b.param(w1);

  auto dataParam = [&](const std::string &name, std::vector<int64_t> shape,
                       float (*init)(int64_t)) {
    program::Param q;
    q.name = name;
    q.shape = shape;
    q.trainable = true;
    q.init = program::Param::Init::Data;
    q.dataOffset = b.p.initData.size();
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    for (int64_t i = 0; i < n; ++i) {
      float v = init(i);
      b.p.initData.append((const char *)&v, 4);
    }
    q.dataLength = (uint64_t)n * 4;
    return q;
  };
  program::Param b1 = dataParam("fc1.bias", {kHidden}, b1Init);
  b1.peftKey = "base_model.model.fc1.bias";
  uint32_t B1 = b.param(b1);
  program::Param w2 = dataParam("fc2.weight", {kHidden, kOut}, w2Init);
  w2.peftKey = "base_model.model.fc2.lora_B.weight";
  w2.keyTransposed = true;
  uint32_t W2 = b.param(w2);

  uint32_t kMse = b.kernel("mse", 5), kReluB = b.kernel("relu_backward", 3),
           kColSum = b.kernel("column_sum", 2),
           kNorm = b.kernel("grad_norm", 3), kLr = b.kernel("lr", 2),
           kSgd = b.kernel("sgd", 4);

  uint32_t X = b.arena("x", {kRows, kIn}), T = b.arena("t", {kRows, kOut});
  uint32_t step = b.arena("step", {}, DType::I64);
  uint32_t H = b.arena("h", {kRows, kHidden}), Y = b.arena("y", {kRows, kOut});
  uint32_t loss = b.arena("loss", {}), dY = b.arena("dy", {kRows, kOut});
  uint32_t dW2 = b.arena("dw2", {kHidden, kOut});
  uint32_t dH = b.arena("dh", {kRows, kHidden});
  uint32_t dPre = b.arena("dpre", {kRows, kHidden});
  uint32_t dB1 = b.arena("db1", {kHidden});
  uint32_t gn = b.arena("grad_norm", {}), lr = b.arena("lr", {});
  uint32_t newB1 = b.arena("new_b1", {kHidden});
  uint32_t newW2 = b.arena("new_w2", {kHidden, kOut});
  uint32_t one = b.constantF32("one", 1.f);
  uint32_t scale = b.constantF32("scale", 1.f / (float)accumulation);

  auto forward = [&](std::vector<program::Step> &steps, uint32_t lossScale) {
    program::Step fc1 =
        Builder::gemm(X, W1, H, kRows, kHidden, kIn, false, false);
    fc1.gemm.hasBias = true;
    fc1.gemm.bias = B1;
    fc1.gemm.epilogue = program::Gemm::Epilogue::Relu;
    steps.push_back(fc1);
    steps.push_back(
        Builder::gemm(H, W2, Y, kRows, kOut, kHidden, false, false));
    steps.push_back(Builder::launch(kMse, {Y, T, lossScale, loss, dY}, 1));
  };
  auto backward = [&](std::vector<program::Step> &steps) {
    // dW2 = h^T dy, dh = dy W2^T: transposes as the compiler emits them.
    steps.push_back(
        Builder::gemm(H, dY, dW2, kHidden, kOut, kRows, true, false));
    steps.push_back(
        Builder::gemm(dY, W2, dH, kRows, kHidden, kOut, false, true));
    steps.push_back(Builder::launch(kReluB, {H, dH, dPre}, kRows * kHidden));
    steps.push_back(Builder::launch(kColSum, {dPre, dB1}, kHidden));
  };
  auto update = [&](std::vector<program::Step> &steps, uint32_t gB1,
                    uint32_t gW2) {
    steps.push_back(Builder::launch(kNorm, {gB1, gW2, gn}, 1));
    steps.push_back(Builder::launch(kLr, {step, lr}, 1));
    steps.push_back(Builder::launch(kSgd, {B1, gB1, lr, newB1}, kHidden));
    steps.push_back(
        Builder::launch(kSgd, {W2, gW2, lr, newW2}, kHidden * kOut));
    steps.push_back(Builder::copy(newB1, B1));
    steps.push_back(Builder::copy(newW2, W2));
  };

  program::Function lossFn;
  lossFn.name = "loss";
  lossFn.args = {{X, "x", false}, {T, "t", false}};
  lossFn.results = {{loss, "loss", "loss"}};
  forward(lossFn.steps, one);

  program::Function train;
  train.name = "train_step";
  if (accumulation == 1) {
    train.args = {{step, "step", true}, {X, "x", false}, {T, "t", false}};
    train.results = {{loss, "loss", "loss"},
                     {gn, "grad_norm", "grad_norm"},
                     {lr, "lr", "lr"}};
    forward(train.steps, one);
    backward(train.steps);
    update(train.steps, dB1, dW2);
    b.p.functions = {train, lossFn};
  } else {
    train.args = {{X, "x", false}, {T, "t", false}};
    train.results = {{loss, "loss", "loss"},
                     {dB1, "", "fc1.bias.grad"},
                     {dW2, "", "fc2.weight.grad"}};
    forward(train.steps, scale);
    backward(train.steps);
    program::Function apply;
    apply.name = "apply_update";
    uint32_t gB1 = b.arena("grad_b1", {kHidden});
    uint32_t gW2 = b.arena("grad_w2", {kHidden, kOut});
    apply.args = {{step, "step", true},
                  {gB1, "fc1.bias.grad", false},
                  {gW2, "fc2.weight.grad", false}};
    apply.results = {{gn, "grad_norm", "grad_norm"}, {lr, "lr", "lr"}};
    update(apply.steps, gB1, gW2);
    b.p.functions = {train, apply, lossFn};
  }
  return b.p;
}

/// A program that sets every field of every message to a non-default value.
inline program::Program everyFieldProgram() {
  program::Program p = mlpProgram("/weights/base.safetensors", 2);
  p.specJson = R"({"peft_type": "LORA"})";
  program::Buffer view;
  view.kind = program::Buffer::Kind::View;
  view.dtype = DType::F32;
  view.shape = {2, 1};
  view.bytes = 8;
  for (uint32_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].name == "new_w2")
      view.base = i;
  view.offset = 16;
  view.name = "the tail of new_w2";
  p.buffers.push_back(view);
  program::Param state;
  state.name = "fc2.weight.momentum";
  state.dtype = DType::F32;
  state.shape = {3, 2};
  state.init = program::Param::Init::Ones;
  state.stateOf = "fc2.weight";
  state.stateName = "momentum_buffer";
  p.params.push_back(state);
  uint32_t v = (uint32_t)p.buffers.size() - 1;
  p.params[0].file = "base.safetensors";
  program::Step g = Builder::gemm(v, v, v, 1, 1, 2, true, true);
  g.gemm.alpha = -0.5;
  g.gemm.beta = 0.25;
  g.gemm.strideA = 7;
  g.gemm.strideB = 9;
  g.gemm.strideC = 11;
  g.gemm.epilogue = program::Gemm::Epilogue::GeluTanh;
  p.functions[0].steps.push_back(g);
  // Token ids: an integer input that indexes a table.
  program::Buffer ids = p.buffers[p.functions[2].args[0].buffer];
  ids.dtype = DType::I32;
  ids.name = "ids";
  p.buffers.push_back(ids);
  program::Arg idsArg;
  idsArg.buffer = (uint32_t)p.buffers.size() - 1;
  idsArg.name = "ids";
  idsArg.indexLimit = 50257;
  p.functions[2].args.push_back(idsArg);
  // A function whose result the adapter saves (a projected prefix's
  // encoder output), taking no arguments.
  program::Function saved;
  saved.name = "prefix_prompt_embeddings";
  program::Result table;
  table.buffer = v;
  table.name = "table";
  table.peftKey = "prompt_embeddings";
  saved.results.push_back(table);
  saved.steps.push_back(Builder::copy(v, v));
  p.functions.push_back(saved);
  return p;
}

/// Deterministic data of micro-batch `micro` of step `step`.
inline float inputAt(int64_t step, int64_t micro, int64_t i) {
  return std::sin(0.7f * step + 0.31f * micro + 1.1f * i);
}
inline float targetAt(int64_t step, int64_t micro, int64_t i) {
  return 0.5f * std::cos(0.9f * step + 0.17f * micro + 0.6f * i);
}

} // namespace peft::testprog
