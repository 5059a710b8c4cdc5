// The kernel table of the test program's shared object, with the C
// linkage and names of KernelABI.h (what peftc emits next to the program).
#include "TestProgram.h"

using namespace peft::testprog;

extern "C" const peft_kernel_entry peftc_kernel_table[] = {
    {"mse", mseKernel},
    {"relu_backward", reluBackwardKernel},
    {"column_sum", columnSumKernel},
    {"grad_norm", gradNormKernel},
    {"lr", lrKernel},
    {"sgd", sgdKernel}};
extern "C" const uint64_t peftc_kernel_count =
    sizeof(peftc_kernel_table) / sizeof(peftc_kernel_table[0]);
