// The one calling convention between code peftc generates and the runtime.
// Plain C so that generated object code (LLVM IR emitted by peftc, or CUDA C
// later) needs no C++ ABI.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A generated CPU kernel. `args` holds one base pointer per kernel argument
/// (in the order of the program's Launch.args); the kernel runs the
/// iterations [begin, end) of its flattened parallel dimension (0 <= begin <=
/// end <= Launch.extent). Iterations are independent, so the runtime splits
/// [0, extent) over its threads; a kernel never spawns threads itself.
typedef void (*peft_kernel_fn)(void *const *args, int64_t begin, int64_t end);

typedef struct peft_kernel_entry {
  const char *name; /* Kernel.symbol in the program */
  peft_kernel_fn fn;
} peft_kernel_entry;

/// What a program object (an executable linked by `peftc -o trainer`, or a
/// shared object from `peftc --emit=shared`) defines, all with C linkage:
///   const uint8_t peftc_program_data[];   the Program, protobuf wire format
///   const uint64_t peftc_program_size;
///   const peft_kernel_entry peftc_kernel_table[];
///   const uint64_t peftc_kernel_count;
#define PEFTC_PROGRAM_DATA_SYMBOL "peftc_program_data"
#define PEFTC_PROGRAM_SIZE_SYMBOL "peftc_program_size"
#define PEFTC_KERNEL_TABLE_SYMBOL "peftc_kernel_table"
#define PEFTC_KERNEL_COUNT_SYMBOL "peftc_kernel_count"

#ifdef __cplusplus
}
#endif
