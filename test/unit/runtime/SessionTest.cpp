// The executor end to end on the hand-built MLP program (TestProgram.h):
// frozen weights mapped (the param's address lies inside the file's
// mapping), training steps against the same math in double, gradient
// accumulation, NaN/Inf steps that leave the params untouched, adapters
// saved in PEFT's layout and loaded back, and bad inputs reported.
#include "../TestUtil.h"
#include "TestProgram.h"

#include "peft/SafeTensors.h"
#include "peft/runtime.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

using namespace peft;
using namespace peft::testprog;

namespace {

/// The MLP in double, the same steps as the program.
struct Reference {
  double w1[kIn * kHidden], b1[kHidden], w2[kHidden * kOut];
  Reference() {
    for (int i = 0; i < kIn * kHidden; ++i)
      w1[i] = w1Init(i);
    for (int i = 0; i < kHidden; ++i)
      b1[i] = b1Init(i);
    for (int i = 0; i < kHidden * kOut; ++i)
      w2[i] = w2Init(i);
  }
  /// Loss of one micro-batch; adds scale * gradients into gb1, gw2.
  double lossAndGrads(const float *x, const float *t, double scale, double *gb1,
                      double *gw2) const {
    double h[kRows][kHidden], y[kRows][kOut], dy[kRows][kOut];
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kHidden; ++j) {
        double a = b1[j];
        for (int k = 0; k < kIn; ++k)
          a += x[i * kIn + k] * w1[k * kHidden + j];
        h[i][j] = a > 0 ? a : 0;
      }
    double loss = 0;
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kOut; ++j) {
        double a = 0;
        for (int k = 0; k < kHidden; ++k)
          a += h[i][k] * w2[k * kOut + j];
        y[i][j] = a;
        double d = a - t[i * kOut + j];
        loss += d * d / (kRows * kOut);
        dy[i][j] = scale * 2 * d / (kRows * kOut);
      }
    for (int k = 0; k < kHidden; ++k)
      for (int j = 0; j < kOut; ++j)
        for (int i = 0; i < kRows; ++i)
          gw2[k * kOut + j] += h[i][k] * dy[i][j];
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kHidden; ++j) {
        double dh = 0;
        for (int k = 0; k < kOut; ++k)
          dh += dy[i][k] * w2[j * kOut + k];
        gb1[j] += h[i][j] > 0 ? dh : 0;
      }
    return loss;
  }
  /// One optimizer step over `micros` micro-batches; returns loss, norm, lr.
  rt::StepMetrics step(const std::vector<float> &x, const std::vector<float> &t,
                       int64_t step, int micros) {
    double gb1[kHidden] = {}, gw2[kHidden * kOut] = {};
    rt::StepMetrics m;
    for (int micro = 0; micro < micros; ++micro)
      m.loss += lossAndGrads(&x[micro * kRows * kIn], &t[micro * kRows * kOut],
                             1.0 / micros, gb1, gw2) /
                micros;
    double sq = 0;
    for (double g : gb1)
      sq += g * g;
    for (double g : gw2)
      sq += g * g;
    m.gradNorm = std::sqrt(sq);
    m.lr = kLr0 / (double)step;
    for (int i = 0; i < kHidden; ++i)
      b1[i] -= m.lr * gb1[i];
    for (int i = 0; i < kHidden * kOut; ++i)
      w2[i] -= m.lr * gw2[i];
    return m;
  }
};

std::vector<float> inputs(int64_t step, int micros) {
  std::vector<float> x;
  for (int micro = 0; micro < micros; ++micro)
    for (int i = 0; i < kRows * kIn; ++i)
      x.push_back(inputAt(step, micro, i));
  return x;
}
std::vector<float> targets(int64_t step, int micros) {
  std::vector<float> t;
  for (int micro = 0; micro < micros; ++micro)
    for (int i = 0; i < kRows * kOut; ++i)
      t.push_back(targetAt(step, micro, i));
  return t;
}

Tensor tensorOf(const std::vector<float> &v, Shape shape) {
  Tensor t(DType::F32, std::move(shape));
  std::memcpy(t.mutableBytes(), v.data(), v.size() * 4);
  return t;
}

