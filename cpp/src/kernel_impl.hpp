// The decision kernel, compiled once per instruction set.
//
// kernel_<isa>.cpp defines AEGISFWD_KERNEL_ISA (0 generic, 1 AVX2, 2 AVX-512), includes the
// headers below, and then includes this file *inside an anonymous namespace*, so every helper
// here has internal linkage and no ISA-specific copy of a function can leak into another
// translation unit. For the same reason this file uses no std:: templates.
//
// Reading mutable state: the engine changes list counts, up-lists and big-layout answers in place
// under a seqlock (docs/engine.md). The caller re-runs a chunk when the version moved, so a torn
// read can only waste work -- but it must never index outside a buffer. Every value a writer
// stores is itself valid (a count <= the list's capacity, a server index, a list index), indices
// that steer memory accesses are read once with a relaxed atomic load (no re-load can observe a
// different value), and every loop is bounded by such a value.
//
// Requires: <cstdint>, <cstddef>, aegisfwd/kernel.hpp, and <immintrin.h> for ISA >= 1.

#ifndef AEGISFWD_KERNEL_ISA
#error "define AEGISFWD_KERNEL_ISA before including kernel_impl.hpp"
#endif

using namespace ::aegisfwd::detail;
using ::aegisfwd::BatchColumns;
using ::aegisfwd::DecisionOut;

#if defined(__GNUC__) || defined(__clang__)
#define AK_INLINE inline __attribute__((always_inline))
#define AK_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define AK_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define AK_LIKELY(x) __builtin_expect(!!(x), 1)
#define AK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define AK_INLINE inline
#define AK_LOAD_RELAXED(p) (*(p))  // only GCC/Clang builds are supported and tested
#define AK_PREFETCH(p) ((void)0)
#define AK_LIKELY(x) (x)
#define AK_UNLIKELY(x) (x)
#endif

constexpr std::uint64_t kC1 = 0xBF58476D1CE4E5B9ULL;
constexpr std::uint64_t kC2 = 0x94D049BB133111EBULL;
constexpr std::uint64_t kServerSalt = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kIpSalt = 0xC2B2AE3D27D4EB4FULL;

// mix64 of docs/hashing.md (a private copy: see the note at the top).
AK_INLINE std::uint64_t kmix(std::uint64_t x) {
    x ^= x >> 30;
    x *= kC1;
    x ^= x >> 27;
    x *= kC2;
    x ^= x >> 31;
    return x;
}

// Rendezvous without a key tie-break: mix64 is a bijection, so weight(h, k1) == weight(h, k2) only
// when k1 == k2, and keys of distinct servers (or IPs of a pool) are distinct. For equal keys the
// first position wins, as in _hashing.rendezvous.

// For long lists a new maximum gets rare (probability 1/i at position i), so the branch predicts
// well; for short ones (n < 8, also used for IP sets) it is a coin flip: select without branching.
AK_INLINE std::int32_t argmax_scalar(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    std::uint64_t bw = kmix(h ^ keys[0]);
    std::int32_t best = 0;
    if (n < 8) {
        for (std::int32_t i = 1; i < n; ++i) {  // masks, not branches (GCC turns ?: into jumps)
            const std::uint64_t w = kmix(h ^ keys[i]);
            const std::uint64_t gt = std::uint64_t{0} - static_cast<std::uint64_t>(w > bw);
            bw ^= (bw ^ w) & gt;
            best ^= (best ^ i) & static_cast<std::int32_t>(gt);
        }
        return best;
    }
    for (std::int32_t i = 1; i < n; ++i) {
        const std::uint64_t w = kmix(h ^ keys[i]);
        if (w > bw) {
            bw = w;
            best = i;
        }
    }
    return best;
}

// Lane reduction: the largest weight, the smallest position on equal weights (branch-free).
AK_INLINE std::int32_t reduce_lanes(const std::uint64_t* W, const std::uint64_t* X, int lanes) {
    std::uint64_t bw = W[0], bx = X[0];
    for (int j = 1; j < lanes; ++j) {
        const bool take = W[j] > bw || (W[j] == bw && X[j] < bx);
        const std::uint64_t m = static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(take);
        bw ^= (bw ^ W[j]) & m;
        bx ^= (bx ^ X[j]) & m;
    }
    return static_cast<std::int32_t>(bx);
}

