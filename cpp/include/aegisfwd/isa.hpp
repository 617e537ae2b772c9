// The instruction sets the C++ core has kernels for, and the one place that turns a name ("auto",
// "generic", "avx2", "avx512") into the set a caller runs. Every run-time dispatch (the engine's
// decision kernels, the log-evaluation kernels) goes through resolve_isa() and then picks its
// functions from that set's kernel table (detail::kernel_table, aegisfwd/kernel.hpp), so a name
// means the same thing everywhere and is checked the same way (docs/engine.md, "Dispatch").
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace aegisfwd {

// Ordered from the most portable to the fastest: a larger value is a better choice when available.
enum class Isa : std::uint8_t {
    generic = 0,  // the project's default flags: any x86-64 / aarch64 CPU
    avx2 = 1,
    avx512 = 2,  // AVX-512 F, DQ, BW and VL: every AVX-512 kernel of the project may use any of them
};

// "generic", "avx2" or "avx512".
const char* isa_name(Isa isa) noexcept;

// Whether this build compiled the kernels of `isa` with its instruction set (CMake flags on the
// kernel_<isa>.cpp translation units) and the running CPU supports it. Always true for generic.
bool isa_available(Isa isa) noexcept;

// The best available set: avx512, else avx2, else generic.
Isa best_isa() noexcept;

// Names of the available sets, best last ("generic" always first).
std::vector<std::string> available_isas();

// "auto" (or "") -> best_isa(); "generic" / "avx2" / "avx512" -> that set when available.
// std::invalid_argument otherwise, naming the value and listing what this machine accepts: an
// unknown name and a set this CPU or build lacks are both errors, never a silent fallback.
Isa resolve_isa(std::string_view name);

}  // namespace aegisfwd
