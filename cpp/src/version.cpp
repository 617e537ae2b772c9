#include "aegisfwd/hashing.hpp"

namespace aegisfwd {
// Anchors the static library until the engine sources land.
std::uint32_t hash_scheme_version() noexcept { return kHashSchemeVersion; }
}  // namespace aegisfwd
