// Log evaluation helpers: ingress rendezvous and string hashing (cpp/include/aegisfwd/logkeys.hpp).
//
// The AVX2 and AVX-512 ingress kernels are each one function (plus a weight helper carrying the
// same target attribute and called only by it) compiled with a target attribute and called only
// after the CPU check, so this translation unit needs no per-file compiler flags and no inline
// function is shared with code built for another instruction set (only the attributed functions
// contain AVX2 / AVX-512 instructions; mix64 & co. are constexpr and inlined into each caller as
// compiled for that caller).
#include "aegisfwd/logkeys.hpp"
#include "aegisfwd/cpu.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "aegisfwd/hashing.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AEGISFWD_LOGKEYS_X86 1
#endif

namespace aegisfwd::logkeys {
namespace {

// One distinct server range of a call and its up servers, in ascending index order, at
// [begin, begin + count) of the call's candidate arrays.
struct Range {
    std::int32_t first;
    std::int32_t end;
    std::int32_t next;  // next range with the same `first`, -1 = none
    std::int32_t begin;
    std::int32_t count;
};

struct Candidates {
    std::vector<Range> ranges;
    std::vector<std::uint64_t> keys;
    std::vector<std::int32_t> index;
};

// Rows [a, b): generic code. The candidate lists are in ascending index order and only a strictly
// larger weight replaces the best, so among equal weights the first (lowest index) wins, as in the
// Python definition (which also prefers the larger key: equal weights imply equal keys).
void rows_generic(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a, std::size_t b,
                  const Candidates& c, std::int32_t* out) {
    const Range* ranges = c.ranges.data();
    const std::uint64_t* keys = c.keys.data();
    const std::int32_t* index = c.index.data();
    for (std::size_t i = a; i < b; ++i) {
        const std::int32_t r = rid[i];
        if (r < 0) {
            out[i] = -1;
            continue;
        }
        const Range& R = ranges[r];
        const std::uint64_t* K = keys + R.begin;
        const std::uint64_t h = ingress_flow_hash(flow[i]);
        std::uint64_t best_w = weight(h, K[0]);
        std::int32_t best = 0;
        for (std::int32_t j = 1; j < R.count; ++j) {
            const std::uint64_t w = weight(h, K[j]);
            if (w > best_w) {
                best_w = w;
                best = j;
            }
        }
        out[i] = index[R.begin + best];
    }
}

#if defined(AEGISFWD_LOGKEYS_X86)
// weight(h, key) of four keys `x` with its sign bit flipped, so that signed 64-bit compares
// (_mm256_cmpgt_epi64, AVX2 has no unsigned one) order weights as unsigned. AVX2 has no 64-bit
// multiply-low either: x * c = lo(x)lo(c) + ((hi(x)lo(c) + lo(x)hi(c)) << 32) (mod 2^64).
__attribute__((target("avx2"))) inline __m256i weights256(__m256i hv, __m256i x) {
    const __m256i m1lo = _mm256_set1_epi64x(static_cast<long long>(0xBF58476D1CE4E5B9ULL & 0xFFFFFFFFULL));
    const __m256i m1hi = _mm256_set1_epi64x(static_cast<long long>(0xBF58476D1CE4E5B9ULL >> 32));
    const __m256i m2lo = _mm256_set1_epi64x(static_cast<long long>(0x94D049BB133111EBULL & 0xFFFFFFFFULL));
    const __m256i m2hi = _mm256_set1_epi64x(static_cast<long long>(0x94D049BB133111EBULL >> 32));
    const __m256i sign = _mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL));
    x = _mm256_xor_si256(x, hv);
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), m1lo), _mm256_mul_epu32(x, m1hi));
    x = _mm256_add_epi64(_mm256_mul_epu32(x, m1lo), _mm256_slli_epi64(cross, 32));
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
    cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), m2lo), _mm256_mul_epu32(x, m2hi));
    x = _mm256_add_epi64(_mm256_mul_epu32(x, m2lo), _mm256_slli_epi64(cross, 32));
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
    return _mm256_xor_si256(x, sign);
}

