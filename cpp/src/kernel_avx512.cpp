// The kernels for AVX-512 CPUs (F, DQ, BW, VL: native 64-bit multiply): the avx512 kernel table.
// CMake compiles this file alone with those -m flags (x86-64 GCC/Clang); resolve_isa hands the table
// out only when the CPU has all four (docs/engine.md, "Dispatch").
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positive: _mm512_srli_epi64 passes _mm512_undefined_epi32() as its (masked-off) source.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define AEGISFWD_KERNEL_ISA 2
#else
#define AEGISFWD_KERNEL_ISA 0  // built without the flags: a generic copy that is never selected
#endif
#define AEGISFWD_KERNEL_WANT 2
#define AEGISFWD_KERNEL_TABLE kernels_avx512
#include "kernel_table_impl.hpp"