#if AEGISFWD_KERNEL_ISA == 2
// ---- AVX-512 (F, DQ for the native 64-bit multiply vpmullq) ------------------------------------
AK_INLINE __m512i vmix(__m512i x) {
    const __m512i c1 = _mm512_set1_epi64(static_cast<long long>(kC1));
    const __m512i c2 = _mm512_set1_epi64(static_cast<long long>(kC2));
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 30));
    x = _mm512_mullo_epi64(x, c1);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 27));
    x = _mm512_mullo_epi64(x, c2);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
    return x;
}

// Two independent accumulators of 8 lanes each; a lane keeps its first maximum (strict >).
AK_INLINE std::int32_t argmax_keys(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    if (n < 8) {  // one masked vector
        if (n == 1) return 0;
        const auto t = static_cast<__mmask8>((1u << n) - 1u);
        const __m512i w = vmix(_mm512_xor_si512(_mm512_maskz_loadu_epi64(t, static_cast<const void*>(keys)),
                                                _mm512_set1_epi64(static_cast<long long>(h))));
        const std::uint64_t top = _mm512_mask_reduce_max_epu64(t, w);
        const __mmask8 at_top = t & _mm512_cmpeq_epu64_mask(w, _mm512_set1_epi64(static_cast<long long>(top)));
        return static_cast<std::int32_t>(__builtin_ctz(at_top));  // the first position with the top weight
    }
    const __m512i vh = _mm512_set1_epi64(static_cast<long long>(h));
    const __m512i eight = _mm512_set1_epi64(8);
    const __m512i sixteen = _mm512_set1_epi64(16);
    __m512i bi0 = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    __m512i bw0 = vmix(_mm512_xor_si512(_mm512_loadu_si512(static_cast<const void*>(keys)), vh));
    __m512i bw1 = bw0, bi1 = bi0;  // a second copy of positions 0-7 until 8-15 exist: harmless
    std::int32_t i = 8;
    if (n >= 16) {
        bi1 = _mm512_add_epi64(bi0, eight);
        bw1 = vmix(_mm512_xor_si512(_mm512_loadu_si512(static_cast<const void*>(keys + 8)), vh));
        i = 16;
    }
    __m512i idx0 = _mm512_add_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi64(i));
    __m512i idx1 = _mm512_add_epi64(idx0, eight);
    for (; i + 16 <= n; i += 16) {
        const __m512i w0 = vmix(_mm512_xor_si512(_mm512_loadu_si512(static_cast<const void*>(keys + i)), vh));
        const __m512i w1 = vmix(_mm512_xor_si512(_mm512_loadu_si512(static_cast<const void*>(keys + i + 8)), vh));
        const __mmask8 m0 = _mm512_cmpgt_epu64_mask(w0, bw0);
        const __mmask8 m1 = _mm512_cmpgt_epu64_mask(w1, bw1);
        bw0 = _mm512_mask_mov_epi64(bw0, m0, w0);
        bi0 = _mm512_mask_mov_epi64(bi0, m0, idx0);
        bw1 = _mm512_mask_mov_epi64(bw1, m1, w1);
        bi1 = _mm512_mask_mov_epi64(bi1, m1, idx1);
        idx0 = _mm512_add_epi64(idx0, sixteen);
        idx1 = _mm512_add_epi64(idx1, sixteen);
    }
    if (i < n) {  // 1-15 keys left: up to two (masked) vectors
        const std::int32_t r0 = n - i < 8 ? n - i : 8;
        const __mmask8 t0 = static_cast<__mmask8>((1u << r0) - 1u);
        const __m512i w0 = vmix(_mm512_xor_si512(_mm512_maskz_loadu_epi64(t0, static_cast<const void*>(keys + i)), vh));
        const __mmask8 m0 = t0 & _mm512_cmpgt_epu64_mask(w0, bw0);
        bw0 = _mm512_mask_mov_epi64(bw0, m0, w0);
        bi0 = _mm512_mask_mov_epi64(bi0, m0, idx0);
        if (n - i > 8) {
            const __mmask8 t1 = static_cast<__mmask8>((1u << (n - i - 8)) - 1u);
            const __m512i w1 =
                vmix(_mm512_xor_si512(_mm512_maskz_loadu_epi64(t1, static_cast<const void*>(keys + i + 8)), vh));
            const __mmask8 m1 = t1 & _mm512_cmpgt_epu64_mask(w1, bw1);
            bw1 = _mm512_mask_mov_epi64(bw1, m1, w1);
            bi1 = _mm512_mask_mov_epi64(bi1, m1, idx1);
        }
    }
    // Merge the accumulators lane by lane (larger weight; smaller position on a tie), then reduce
    // the lanes without branches: the largest weight, and among the lanes holding it the smallest
    // position (one lane, unless keys repeat).
    const __mmask8 take1 = _mm512_cmpgt_epu64_mask(bw1, bw0) |
                           (_mm512_cmpeq_epu64_mask(bw1, bw0) & _mm512_cmplt_epu64_mask(bi1, bi0));
    bw0 = _mm512_mask_mov_epi64(bw0, take1, bw1);
    bi0 = _mm512_mask_mov_epi64(bi0, take1, bi1);
    const std::uint64_t top = _mm512_reduce_max_epu64(bw0);
    const __mmask8 at_top = _mm512_cmpeq_epu64_mask(bw0, _mm512_set1_epi64(static_cast<long long>(top)));
    return static_cast<std::int32_t>(_mm512_mask_reduce_min_epu64(at_top, bi0));
}