// Rows [a, b): four candidates per vector, two independent running maxima (even and odd vectors)
// like rows_avx512. Per lane the best (biased) weight and its position; only the last vector of a
// list can be partial: it is read with a masked load and its lanes past the list never update.
// The winner is the largest weight (unsigned) and, among equal weights, the smallest position:
// the same rule as rows_generic.
__attribute__((target("avx2"))) void rows_avx2(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a,
                                               std::size_t b, const Candidates& c, std::int32_t* out) {
    const Range* ranges = c.ranges.data();
    const std::uint64_t* keys = c.keys.data();
    const std::int32_t* index = c.index.data();
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i none = _mm256_set1_epi64x(-1);  // position "none": the largest unsigned value
    const __m256i wmin = _mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL));  // weight 0, biased
    const __m256i four = _mm256_set1_epi64x(4);
    for (std::size_t i = a; i < b; ++i) {
        const std::int32_t r = rid[i];
        if (r < 0) {
            out[i] = -1;
            continue;
        }
        const Range& R = ranges[r];
        const std::int32_t m = R.count;
        const std::uint64_t* K = keys + R.begin;
        if (m == 1) {
            out[i] = index[R.begin];
            continue;
        }
        const __m256i hv = _mm256_set1_epi64x(static_cast<long long>(ingress_flow_hash(flow[i])));
        // All-ones in the lanes l < min(m, 4): the first vector may be the only, partial one.
        const __m256i k0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(m), lane);
        const __m256i w0 = weights256(hv, _mm256_maskload_epi64(reinterpret_cast<const long long*>(K), k0));
        __m256i bw_a = _mm256_blendv_epi8(wmin, w0, k0);
        __m256i bp_a = _mm256_blendv_epi8(none, lane, k0);
        __m256i bw_b = wmin;
        __m256i bp_b = none;
        __m256i pos = _mm256_add_epi64(lane, four);
        std::int32_t j = 4;
        for (; j + 8 <= m; j += 8) {  // two full vectors
            const __m256i wb = weights256(hv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + j)));
            const __m256i gb = _mm256_cmpgt_epi64(wb, bw_b);
            bw_b = _mm256_blendv_epi8(bw_b, wb, gb);
            bp_b = _mm256_blendv_epi8(bp_b, pos, gb);
            pos = _mm256_add_epi64(pos, four);
            const __m256i wa = weights256(hv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + j + 4)));
            const __m256i ga = _mm256_cmpgt_epi64(wa, bw_a);
            bw_a = _mm256_blendv_epi8(bw_a, wa, ga);
            bp_a = _mm256_blendv_epi8(bp_a, pos, ga);
            pos = _mm256_add_epi64(pos, four);
        }
        if (j + 4 <= m) {  // one more full vector
            const __m256i wb = weights256(hv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + j)));
            const __m256i gb = _mm256_cmpgt_epi64(wb, bw_b);
            bw_b = _mm256_blendv_epi8(bw_b, wb, gb);
            bp_b = _mm256_blendv_epi8(bp_b, pos, gb);
            pos = _mm256_add_epi64(pos, four);
            j += 4;
        }
        if (j < m) {  // 1-3 keys left: masked load, lanes past the list never update
            const __m256i kt = _mm256_cmpgt_epi64(_mm256_set1_epi64x(m - j), lane);
            const __m256i wt = weights256(hv, _mm256_maskload_epi64(reinterpret_cast<const long long*>(K + j), kt));
            const __m256i gt = _mm256_and_si256(kt, _mm256_cmpgt_epi64(wt, bw_a));
            bw_a = _mm256_blendv_epi8(bw_a, wt, gt);
            bp_a = _mm256_blendv_epi8(bp_a, pos, gt);
        }
        // Lanes that never saw a candidate hold weight 0 and position "none": if 0 is the largest
        // weight, a real candidate with weight 0 has a smaller position, so it still wins.
        alignas(32) std::uint64_t W[8];
        alignas(32) std::uint64_t P[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(W), _mm256_xor_si256(bw_a, wmin));
        _mm256_store_si256(reinterpret_cast<__m256i*>(W + 4), _mm256_xor_si256(bw_b, wmin));
        _mm256_store_si256(reinterpret_cast<__m256i*>(P), bp_a);
        _mm256_store_si256(reinterpret_cast<__m256i*>(P + 4), bp_b);
        std::uint64_t best_w = W[0], best_p = P[0];
        for (int q = 1; q < 8; ++q) {
            if (W[q] > best_w || (W[q] == best_w && P[q] < best_p)) {
                best_w = W[q];
                best_p = P[q];
            }
        }
        out[i] = index[R.begin + static_cast<std::int32_t>(best_p)];
    }
}

// weight(h, key) of eight keys (lanes outside `k` load 0).
__attribute__((target("avx512f,avx512dq"))) inline __m512i weights512(__m512i hv, __mmask8 k, const std::uint64_t* p,
                                                                      __m512i m1, __m512i m2) {
    __m512i x = _mm512_xor_si512(hv, _mm512_maskz_loadu_epi64(k, p));
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 30));
    x = _mm512_mullo_epi64(x, m1);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 27));
    x = _mm512_mullo_epi64(x, m2);
    return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

