// Plain-data records shared by the C++ core and its per-ISA kernels, and the kernel table of each
// instruction set (docs/engine.md, "Dispatch").
//
// This header deliberately holds only PODs and declarations: the kernels are compiled once per
// instruction set (generic, AVX2, AVX-512: cpp/src/kernel_<isa>.cpp, from kernel_impl.hpp and
// ingress_impl.hpp), and no inline function may be shared between those translation units (the
// linker could otherwise keep an AVX-512 copy of it for generic code).
#pragma once
#include <cstddef>
#include <cstdint>

#include "aegisfwd/isa.hpp"

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

// How a (pool, family) group finds its candidates and its source IP.
//   layout_k in [1, kSmallLayoutMax]: small layout, a blob at lay[layout_a]:
//       [alive, k, location_0 .. location_{k-1}, list_0 .. list_{k-1}, pref (L bytes, padded)]
//       where `alive` (mutable) has bit q set when list_q has an up server, and pref[l] is the
//       entry that ingress location l uses while every list is live (0xFF: none is reachable).
//   layout_k == kLayoutBig: big layout: its answers are row layout_a of `big_ans`.
//   layout_k == kLayoutNone: no server holds an applicable IP: always UNAVAILABLE.
// ip_n > 0: every holder of an applicable IP holds all of them: the source IP is the rendezvous
//           over gip[ip_begin, ip_begin + ip_n), whatever the egress server.
// ip_n < 0: per layout entry q (in location order), gsub[ip_begin + q] says which IPs the servers
//           of that entry's list hold (see IpSet).
struct GroupRec {
    std::int32_t layout_a;
    std::int32_t layout_k;
    std::int32_t ip_begin;
    std::int32_t ip_n;
};

inline constexpr std::int32_t kSmallLayoutMax = 16;
inline constexpr std::int32_t kLayoutBig = -1;
inline constexpr std::int32_t kLayoutNone = -2;
// Locations are ranked in 26 bits inside the vectorised layout scan (validate() enforces it).
inline constexpr std::int32_t kMaxLocations = (1 << 24);

// n > 0: every server of the list holds exactly gip[begin, begin + n) of the group's IPs.
// n < 0: servers differ: the rendezvous runs over those of gip[begin, begin - n) the egress
//        server holds (checked against ip_holder_ranges).
struct IpSet {
    std::int32_t begin;
    std::int32_t n;
};

// Answer of a big layout for one ingress location (mutable). list < 0: no reachable location has
// an up server (UNAVAILABLE); location == ingress location: a local tier. `entry` is the position
// of `location` in the layout (for gsub). Every field holds a valid index at all times (entry 0 and
// the ingress location when list < 0), so a torn read never steers a load out of bounds.
struct BigAnswer {
    std::int32_t location;
    std::int32_t list;
    std::int32_t entry;
    std::int32_t pad;
};

// A candidate list: its up servers are up_key/up[begin, begin + count), ascending by server.
// `count` changes at run time (read with relaxed atomic loads).
// loc_first/loc_span: the server range of the list's location (to guess a server's position).
struct ListRec {
    std::int32_t begin;
    std::int32_t count;
    std::int32_t loc_first;
    std::int32_t loc_span;
};

struct UpEntry {
    std::int32_t server;
    std::int32_t dc;
};

struct KernelCtx {
    std::int32_t L, S, P;
    const ServerRec* srv;              // S
    const GroupRec* grp;               // 2P
    const std::int32_t* lay;           // small layout blobs (alive words mutable)
    const ListRec* lists;              // C (count mutable)
    const BigAnswer* big_ans;          // (big layouts) x L, mutable
    const std::uint64_t* up_key;       // mutable
    const UpEntry* up;                 // mutable
    const std::int32_t* nearest_rank;  // L x L
    const double* distance;            // L x L
    const std::int32_t* gip;           // IP indices (see GroupRec, IpSet)
    const std::uint64_t* gip_key;      // their keys
    const IpSet* gsub;
    const std::int32_t* ip_holder_start;
    const std::int32_t* ip_holder_ranges;
};

// Decides rows [0, n) (n <= kChunk) into out[out_offset + row] and returns the number of INVALID
// rows. Kernel state reads are bounded for any value a concurrent writer can store.
using KernelFn = std::int64_t (*)(const KernelCtx& k, const std::int32_t* server, const std::int32_t* pool,
                                  const std::uint8_t* family, const std::uint64_t* flow, std::size_t n,
                                  const BatchColumns& out, std::size_t out_offset);

// One decision (the scalar path: no staging).
using OneFn = void (*)(const KernelCtx& k, std::int32_t server, std::int32_t pool, std::uint8_t family,
                       std::uint64_t flow, DecisionOut& out);

// Rendezvous argmax over keys[0, n) (n >= 1) for a flow hash: the position of the largest
// (mix64(h ^ key), key). mix64 is a bijection, so distinct keys never have equal weights; for
// equal keys the first position wins (as in _hashing.rendezvous). Exposed per ISA for tests.
using ArgmaxFn = std::int32_t (*)(const std::uint64_t* keys, std::int32_t n, std::uint64_t h);

// The log evaluation's ingress choice (logeval.hpp, choose_ingress): one distinct server range of a
// call and its up servers, at [begin, begin + count) of the candidate arrays, ascending by index.
struct IngressRange {
    std::int32_t first;
    std::int32_t end;
    std::int32_t next;  // next range with the same `first`, -1 = none
    std::int32_t begin;
    std::int32_t count;
};

struct IngressCandidates {
    const IngressRange* ranges;
    const std::uint64_t* keys;   // server key of each candidate
    const std::int32_t* index;   // server index of each candidate
};

// Rows [a, b): out[i] = the candidate of range rid[i] (-1: none) with the largest ingress
// rendezvous weight for flow[i], the lowest index among equal weights (ingress_impl.hpp).
using IngressRowsFn = void (*)(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a, std::size_t b,
                               const IngressCandidates& c, std::int32_t* out);

// Every kernel of one instruction set. `compiled`: kernel_<isa>.cpp was built with that set's
// flags (CMake); when it was not, its functions are generic copies and isa_available() says no.
struct KernelTable {
    bool compiled;
    KernelFn decide_rows;
    OneFn decide_one;
    ArgmaxFn argmax;
    IngressRowsFn ingress_rows;
};

// One per translation unit (kernel_generic.cpp, kernel_avx2.cpp, kernel_avx512.cpp).
const KernelTable& kernels_generic() noexcept;
const KernelTable& kernels_avx2() noexcept;
const KernelTable& kernels_avx512() noexcept;

// The table of `isa` (isa.cpp). Callers resolve the name first (resolve_isa), which refuses a set
// this CPU or build cannot run, and then call only through the table they got.
const KernelTable& kernel_table(Isa isa) noexcept;

}  // namespace detail
}  // namespace aegisfwd
