// Peak concurrency fold (cpp/include/aegisfwd/concurrency.hpp): a k-way merge of time-ordered runs
// with dense per-key state, so memory is the runs' buffers plus three int64 per key.
#include "aegisfwd/concurrency.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace aegisfwd::concurrency {
namespace {

inline std::int64_t bucket_of(const EventRun& run, std::int64_t value) {
    return run.time_base + (value >> run.key_bits);
}

// How many leading events of `run` have a bucket < limit; checks every one of them (and the first
// one beyond, for the order) so the fold itself cannot go wrong.
std::size_t checked_prefix(const EventRun& run, std::size_t index, std::int64_t limit, std::size_t n_keys) {
    const std::string where = "run " + std::to_string(index);
    if (run.key_bits < 1 || run.key_bits > 62)
        throw std::invalid_argument(where + ": key_bits must be in [1, 62], got " + std::to_string(run.key_bits));
    if (run.sign != 1 && run.sign != -1)
        throw std::invalid_argument(where + ": sign must be +1 or -1, got " + std::to_string(run.sign));
    if (run.size != 0 && run.packed == nullptr) throw std::invalid_argument(where + ": no data");
    const std::int64_t key_mask = (std::int64_t{1} << run.key_bits) - 1;
    // The largest offset whose bucket still fits int64.
    const std::int64_t max_offset = run.time_base >= 0 ? std::numeric_limits<std::int64_t>::max() - run.time_base
                                                       : std::numeric_limits<std::int64_t>::max();
    std::int64_t previous = std::numeric_limits<std::int64_t>::min();
    std::size_t i = 0;
    for (; i < run.size; ++i) {
        const std::int64_t v = run.packed[i];
        if (v < 0) throw std::invalid_argument(where + ": negative packed value at " + std::to_string(i));
        if ((v >> run.key_bits) > max_offset)
            throw std::invalid_argument(where + ": bucket overflows int64 at " + std::to_string(i));
        const std::int64_t bucket = bucket_of(run, v);
        if (bucket < previous)
            throw std::invalid_argument(where + ": not sorted by bucket at " + std::to_string(i));
        previous = bucket;
        if (bucket >= limit) break;
        if (static_cast<std::uint64_t>(v & key_mask) >= n_keys)
            throw std::invalid_argument(where + ": key " + std::to_string(v & key_mask) + " at " + std::to_string(i) +
                                        " is not below the key count " + std::to_string(n_keys));
    }
    return i;
}

}  // namespace

void pack_by_bucket(const std::int64_t* buckets, const std::int64_t* keys, std::size_t n, std::int64_t time_base,
                    unsigned key_bits, std::int64_t* out) {
    if (key_bits < 1 || key_bits > 62)
        throw std::invalid_argument("key_bits must be in [1, 62], got " + std::to_string(key_bits));
    const std::int64_t key_end = std::int64_t{1} << key_bits;
    const std::int64_t offset_end = std::int64_t{1} << (63 - key_bits);
    std::int64_t max_offset = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (keys[i] < 0 || keys[i] >= key_end)
            throw std::invalid_argument("key " + std::to_string(keys[i]) + " at " + std::to_string(i) +
                                        " does not fit " + std::to_string(key_bits) + " bits");
        // buckets[i] - time_base without overflow: compare first.
        if (buckets[i] < time_base || (time_base < 0 && buckets[i] >= offset_end + time_base) ||
            (time_base >= 0 && buckets[i] - time_base >= offset_end))
            throw std::invalid_argument("bucket " + std::to_string(buckets[i]) + " at " + std::to_string(i) +
                                        " is outside [time_base, time_base + 2**(63 - key_bits))");
        max_offset = std::max(max_offset, buckets[i] - time_base);
    }
    for (std::size_t i = 0; i < n; ++i) out[i] = ((buckets[i] - time_base) << key_bits) | keys[i];
    constexpr unsigned kDigitBits = 11;
    constexpr std::size_t kDigits = std::size_t{1} << kDigitBits;
    unsigned passes = 0;
    while (passes * kDigitBits < 64 && (max_offset >> (passes * kDigitBits)) != 0) ++passes;
    if (passes == 0 || n < 2) return;
    std::vector<std::int64_t> scratch(n);
    std::int64_t* src = out;
    std::int64_t* dst = scratch.data();
    std::array<std::size_t, kDigits> count{};
    for (unsigned p = 0; p < passes; ++p) {
        const unsigned shift = key_bits + p * kDigitBits;
        count.fill(0);
        for (std::size_t i = 0; i < n; ++i) ++count[static_cast<std::size_t>(src[i] >> shift) & (kDigits - 1)];
        std::size_t sum = 0;
        for (auto& c : count) {
            const std::size_t c0 = c;
            c = sum;
            sum += c0;
        }
        for (std::size_t i = 0; i < n; ++i) dst[count[static_cast<std::size_t>(src[i] >> shift) & (kDigits - 1)]++] = src[i];
        std::swap(src, dst);
    }
    if (src != out) std::memcpy(out, src, n * sizeof(std::int64_t));
}

