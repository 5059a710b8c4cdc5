#include "TinyProgram.h"

#include <cmath>
#include <cstring>

namespace peft::test {
namespace {

using program::Buffer;
using program::Param;

/// r_i = x_i . w + b - y_i over the micro-batch; returns mean r^2 and the
/// gradients of it.
double residuals(const float *x, const float *y, const float *w, const float *b,
                 double gw[kTinyFeatures], double &gb) {
  double loss = 0;
  gb = 0;
  for (int64_t j = 0; j < kTinyFeatures; ++j)
    gw[j] = 0;
  for (int64_t i = 0; i < kTinyBatch; ++i) {
    double r = (double)b[0] - (double)y[i];
    for (int64_t j = 0; j < kTinyFeatures; ++j)
      r += (double)x[i * kTinyFeatures + j] * (double)w[j];
    loss += r * r / kTinyBatch;
    gb += 2 * r / kTinyBatch;
    for (int64_t j = 0; j < kTinyFeatures; ++j)
      gw[j] += 2 * r * (double)x[i * kTinyFeatures + j] / kTinyBatch;
  }
  return loss;
}

/// The momentum-SGD update shared by both variants: args w, b, mw, mb, then
/// grad_norm, lr, w.new, b.new, mw.new, mb.new.
void update(void *const *args, const double gw[kTinyFeatures], double gb,
            int64_t step) {
  auto f = [&](int i) { return static_cast<float *>(args[i]); };
  const float *w = f(0), *b = f(1), *mw = f(2), *mb = f(3);
  double norm = gb * gb;
  for (int64_t j = 0; j < kTinyFeatures; ++j)
    norm += gw[j] * gw[j];
  // A decaying schedule, so a resumed run must feed the right step.
  double lr = 0.05 / (1.0 + 0.1 * (double)step);
  *f(4) = (float)std::sqrt(norm);
  *f(5) = (float)lr;
  for (int64_t j = 0; j < kTinyFeatures; ++j) {
    float m = (float)(0.9 * mw[j] + gw[j]);
    f(8)[j] = m;
    f(6)[j] = (float)(w[j] - lr * m);
  }
  float m = (float)(0.9 * mb[0] + gb);
  f(9)[0] = m;
  f(7)[0] = (float)(b[0] - lr * m);
}

/// x, y, step, w, b, mw, mb, loss, grad_norm, lr, w.new, b.new, mw.new,
/// mb.new.
extern "C" void tiny_train(void *const *args, int64_t begin, int64_t end) {
  if (begin != 0 || end < 1)
    return;
  auto f = [&](int i) { return static_cast<float *>(args[i]); };
  double gw[kTinyFeatures], gb;
  *f(7) = (float)residuals(f(0), f(1), f(3), f(4), gw, gb);
  void *const rest[] = {args[3], args[4],  args[5],  args[6],  args[8],
                        args[9], args[10], args[11], args[12], args[13]};
  update(rest, gw, gb, *static_cast<const int64_t *>(args[2]));
}

/// Accumulation: x, y, w, b, loss, g.w, g.b (gradients divided by the
/// number of micro-batches, as peft-optimizer's train_step returns them).
extern "C" void tiny_grad(void *const *args, int64_t begin, int64_t end) {
  if (begin != 0 || end < 1)
    return;
  auto f = [&](int i) { return static_cast<float *>(args[i]); };
  double gw[kTinyFeatures], gb;
  *f(4) = (float)residuals(f(0), f(1), f(2), f(3), gw, gb);
  for (int64_t j = 0; j < kTinyFeatures; ++j)
    f(5)[j] = (float)(gw[j] / kTinyAccumulation);
  f(6)[0] = (float)(gb / kTinyAccumulation);
}

/// Accumulation: g.w, g.b (sums), step, then update's arguments.
extern "C" void tiny_apply(void *const *args, int64_t begin, int64_t end) {
  if (begin != 0 || end < 1)
    return;
  auto f = [&](int i) { return static_cast<float *>(args[i]); };
  double gw[kTinyFeatures], gb = f(1)[0];
  for (int64_t j = 0; j < kTinyFeatures; ++j)
    gw[j] = f(0)[j];
  update(args + 3, gw, gb, *static_cast<const int64_t *>(args[2]));
}

extern "C" void tiny_loss(void *const *args, int64_t begin, int64_t end) {
  if (begin != 0 || end < 1)
    return;
  auto f = [&](int i) { return static_cast<float *>(args[i]); };
  double gw[kTinyFeatures], gb;
  *f(4) = (float)residuals(f(0), f(1), f(2), f(3), gw, gb);
}

} // namespace

std::shared_ptr<const rt::Program> tinyProgram(bool accumulate,
                                               std::string &error) {
  program::Program p;
  p.producer = "peftrt trainer tests";
  uint64_t arena = 0;
  auto arenaBuffer = [&](DType dtype, Shape shape, const std::string &name) {
    Buffer b;
    b.kind = Buffer::Kind::Arena;
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.bytes = (uint64_t)numElements(b.shape) * dtypeSize(dtype);
    b.offset = arena;
    b.name = name;
    arena += (b.bytes + 63) / 64 * 64;
    p.buffers.push_back(b);
    return (uint32_t)(p.buffers.size() - 1);
  };
  auto paramBuffer = [&](Param param) {
    p.params.push_back(param);
    Buffer b;
    b.kind = Buffer::Kind::Param;
    b.dtype = param.dtype;
    b.shape = param.shape;
    b.bytes = (uint64_t)numElements(b.shape) * dtypeSize(b.dtype);
    b.param = (uint32_t)(p.params.size() - 1);
    b.name = param.name;
    p.buffers.push_back(b);
    return (uint32_t)(p.buffers.size() - 1);
  };
  auto param = [](const std::string &name, Shape shape, bool trainable,
                  const std::string &stateOf) {
    Param q;
    q.name = name;
    q.dtype = DType::F32;
    q.shape = std::move(shape);
    q.trainable = trainable;
    q.stateOf = stateOf;
    q.stateName = stateOf.empty() ? "" : "momentum_buffer";
    return q;
  };

  uint32_t x = arenaBuffer(DType::F32, {kTinyBatch, kTinyFeatures}, "x");
  uint32_t y = arenaBuffer(DType::F32, {kTinyBatch}, "y");
  uint32_t step = arenaBuffer(DType::I64, {}, "step");
  Param wp = param("w", {kTinyFeatures}, true, "");
  wp.init = Param::Init::Data;
  const float w0[kTinyFeatures] = {0.5f, -0.25f};
  p.initData.assign(reinterpret_cast<const char *>(w0), sizeof w0);
  wp.dataOffset = 0;
  wp.dataLength = sizeof w0;
  wp.peftKey = "base_model.model.fc.lora_A.weight";
  uint32_t w = paramBuffer(wp);
  uint32_t b = paramBuffer(param("b", {1}, true, ""));
  uint32_t mw = paramBuffer(param("w.momentum", {kTinyFeatures}, false, "w"));
  uint32_t mb = paramBuffer(param("b.momentum", {1}, false, "b"));
  uint32_t loss = arenaBuffer(DType::F32, {}, "loss");
  uint32_t norm = arenaBuffer(DType::F32, {}, "grad_norm");
  uint32_t lr = arenaBuffer(DType::F32, {}, "lr");
  uint32_t wNew = arenaBuffer(DType::F32, {kTinyFeatures}, "w.new");
  uint32_t bNew = arenaBuffer(DType::F32, {1}, "b.new");
  uint32_t mwNew = arenaBuffer(DType::F32, {kTinyFeatures}, "w.momentum.new");
  uint32_t mbNew = arenaBuffer(DType::F32, {1}, "b.momentum.new");
  p.arenaBytes = arena;

  auto launch = [](uint32_t kernel, std::vector<uint32_t> args) {
    program::Step s;
    s.kind = program::Step::Kind::Launch;
    s.launch.kernel = kernel;
    s.launch.args = std::move(args);
    s.launch.extent = 1;
    return s;
  };
  auto copy = [](uint32_t src, uint32_t dst) {
    program::Step s;
    s.kind = program::Step::Kind::Copy;
    s.copy = {src, dst};
    return s;
  };
  const std::vector<program::Step> copies = {copy(wNew, w), copy(bNew, b),
                                             copy(mwNew, mw), copy(mbNew, mb)};
  program::Function train;
  train.name = "train_step";
  if (!accumulate) {
    p.kernels = {{"tiny_train", 14}, {"tiny_loss", 5}};
    train.args = {{x, "x", false}, {y, "y", false}, {step, "step", true}};
    train.results = {{loss, "loss", "loss"},
                     {norm, "grad_norm", "grad_norm"},
                     {lr, "lr", "lr"}};
    train.steps = {launch(0, {x, y, step, w, b, mw, mb, loss, norm, lr, wNew,
                              bNew, mwNew, mbNew})};
    train.steps.insert(train.steps.end(), copies.begin(), copies.end());
    p.functions.push_back(train);
  } else {
    p.kernels = {{"tiny_grad", 7}, {"tiny_loss", 5}, {"tiny_apply", 13}};
    uint32_t gw = arenaBuffer(DType::F32, {kTinyFeatures}, "g.w");
    uint32_t gb = arenaBuffer(DType::F32, {1}, "g.b");
    uint32_t gwSum = arenaBuffer(DType::F32, {kTinyFeatures}, "g.w.sum");
    uint32_t gbSum = arenaBuffer(DType::F32, {1}, "g.b.sum");
    p.arenaBytes = arena;
    train.args = {{x, "x", false}, {y, "y", false}};
    train.results = {{loss, "loss", "loss"}, {gw, "", "g.w"}, {gb, "", "g.b"}};
    train.steps = {launch(0, {x, y, w, b, loss, gw, gb})};
    p.functions.push_back(train);
    program::Function apply;
    apply.name = "apply_update";
    apply.args = {
        {gwSum, "g.w", false}, {gbSum, "g.b", false}, {step, "step", true}};
    apply.results = {{norm, "grad_norm", "grad_norm"}, {lr, "lr", "lr"}};
    apply.steps = {launch(2, {gwSum, gbSum, step, w, b, mw, mb, norm, lr, wNew,
                              bNew, mwNew, mbNew})};
    apply.steps.insert(apply.steps.end(), copies.begin(), copies.end());
    p.functions.push_back(apply);
  }
  program::Function lossFn;
  lossFn.name = "loss";
  lossFn.args = {{x, "x", false}, {y, "y", false}};
  lossFn.results = {{loss, "loss", "loss"}};
  lossFn.steps = {launch(1, {x, y, w, b, loss})};
  p.functions.push_back(lossFn);
  p.specJson = R"({"methods": [], "training": {"loss": {"type": "mse", )"
               R"("prediction": "pred", "target": "y"}, )"
               R"("gradient_accumulation_steps": )" +
               std::to_string(accumulate ? kTinyAccumulation : 1) +
               R"(, "seed": 3, )"
               R"("batch_size": 2, "shuffle": true, "pad_token_id": null}})";
  p.adapterConfigJson =
      R"({"peft_type": "LORA", "r": 1, "target_modules": ["fc"]})";
  return rt::Program::fromParts(program::encodeProgram(p),
                                {{"tiny_train", tiny_train},
                                 {"tiny_grad", tiny_grad},
                                 {"tiny_apply", tiny_apply},
                                 {"tiny_loss", tiny_loss}},
                                error);
}

} // namespace peft::test
