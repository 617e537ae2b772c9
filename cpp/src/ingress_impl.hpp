// The ingress-rendezvous kernel of the log evaluation (logeval.cpp, choose_ingress), compiled once
// per instruction set next to the decision kernel.
//
// kernel_<isa>.cpp includes this file after kernel_impl.hpp, inside the same anonymous namespace
// (AEGISFWD_KERNEL_ISA, kmix, AK_INLINE come from there): every helper has internal linkage and,
// as in kernel_impl.hpp, no std:: template is used, so no ISA-specific copy of a function can be
// picked by the linker for code built for another instruction set.
//
// Rows [a, b) of a call: rid[i] is the candidate range of row i (-1: none), whose up servers are
// keys/index[R.begin, R.begin + R.count) in ascending server order (count >= 1). out[i] = the server
// with the largest weight mix64(ingress_flow_hash(flow[i]) ^ key); among equal weights the lowest
// position, so the lowest index (only equal keys can tie: mix64 is a bijection). That is the rule
// of the Python definition (src/aegisfwd/_ingress.py), which the tests hold every ISA to.

constexpr std::uint64_t kIngressSalt = 0x165667B19E3779F9ULL;  // docs/hashing.md, ingress_flow_hash

AK_INLINE std::uint64_t kingress_hash(std::uint64_t flow) { return kmix(flow ^ kIngressSalt); }

#if AEGISFWD_KERNEL_ISA == 2
// ---- AVX-512: eight candidates per vector ---------------------------------------------------------
// weight(h, key) of eight keys (lanes outside `k` load 0).
AK_INLINE __m512i ingress_weights512(__m512i hv, __mmask8 k, const std::uint64_t* p) {
    return vmix(_mm512_xor_si512(hv, _mm512_maskz_loadu_epi64(k, p)));
}

AK_INLINE __mmask8 ingress_lanes512(std::int32_t rem) {
    return rem >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << rem) - 1u);
}

// Two independent running maxima (even and odd vectors) so that the compare-and-select chain does
// not limit the loop. Per lane the best weight and its position; lanes past the list are masked.
AK_INLINE void ingress_rows_impl(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a, std::size_t b,
                                 const IngressCandidates& c, std::int32_t* out) {
    const IngressRange* ranges = c.ranges;
    const std::uint64_t* keys = c.keys;
    const std::int32_t* index = c.index;
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i none = _mm512_set1_epi64(-1);  // position "none": the largest unsigned value
    const __m512i eight = _mm512_set1_epi64(8);
    for (std::size_t i = a; i < b; ++i) {
        const std::int32_t r = rid[i];
        if (r < 0) {
            out[i] = -1;
            continue;
        }
        const IngressRange& R = ranges[r];
        const std::int32_t m = R.count;
        const std::uint64_t* K = keys + R.begin;
        if (m == 1) {
            out[i] = index[R.begin];
            continue;
        }
        const __m512i hv = _mm512_set1_epi64(static_cast<long long>(kingress_hash(flow[i])));
        const __mmask8 k0 = ingress_lanes512(m);
        __m512i bw_a = _mm512_maskz_mov_epi64(k0, ingress_weights512(hv, k0, K));
        __m512i bp_a = _mm512_mask_mov_epi64(none, k0, lane);
        __m512i bw_b = _mm512_setzero_si512();
        __m512i bp_b = none;
        __m512i pos = _mm512_add_epi64(lane, eight);
        std::int32_t j = 8;
        for (; j + 8 < m; j += 16) {
            const __mmask8 kb = 0xFF;  // j + 8 < m: a full vector
            const __m512i wb = ingress_weights512(hv, kb, K + j);
            const __mmask8 gb = _mm512_cmpgt_epu64_mask(wb, bw_b);
            bw_b = _mm512_mask_mov_epi64(bw_b, gb, wb);
            bp_b = _mm512_mask_mov_epi64(bp_b, gb, pos);
            pos = _mm512_add_epi64(pos, eight);
            const __mmask8 ka = ingress_lanes512(m - j - 8);
            const __m512i wa = ingress_weights512(hv, ka, K + j + 8);
            const __mmask8 ga = _mm512_mask_cmpgt_epu64_mask(ka, wa, bw_a);
            bw_a = _mm512_mask_mov_epi64(bw_a, ga, wa);
            bp_a = _mm512_mask_mov_epi64(bp_a, ga, pos);
            pos = _mm512_add_epi64(pos, eight);
        }
        if (j < m) {
            const __mmask8 kb = ingress_lanes512(m - j);
            const __m512i wb = ingress_weights512(hv, kb, K + j);
            const __mmask8 gb = _mm512_mask_cmpgt_epu64_mask(kb, wb, bw_b);
            bw_b = _mm512_mask_mov_epi64(bw_b, gb, wb);
            bp_b = _mm512_mask_mov_epi64(bp_b, gb, pos);
        }
        // Lanes that never saw a candidate hold weight 0 and position "none": if 0 is the largest
        // weight, a real candidate with weight 0 has a smaller position, so it still wins.
        const std::uint64_t wa_max = _mm512_reduce_max_epu64(bw_a);
        const std::uint64_t wb_max = _mm512_reduce_max_epu64(bw_b);
        const __m512i wv = _mm512_set1_epi64(static_cast<long long>(wa_max > wb_max ? wa_max : wb_max));
        const std::uint64_t pa =
            _mm512_reduce_min_epu64(_mm512_mask_mov_epi64(none, _mm512_cmpeq_epu64_mask(bw_a, wv), bp_a));
        const std::uint64_t pb =
            _mm512_reduce_min_epu64(_mm512_mask_mov_epi64(none, _mm512_cmpeq_epu64_mask(bw_b, wv), bp_b));
        out[i] = index[R.begin + static_cast<std::int32_t>(pa < pb ? pa : pb)];
    }
}

