// Plain-data records shared by the engine and its per-ISA decision kernels (docs/engine.md).
//
// This header deliberately holds only PODs and declarations: the kernels are compiled once per
// instruction set (generic, AVX2, AVX-512) from cpp/src/kernel_impl.hpp, and no inline function
// may be shared between those translation units (the linker could otherwise keep an AVX-512 copy
// of it for generic code).
#pragma once
#include <cstddef>
#include <cstdint>

namespace aegisfwd {

// One row of results written by the kernels (also the result type of a scalar decision).
struct DecisionOut {
    std::uint8_t tier;
    std::int32_t server;
    std::int32_t dc;
    std::int32_t location;
    std::int32_t ip;
    double distance;
};

// Output columns of a batch (each `n` rows long). `stride_*` lets a scalar call write into one
// DecisionOut; batches use dense columns.
struct BatchColumns {
    std::uint8_t* tier;
    std::int32_t* server;
    std::int32_t* dc;
    std::int32_t* location;
    std::int32_t* ip;
    double* distance;
};

namespace detail {

inline constexpr std::uint8_t kTierLocal = 0;
inline constexpr std::uint8_t kTierSameDc = 1;
inline constexpr std::uint8_t kTierSameLocation = 2;
inline constexpr std::uint8_t kTierRemote = 3;
inline constexpr std::uint8_t kTierUnavailable = 4;
inline constexpr std::uint8_t kTierInvalid = 255;

// Rows per kernel call: requests are processed in groups so that the table rows of independent
// requests are fetched in parallel (software prefetch, stage by stage).
inline constexpr std::size_t kChunk = 64;

struct ServerRec {        // 16 bytes per server
    std::int32_t location;
    std::int32_t dc;
    std::int32_t dc_first;  // servers of its DC: [dc_first, dc_end)
    std::int32_t dc_end;
};

// How a (pool, family) group finds its candidates.
//   layout_k >= 0: small layout, entries [layout_a, layout_a + layout_k) of `entries`
//   layout_k == -1: big layout, answers in row layout_a of `big_ans`
//   layout_k == -2: no server holds an applicable IP: always UNAVAILABLE
// ip_n > 0: every holder of any (deployed) applicable IP holds all of them: the source IP is the
//           rendezvous over gip[ip_begin, ip_begin + ip_n), whatever the egress server;
// ip_n < 0: holders differ: rendezvous over the -ip_n IPs at ip_begin that the server holds.
struct GroupRec {
    std::int32_t layout_a;
    std::int32_t layout_k;
    std::int32_t ip_begin;
    std::int32_t ip_n;
};

inline constexpr std::int32_t kLayoutBig = -1;
inline constexpr std::int32_t kLayoutNone = -2;

struct LayoutEntry {
    std::int32_t location;
    std::int32_t list;
};

// A candidate list: its up servers are up_srv/up_key[begin, begin + count). `count` changes at
// run time (seqlock-protected, read with relaxed atomic loads).
struct ListRec {
    std::int32_t begin;
    std::int32_t count;
};

// Packed answer of a big layout for one ingress location: low 32 bits the list (-1: none alive
// anywhere reachable), high 32 bits its location (== ingress location: a local tier).
inline constexpr std::uint64_t pack_answer(std::int32_t location, std::int32_t list) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(location)) << 32) |
           static_cast<std::uint32_t>(list);
}

struct KernelCtx {
    std::int32_t L, S, P;
    const ServerRec* srv;           // S
    const GroupRec* grp;            // 2P
    const LayoutEntry* entries;     // small layouts' entries
    const ListRec* lists;           // C (count mutable)
    const std::uint64_t* big_ans;   // (big layouts) x L, mutable
    const std::uint64_t* up_key;    // mutable
    const std::int32_t* up_srv;     // mutable
    const std::int32_t* nearest_rank;  // L x L
    const double* distance;            // L x L
    const std::int32_t* gip;           // per-group IP indices (see GroupRec)
    const std::uint64_t* gip_key;      // their keys
    const std::int32_t* ip_holder_start;
    const std::int32_t* ip_holder_ranges;
};

using KernelFn = std::int64_t (*)(const KernelCtx& k, const std::int32_t* server, const std::int32_t* pool,
                                  const std::uint8_t* family, const std::uint64_t* flow, std::size_t n,
                                  const BatchColumns& out, std::size_t out_offset);

// Each decides rows [0, n) (n <= kChunk) into out[out_offset + row] and returns the number of
// INVALID rows. Kernel state reads are bounded for any value a concurrent writer can store.
std::int64_t decide_rows_generic(const KernelCtx&, const std::int32_t*, const std::int32_t*, const std::uint8_t*,
                                 const std::uint64_t*, std::size_t, const BatchColumns&, std::size_t);
std::int64_t decide_rows_avx2(const KernelCtx&, const std::int32_t*, const std::int32_t*, const std::uint8_t*,
                              const std::uint64_t*, std::size_t, const BatchColumns&, std::size_t);
std::int64_t decide_rows_avx512(const KernelCtx&, const std::int32_t*, const std::int32_t*, const std::uint8_t*,
                                const std::uint64_t*, std::size_t, const BatchColumns&, std::size_t);

// Whether kernel_<isa>.cpp was compiled with that instruction set (CMake flags); the engine
// selects a kernel only when it was and the CPU supports it.
bool kernel_avx2_compiled() noexcept;
bool kernel_avx512_compiled() noexcept;

// Rendezvous argmax over keys[0, n) (n >= 1) for a flow hash: the position of the largest
// (mix64(h ^ key), key). Exposed per ISA for tests.
using ArgmaxFn = std::int32_t (*)(const std::uint64_t* keys, std::int32_t n, std::uint64_t h);
std::int32_t argmax_generic(const std::uint64_t*, std::int32_t, std::uint64_t);
std::int32_t argmax_avx2(const std::uint64_t*, std::int32_t, std::uint64_t);
std::int32_t argmax_avx512(const std::uint64_t*, std::int32_t, std::uint64_t);

}  // namespace detail
}  // namespace aegisfwd
