// The kernels for any CPU (compiled with the project's default flags): the generic kernel table.
#include <cstddef>
#include <cstdint>

#include "aegisfwd/kernel.hpp"

#define AEGISFWD_KERNEL_ISA 0
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
constexpr KernelTable kTable{AEGISFWD_KERNEL_ISA == 0, &decide_rows, &decide_one, &argmax, &ingress_rows};
}  // namespace

const KernelTable& kernels_generic() noexcept { return kTable; }
}  // namespace aegisfwd::detail
