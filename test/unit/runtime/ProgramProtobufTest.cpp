// The hand-written codec against libprotobuf on runtime/proto/program.proto
// (generated under the package peftpb, so its classes do not collide with
// the runtime's structs; the package does not appear on the wire).
#include "TestProgram.h"

#include "program.pb.h"

#include <gtest/gtest.h>

using namespace peft;

namespace {

TEST(ProgramProtobuf, ParsesEncodeProgramsBytesAndWritesTheSame) {
  for (const program::Program &p :
       {testprog::everyFieldProgram(), testprog::mlpProgram("/w", 1),
        program::Program()}) {
    std::string bytes = program::encodeProgram(p);
    peftpb::Program proto;
    ASSERT_TRUE(proto.ParseFromString(bytes));
    // Same bytes back: our encoder writes what protobuf's serializer does.
    EXPECT_EQ(proto.SerializeAsString(), bytes);
    EXPECT_EQ(proto.format_version(), 1u);
    EXPECT_EQ(proto.producer(), p.producer);
    EXPECT_EQ(proto.weights_path(), p.weightsPath);
    EXPECT_EQ(proto.init_data(), p.initData);
    EXPECT_EQ(proto.arena_bytes(), p.arenaBytes);
    ASSERT_EQ((size_t)proto.buffers_size(), p.buffers.size());
    for (size_t i = 0; i < p.buffers.size(); ++i) {
      const peftpb::Buffer &b = proto.buffers((int)i);
      EXPECT_EQ((int)b.kind(), (int)p.buffers[i].kind);
      EXPECT_EQ((int)b.dtype(), (int)p.buffers[i].dtype);
      EXPECT_EQ(std::vector<int64_t>(b.shape().begin(), b.shape().end()),
                p.buffers[i].shape);
      EXPECT_EQ(b.offset(), p.buffers[i].offset);
      EXPECT_EQ(b.bytes(), p.buffers[i].bytes);
      EXPECT_EQ(b.constant(), p.buffers[i].constant);
      EXPECT_EQ(b.base(), p.buffers[i].base);
    }
    ASSERT_EQ((size_t)proto.functions_size(), p.functions.size());
    for (size_t f = 0; f < p.functions.size(); ++f) {
      const peftpb::Function &fn = proto.functions((int)f);
      ASSERT_EQ((size_t)fn.results_size(), p.functions[f].results.size());
      for (size_t r = 0; r < p.functions[f].results.size(); ++r) {
        EXPECT_EQ(fn.results((int)r).name(), p.functions[f].results[r].name);
        EXPECT_EQ(fn.results((int)r).peft_key(),
                  p.functions[f].results[r].peftKey);
      }
      ASSERT_EQ((size_t)fn.steps_size(), p.functions[f].steps.size());
      for (size_t s = 0; s < p.functions[f].steps.size(); ++s) {
        const program::Step &want = p.functions[f].steps[s];
        const peftpb::Step &got = fn.steps((int)s);
        EXPECT_EQ((int)got.kind_case(), (int)want.kind);
        if (want.kind == program::Step::Kind::Gemm) {
          EXPECT_EQ(got.gemm().alpha(), want.gemm.alpha);
          EXPECT_EQ(got.gemm().beta(), want.gemm.beta);
          EXPECT_EQ(got.gemm().trans_a(), want.gemm.transA);
          EXPECT_EQ(got.gemm().trans_b(), want.gemm.transB);
          EXPECT_EQ(got.gemm().batch(), want.gemm.batch);
          EXPECT_EQ(got.gemm().stride_c(), want.gemm.strideC);
          EXPECT_EQ((int)got.gemm().epilogue(), (int)want.gemm.epilogue);
        }
        if (want.kind == program::Step::Kind::Launch)
          EXPECT_EQ(std::vector<uint32_t>(got.launch().args().begin(),
                                          got.launch().args().end()),
                    want.launch.args);
      }
    }
  }
}

TEST(ProgramProtobuf, DecodesWhatLibprotobufWrites) {
  peftpb::Program proto;
  proto.set_format_version(1);
  proto.set_producer("libprotobuf");
  proto.set_arena_bytes(256);
  proto.set_arena_alignment(64);
  proto.set_adapter_config_json("{}");
  proto.set_init_data(std::string("\0\0\x80\x3f", 4));
  peftpb::Param *param = proto.add_params();
  param->set_name("lora_A");
  param->set_dtype(peftpb::F32);
  param->add_shape(1);
  param->set_trainable(true);
  param->set_init(peftpb::Param::DATA);
  param->set_data_length(4);
  param->set_peft_key("base_model.model.q.lora_A.weight");
  param->set_key_transposed(false);
  peftpb::Buffer *a = proto.add_buffers();
  a->set_kind(peftpb::Buffer::ARENA);
  a->set_dtype(peftpb::F32);
  a->add_shape(4);
  a->add_shape(8);
  a->set_bytes(128);
  a->set_name("a");
  peftpb::Buffer *c = proto.add_buffers();
  c->set_dtype(peftpb::F32);
  c->add_shape(4);
  c->add_shape(4);
  c->set_offset(128);
  c->set_bytes(64);
  peftpb::Buffer *p = proto.add_buffers();
  p->set_kind(peftpb::Buffer::PARAM);
  p->set_dtype(peftpb::F32);
  p->add_shape(1);
  p->set_bytes(4);
  peftpb::Buffer *k = proto.add_buffers();
  k->set_kind(peftpb::Buffer::CONSTANT);
  k->set_dtype(peftpb::I64);
  k->set_bytes(8);
  k->set_constant(std::string("\x05\0\0\0\0\0\0\0", 8));
  peftpb::Kernel *kernel = proto.add_kernels();
  kernel->set_symbol("k0");
  kernel->set_num_args(2);
  peftpb::Function *fn = proto.add_functions();
  fn->set_name("forward");
  peftpb::Arg *arg = fn->add_args();
  arg->set_buffer(0);
  arg->set_name("x");
  peftpb::Result *result = fn->add_results();
  result->set_buffer(1);
  result->set_metric("loss");
  peftpb::Gemm *gemm = fn->add_steps()->mutable_gemm();
  gemm->set_a(0);
  gemm->set_b(0);
  gemm->set_c(1);
  gemm->set_batch(1);
  gemm->set_m(4);
  gemm->set_n(4);
  gemm->set_k(8);
  gemm->set_trans_b(true);
  gemm->set_alpha(0.125);
  gemm->set_beta(-2.5);
  gemm->set_epilogue(peftpb::Gemm::GELU_ERF);
  gemm->set_dtype(peftpb::F32);
  peftpb::Launch *launch = fn->add_steps()->mutable_launch();
  launch->set_kernel(0);
  launch->add_args(1);
  launch->add_args(3);
  launch->set_extent(16);
  peftpb::Copy *copy = fn->add_steps()->mutable_copy();
  copy->set_src(2);
  copy->set_dst(2);
  peftpb::Function *saved = proto.add_functions();
  saved->set_name("prefix_prompt_embeddings");
  peftpb::Result *table = saved->add_results();
  table->set_buffer(2);
  table->set_peft_key("prompt_embeddings");
  std::string bytes = proto.SerializeAsString();

  program::Program got;
  std::string error;
  ASSERT_TRUE(
      program::decodeProgram(reinterpret_cast<const uint8_t *>(bytes.data()),
                             bytes.size(), got, error))
      << error;
  EXPECT_EQ(program::encodeProgram(got), bytes);
  EXPECT_EQ(got.producer, "libprotobuf");
  EXPECT_EQ(got.arenaAlignment, 64u);
  ASSERT_EQ(got.params.size(), 1u);
  EXPECT_EQ(got.params[0].init, program::Param::Init::Data);
  EXPECT_EQ(got.params[0].peftKey, "base_model.model.q.lora_A.weight");
  ASSERT_EQ(got.buffers.size(), 4u);
  EXPECT_EQ(got.buffers[0].shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(got.buffers[1].offset, 128u);
  EXPECT_EQ(got.buffers[2].kind, program::Buffer::Kind::Param);
  EXPECT_EQ(got.buffers[3].dtype, DType::I64);
  EXPECT_EQ(got.buffers[3].constant.size(), 8u);
  const program::Function &f = got.functions.at(0);
  EXPECT_EQ(f.results[0].metric, "loss");
  EXPECT_TRUE(f.results[0].peftKey.empty());
  ASSERT_EQ(got.functions.size(), 2u);
  EXPECT_EQ(got.functions[1].results.at(0).peftKey, "prompt_embeddings");
  ASSERT_EQ(f.steps.size(), 3u);
  EXPECT_EQ(f.steps[0].kind, program::Step::Kind::Gemm);
  EXPECT_EQ(f.steps[0].gemm.alpha, 0.125);
  EXPECT_EQ(f.steps[0].gemm.beta, -2.5);
  EXPECT_TRUE(f.steps[0].gemm.transB);
  EXPECT_FALSE(f.steps[0].gemm.transA);
  EXPECT_EQ(f.steps[0].gemm.epilogue, program::Gemm::Epilogue::GeluErf);
  EXPECT_EQ(f.steps[1].launch.args, (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(f.steps[1].launch.extent, 16);
  EXPECT_EQ(f.steps[2].kind, program::Step::Kind::Copy);

  // A gemm written without batch and alpha (proto3 defaults 0) is invalid
  // rather than silently batch 1 / alpha 1.
  gemm->clear_batch();
  bytes = proto.SerializeAsString();
  EXPECT_FALSE(
      program::decodeProgram(reinterpret_cast<const uint8_t *>(bytes.data()),
                             bytes.size(), got, error));
  EXPECT_EQ(error, "program: functions[0].steps[0].gemm.batch: out of range "
                   "(0)");
}

} // namespace
