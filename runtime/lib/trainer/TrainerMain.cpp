// main() of the training binary `peftc -o trainer` links: the program and
// kernels compiled into the executable, trained by runTrainer.
#include "peft/Trainer.h"

#include <cstdio>

int main(int argc, char **argv) {
  std::string error;
  std::shared_ptr<const peft::rt::Program> program =
      peft::rt::Program::linked(error);
  if (!program) {
    std::fprintf(stderr, "trainer: error: %s\n", error.c_str());
    return 1;
  }
  return peft::rt::runTrainer(argc, argv, program);
}
