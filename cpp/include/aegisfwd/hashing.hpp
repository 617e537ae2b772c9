// Consistent-hashing scheme v1 (docs/hashing.md). Must match src/aegisfwd/_hashing.py bit for bit.
#pragma once
#include <cstdint>

namespace aegisfwd {

inline constexpr std::uint32_t kHashSchemeVersion = 1;
inline constexpr std::uint64_t kServerFlowSalt = 0x9E3779B97F4A7C15ULL;
inline constexpr std::uint64_t kIpFlowSalt = 0xC2B2AE3D27D4EB4FULL;
inline constexpr std::uint64_t kIngressFlowSalt = 0x165667B19E3779F9ULL;

// SplitMix64 finalizer: a bijection with full avalanche, two multiplies.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

constexpr std::uint64_t server_flow_hash(std::uint64_t flow) noexcept { return mix64(flow ^ kServerFlowSalt); }
constexpr std::uint64_t ip_flow_hash(std::uint64_t flow) noexcept { return mix64(flow ^ kIpFlowSalt); }
constexpr std::uint64_t ingress_flow_hash(std::uint64_t flow) noexcept { return mix64(flow ^ kIngressFlowSalt); }
constexpr std::uint64_t weight(std::uint64_t flow_hash, std::uint64_t key) noexcept { return mix64(flow_hash ^ key); }

// (weight, key) compared as a pair: on equal weights the larger key wins.
constexpr bool outranks(std::uint64_t w, std::uint64_t key, std::uint64_t best_w, std::uint64_t best_key) noexcept {
    return w > best_w || (w == best_w && key > best_key);
}

}  // namespace aegisfwd