rt::Batch batchOf(int64_t step, int micros) {
  return {{"x", tensorOf(inputs(step, micros), {micros * kRows, kIn})},
          {"t", tensorOf(targets(step, micros), {micros * kRows, kOut})}};
}

double relative(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-12);
}

std::vector<float> floats(const Tensor &t) {
  std::vector<float> v(t.numel());
  std::memcpy(v.data(), t.bytes(), t.byteSize());
  return v;
}

class SessionTest : public test::TempDirTest {
protected:
  void SetUp() override {
    TempDirTest::SetUp();
    weights_ = path("base.bin");
    writeFile(weights_, weightsFileBytes());
  }

  std::unique_ptr<rt::Session> open(int accumulation = 1,
                                    rt::Options options = {}) {
    std::string error;
    auto program = rt::Program::fromParts(
        program::encodeProgram(mlpProgram(weights_, accumulation)),
        kernelTable(), error);
    EXPECT_TRUE(program) << error;
    if (!program)
      return nullptr;
    auto session = rt::Session::create(program, options, error);
    EXPECT_TRUE(session) << error;
    return session;
  }

  std::string weights_;
};

TEST_F(SessionTest, FrozenWeightsPointIntoTheMapping) {
  auto session = open();
  ASSERT_TRUE(session);
  const void *w1 = session->paramData("fc1.weight");
  ASSERT_NE(w1, nullptr);
  // /proc/self/maps lists the weights file's mapping: the param's address
  // must lie inside it, kWeightsPrefix bytes after its start.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool found = false;
  while (std::getline(maps, line)) {
    if (line.find(weights_) == std::string::npos)
      continue;
    unsigned long begin, end;
    ASSERT_EQ(std::sscanf(line.c_str(), "%lx-%lx", &begin, &end), 2);
    uintptr_t at = (uintptr_t)w1;
    if (at >= begin && at < end) {
      EXPECT_EQ(at - begin, kWeightsPrefix);
      EXPECT_NE(line.find(" r--p "), std::string::npos) << line;
      found = true;
    }
  }
  EXPECT_TRUE(found) << "fc1.weight is not inside the mapping of " << weights_;
  // Trainable params are the session's own copies.
  const void *b1 = session->paramData("fc1.bias");
  ASSERT_NE(b1, nullptr);
  EXPECT_EQ((uintptr_t)b1 % 64, 0u);
  Tensor w;
  std::string error;
  ASSERT_TRUE(session->getParam("fc1.weight", w, error)) << error;
  std::string file = weightsFileBytes();
  EXPECT_EQ(std::memcmp(w.bytes(), file.data() + kWeightsPrefix, w.byteSize()),
            0);
  EXPECT_FALSE(session->setParam("fc1.weight", w, error));
  EXPECT_EQ(error, "param 'fc1.weight' is frozen");
}

TEST_F(SessionTest, TrainsLikeTheReference) {
  for (int threads : {1, 2}) {
    rt::Options options;
    options.threads = threads;
    auto session = open(1, options);
    ASSERT_TRUE(session);
    EXPECT_EQ(session->threads(), threads);
    EXPECT_EQ(session->arenaBytes(), session->program().ir().arenaBytes);
    Reference ref;
    for (int64_t step = 1; step <= 6; ++step) {
      rt::StepMetrics got,
          want = ref.step(inputs(step, 1), targets(step, 1), step, 1);
      std::string error;
      ASSERT_TRUE(session->trainStep(batchOf(step, 1), step, got, error))
          << error;
      EXPECT_LT(relative(got.loss, want.loss), 1e-5) << "step " << step;
      EXPECT_LT(relative(got.gradNorm, want.gradNorm), 1e-5) << "step " << step;
      EXPECT_LT(relative(got.lr, want.lr), 1e-6) << "step " << step;
    }
    Tensor b1, w2;
    std::string error;
    ASSERT_TRUE(session->getParam("fc1.bias", b1, error));
    ASSERT_TRUE(session->getParam("fc2.weight", w2, error));
    for (int i = 0; i < kHidden; ++i)
      EXPECT_NEAR(floats(b1)[i], ref.b1[i], 1e-5);
    for (int i = 0; i < kHidden * kOut; ++i)
      EXPECT_NEAR(floats(w2)[i], ref.w2[i], 1e-5);
    // evalLoss sees the updated params and changes nothing.
    double loss = 0;
    ASSERT_TRUE(session->evalLoss(batchOf(9, 1), loss, error)) << error;
    double g1[kHidden] = {}, g2[kHidden * kOut] = {};
    EXPECT_LT(relative(loss, ref.lossAndGrads(inputs(9, 1).data(),
                                              targets(9, 1).data(), 1, g1, g2)),
              1e-5);
    Tensor again;
    ASSERT_TRUE(session->getParam("fc1.bias", again, error));
    EXPECT_EQ(floats(again), floats(b1));
  }
}

