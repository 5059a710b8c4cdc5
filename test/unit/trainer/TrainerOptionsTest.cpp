// The trainer's command line: every option parses, bad values are named,
// and --help documents every option and the batching policy.
#include "peft/Trainer.h"

#include <gtest/gtest.h>

using namespace peft::rt;

namespace {

bool parse(std::vector<const char *> args, TrainerOptions &o,
           std::string &error) {
  args.insert(args.begin(), "trainer");
  return parseTrainerArgs((int)args.size(), args.data(), o, error);
}

TEST(TrainerOptionsTest, EveryOption) {
  TrainerOptions o;
  std::string error;
  ASSERT_TRUE(parse({"--data",      "d.safetensors",
                     "--steps",     "100",
                     "--out=o",     "--init-adapter",
                     "init",        "--log",
                     "m.jsonl",     "--eval",
                     "e.jsonl",     "--eval-every",
                     "10",          "--save-every=25",
                     "--threads",   "4",
                     "--seed",      "-3",
                     "--log-every", "5",
                     "--weights",   "w.onnx"},
                    o, error))
      << error;
  EXPECT_EQ(o.data, "d.safetensors");
  EXPECT_EQ(o.steps, 100);
  EXPECT_EQ(o.out, "o");
  EXPECT_EQ(o.initAdapter, "init");
  EXPECT_EQ(o.log, "m.jsonl");
  EXPECT_EQ(o.eval, "e.jsonl");
  EXPECT_EQ(o.evalEvery, 10);
  EXPECT_EQ(o.saveEvery, 25);
  EXPECT_EQ(o.threads, 4);
  EXPECT_TRUE(o.haveSeed);
  EXPECT_EQ(o.seed, -3);
  EXPECT_EQ(o.logEvery, 5);
  EXPECT_EQ(o.weights, "w.onnx");

  ASSERT_TRUE(
      parse({"--data", "d", "--resume", "out", "--epochs", "2"}, o, error))
      << error;
  EXPECT_EQ(o.resume, "out");
  EXPECT_EQ(o.epochs, 2);
  EXPECT_EQ(o.saveEvery, 500);
  EXPECT_FALSE(o.haveSeed);
}

TEST(TrainerOptionsTest, Errors) {
  struct Case {
    std::vector<const char *> args;
    std::string problem;
  } cases[] = {
      {{"--out", "o"}, "--data is required"},
      {{"--data", "d"}, "--out is required"},
      {{"--data", "d", "--out", "o", "--steps", "0"},
       "--steps: expected an integer >= 1, got '0'"},
      {{"--data", "d", "--out", "o", "--steps", "1x"}, "got '1x'"},
      {{"--data", "d", "--out", "o", "--steps"}, "--steps needs a value"},
      {{"--data", "d", "--out", "o", "--steps", "3", "--epochs", "1"},
       "not both"},
      {{"--data", "d", "--out", "o", "--bogus"}, "unknown option '--bogus'"},
      {{"--data", "d", "--out", "o", "extra"}, "unexpected argument 'extra'"},
      {{"--data", "d", "--resume", "r", "--init-adapter", "a"},
       "--init-adapter and --resume"},
      {{"--data", "d", "--out", "o", "--eval-every", "5"}, "needs --eval"},
      {{"--data=", "--out", "o"}, "--data needs a non-empty value"},
  };
  for (const Case &c : cases) {
    TrainerOptions o;
    std::string error;
    EXPECT_FALSE(parse(c.args, o, error)) << c.problem;
    EXPECT_NE(error.find(c.problem), std::string::npos) << error;
  }
}

TEST(TrainerOptionsTest, HelpListsEveryOption) {
  std::string usage = trainerUsage("trainer");
  for (const char *option :
       {"--data", "--steps", "--epochs", "--out", "--resume", "--init-adapter",
        "--log", "--log-every", "--eval", "--eval-every", "--save-every",
        "--threads", "--seed", "--weights", "--help"})
    EXPECT_NE(usage.find(option), std::string::npos) << option;
  EXPECT_NE(usage.find("partial step of every epoch is dropped"),
            std::string::npos);
  TrainerOptions o;
  std::string error;
  ASSERT_TRUE(parse({"--help"}, o, error)) << error;
  EXPECT_TRUE(o.help);
}

} // namespace