inline __mmask8 lanes512(std::int32_t rem) {
    return rem >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << rem) - 1u);
}

// Rows [a, b): eight candidates per vector, two independent running maxima (even and odd vectors)
// so that the compare-and-select chain does not limit the loop. Per lane the best weight and its
// position; lanes past the list are masked. The winner is the largest weight and, among equal
// weights, the smallest position: the same rule as rows_generic.
__attribute__((target("avx512f,avx512dq"))) void rows_avx512(const std::uint64_t* flow, const std::int32_t* rid,
                                                             std::size_t a, std::size_t b, const Candidates& c,
                                                             std::int32_t* out) {
    const Range* ranges = c.ranges.data();
    const std::uint64_t* keys = c.keys.data();
    const std::int32_t* index = c.index.data();
    const __m512i m1 = _mm512_set1_epi64(static_cast<long long>(0xBF58476D1CE4E5B9ULL));
    const __m512i m2 = _mm512_set1_epi64(static_cast<long long>(0x94D049BB133111EBULL));
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i none = _mm512_set1_epi64(-1);  // position "none": the largest unsigned value
    const __m512i eight = _mm512_set1_epi64(8);
    for (std::size_t i = a; i < b; ++i) {
        const std::int32_t r = rid[i];
        if (r < 0) {
            out[i] = -1;
            continue;
        }
        const Range& R = ranges[r];
        const std::int32_t m = R.count;
        const std::uint64_t* K = keys + R.begin;
        if (m == 1) {
            out[i] = index[R.begin];
            continue;
        }
        const __m512i hv = _mm512_set1_epi64(static_cast<long long>(ingress_flow_hash(flow[i])));
        const __mmask8 k0 = lanes512(m);
        __m512i bw_a = _mm512_maskz_mov_epi64(k0, weights512(hv, k0, K, m1, m2));
        __m512i bp_a = _mm512_mask_mov_epi64(none, k0, lane);
        __m512i bw_b = _mm512_setzero_si512();
        __m512i bp_b = none;
        __m512i pos = _mm512_add_epi64(lane, eight);
        std::int32_t j = 8;
        for (; j + 8 < m; j += 16) {
            const __mmask8 kb = 0xFF;  // j + 8 < m: a full vector
            const __m512i wb = weights512(hv, kb, K + j, m1, m2);
            const __mmask8 gb = _mm512_cmpgt_epu64_mask(wb, bw_b);
            bw_b = _mm512_mask_mov_epi64(bw_b, gb, wb);
            bp_b = _mm512_mask_mov_epi64(bp_b, gb, pos);
            pos = _mm512_add_epi64(pos, eight);
            const __mmask8 ka = lanes512(m - j - 8);
            const __m512i wa = weights512(hv, ka, K + j + 8, m1, m2);
            const __mmask8 ga = _mm512_mask_cmpgt_epu64_mask(ka, wa, bw_a);
            bw_a = _mm512_mask_mov_epi64(bw_a, ga, wa);
            bp_a = _mm512_mask_mov_epi64(bp_a, ga, pos);
            pos = _mm512_add_epi64(pos, eight);
        }
        if (j < m) {
            const __mmask8 kb = lanes512(m - j);
            const __m512i wb = weights512(hv, kb, K + j, m1, m2);
            const __mmask8 gb = _mm512_mask_cmpgt_epu64_mask(kb, wb, bw_b);
            bw_b = _mm512_mask_mov_epi64(bw_b, gb, wb);
            bp_b = _mm512_mask_mov_epi64(bp_b, gb, pos);
        }
        // Lanes that never saw a candidate hold weight 0 and position "none": if 0 is the largest
        // weight, a real candidate with weight 0 has a smaller position, so it still wins.
        const std::uint64_t wmax = std::max(_mm512_reduce_max_epu64(bw_a), _mm512_reduce_max_epu64(bw_b));
        const __m512i wv = _mm512_set1_epi64(static_cast<long long>(wmax));
        const std::uint64_t pa = _mm512_reduce_min_epu64(_mm512_mask_mov_epi64(none, _mm512_cmpeq_epu64_mask(bw_a, wv), bp_a));
        const std::uint64_t pb = _mm512_reduce_min_epu64(_mm512_mask_mov_epi64(none, _mm512_cmpeq_epu64_mask(bw_b, wv), bp_b));
        out[i] = index[R.begin + static_cast<std::int32_t>(std::min(pa, pb))];
    }
}
#endif