TEST_F(SessionTest, AccumulatesMicroBatches) {
  auto session = open(3);
  ASSERT_TRUE(session);
  Reference ref;
  for (int64_t step = 1; step <= 4; ++step) {
    rt::StepMetrics got,
        want = ref.step(inputs(step, 3), targets(step, 3), step, 3);
    std::string error;
    ASSERT_TRUE(session->trainStep(batchOf(step, 3), step, got, error))
        << error;
    EXPECT_LT(relative(got.loss, want.loss), 1e-5) << "step " << step;
    EXPECT_LT(relative(got.gradNorm, want.gradNorm), 1e-5) << "step " << step;
    EXPECT_LT(relative(got.lr, want.lr), 1e-6) << "step " << step;
  }
  Tensor w2;
  std::string error;
  ASSERT_TRUE(session->getParam("fc2.weight", w2, error));
  for (int i = 0; i < kHidden * kOut; ++i)
    EXPECT_NEAR(floats(w2)[i], ref.w2[i], 1e-5);
  // 2 micro-batches where inputs disagree: x has 3, t has 2.
  rt::Batch bad = batchOf(1, 3);
  bad["t"] = batchOf(1, 2)["t"];
  rt::StepMetrics m;
  EXPECT_FALSE(session->trainStep(bad, 5, m, error));
  EXPECT_EQ(error, "step 5: input 't' holds 2 micro-batches, other inputs 3");
}

TEST_F(SessionTest, NonFiniteStepLeavesParamsAlone) {
  for (uint64_t limit : {uint64_t(1) << 30, uint64_t(0)}) {
    for (int accumulation : {1, 2}) {
      rt::Options options;
      options.snapshotLimitBytes = limit; // 0: the deferred check
      auto session = open(accumulation, options);
      ASSERT_TRUE(session);
      rt::StepMetrics m;
      std::string error;
      ASSERT_TRUE(session->trainStep(batchOf(1, accumulation), 1, m, error))
          << error;
      Tensor b1, w2;
      ASSERT_TRUE(session->getParam("fc1.bias", b1, error));
      ASSERT_TRUE(session->getParam("fc2.weight", w2, error));
      rt::Batch batch = batchOf(2, accumulation);
      // In the target: a NaN input could vanish in relu.
      batch["t"].mutableData<float>()[accumulation * kRows * kOut - 1] = NAN;
      EXPECT_FALSE(session->trainStep(batch, 2, m, error));
      if (accumulation == 1)
        EXPECT_EQ(error, "step 2: loss is nan; params left as before the step");
      else
        EXPECT_EQ(error, "step 2: loss of micro-batch 1 is nan; params left "
                         "as before the step");
      Tensor b1After, w2After;
      ASSERT_TRUE(session->getParam("fc1.bias", b1After, error));
      ASSERT_TRUE(session->getParam("fc2.weight", w2After, error));
      EXPECT_EQ(floats(b1After), floats(b1)) << limit << " " << accumulation;
      EXPECT_EQ(floats(w2After), floats(w2)) << limit << " " << accumulation;
      // Training goes on from there.
      EXPECT_TRUE(session->trainStep(batchOf(3, accumulation), 3, m, error))
          << error;
    }
  }
  // Huge targets: the loss overflows f32.
  auto session = open();
  ASSERT_TRUE(session);
  rt::Batch batch = batchOf(1, 1);
  batch["t"].mutableData<float>()[0] = 3e38f;
  batch["t"].mutableData<float>()[1] = -3e38f;
  rt::StepMetrics m;
  std::string error;
  Tensor b1;
  ASSERT_TRUE(session->getParam("fc1.bias", b1, error));
  EXPECT_FALSE(session->trainStep(batch, 1, m, error));
  EXPECT_EQ(error, "step 1: loss is inf; params left as before the step");
  Tensor after;
  ASSERT_TRUE(session->getParam("fc1.bias", after, error));
  EXPECT_EQ(floats(after), floats(b1));
}

