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

AK_INLINE bool outranks(std::uint64_t w, std::uint64_t k, std::uint64_t bw, std::uint64_t bk) {
    return w > bw || (w == bw && k > bk);
}

// Scalar rendezvous from position `from`, continuing a running best (bw, bk, best).
AK_INLINE std::int32_t argmax_tail(const std::uint64_t* keys, std::int32_t from, std::int32_t n, std::uint64_t h,
                                   std::uint64_t bw, std::uint64_t bk, std::int32_t best) {
    for (std::int32_t i = from; i < n; ++i) {
        const std::uint64_t k = keys[i];
        const std::uint64_t w = kmix(h ^ k);
        if (outranks(w, k, bw, bk)) {
            bw = w;
            bk = k;
            best = i;
        }
    }
    return best;
}

AK_INLINE std::int32_t argmax_scalar(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    const std::uint64_t k0 = keys[0];
    return argmax_tail(keys, 1, n, h, kmix(h ^ k0), k0, 0);
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

AK_INLINE std::int32_t argmax_keys(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    if (n < 4) return argmax_scalar(keys, n, h);
    const __m512i vh = _mm512_set1_epi64(static_cast<long long>(h));
    // Every lane starts on element 0 (re-visiting it is harmless: it does not outrank itself).
    const std::uint64_t k0 = keys[0];
    __m512i bk = _mm512_set1_epi64(static_cast<long long>(k0));
    __m512i bw = _mm512_set1_epi64(static_cast<long long>(kmix(h ^ k0)));
    __m512i bi = _mm512_setzero_si512();
    __m512i idx = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i eight = _mm512_set1_epi64(8);
    std::int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512i k = _mm512_loadu_si512(static_cast<const void*>(keys + i));
        const __m512i w = vmix(_mm512_xor_si512(k, vh));
        const __mmask8 m = _mm512_cmpgt_epu64_mask(w, bw) |
                           (_mm512_cmpeq_epu64_mask(w, bw) & _mm512_cmpgt_epu64_mask(k, bk));
        bw = _mm512_mask_mov_epi64(bw, m, w);
        bk = _mm512_mask_mov_epi64(bk, m, k);
        bi = _mm512_mask_mov_epi64(bi, m, idx);
        idx = _mm512_add_epi64(idx, eight);
    }
    if (i < n) {
        const __mmask8 tail = static_cast<__mmask8>((1u << (n - i)) - 1u);
        const __m512i k = _mm512_maskz_loadu_epi64(tail, static_cast<const void*>(keys + i));
        const __m512i w = vmix(_mm512_xor_si512(k, vh));
        const __mmask8 m = tail & (_mm512_cmpgt_epu64_mask(w, bw) |
                                   (_mm512_cmpeq_epu64_mask(w, bw) & _mm512_cmpgt_epu64_mask(k, bk)));
        bw = _mm512_mask_mov_epi64(bw, m, w);
        bk = _mm512_mask_mov_epi64(bk, m, k);
        bi = _mm512_mask_mov_epi64(bi, m, idx);
    }
    alignas(64) std::uint64_t W[8], K[8], X[8];
    _mm512_store_si512(static_cast<void*>(W), bw);
    _mm512_store_si512(static_cast<void*>(K), bk);
    _mm512_store_si512(static_cast<void*>(X), bi);
    int lane = 0;
    for (int j = 1; j < 8; ++j)
        if (outranks(W[j], K[j], W[lane], K[lane])) lane = j;
    return static_cast<std::int32_t>(X[lane]);
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
    if (n < 8) return argmax_scalar(keys, n, h);
    const __m256i vh = _mm256_set1_epi64x(static_cast<long long>(h));
    const __m256i sign = _mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL));
    const std::uint64_t k0 = keys[0];
    // Keep biased (sign-flipped) copies so that signed compares order them as unsigned.
    __m256i bk = _mm256_set1_epi64x(static_cast<long long>(k0 ^ 0x8000000000000000ULL));
    __m256i bw = _mm256_set1_epi64x(static_cast<long long>(kmix(h ^ k0) ^ 0x8000000000000000ULL));
    __m256i bi = _mm256_setzero_si256();
    __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i four = _mm256_set1_epi64x(4);
    std::int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256i kr = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i));
        const __m256i w = _mm256_xor_si256(vmix(_mm256_xor_si256(kr, vh)), sign);
        const __m256i k = _mm256_xor_si256(kr, sign);
        const __m256i m = _mm256_or_si256(
            _mm256_cmpgt_epi64(w, bw), _mm256_and_si256(_mm256_cmpeq_epi64(w, bw), _mm256_cmpgt_epi64(k, bk)));
        bw = _mm256_blendv_epi8(bw, w, m);
        bk = _mm256_blendv_epi8(bk, k, m);
        bi = _mm256_blendv_epi8(bi, idx, m);
        idx = _mm256_add_epi64(idx, four);
    }
    alignas(32) std::uint64_t W[4], K[4], X[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(W), bw);
    _mm256_store_si256(reinterpret_cast<__m256i*>(K), bk);
    _mm256_store_si256(reinterpret_cast<__m256i*>(X), bi);
    for (int j = 0; j < 4; ++j) {  // undo the bias before comparing as unsigned
        W[j] ^= 0x8000000000000000ULL;
        K[j] ^= 0x8000000000000000ULL;
    }
    int lane = 0;
    for (int j = 1; j < 4; ++j)
        if (outranks(W[j], K[j], W[lane], K[lane])) lane = j;
    // Finish the (< 4) remaining keys in scalar code.
    return argmax_tail(keys, i, n, h, W[lane], K[lane], static_cast<std::int32_t>(X[lane]));
}