template <class F>
void parallel_rows(std::size_t n, unsigned threads, F&& work) {
    constexpr std::size_t kMinRowsPerThread = 16384;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    const std::size_t useful = std::max<std::size_t>(1, n / kMinRowsPerThread);
    const auto T = static_cast<unsigned>(std::min<std::size_t>(threads, useful));
    if (T <= 1) {
        work(std::size_t{0}, n);
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(T - 1);
    auto part = [&](unsigned k) { work(n * k / T, n * (k + 1) / T); };
    try {
        for (unsigned k = 1; k < T; ++k) pool.emplace_back(part, k);
    } catch (...) {
        for (auto& th : pool) th.join();
        throw;
    }
    part(0);
    for (auto& th : pool) th.join();
}

template <class Off>
void string_hashes_impl(const Off* offsets, std::size_t n, const std::uint8_t* data, std::size_t data_len,
                        const std::uint8_t* valid, std::uint64_t* hash, std::uint8_t* nonempty) {
    if (n > 0 || offsets != nullptr) {
        if (offsets[0] < 0) throw std::invalid_argument("string offsets must be >= 0");
        for (std::size_t i = 0; i < n; ++i)
            if (offsets[i + 1] < offsets[i]) throw std::invalid_argument("string offsets must be non-decreasing");
        if (static_cast<std::uint64_t>(offsets[n]) > data_len)
            throw std::invalid_argument("string offsets point past the end of the data buffer");
    }
    for (std::size_t i = 0; i < n; ++i) {
        const bool ok = valid == nullptr || valid[i] != 0;
        const std::size_t len = ok ? static_cast<std::size_t>(offsets[i + 1] - offsets[i]) : 0;
        const std::uint8_t* p = data + (ok ? offsets[i] : 0);
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
        hash[i] = h;
        nonempty[i] = len > 0 ? 1 : 0;
    }
}

}  // namespace

std::vector<std::string> available_isas() {
    std::vector<std::string> out{"generic"};
    if (cpu::has_avx2()) out.emplace_back("avx2");
    if (cpu::has_avx512()) out.emplace_back("avx512");
    return out;
}

void choose_ingress(const std::int32_t* first, const std::int32_t* end, const std::uint64_t* flow, std::size_t n,
                    const std::uint64_t* server_key, const std::uint8_t* state, std::size_t n_servers,
                    std::int32_t* out, unsigned threads, const std::string& isa) {
    enum class Kernel { generic, avx2, avx512 };
    Kernel kernel = Kernel::generic;
    if (isa == "auto" || isa.empty()) {
        kernel = cpu::has_avx512() ? Kernel::avx512 : cpu::has_avx2() ? Kernel::avx2 : Kernel::generic;
    } else if (isa == "avx512") {
        if (!cpu::has_avx512()) throw std::invalid_argument("isa 'avx512' is not available on this CPU or build");
        kernel = Kernel::avx512;
    } else if (isa == "avx2") {
        if (!cpu::has_avx2()) throw std::invalid_argument("isa 'avx2' is not available on this CPU or build");
        kernel = Kernel::avx2;
    } else if (isa != "generic") {
        throw std::invalid_argument("unknown isa '" + isa + "': expected auto, generic, avx2 or avx512");
    }
    if (n_servers > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw std::invalid_argument("too many servers");

    // Pass 1 (serial): check every range and give each row the id of its distinct range, building
    // that range's list of up servers the first time it is seen. `head[first]` chains the ranges
    // that start at `first` (a location and its first DC share one).
    Candidates c;
    std::vector<std::int32_t> rid(n);
    std::vector<std::int32_t> head;
    for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t lo = first[i], hi = end[i];
        if (hi <= lo) {
            rid[i] = -1;
            continue;
        }
        if (lo < 0 || static_cast<std::size_t>(hi) > n_servers)
            throw std::invalid_argument("row " + std::to_string(i) + ": server range [" + std::to_string(lo) + ", " +
                                        std::to_string(hi) + ") outside [0, " + std::to_string(n_servers) + ")");
        if (head.empty()) head.assign(n_servers, -1);
        std::int32_t r = head[lo];
        while (r >= 0 && c.ranges[r].end != hi) r = c.ranges[r].next;
        if (r < 0) {
            Range R{lo, hi, head[lo], static_cast<std::int32_t>(c.keys.size()), 0};
            for (std::int32_t s = lo; s < hi; ++s) {
                if (state[s] != 0) continue;
                c.keys.push_back(server_key[s]);
                c.index.push_back(s);
                ++R.count;
            }
            r = static_cast<std::int32_t>(c.ranges.size());
            c.ranges.push_back(R);
            head[lo] = r;
        }
        rid[i] = c.ranges[r].count > 0 ? r : -1;
    }

    // Pass 2 (parallel, read-only shared state): the rendezvous per row.
    parallel_rows(n, threads, [&](std::size_t a, std::size_t b) {
#if defined(AEGISFWD_LOGKEYS_X86)
        if (kernel == Kernel::avx512) {
            rows_avx512(flow, rid.data(), a, b, c, out);
            return;
        }
        if (kernel == Kernel::avx2) {
            rows_avx2(flow, rid.data(), a, b, c, out);
            return;
        }
#endif
        (void)kernel;
        rows_generic(flow, rid.data(), a, b, c, out);
    });
}