TEST_F(SessionTest, SavesAndLoadsAdaptersInPeftLayout) {
  auto session = open();
  ASSERT_TRUE(session);
  rt::StepMetrics m;
  std::string error;
  for (int64_t step = 1; step <= 3; ++step)
    ASSERT_TRUE(session->trainStep(batchOf(step, 1), step, m, error)) << error;
  std::string dir = path("out/adapter");
  ASSERT_TRUE(session->saveAdapter(dir, error)) << error;
  EXPECT_EQ(readFile(dir + "/adapter_config.json"),
            session->program().ir().adapterConfigJson);
  SafeTensorsFile file;
  ASSERT_TRUE(readSafeTensors(dir + "/adapter_model.safetensors", file, error))
      << error;
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.metadata.at("format"), "pt");
  const Tensor *b = file.find("base_model.model.fc2.lora_B.weight");
  ASSERT_TRUE(b);
  // Saved transposed: [out, hidden] as PEFT's lora_B.
  EXPECT_EQ(b->shape(), (Shape{kOut, kHidden}));
  Tensor w2;
  ASSERT_TRUE(session->getParam("fc2.weight", w2, error));
  for (int i = 0; i < kHidden; ++i)
    for (int j = 0; j < kOut; ++j)
      EXPECT_EQ(b->data<float>()[j * kHidden + i], floats(w2)[i * kOut + j]);

  // A fresh session starts from the initial values; loading the adapter
  // makes it continue exactly like the first.
  auto fresh = open();
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(fresh->loadAdapter(dir, error)) << error;
  Tensor loaded;
  ASSERT_TRUE(fresh->getParam("fc2.weight", loaded, error));
  EXPECT_EQ(floats(loaded), floats(w2));
  rt::StepMetrics a, c;
  ASSERT_TRUE(session->trainStep(batchOf(4, 1), 4, a, error)) << error;
  ASSERT_TRUE(fresh->trainStep(batchOf(4, 1), 4, c, error)) << error;
  EXPECT_EQ(a.loss, c.loss);
  ASSERT_TRUE(fresh->getParam("fc2.weight", w2, error));

  // Wrong adapters change nothing and say why.
  std::string other = path("other");
  std::filesystem::create_directories(other);
  Tensor bias(DType::F32, {kHidden});
  ASSERT_TRUE(writeSafeTensors(other + "/adapter_model.safetensors",
                               {{"base_model.model.fc1.bias", bias}}, {},
                               error));
  EXPECT_FALSE(fresh->loadAdapter(other, error));
  EXPECT_EQ(error, "'" + other +
                       "/adapter_model.safetensors' has no tensor "
                       "'base_model.model.fc2.lora_B.weight' (param "
                       "'fc2.weight')");
  Tensor wrong(DType::F32, {kHidden, kOut}); // not transposed
  ASSERT_TRUE(writeSafeTensors(other + "/adapter_model.safetensors",
                               {{"base_model.model.fc1.bias", bias},
                                {"base_model.model.fc2.lora_B.weight", wrong}},
                               {}, error));
  EXPECT_FALSE(fresh->loadAdapter(other, error));
  EXPECT_EQ(error, "'" + other +
                       "/adapter_model.safetensors': tensor "
                       "'base_model.model.fc2.lora_B.weight' is 3x2, param "
                       "'fc2.weight' needs 2x3");
  Tensor right(DType::F32, {kOut, kHidden});
  ASSERT_TRUE(writeSafeTensors(other + "/adapter_model.safetensors",
                               {{"base_model.model.fc1.bias", bias},
                                {"base_model.model.fc2.lora_B.weight", right},
                                {"base_model.model.fc3.lora_A.weight", right}},
                               {}, error));
  EXPECT_FALSE(fresh->loadAdapter(other, error));
  EXPECT_EQ(error, "'" + other +
                       "/adapter_model.safetensors': tensor "
                       "'base_model.model.fc3.lora_A.weight' matches no "
                       "adapter param of the program");
  ASSERT_TRUE(fresh->getParam("fc2.weight", loaded, error));
  EXPECT_EQ(floats(loaded), floats(w2));
}

