// The kernels for AVX-512 CPUs (F, DQ, BW, VL: native 64-bit multiply): the avx512 kernel table.
// CMake compiles this file alone with those -m flags (x86-64 GCC/Clang); resolve_isa hands the table
// out only when the CPU has all four (docs/engine.md, "Dispatch").
#include <cstddef>
#include <cstdint>

#include "aegisfwd/kernel.hpp"

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
namespace {
#include "kernel_impl.hpp"
#include "ingress_impl.hpp"
}  // namespace

namespace aegisfwd::detail {
namespace {
std::int64_t decide_rows(const KernelCtx& k, const std::int32_t* s, const std::int32_t* p, const std::uint8_t* f,
                         const std::uint64_t* flow, std::size_t n, const BatchColumns& out, std::size_t off) {
    return decide_rows_impl(k, s, p, f, flow, n, out, off);
}
void decide_one(const KernelCtx& k, std::int32_t s, std::int32_t p, std::uint8_t f, std::uint64_t flow,
                DecisionOut& out) {
    decide_one_impl(k, s, p, f, flow, out);
}
std::int32_t argmax(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) { return argmax_keys(keys, n, h); }
void ingress_rows(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a, std::size_t b,
                  const IngressCandidates& c, std::int32_t* out) {
    ingress_rows_impl(flow, rid, a, b, c, out);
}
constexpr KernelTable kTable{AEGISFWD_KERNEL_ISA == 2, &decide_rows, &decide_one, &argmax, &ingress_rows};
}  // namespace

const KernelTable& kernels_avx512() noexcept { return kTable; }
}  // namespace aegisfwd::detail