void string_hashes(const std::int32_t* offsets, std::size_t n, const std::uint8_t* data, std::size_t data_len,
                   const std::uint8_t* valid, std::uint64_t* hash, std::uint8_t* nonempty) {
    string_hashes_impl(offsets, n, data, data_len, valid, hash, nonempty);
}

void string_hashes(const std::int64_t* offsets, std::size_t n, const std::uint8_t* data, std::size_t data_len,
                   const std::uint8_t* valid, std::uint64_t* hash, std::uint8_t* nonempty) {
    string_hashes_impl(offsets, n, data, data_len, valid, hash, nonempty);
}

std::size_t compact_indices(const std::int32_t* indices, std::size_t n, std::size_t size, std::int32_t* out,
                            std::int32_t* kept) {
    if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw std::invalid_argument("dictionary too large");
    const auto limit = static_cast<std::int32_t>(size);
    std::vector<std::int32_t> remap(size + 1, 0);  // slot 0: null; slot v + 1: entry v (1 = used)
    std::int32_t* used = remap.data() + 1;
    for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t v = indices[i];
        if (v < -1 || v >= limit)
            throw std::invalid_argument("index " + std::to_string(v) + " at row " + std::to_string(i) +
                                        " outside [-1, " + std::to_string(size) + ")");
        used[v] = 1;  // v == -1 marks slot 0, harmless
    }
    std::int32_t next = 0;
    for (std::int32_t v = 0; v < limit; ++v) {
        if (used[v]) {
            kept[next] = v;
            used[v] = next++;
        } else {
            used[v] = -1;
        }
    }
    remap[0] = -1;  // null stays null
    for (std::size_t i = 0; i < n; ++i) out[i] = used[indices[i]];
    return static_cast<std::size_t>(next);
}

struct PairIndex::Impl {
    struct Slot {
        std::uint64_t a;
        std::uint64_t b;
        std::int64_t id;  // -1: empty
    };
    std::mutex lock;
    std::vector<Slot> slots;  // a power of two, at most half full; keys inline: one line per probe
    std::size_t count = 0;

    static std::uint64_t hash(std::uint64_t x, std::uint64_t y) { return mix64(x ^ mix64(y ^ kStringSeed)); }
};

PairIndex::PairIndex() : impl_(new Impl) { impl_->slots.assign(1024, Impl::Slot{0, 0, -1}); }

PairIndex::~PairIndex() { delete impl_; }

std::size_t PairIndex::size() const {
    std::lock_guard<std::mutex> guard(impl_->lock);
    return impl_->count;
}

void PairIndex::index(const std::uint64_t* a, const std::uint64_t* b, std::size_t n, std::int64_t* ids,
                      std::vector<std::int64_t>& fresh) {
    std::lock_guard<std::mutex> guard(impl_->lock);
    Impl& m = *impl_;
    std::size_t mask = m.slots.size() - 1;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t x = a[i], y = b[i];
        std::size_t s = static_cast<std::size_t>(Impl::hash(x, y)) & mask;
        while (m.slots[s].id >= 0 && (m.slots[s].a != x || m.slots[s].b != y)) s = (s + 1) & mask;
        if (m.slots[s].id >= 0) {
            ids[i] = m.slots[s].id;
            continue;
        }
        const auto id = static_cast<std::int64_t>(m.count++);
        m.slots[s] = Impl::Slot{x, y, id};
        ids[i] = id;
        fresh.push_back(static_cast<std::int64_t>(i));
        if (2 * m.count > m.slots.size()) {  // grow and rehash
            std::vector<Impl::Slot> bigger(2 * m.slots.size(), Impl::Slot{0, 0, -1});
            mask = bigger.size() - 1;
            for (const auto& e : m.slots) {
                if (e.id < 0) continue;
                std::size_t t = static_cast<std::size_t>(Impl::hash(e.a, e.b)) & mask;
                while (bigger[t].id >= 0) t = (t + 1) & mask;
                bigger[t] = e;
            }
            m.slots.swap(bigger);
        }
    }
}

}  // namespace aegisfwd::logkeys