/// mlpProgram plus a function of no arguments whose result the adapter
/// saves under "derived_w2": a copy of fc2.weight into the arena (as a
/// projected prefix's encoder output is computed from its params).
std::shared_ptr<const rt::Program> withSavedFunction(const std::string &weights,
                                                     std::string &error) {
  program::Program p = mlpProgram(weights);
  uint32_t w2 = 0;
  for (uint32_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].kind == program::Buffer::Kind::Param &&
        p.params[p.buffers[i].param].name == "fc2.weight")
      w2 = i;
  program::Buffer out = p.buffers[w2];
  out.kind = program::Buffer::Kind::Arena;
  out.offset = 0;
  out.name = "derived";
  p.buffers.push_back(out);
  program::Function saved;
  saved.name = "derive";
  program::Result r;
  r.buffer = (uint32_t)p.buffers.size() - 1;
  r.peftKey = "derived_w2";
  saved.results.push_back(r);
  saved.steps.push_back(testprog::Builder::copy(w2, r.buffer));
  p.functions.push_back(saved);
  return rt::Program::fromParts(program::encodeProgram(p), kernelTable(),
                                error);
}

TEST_F(SessionTest, SavesWhatAFunctionComputes) {
  std::string error;
  auto program = withSavedFunction(weights_, error);
  ASSERT_TRUE(program) << error;
  auto session = rt::Session::create(program, {}, error);
  auto plain = open();
  ASSERT_TRUE(session && plain) << error;
  rt::StepMetrics m, n;
  for (int64_t step = 1; step <= 2; ++step) {
    ASSERT_TRUE(session->trainStep(batchOf(step, 1), step, m, error)) << error;
    ASSERT_TRUE(plain->trainStep(batchOf(step, 1), step, n, error)) << error;
  }
  std::string dir = path("derived");
  ASSERT_TRUE(session->saveAdapter(dir, error)) << error;
  SafeTensorsFile file;
  ASSERT_TRUE(readSafeTensors(dir + "/adapter_model.safetensors", file, error))
      << error;
  ASSERT_EQ(file.tensors.size(), 3u);
  const Tensor *derived = file.find("derived_w2");
  ASSERT_TRUE(derived);
  Tensor w2;
  ASSERT_TRUE(session->getParam("fc2.weight", w2, error));
  EXPECT_EQ(derived->shape(), w2.shape());
  EXPECT_EQ(floats(*derived), floats(w2));
  // Saving used the arena as scratch only: training goes on as without it.
  ASSERT_TRUE(session->trainStep(batchOf(3, 1), 3, m, error)) << error;
  ASSERT_TRUE(plain->trainStep(batchOf(3, 1), 3, n, error)) << error;
  EXPECT_EQ(m.loss, n.loss);

  // The derived tensor cannot be loaded into the params it came from; a
  // checkpoint's adapter skips it.
  auto fresh = rt::Session::create(program, {}, error);
  ASSERT_TRUE(fresh) << error;
  EXPECT_FALSE(fresh->loadAdapter(dir, error));
  EXPECT_EQ(error, "'" + dir +
                       "/adapter_model.safetensors': tensor 'derived_w2' is "
                       "an output of the program's function 'derive', not a "
                       "param: PEFT saves a projected prefix as its encoder's "
                       "output, and the encoder's weights it was computed "
                       "from cannot be recovered from it. Resume from a "
                       "checkpoint of this trainer (--resume), or give peftc "
                       "--init-adapter the encoder's weights");
  ASSERT_TRUE(
      fresh->loadAdapter(dir, error, rt::Session::ComputedTensors::Skip))
      << error;
  Tensor loaded;
  ASSERT_TRUE(fresh->getParam("fc2.weight", loaded, error));
  EXPECT_EQ(floats(loaded), floats(*derived));
}

