// The decision kernel for AVX2 CPUs. CMake compiles this file alone with -mavx2 (x86-64 GCC/Clang);
// the engine selects it at run time only when the CPU has AVX2 (docs/engine.md, "Dispatch").
#include <cstddef>
#include <cstdint>

#include "aegisfwd/kernel.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#define AEGISFWD_KERNEL_ISA 1
#else
#define AEGISFWD_KERNEL_ISA 0  // built without -mavx2: a generic copy that is never selected
#endif
namespace {
#include "kernel_impl.hpp"
}  // namespace

namespace aegisfwd::detail {
bool kernel_avx2_compiled() noexcept { return AEGISFWD_KERNEL_ISA == 1; }
std::int64_t decide_rows_avx2(const KernelCtx& k, const std::int32_t* s, const std::int32_t* p,
                              const std::uint8_t* f, const std::uint64_t* flow, std::size_t n,
                              const BatchColumns& out, std::size_t off) {
    return decide_rows_impl(k, s, p, f, flow, n, out, off);
}
void decide_one_avx2(const KernelCtx& k, std::int32_t s, std::int32_t p, std::uint8_t f, std::uint64_t flow,
                   DecisionOut& out) {
    decide_one_impl(k, s, p, f, flow, out);
}
std::int32_t argmax_avx2(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    return argmax_keys(keys, n, h);
}
}  // namespace aegisfwd::detail