#else
// ---- generic ------------------------------------------------------------------------------------
AK_INLINE std::int32_t argmax_keys(const std::uint64_t* keys, std::int32_t n, std::uint64_t h) {
    return argmax_scalar(keys, n, h);
}
#endif

// First position p in [lo, hi) with v[p] >= x (v ascending; if a torn read left it unsorted the
// result is still inside [lo, hi]).
AK_INLINE std::int32_t lower_bound_i32(const std::int32_t* v, std::int32_t lo, std::int32_t hi, std::int32_t x) {
    while (lo < hi) {
        const std::int32_t mid = lo + ((hi - lo) >> 1);
        if (AK_LOAD_RELAXED(v + mid) < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

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

// The source IP for egress server t of group record g; -1 only for inconsistent tables.
AK_INLINE std::int32_t pick_ip(const KernelCtx& K, const GroupRec& g, std::int32_t t, std::uint64_t flow) {
    if (g.ip_n == 1) return K.gip[g.ip_begin];
    const std::uint64_t h = kmix(flow ^ kIpSalt);
    if (g.ip_n > 0) return K.gip[g.ip_begin + argmax_keys(K.gip_key + g.ip_begin, g.ip_n, h)];
    std::int32_t best = -1;
    std::uint64_t bw = 0, bk = 0;
    const std::int32_t n = -g.ip_n;
    for (std::int32_t q = 0; q < n; ++q) {
        const std::int32_t i = K.gip[g.ip_begin + q];
        if (!holds(K, i, t)) continue;
        const std::uint64_t k = K.gip_key[g.ip_begin + q];
        const std::uint64_t w = kmix(h ^ k);
        if (best < 0 || outranks(w, k, bw, bk)) {
            best = i;
            bw = w;
            bk = k;
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

// Stages of a row inside one chunk.
enum : std::uint8_t { kDone = 0, kBig = 1, kSmall = 2, kLocal = 3, kRemote = 4 };

std::int64_t decide_rows_impl(const KernelCtx& K, const std::int32_t* in_s, const std::int32_t* in_p,
                              const std::uint8_t* in_f, const std::uint64_t* in_flow, std::size_t n,
                              const BatchColumns& out, std::size_t off) {
    const double nan = __builtin_nan("");
    const std::int32_t L = K.L;
    std::uint8_t stage[kChunk];
    std::int32_t row_s[kChunk], row_g[kChunk], row_loc[kChunk], row_m[kChunk], row_c[kChunk];
    std::int64_t invalid = 0;

    // 1. Validate; fetch the group and ingress server records.
    for (std::size_t r = 0; r < n; ++r) {
        const std::int32_t s = in_s[r], p = in_p[r];
        const std::uint8_t f = in_f[r];
        const bool ok = static_cast<std::uint32_t>(s) < static_cast<std::uint32_t>(K.S) &&
                        static_cast<std::uint32_t>(p) < static_cast<std::uint32_t>(K.P) && (f == 4 || f == 6);
        if (AK_UNLIKELY(!ok)) {
            write_row(out, off + r, kTierInvalid, -1, -1, -1, -1, nan);
            stage[r] = kDone;
            ++invalid;
            continue;
        }
        const std::int32_t g = 2 * p + (f == 6);
        row_s[r] = s;
        row_g[r] = g;
        stage[r] = kSmall;
        AK_PREFETCH(K.grp + g);
        AK_PREFETCH(K.srv + s);
    }
    // 2. Group layout and ingress location: fetch the layout's entries or its precomputed answer.
    for (std::size_t r = 0; r < n; ++r) {
        if (stage[r] == kDone) continue;
        const GroupRec& g = K.grp[row_g[r]];
        const std::int32_t loc = K.srv[row_s[r]].location;
        row_loc[r] = loc;
        if (g.layout_k == kLayoutNone) {
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            stage[r] = kDone;
        } else if (g.layout_k == kLayoutBig) {
            stage[r] = kBig;
            AK_PREFETCH(K.big_ans + static_cast<std::size_t>(g.layout_a) * static_cast<std::size_t>(L) + loc);
        } else {
            AK_PREFETCH(K.entries + g.layout_a);
            AK_PREFETCH(K.entries + g.layout_a + g.layout_k - 1);
        }
    }
    // 3. Fetch the lists (and distance ranks) the answer depends on.
    for (std::size_t r = 0; r < n; ++r) {
        if (stage[r] == kDone) continue;
        const GroupRec& g = K.grp[row_g[r]];
        if (stage[r] == kBig) {
            const std::uint64_t a = AK_LOAD_RELAXED(
                K.big_ans + static_cast<std::size_t>(g.layout_a) * static_cast<std::size_t>(L) + row_loc[r]);
            const std::int32_t c = static_cast<std::int32_t>(static_cast<std::uint32_t>(a));
            row_c[r] = c;
            row_m[r] = static_cast<std::int32_t>(a >> 32);
            if (c >= 0) AK_PREFETCH(K.lists + c);
        } else {
            const LayoutEntry* e = K.entries + g.layout_a;
            const std::int32_t* rank_row = K.nearest_rank + static_cast<std::size_t>(row_loc[r]) * static_cast<std::size_t>(L);
            for (std::int32_t q = 0; q < g.layout_k; ++q) {
                AK_PREFETCH(K.lists + e[q].list);
                AK_PREFETCH(rank_row + e[q].location);
            }
        }
    }
    // 4. Resolve (location, list) to use; fetch its up-list.
    for (std::size_t r = 0; r < n; ++r) {
        if (stage[r] == kDone) continue;
        const std::int32_t loc = row_loc[r];
        std::int32_t c, m;
        if (stage[r] == kBig) {
            c = row_c[r];
            m = row_m[r];
            if (c < 0) m = -1;
        } else {
            const GroupRec& g = K.grp[row_g[r]];
            const LayoutEntry* e = K.entries + g.layout_a;
            const std::int32_t* rank_row = K.nearest_rank + static_cast<std::size_t>(loc) * static_cast<std::size_t>(L);
            c = -1;
            m = -1;
            std::int32_t best_rank = 0x7FFFFFFF;
            for (std::int32_t q = 0; q < g.layout_k; ++q) {
                const std::int32_t lq = e[q].location, cq = e[q].list;
                if (AK_LOAD_RELAXED(&K.lists[cq].count) <= 0) continue;
                if (lq == loc) {  // a live list in the ingress location: a local tier
                    c = cq;
                    m = lq;
                    break;
                }
                const std::int32_t rk = rank_row[lq];  // INT32_MAX when unreachable
                if (rk < best_rank) {
                    best_rank = rk;
                    c = cq;
                    m = lq;
                }
            }
        }
        if (c < 0) {
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            stage[r] = kDone;
            continue;
        }
        row_c[r] = c;
        row_m[r] = m;
        const std::int32_t b = K.lists[c].begin;
        AK_PREFETCH(K.up_key + b);
        AK_PREFETCH(K.up_key + b + 8);
        if (m == loc) {
            stage[r] = kLocal;
            AK_PREFETCH(K.up_srv + b);
        } else {
            stage[r] = kRemote;
            AK_PREFETCH(K.up_key + b + 16);
            AK_PREFETCH(K.up_key + b + 24);
            AK_PREFETCH(K.distance + static_cast<std::size_t>(loc) * static_cast<std::size_t>(L) + m);
        }
    }
    // 5. Rendezvous over the candidates of the applicable rule; then the source IP.
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint8_t st = stage[r];
        if (st == kDone) continue;
        const std::int32_t c = row_c[r];
        const std::int32_t b = K.lists[c].begin;
        const std::int32_t cnt = AK_LOAD_RELAXED(&K.lists[c].count);
        const std::uint64_t flow = in_flow[r];
        const std::uint64_t h = kmix(flow ^ kServerSalt);
        const std::int32_t s = row_s[r];
        const std::int32_t loc = row_loc[r];
        const GroupRec& g = K.grp[row_g[r]];
        if (AK_UNLIKELY(cnt <= 0)) {  // only under a concurrent change: the chunk is re-run
            write_row(out, off + r, kTierUnavailable, -1, -1, -1, -1, nan);
            continue;
        }
        std::uint8_t tier;
        std::int32_t t, dc;
        double dist = 0.0;
        if (st == kLocal) {
            const ServerRec& sr = K.srv[s];
            const std::int32_t* us = K.up_srv + b;
            const std::int32_t lo = lower_bound_i32(us, 0, cnt, sr.dc_first);
            const std::int32_t hi = lower_bound_i32(us, lo, cnt, sr.dc_end);
            if (lo < hi) {
                const std::int32_t ps = lower_bound_i32(us, lo, hi, s);
                if (ps < hi && AK_LOAD_RELAXED(us + ps) == s) {
                    tier = kTierLocal;
                    t = s;
                } else {
                    tier = kTierSameDc;
                    t = AK_LOAD_RELAXED(us + lo + argmax_keys(K.up_key + b + lo, hi - lo, h));
                }
                dc = sr.dc;
            } else {
                tier = kTierSameLocation;
                t = AK_LOAD_RELAXED(us + argmax_keys(K.up_key + b, cnt, h));
                dc = K.srv[t].dc;
            }
        } else {
            tier = kTierRemote;
            t = AK_LOAD_RELAXED(K.up_srv + b + argmax_keys(K.up_key + b, cnt, h));
            dc = K.srv[t].dc;
            dist = K.distance[static_cast<std::size_t>(loc) * static_cast<std::size_t>(L) + row_m[r]];
        }
        write_row(out, off + r, tier, t, dc, row_m[r], pick_ip(K, g, t, flow), dist);
    }
    return invalid;
}