TEST_F(SessionTest, ReportsBadInputsAndFiles) {
  auto session = open();
  ASSERT_TRUE(session);
  rt::StepMetrics m;
  std::string error;
  rt::Batch batch = batchOf(1, 1);
  batch.erase("t");
  EXPECT_FALSE(session->trainStep(batch, 1, m, error));
  EXPECT_EQ(error, "step 1: function 'train_step' needs input 't'");
  batch = batchOf(1, 1);
  batch["x"] = Tensor(DType::F64, {kRows, kIn});
  EXPECT_FALSE(session->trainStep(batch, 1, m, error));
  EXPECT_EQ(error, "step 1: input 'x' is f64 2x4, the program expects f32 2x4");
  batch["x"] = Tensor(DType::F32, {kRows, kIn + 1});
  EXPECT_FALSE(session->trainStep(batch, 1, m, error));
  EXPECT_EQ(error, "step 1: input 'x' is f32 2x5, the program expects f32 2x4 "
                   "(or a multiple of it along axis 0)");
  EXPECT_FALSE(session->trainStep(batchOf(1, 2), 1, m, error));
  EXPECT_EQ(error, "step 1: the batch holds 2 micro-batches, but the program "
                   "does not accumulate gradients");
  std::vector<Tensor> results;
  EXPECT_FALSE(session->run("forward", batchOf(1, 1), 0, results, error));
  EXPECT_EQ(error, "the program has no function 'forward'");
  ASSERT_TRUE(session->run("loss", batchOf(1, 1), 0, results, error)) << error;
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].shape(), Shape{});

  // The weights file is shorter than the program says.
  std::string shortFile = path("short.bin");
  writeFile(shortFile, weightsFileBytes().substr(0, 50));
  rt::Options options;
  options.weightsPath = shortFile;
  auto program = rt::Program::fromParts(
      program::encodeProgram(mlpProgram(weights_)), kernelTable(), error);
  ASSERT_TRUE(program) << error;
  EXPECT_FALSE(rt::Session::create(program, options, error));
  EXPECT_EQ(error, "param 'fc1.weight': bytes [24, +48) lie outside '" +
                       shortFile + "' (50 bytes)");
  options.weightsPath = path("missing.bin");
  EXPECT_FALSE(rt::Session::create(program, options, error));
  EXPECT_EQ(
      error.rfind("param 'fc1.weight': cannot open '" + path("missing.bin"), 0),
      0u)
      << error;
  // A kernel the table lacks.
  std::vector<peft_kernel_entry> table = kernelTable();
  table.pop_back();
  EXPECT_FALSE(rt::Program::fromParts(
      program::encodeProgram(mlpProgram(weights_)), table, error));
  EXPECT_EQ(error, "kernel 'sgd' is not in the kernel table");
  EXPECT_FALSE(rt::Program::loadShared(path("nothing.so"), error));
  EXPECT_NE(error.find("cannot load '" + path("nothing.so") + "'"),
            std::string::npos);
  // A shared object that is no program.
  EXPECT_FALSE(rt::Program::loadShared("libdnnl.so.2", error));
  EXPECT_EQ(error, "'libdnnl.so.2' defines no peftc_program_data");
  // This test binary links no program.
  EXPECT_FALSE(rt::Program::linked(error));
  EXPECT_EQ(error, "no program is linked into this executable "
                   "(peftc_program_data is undefined)");
}

} // namespace

