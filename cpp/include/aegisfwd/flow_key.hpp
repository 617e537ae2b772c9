// The flow key of one connection (docs/evaluate.md "Flow key"). string_hash is the one definition the
// log evaluation (logeval.cpp, over whole Arrow columns), the proxy's per-connection path
// (aegisfwd._fast.client_flow_key) and the C ABI (aegisfwd_client_flow_key) share; client_flow_key is
// the per-connection composition, which the log evaluation does column-wise in numpy
// (evaluation/_arrow.py flow_keys). All are pinned bit for bit to src/aegisfwd/_flowkey.py
// (string_hash_py, flow_key_py) in the tests, so a proxy's decision and the one predicted from its
// logs use the same key.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "aegisfwd/hashing.hpp"

namespace aegisfwd {

inline constexpr std::uint64_t kStringSeed = 0x8EBC6AF09C88C6E3ULL;
inline constexpr std::uint64_t kPortSalt = 0xA0761D6478BD642FULL;

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

}  // namespace aegisfwd