namespace {

// Applies every event of `run` at `bucket` from pos[r] on (they are consecutive: runs are sorted).
inline void apply_bucket(const EventRun& run, std::size_t r, std::int64_t bucket, const std::vector<std::size_t>& end,
                         std::vector<std::size_t>& pos, const PeakState& state, std::vector<std::int64_t>& touched) {
    const std::int64_t key_mask = (std::int64_t{1} << run.key_bits) - 1;
    std::size_t i = pos[r];
    for (; i < end[r] && bucket_of(run, run.packed[i]) == bucket; ++i) {
        const std::int64_t key = run.packed[i] & key_mask;
        state.level[key] += run.sign;
        touched.push_back(key);
    }
    pos[r] = i;
}

// After every event of a bucket: raise the peaks of the keys it touched.
inline void raise_peaks(const std::vector<std::int64_t>& touched, std::int64_t bucket, const PeakState& state) {
    for (const std::int64_t key : touched) {
        if (state.level[key] > state.peak[key]) {
            state.peak[key] = state.level[key];
            state.peak_at[key] = bucket;
        }
    }
}

// Bucket by bucket over [first, last], every run at each: O(span x runs). Best when runs are dense
// in time (a log's runs typically all cover its whole window with events in most buckets).
void fold_sweep(const EventRun* runs, const std::vector<std::size_t>& live, std::int64_t first, std::int64_t last,
                const std::vector<std::size_t>& end, std::vector<std::size_t>& pos, const PeakState& state) {
    std::vector<std::int64_t> touched;
    for (std::int64_t bucket = first;; ++bucket) {
        touched.clear();
        for (const std::size_t r : live) apply_bucket(runs[r], r, bucket, end, pos, state, touched);
        raise_peaks(touched, bucket, state);
        if (bucket == last) break;
    }
}

// A min-heap of run heads: O(groups x log runs), whatever the gaps between buckets.
void fold_heap(const EventRun* runs, const std::vector<std::size_t>& live, const std::vector<std::size_t>& end,
               std::vector<std::size_t>& pos, const PeakState& state) {
    using Head = std::pair<std::int64_t, std::size_t>;
    std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
    for (const std::size_t r : live) heads.emplace(bucket_of(runs[r], runs[r].packed[pos[r]]), r);
    std::vector<std::int64_t> touched;
    while (!heads.empty()) {
        const std::int64_t bucket = heads.top().first;
        touched.clear();
        // Every event of this bucket, from every run, before any peak is looked at.
        while (!heads.empty() && heads.top().first == bucket) {
            const std::size_t r = heads.top().second;
            heads.pop();
            apply_bucket(runs[r], r, bucket, end, pos, state, touched);
            if (pos[r] < end[r]) heads.emplace(bucket_of(runs[r], runs[r].packed[pos[r]]), r);
        }
        raise_peaks(touched, bucket, state);
    }
}

}  // namespace

std::size_t fold_runs(const EventRun* runs, std::size_t n_runs, std::int64_t limit, const PeakState& state,
                      std::size_t* consumed, FoldStrategy strategy) {
    if (n_runs != 0 && (runs == nullptr || consumed == nullptr)) throw std::invalid_argument("no runs given");
    if (state.n_keys != 0 && (state.level == nullptr || state.peak == nullptr || state.peak_at == nullptr))
        throw std::invalid_argument("no state arrays given");
    std::vector<std::size_t> end(n_runs);
    for (std::size_t r = 0; r < n_runs; ++r) end[r] = checked_prefix(runs[r], r, limit, state.n_keys);

    std::vector<std::size_t> pos(n_runs, 0);
    std::vector<std::size_t> live;
    std::size_t events = 0;
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
    std::int64_t last = std::numeric_limits<std::int64_t>::min();
    for (std::size_t r = 0; r < n_runs; ++r) {
        if (end[r] == 0) continue;
        live.push_back(r);
        events += end[r];
        first = std::min(first, bucket_of(runs[r], runs[r].packed[0]));
        last = std::max(last, bucket_of(runs[r], runs[r].packed[end[r] - 1]));
    }
    if (!live.empty()) {
        bool sweep = strategy == FoldStrategy::sweep;
        if (strategy == FoldStrategy::automatic) {
            // The sweep visits (span x runs) pairs, the heap about 20 steps per event: sweep when
            // that is cheaper (computed in double: the span may be near 2**63).
            const double span = static_cast<double>(last) - static_cast<double>(first) + 1.0;
            sweep = span * static_cast<double>(live.size()) <= 8.0 * static_cast<double>(events);
        }
        if (sweep)
            fold_sweep(runs, live, first, last, end, pos, state);
        else
            fold_heap(runs, live, end, pos, state);
    }
    std::size_t total = 0;
    for (std::size_t r = 0; r < n_runs; ++r) {
        consumed[r] = pos[r];
        total += pos[r];
    }
    return total;
}

}  // namespace aegisfwd::concurrency