#elif AEGISFWD_KERNEL_ISA == 1
// ---- AVX2: four candidates per vector -------------------------------------------------------------
// weight(h, key) of four keys with its sign bit flipped, so that signed 64-bit compares
// (_mm256_cmpgt_epi64, AVX2 has no unsigned one) order weights as unsigned.
AK_INLINE __m256i ingress_weights256(__m256i hv, __m256i x) {
    const __m256i sign = _mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL));
    return _mm256_xor_si256(vmix(_mm256_xor_si256(x, hv)), sign);
}

// Below this many candidates the scalar argmax (kernel_impl.hpp) is faster: AVX2 has no 64-bit
// multiply, and the decision kernel's argmax_keys switches at the same length.
constexpr std::int32_t kIngressAvx2MinVector = 24;

// Two independent running maxima (even and odd vectors) as in the AVX-512 kernel. Per lane the
// best (biased) weight and its position; only the last vector of a list can be partial: it is read
// with a masked load and its lanes past the list never update.
AK_INLINE void ingress_rows_impl(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a, std::size_t b,
                                 const IngressCandidates& c, std::int32_t* out) {
    const IngressRange* ranges = c.ranges;
    const std::uint64_t* keys = c.keys;
    const std::int32_t* index = c.index;
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
        const IngressRange& R = ranges[r];
        const std::int32_t m = R.count;
        const std::uint64_t* K = keys + R.begin;
        if (m == 1) {
            out[i] = index[R.begin];
            continue;
        }
        if (m < kIngressAvx2MinVector) {  // the emulated multiply pays off on longer lists only
            out[i] = index[R.begin + argmax_scalar(K, m, kingress_hash(flow[i]))];
            continue;
        }
        const __m256i hv = _mm256_set1_epi64x(static_cast<long long>(kingress_hash(flow[i])));
        // All-ones in the lanes l < min(m, 4): the first vector may be the only, partial one.
        const __m256i k0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(m), lane);
        const __m256i w0 = ingress_weights256(hv, _mm256_maskload_epi64(reinterpret_cast<const long long*>(K), k0));
        __m256i bw_a = _mm256_blendv_epi8(wmin, w0, k0);
        __m256i bp_a = _mm256_blendv_epi8(none, lane, k0);
        __m256i bw_b = wmin;
        __m256i bp_b = none;
        __m256i pos = _mm256_add_epi64(lane, four);
        std::int32_t j = 4;
        for (; j + 8 <= m; j += 8) {  // two full vectors
            const __m256i wb = ingress_weights256(hv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + j)));
            const __m256i gb = _mm256_cmpgt_epi64(wb, bw_b);
            bw_b = _mm256_blendv_epi8(bw_b, wb, gb);
            bp_b = _mm256_blendv_epi8(bp_b, pos, gb);
            pos = _mm256_add_epi64(pos, four);
            const __m256i wa = ingress_weights256(hv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + j + 4)));
            const __m256i ga = _mm256_cmpgt_epi64(wa, bw_a);
            bw_a = _mm256_blendv_epi8(bw_a, wa, ga);
            bp_a = _mm256_blendv_epi8(bp_a, pos, ga);
            pos = _mm256_add_epi64(pos, four);
        }
        if (j + 4 <= m) {  // one more full vector
            const __m256i wb = ingress_weights256(hv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + j)));
            const __m256i gb = _mm256_cmpgt_epi64(wb, bw_b);
            bw_b = _mm256_blendv_epi8(bw_b, wb, gb);
            bp_b = _mm256_blendv_epi8(bp_b, pos, gb);
            pos = _mm256_add_epi64(pos, four);
            j += 4;
        }
        if (j < m) {  // 1-3 keys left: masked load, lanes past the list never update
            const __m256i kt = _mm256_cmpgt_epi64(_mm256_set1_epi64x(m - j), lane);
            const __m256i wt =
                ingress_weights256(hv, _mm256_maskload_epi64(reinterpret_cast<const long long*>(K + j), kt));
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

#else
// ---- generic ----------------------------------------------------------------------------------------
// Only a strictly larger weight replaces the best, so among equal weights the first (lowest
// position) wins.
AK_INLINE void ingress_rows_impl(const std::uint64_t* flow, const std::int32_t* rid, std::size_t a, std::size_t b,
                                 const IngressCandidates& c, std::int32_t* out) {
    for (std::size_t i = a; i < b; ++i) {
        const std::int32_t r = rid[i];
        if (r < 0) {
            out[i] = -1;
            continue;
        }
        const IngressRange& R = c.ranges[r];
        const std::uint64_t* K = c.keys + R.begin;
        const std::uint64_t h = kingress_hash(flow[i]);
        std::uint64_t best_w = kmix(h ^ K[0]);
        std::int32_t best = 0;
        for (std::int32_t j = 1; j < R.count; ++j) {
            const std::uint64_t w = kmix(h ^ K[j]);
            if (w > best_w) {
                best_w = w;
                best = j;
            }
        }
        out[i] = c.index[R.begin + best];
    }
}
#endif
