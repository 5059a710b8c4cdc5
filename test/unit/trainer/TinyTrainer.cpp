// The trainer binary of the tiny test program: what `peftc -o trainer`
// produces, with the program built by hand instead of linked in.
#include "TinyProgram.h"

#include "peft/Trainer.h"

#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  std::string error;
  // The environment picks the variant, so one binary serves every test.
  const char *accumulate = std::getenv("PEFTRT_TINY_ACCUMULATE");
  auto program =
      peft::test::tinyProgram(accumulate && *accumulate == '1', error);
  if (!program) {
    std::fprintf(stderr, "tiny-trainer: %s\n", error.c_str());
    return 1;
  }
  return peft::rt::runTrainer(argc, argv, program);
}