#elif AEGISFWD_KERNEL_ISA == 1
// ---- AVX2: 4 lanes, 64-bit multiply and unsigned compare emulated --------------------------------
AK_INLINE __m256i vmullo(__m256i x, __m256i c_lo, __m256i c_hi) {
    const __m256i lo = _mm256_mul_epu32(x, c_lo);                       // lo(x) * lo(c), 64-bit
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), c_lo),
                                           _mm256_mul_epu32(x, c_hi));  // hi(x)lo(c) + lo(x)hi(c)
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

AK_INLINE __m256i vmix(__m256i x) {
    const __m256i c1l = _mm256_set1_epi64x(static_cast<long long>(kC1 & 0xFFFFFFFFULL));
    const __m256i c1h = _mm256_set1_epi64x(static_cast<long long>(kC1 >> 32));
    const __m256i c2l = _mm256_set1_epi64x(static_cast<long long>(kC2 & 0xFFFFFFFFULL));
    const __m256i c2h = _mm256_set1_epi64x(static_cast<long long>(kC2 >> 32));
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
    x = vmullo(x, c1l, c1h);
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
    x = vmullo(x, c2l, c2h);
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
    return x;
}

AK_INLINE std::int32_t argmax_keys(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    if (n < 24) return argmax_scalar(keys, n, h);  // the emulated multiply pays off on longer lists
    const __m256i vh = _mm256_set1_epi64x(static_cast<long long>(h));
    const __m256i sign = _mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL));
    const __m256i four = _mm256_set1_epi64x(4);
    // Weights are kept biased (sign bit flipped) so that signed compares order them as unsigned.
    __m256i bi = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256i bw = _mm256_xor_si256(
        vmix(_mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys)), vh)), sign);
    __m256i idx = _mm256_setr_epi64x(4, 5, 6, 7);
    std::int32_t i = 4;
    for (; i + 4 <= n; i += 4) {
        const __m256i w = _mm256_xor_si256(
            vmix(_mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i)), vh)), sign);
        const __m256i m = _mm256_cmpgt_epi64(w, bw);
        bw = _mm256_blendv_epi8(bw, w, m);
        bi = _mm256_blendv_epi8(bi, idx, m);
        idx = _mm256_add_epi64(idx, four);
    }
    alignas(32) std::uint64_t W[4], X[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(W), _mm256_xor_si256(bw, sign));
    _mm256_store_si256(reinterpret_cast<__m256i*>(X), bi);
    std::int32_t best = reduce_lanes(W, X, 4);
    std::uint64_t best_w = kmix(h ^ keys[best]);
    for (; i < n; ++i) {  // the (< 4) remaining keys
        const std::uint64_t w = kmix(h ^ keys[i]);
        if (w > best_w) {
            best_w = w;
            best = i;
        }
    }
    return best;
}

