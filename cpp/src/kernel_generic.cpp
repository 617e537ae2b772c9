// The decision kernel for any CPU (compiled with the project's default flags).
#include <cstddef>
#include <cstdint>

#include "aegisfwd/kernel.hpp"

#define AEGISFWD_KERNEL_ISA 0
namespace {
#include "kernel_impl.hpp"
}  // namespace

namespace aegisfwd::detail {
std::int64_t decide_rows_generic(const KernelCtx& k, const std::int32_t* s, const std::int32_t* p,
                                 const std::uint8_t* f, const std::uint64_t* flow, std::size_t n,
                                 const BatchColumns& out, std::size_t off) {
    return decide_rows_impl(k, s, p, f, flow, n, out, off);
}
void decide_one_generic(const KernelCtx& k, std::int32_t s, std::int32_t p, std::uint8_t f, std::uint64_t flow,
                   DecisionOut& out) {
    decide_one_impl(k, s, p, f, flow, out);
}
std::int32_t argmax_generic(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    return argmax_keys(keys, n, h);
}
}  // namespace aegisfwd::detail
