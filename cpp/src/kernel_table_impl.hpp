// The kernel table of one instruction set, written once: each kernel_<isa>.cpp defines
// AEGISFWD_KERNEL_ISA (what its compiler flags allow: 0 generic, 1 AVX2, 2 AVX-512),
// AEGISFWD_KERNEL_WANT (the ISA it is for) and AEGISFWD_KERNEL_TABLE (its table's accessor), then
// includes this file. The table says it is usable only when the file was really compiled for its ISA.
#include <cstddef>
#include <cstdint>

#include "aegisfwd/kernel.hpp"

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
constexpr KernelTable kTable{AEGISFWD_KERNEL_ISA == AEGISFWD_KERNEL_WANT, &decide_rows, &decide_one, &argmax,
                             &ingress_rows};
}  // namespace

const KernelTable& AEGISFWD_KERNEL_TABLE() noexcept { return kTable; }
}  // namespace aegisfwd::detail
