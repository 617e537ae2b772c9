// The kernels for AVX2 CPUs: the avx2 kernel table. CMake compiles this file alone with -mavx2
// (x86-64 GCC/Clang); resolve_isa hands the table out only when the CPU has AVX2 (docs/engine.md,
// "Dispatch").
#if defined(__AVX2__)
#include <immintrin.h>
#define AEGISFWD_KERNEL_ISA 1
#else
#define AEGISFWD_KERNEL_ISA 0  // built without -mavx2: a generic copy that is never selected
#endif
#define AEGISFWD_KERNEL_WANT 1
#define AEGISFWD_KERNEL_TABLE kernels_avx2
#include "kernel_table_impl.hpp"