namespace {

TEST_F(SessionTest, LoadsTheProgramFromASharedObject) {
  std::string error;
  auto shared = rt::Program::loadShared(PEFT_TEST_PROGRAM_SO, error);
  ASSERT_TRUE(shared) << error;
  EXPECT_EQ(shared->ir().producer, "hand-built test program");
  EXPECT_EQ(shared->ir().weightsPath, "");
  rt::Options options;
  EXPECT_FALSE(rt::Session::create(shared, options, error));
  EXPECT_EQ(error, "param 'fc1.weight' is read from the weights file, but "
                   "neither the program nor the options name one");
  options.weightsPath = weights_;
  auto session = rt::Session::create(shared, options, error);
  ASSERT_TRUE(session) << error;
  auto reference = open();
  ASSERT_TRUE(reference);
  for (int64_t step = 1; step <= 3; ++step) {
    rt::StepMetrics a, b;
    ASSERT_TRUE(session->trainStep(batchOf(step, 1), step, a, error)) << error;
    ASSERT_TRUE(reference->trainStep(batchOf(step, 1), step, b, error))
        << error;
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_EQ(a.gradNorm, b.gradNorm);
  }
}

} // namespace

namespace {

TEST_F(SessionTest, InitialisesEveryKindOfParam) {
  program::Program p = mlpProgram(weights_);
  // Full fine-tuning of fc1.weight: trainable, so copied out of the file.
  p.params[0].trainable = true;
  auto add = [&](const std::string &name, DType dtype,
                 program::Param::Init init) {
    program::Param q;
    q.name = name;
    q.dtype = dtype;
    q.shape = {3};
    q.init = init;
    q.stateOf = "fc1.bias";
    q.stateName = "exp_avg";
    p.params.push_back(q);
  };
  add("ones_f32", DType::F32, program::Param::Init::Ones);
  add("ones_bf16", DType::BF16, program::Param::Init::Ones);
  add("ones_i64", DType::I64, program::Param::Init::Ones);
  add("zeros_f64", DType::F64, program::Param::Init::Zeros);
  std::string error;
  auto program =
      rt::Program::fromParts(program::encodeProgram(p), kernelTable(), error);
  ASSERT_TRUE(program) << error;
  auto session = rt::Session::create(program, {}, error);
  ASSERT_TRUE(session) << error;
  // A copy, not the mapping: its address is 64-byte aligned (the mapping's
  // would be kWeightsPrefix = 24 bytes past a page).
  EXPECT_EQ((uintptr_t)session->paramData("fc1.weight") % 64, 0u);
  Tensor w;
  ASSERT_TRUE(session->getParam("fc1.weight", w, error));
  std::string file = weightsFileBytes();
  EXPECT_EQ(std::memcmp(w.bytes(), file.data() + kWeightsPrefix, w.byteSize()),
            0);
  EXPECT_TRUE(session->setParam("fc1.weight", w, error)) << error;
  Tensor t;
  ASSERT_TRUE(session->getParam("ones_f32", t, error));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(t.getDouble(i), 1.0);
  ASSERT_TRUE(session->getParam("ones_bf16", t, error));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(t.getDouble(i), 1.0);
  ASSERT_TRUE(session->getParam("ones_i64", t, error));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(t.getInt(i), 1);
  ASSERT_TRUE(session->getParam("zeros_f64", t, error));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(t.getDouble(i), 0.0);
  std::vector<rt::ParamInfo> infos = session->params();
  ASSERT_EQ(infos.size(), 7u);
  EXPECT_EQ(infos[3].name, "ones_f32");
  EXPECT_EQ(infos[3].stateOf, "fc1.bias");
  EXPECT_EQ(infos[3].stateName, "exp_avg");
  EXPECT_EQ(infos[2].peftKey, "base_model.model.fc2.lora_B.weight");
  // setParam checks dtype and shape.
  EXPECT_FALSE(session->setParam("ones_f32", Tensor(DType::F32, {4}), error));
  EXPECT_EQ(error, "param 'ones_f32' is f32 3, the value is f32 4");
  EXPECT_FALSE(session->setParam("nope", t, error));
  EXPECT_EQ(error, "no param named 'nope'");
  EXPECT_EQ(session->arenaBytes(), p.arenaBytes);
}

} // namespace
