// The flow key of one connection or log row (docs/evaluate.md "Flow key"): the one definition the
// log evaluation (logeval.cpp, over whole Arrow columns), the proxy's per-connection path
// (aegisfwd._fast.client_flow_key) and the C ABI (aegisfwd_client_flow_key) share, so that a decision
// made in a proxy and one predicted from that proxy's logs use the same key. Pinned bit for bit by
// src/aegisfwd/_flowkey.py (string_hash_py, flow_key_py) in the tests.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "aegisfwd/hashing.hpp"

namespace aegisfwd {

inline constexpr std::uint64_t kStringSeed = 0x8EBC6AF09C88C6E3ULL;
inline constexpr std::uint64_t kPortSalt = 0xA0761D6478BD642FULL;
inline constexpr std::uint64_t kRaySalt = 0xE7037ED1A0B428DBULL;

// h = mix64(len ^ kStringSeed); then h = mix64(h ^ w) for each 8-byte little-endian word w of the
// bytes, the last one zero-padded.
inline std::uint64_t string_hash(const std::uint8_t* p, std::size_t len) noexcept {
    std::uint64_t h = mix64(static_cast<std::uint64_t>(len) ^ kStringSeed);
    std::size_t k = 0;
    for (; k + 8 <= len; k += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + k, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        h = mix64(h ^ w);
    }
    if (k < len) {
        std::uint64_t w = 0;
        for (std::size_t q = 0; q < len - k; ++q) w |= static_cast<std::uint64_t>(p[k + q]) << (8 * q);
        h = mix64(h ^ w);
    }
    return h;
}

// The key of a connection from the client address text (as written in logs: "192.0.2.1",
// "2001:db8::1") and its source port; the caller has checked that the text is non-empty and the
// port is in [0, 65535].
inline std::uint64_t client_flow_key(const std::uint8_t* ip, std::size_t len, std::uint32_t port) noexcept {
    return mix64(string_hash(ip, len) ^ mix64(static_cast<std::uint64_t>(port) ^ kPortSalt));
}

// The key of a row with no usable client address and port, from its non-empty RayID.
inline std::uint64_t ray_flow_key(const std::uint8_t* ray, std::size_t len) noexcept {
    return mix64(string_hash(ray, len) ^ kRaySalt);
}

}  // namespace aegisfwd
