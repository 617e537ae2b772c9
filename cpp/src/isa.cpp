// The instruction-set resolver and the kernel-table lookup (cpp/include/aegisfwd/isa.hpp). This file
// is compiled for the baseline instruction set: it only asks the CPU what it supports and hands out
// pointers to functions compiled elsewhere (kernel_<isa>.cpp).
#include "aegisfwd/isa.hpp"

#include <stdexcept>

#include "aegisfwd/kernel.hpp"

namespace aegisfwd {
namespace {

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
bool cpu_has_avx2() noexcept {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

bool cpu_has_avx512() noexcept {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}
#else
// Non-x86 builds, and compilers without __builtin_cpu_supports: the generic kernels only.
bool cpu_has_avx2() noexcept { return false; }
bool cpu_has_avx512() noexcept { return false; }
#endif

constexpr Isa kAll[] = {Isa::generic, Isa::avx2, Isa::avx512};

// " (available here: auto, generic, avx2)": what this CPU and build accept.
std::string available_here() {
    std::string out = " (available here: auto";
    for (Isa isa : kAll)
        if (isa_available(isa)) out += std::string(", ") + isa_name(isa);
    return out + ")";
}

}  // namespace

const char* isa_name(Isa isa) noexcept {
    switch (isa) {
        case Isa::avx2:
            return "avx2";
        case Isa::avx512:
            return "avx512";
        case Isa::generic:
            break;
    }
    return "generic";
}

bool isa_available(Isa isa) noexcept {
    if (!detail::kernel_table(isa).compiled) return false;
    switch (isa) {
        case Isa::avx2:
            return cpu_has_avx2();
        case Isa::avx512:
            return cpu_has_avx512();
        case Isa::generic:
            break;
    }
    return true;
}

Isa best_isa() noexcept {
    if (isa_available(Isa::avx512)) return Isa::avx512;
    if (isa_available(Isa::avx2)) return Isa::avx2;
    return Isa::generic;
}

std::vector<std::string> available_isas() {
    std::vector<std::string> out;
    for (Isa isa : kAll)
        if (isa_available(isa)) out.emplace_back(isa_name(isa));
    return out;
}

Isa resolve_isa(std::string_view name) {
    if (name.empty() || name == "auto") return best_isa();
    for (Isa isa : kAll) {
        if (name != isa_name(isa)) continue;
        if (!isa_available(isa))
            throw std::invalid_argument("isa '" + std::string(name) + "' is not available on this CPU or build" +
                                        available_here());
        return isa;
    }
    throw std::invalid_argument("unknown isa '" + std::string(name) + "': expected auto, generic, avx2 or avx512" +
                                available_here());
}

namespace detail {

const KernelTable& kernel_table(Isa isa) noexcept {
    switch (isa) {
        case Isa::avx2:
            return kernels_avx2();
        case Isa::avx512:
            return kernels_avx512();
        case Isa::generic:
            break;
    }
    return kernels_generic();
}

}  // namespace detail
}  // namespace aegisfwd