#else
// ---- generic ------------------------------------------------------------------------------------
AK_INLINE std::int32_t argmax_keys(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    return argmax_scalar(keys, n, h);
}
#endif

// Does server t hold IP i? (holder ranges sorted and disjoint)
AK_INLINE bool holds(const KernelCtx& K, std::int32_t i, std::int32_t t) {
    std::int32_t lo = K.ip_holder_start[i], hi = K.ip_holder_start[i + 1];
    const std::int32_t* r = K.ip_holder_ranges;
    while (hi - lo > 4) {  // binary search on range starts, then a short scan
        const std::int32_t mid = lo + ((hi - lo) >> 1);
        if (r[2 * mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    for (std::int32_t q = lo; q < hi; ++q)
        if (r[2 * q] <= t && t < r[2 * q + 1]) return true;
    return false;
}

// Rendezvous over the IPs of `set` that server t holds (or all of them when the set says every
// server of the list holds them). -1 only for inconsistent tables.
AK_INLINE std::int32_t pick_ip(const KernelCtx& K, IpSet set, std::int32_t t, std::uint64_t flow) {
    if (set.n == 1) return K.gip[set.begin];
    const std::uint64_t h = kmix(flow ^ kIpSalt);
    if (set.n > 0) return K.gip[set.begin + argmax_keys(K.gip_key + set.begin, set.n, h)];
    std::int32_t best = -1;
    std::uint64_t bw = 0;
    for (std::int32_t q = set.begin; q < set.begin - set.n; ++q) {
        const std::int32_t i = K.gip[q];
        if (!holds(K, i, t)) continue;
        const std::uint64_t w = kmix(h ^ K.gip_key[q]);
        if (best < 0 || w > bw) {
            best = i;
            bw = w;
        }
    }
    return best;
}

AK_INLINE void write_row(const BatchColumns& out, std::size_t r, std::uint8_t tier, std::int32_t server,
                         std::int32_t dc, std::int32_t location, std::int32_t ip, double distance) {
    out.tier[r] = tier;
    out.server[r] = server;
    out.dc[r] = dc;
    out.location[r] = location;
    out.ip[r] = ip;
    out.distance[r] = distance;
}

// The entry of a small layout blob to use from ingress location `loc`: a live list in `loc`
// itself (a local tier), else the live one at the smallest rank (distance, then location index);
// unreachable locations rank INT32_MAX and are never chosen. -1: none.
#if AEGISFWD_KERNEL_ISA == 2
AK_INLINE std::int32_t scan_entries(const std::int32_t* blob, std::int32_t k, std::int32_t loc,
                                    const std::int32_t* rank_row) {
    // One gather of the live entries' ranks; key = 0 for the ingress location, rank + 1 otherwise
    // (kSent when unreachable), packed with the entry index and reduced with one min.
    constexpr std::uint32_t kSent = 1u << 26;
    const auto all = static_cast<__mmask16>((1u << k) - 1u);
    const auto live = static_cast<__mmask16>(all & static_cast<std::uint32_t>(AK_LOAD_RELAXED(blob)));
    const __m512i locs = _mm512_maskz_loadu_epi32(all, static_cast<const void*>(blob + 2));
    __m512i key = _mm512_mask_i32gather_epi32(_mm512_set1_epi32(static_cast<int>(kSent)), live, locs,
                                              static_cast<const void*>(rank_row), 4);
    key = _mm512_add_epi32(_mm512_min_epu32(key, _mm512_set1_epi32(static_cast<int>(kSent - 1))),
                           _mm512_set1_epi32(1));
    key = _mm512_mask_mov_epi32(key, live & _mm512_cmpeq_epi32_mask(locs, _mm512_set1_epi32(loc)),
                                _mm512_setzero_si512());
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i packed = _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), live,
                                                 _mm512_or_si512(_mm512_slli_epi32(key, 5), lane));
    const std::uint32_t best = _mm512_reduce_min_epu32(packed);
    if ((best >> 5) >= kSent) return -1;  // nothing live, or only unreachable locations
    return static_cast<std::int32_t>(best & 31u);
}
#else
AK_INLINE std::int32_t scan_entries(const std::int32_t* blob, std::int32_t k, std::int32_t loc,
                                    const std::int32_t* rank_row) {
    const auto alive = static_cast<std::uint32_t>(AK_LOAD_RELAXED(blob));
    std::int32_t best_q = -1, best_rank = 0x7FFFFFFF;
    for (std::int32_t q = 0; q < k; ++q) {
        if (!(alive >> q & 1u)) continue;
        const std::int32_t lq = blob[2 + q];
        if (lq == loc) return q;
        const std::int32_t rk = rank_row[lq];
        if (rk < best_rank) {
            best_rank = rk;
            best_q = q;
        }
    }
    return best_q;
}
#endif

AK_INLINE const std::uint8_t* pref_of(const std::int32_t* blob, std::int32_t k) {
    return reinterpret_cast<const std::uint8_t*>(blob + 2 + 2 * k);
}

// The entry to use: the precomputed preference when its list is live (almost always), else a scan
// of the live entries.
AK_INLINE std::int32_t choose_entry(const std::int32_t* blob, std::int32_t k, std::int32_t loc,
                                    const std::int32_t* rank_row) {
    const std::uint32_t q = pref_of(blob, k)[loc];
    if (q == 0xFFu) return -1;  // no entry is reachable from loc, live or not
    if (static_cast<std::uint32_t>(AK_LOAD_RELAXED(blob)) >> q & 1u) return static_cast<std::int32_t>(q);
    return scan_entries(blob, k, loc, rank_row);
}

// Row paths inside one chunk.
enum : std::uint8_t { kLocal, kSameDc, kSameLocation, kRemote };

// First position p in [lo, hi) with up[p].server >= x (up-lists are sorted by server; if a torn
// read left one unsorted the result is still inside [lo, hi]).
AK_INLINE std::int32_t lower_bound_server(const UpEntry* up, std::int32_t lo, std::int32_t hi, std::int32_t x) {
    while (lo < hi) {
        const std::int32_t mid = lo + ((hi - lo) >> 1);
        if (AK_LOAD_RELAXED(&up[mid].server) < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Where the ingress server s would sit in list lr's up-list of cnt entries if the list held every
// server of its location, all up: exact for "every server of the location" lists, a good start
// for binary search otherwise. Always inside [0, cnt) (cnt >= 1).
AK_INLINE std::int32_t guess_position(const ListRec& lr, std::int32_t s, std::int32_t cnt) {
    std::int64_t guess = 0;
    if (lr.loc_span > 0) guess = static_cast<std::int64_t>(s - lr.loc_first) * cnt / lr.loc_span;
    guess = guess >= cnt ? cnt - 1 : guess;
    return static_cast<std::int32_t>(guess < 0 ? 0 : guess);
}

// The local tiers from up-list [b, b + cnt) of the ingress location: LOCAL when the ingress server
// is in it, else SAME_DC over the up servers of its DC, else SAME_LOCATION over all. Returns the
// winner's position and sets *path.
AK_INLINE std::int32_t local_choice(const KernelCtx& K, std::int32_t b, std::int32_t cnt, std::int32_t s,
                                    std::int32_t guess, std::uint64_t flow, std::uint8_t* path) {
    const UpEntry* up = K.up + b;
    const std::int32_t at = AK_LOAD_RELAXED(&up[guess].server);
    const std::int32_t p = at == s ? guess
                         : at < s  ? lower_bound_server(up, guess + 1, cnt, s)
                                   : lower_bound_server(up, 0, guess, s);
    if (p < cnt && AK_LOAD_RELAXED(&up[p].server) == s) {
        *path = kLocal;
        return p;
    }
    // The up servers of the ingress DC surround p (the up-list is sorted by server): [lo, end).
    const std::uint64_t h = kmix(flow ^ kServerSalt);
    const ServerRec& sr = K.srv[s];
    const std::int32_t lo = lower_bound_server(up, 0, p, sr.dc_first);
    const std::int32_t end = lower_bound_server(up, p, cnt, sr.dc_end);
    if (lo < end) {
        *path = kSameDc;
        return lo + argmax_keys(K.up_key + b + lo, end - lo, h);
    }
    *path = kSameLocation;
    return argmax_keys(K.up_key + b, cnt, h);
}

AK_INLINE std::uint8_t tier_of(std::uint8_t path) {
    return path == kRemote ? kTierRemote : path == kSameDc ? kTierSameDc : path == kSameLocation ? kTierSameLocation : kTierLocal;
}

// Decides rows [0, n) (n <= kChunk) in stages. Each stage touches one level of tables for every
// row still undecided and prefetches the next level, so that the cache misses of independent rows
// overlap; rows are kept in per-path index lists (small/big layout, local/remote) so that a stage
// loop does not branch on the path of each row.
std::int64_t decide_rows_impl(const KernelCtx& K, const std::int32_t* in_s, const std::int32_t* in_p,
                              const std::uint8_t* in_f, const std::uint64_t* in_flow, std::size_t n,
                              const BatchColumns& out, std::size_t off) {
    const double nan = __builtin_nan("");
    const std::size_t L = static_cast<std::size_t>(K.L);
    std::uint8_t valid[kChunk], small[kChunk], big[kChunk], local[kChunk], remote[kChunk], path[kChunk];
    std::size_t n_valid = 0, n_small = 0, n_big = 0, n_local = 0, n_remote = 0;
    std::int32_t row_s[kChunk], row_g[kChunk], row_loc[kChunk], row_m[kChunk], row_c[kChunk], row_q[kChunk];
    std::int32_t row_b[kChunk], row_cnt[kChunk], row_pos[kChunk], row_guess[kChunk];
    std::int32_t row_la[kChunk], row_lk[kChunk], row_ipb[kChunk], row_ipn[kChunk];  // from GroupRec
    std::int64_t invalid = 0;

    // 1. Validate; fetch the group and ingress server records.
    for (std::size_t r = 0; r < n; ++r) {
        const std::int32_t s = in_s[r], p = in_p[r];
        const std::uint8_t f = in_f[r];
        const bool ok = static_cast<std::uint32_t>(s) < static_cast<std::uint32_t>(K.S) &&
                        static_cast<std::uint32_t>(p) < static_cast<std::uint32_t>(K.P) && (f == 4 || f == 6);
        if (AK_UNLIKELY(!ok)) {
            write_row(out, off + r, kTierInvalid, -1, -1, -1, -1, nan);
            ++invalid;
            continue;
        }
        const std::int32_t g = 2 * p + (f == 6);
        row_s[r] = s;
        row_g[r] = g;
        valid[n_valid++] = static_cast<std::uint8_t>(r);
        AK_PREFETCH(K.grp + g);
        AK_PREFETCH(K.srv + s);
    }
    // 2. Group layout and ingress location: fetch the layout's entries or its answer.
    for (std::size_t i = 0; i < n_valid; ++i) {
        const std::size_t r = valid[i];
        const GroupRec& g = K.grp[row_g[r]];
        const std::int32_t loc = K.srv[row_s[r]].location;
        row_loc[r] = loc;
        row_la[r] = g.layout_a;
        row_lk[r] = g.layout_k;
        row_ipb[r] = g.ip_begin;
        row_ipn[r] = g.ip_n;
        if (g.layout_k == kLayoutNone) {
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
        } else if (g.layout_k == kLayoutBig) {
            big[n_big++] = static_cast<std::uint8_t>(r);
            AK_PREFETCH(K.big_ans + static_cast<std::size_t>(g.layout_a) * L + static_cast<std::size_t>(loc));
        } else {
            small[n_small++] = static_cast<std::uint8_t>(r);
            const std::int32_t* blob = K.lay + g.layout_a;  // alive, k, k locations, k lists, pref
            AK_PREFETCH(blob);
            AK_PREFETCH(blob + 2 * g.layout_k + 1);
            AK_PREFETCH(pref_of(blob, g.layout_k) + loc);
        }
    }
    // 4. Choose the (location, list) to use; fetch the list, its IP set and the distance.
    auto route = [&](std::size_t r) {
        const bool is_local = row_m[r] == row_loc[r];
        if (is_local)
            local[n_local++] = static_cast<std::uint8_t>(r);
        else
            remote[n_remote++] = static_cast<std::uint8_t>(r);
        AK_PREFETCH(K.lists + row_c[r]);
        if (row_ipn[r] < 0) AK_PREFETCH(K.gsub + row_ipb[r] + row_q[r]);
        if (!is_local)
            AK_PREFETCH(K.distance + static_cast<std::size_t>(row_loc[r]) * L + static_cast<std::size_t>(row_m[r]));
    };
    for (std::size_t i = 0; i < n_big; ++i) {
        const std::size_t r = big[i];
        const BigAnswer* a = K.big_ans + static_cast<std::size_t>(row_la[r]) * L + static_cast<std::size_t>(row_loc[r]);
        const std::int32_t c = AK_LOAD_RELAXED(&a->list);
        if (c < 0) {
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            continue;
        }
        row_c[r] = c;
        row_m[r] = AK_LOAD_RELAXED(&a->location);
        row_q[r] = AK_LOAD_RELAXED(&a->entry);
        route(r);
    }
    for (std::size_t i = 0; i < n_small; ++i) {
        const std::size_t r = small[i];
        const std::int32_t loc = row_loc[r];
        const std::int32_t* blob = K.lay + row_la[r];
        const std::int32_t q = choose_entry(blob, row_lk[r], loc, K.nearest_rank + static_cast<std::size_t>(loc) * L);
        if (q < 0) {  // no live list in a reachable location
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            continue;
        }
        row_q[r] = q;
        row_m[r] = blob[2 + q];
        row_c[r] = blob[2 + row_lk[r] + q];
        route(r);
    }
    // 5. Fetch the up-list of the chosen list: for a remote row the keys (its first lines), for a
    //    local row the ingress server's interpolated position (exact when the list holds every
    //    server of the location and all are up).
    for (std::size_t i = 0; i < n_remote; ++i) {
        const std::size_t r = remote[i];
        const ListRec& lr = K.lists[row_c[r]];
        const std::int32_t b = lr.begin;
        const std::int32_t cnt = AK_LOAD_RELAXED(&lr.count);
        row_b[r] = b;
        row_cnt[r] = cnt;
        AK_PREFETCH(K.up_key + b);  // the hardware prefetcher follows the rest
        AK_PREFETCH(K.up_key + b + 8);
        AK_PREFETCH(K.up_key + b + 16);
        AK_PREFETCH(K.up_key + b + 24);
    }
    for (std::size_t i = 0; i < n_local; ++i) {
        const std::size_t r = local[i];
        const ListRec& lr = K.lists[row_c[r]];
        const std::int32_t b = lr.begin;
        const std::int32_t cnt = AK_LOAD_RELAXED(&lr.count);
        row_b[r] = b;
        row_cnt[r] = cnt;
        if (cnt <= 0) continue;  // stage 6 answers it
        const std::int32_t guess = guess_position(lr, row_s[r], cnt);
        row_guess[r] = guess;
        AK_PREFETCH(K.up + b + guess);
    }
    // 6. Rendezvous over the candidates of the rule that applies; fetch the winner's entry and the
    //    IPs it chooses from. A count of 0 can only be read during a concurrent state change (the
    //    chunk is then re-run): answer UNAVAILABLE without touching the list.
    auto ip_set = [&](std::size_t r) {
        const IpSet set = row_ipn[r] >= 0 ? IpSet{row_ipb[r], row_ipn[r]} : K.gsub[row_ipb[r] + row_q[r]];
        row_ipb[r] = set.begin;
        row_ipn[r] = set.n;
        AK_PREFETCH(K.gip + set.begin);
        if (set.n != 1) AK_PREFETCH(K.gip_key + set.begin);
    };
    for (std::size_t i = 0; i < n_remote; ++i) {
        const std::size_t r = remote[i];
        const std::int32_t cnt = row_cnt[r];
        if (AK_UNLIKELY(cnt <= 0)) {
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            path[r] = 0xFF;
            continue;
        }
        const std::uint64_t h = kmix(in_flow[r] ^ kServerSalt);
        const std::int32_t pos = argmax_keys(K.up_key + row_b[r], cnt, h);
        row_pos[r] = pos;
        path[r] = kRemote;
        AK_PREFETCH(K.up + row_b[r] + pos);
        ip_set(r);
    }
    for (std::size_t i = 0; i < n_local; ++i) {
        const std::size_t r = local[i];
        const std::int32_t cnt = row_cnt[r];
        if (AK_UNLIKELY(cnt <= 0)) {
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            path[r] = 0xFF;
            continue;
        }
        const std::int32_t pos = local_choice(K, row_b[r], cnt, row_s[r], row_guess[r], in_flow[r], &path[r]);
        if (path[r] != kLocal) AK_PREFETCH(K.up + row_b[r] + pos);
        row_pos[r] = pos;
        ip_set(r);
    }
    // 7. The winner, its DC and the source IP.
    auto finish = [&](std::size_t r) {
        const std::uint8_t pr = path[r];
        if (pr == 0xFF) return;
        const UpEntry* up = K.up + row_b[r] + row_pos[r];
        const std::int32_t t = AK_LOAD_RELAXED(&up->server);
        const std::int32_t dc = AK_LOAD_RELAXED(&up->dc);
        const std::int32_t ip = pick_ip(K, IpSet{row_ipb[r], row_ipn[r]}, t, in_flow[r]);
        const double dist =
            pr == kRemote ? K.distance[static_cast<std::size_t>(row_loc[r]) * L + static_cast<std::size_t>(row_m[r])]
                          : 0.0;
        write_row(out, off + r, tier_of(pr), t, dc, row_m[r], ip, dist);
    };
    for (std::size_t i = 0; i < n_remote; ++i) finish(remote[i]);
    for (std::size_t i = 0; i < n_local; ++i) finish(local[i]);
    return invalid;
}

// One decision, the same rules as decide_rows_impl without the staging: for a single request the
// chain of dependent loads is the cost, and there is nothing to overlap it with.
void decide_one_impl(const KernelCtx& K, std::int32_t s, std::int32_t p, std::uint8_t f, std::uint64_t flow,
                     DecisionOut& out) {
    const double nan = __builtin_nan("");
    const std::size_t L = static_cast<std::size_t>(K.L);
    auto none = [&](std::uint8_t tier) {
        out.tier = tier;
        out.server = out.dc = out.location = out.ip = -1;
        out.distance = nan;
    };
    if (!(static_cast<std::uint32_t>(s) < static_cast<std::uint32_t>(K.S) &&
          static_cast<std::uint32_t>(p) < static_cast<std::uint32_t>(K.P) && (f == 4 || f == 6)))
        return none(kTierInvalid);
    const GroupRec g = K.grp[2 * p + (f == 6)];
    const std::int32_t loc = K.srv[s].location;
    std::int32_t c, m, q;
    if (g.layout_k == kLayoutNone) return none(kTierUnavailable);
    if (g.layout_k == kLayoutBig) {
        const BigAnswer* a = K.big_ans + static_cast<std::size_t>(g.layout_a) * L + static_cast<std::size_t>(loc);
        c = AK_LOAD_RELAXED(&a->list);
        if (c < 0) return none(kTierUnavailable);
        m = AK_LOAD_RELAXED(&a->location);
        q = AK_LOAD_RELAXED(&a->entry);
    } else {
        const std::int32_t* blob = K.lay + g.layout_a;
        q = choose_entry(blob, g.layout_k, loc, K.nearest_rank + static_cast<std::size_t>(loc) * L);
        if (q < 0) return none(kTierUnavailable);
        m = blob[2 + q];
        c = blob[2 + g.layout_k + q];
    }
    const ListRec& lr = K.lists[c];
    const std::int32_t b = lr.begin;
    const std::int32_t cnt = AK_LOAD_RELAXED(&lr.count);
    if (cnt <= 0) return none(kTierUnavailable);  // only during a concurrent change: re-run
    std::uint8_t path = kRemote;
    const std::int32_t pos = m == loc ? local_choice(K, b, cnt, s, guess_position(lr, s, cnt), flow, &path)
                                      : argmax_keys(K.up_key + b, cnt, kmix(flow ^ kServerSalt));
    const UpEntry* up = K.up + b + pos;
    const std::int32_t t = AK_LOAD_RELAXED(&up->server);
    const IpSet set = g.ip_n >= 0 ? IpSet{g.ip_begin, g.ip_n} : K.gsub[g.ip_begin + q];
    out.tier = tier_of(path);
    out.server = t;
    out.dc = AK_LOAD_RELAXED(&up->dc);
    out.location = m;
    out.ip = pick_ip(K, set, t, flow);
    out.distance = path == kRemote ? K.distance[static_cast<std::size_t>(loc) * L + static_cast<std::size_t>(m)] : 0.0;
}
