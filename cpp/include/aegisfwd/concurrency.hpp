// Peak concurrent connections per key from time-ordered runs of connection events
// (docs/evaluate.md "Concurrent connections"). The evaluator sorts each batch of connections into
// runs (in memory, or spilled to disk for long logs) and folds them here, a bounded slice at a time,
// so the peak of every key is exact whatever the log's size and order.
//
// Nothing here knows Python: fold_runs checks its inputs and throws std::invalid_argument before
// it changes any state.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aegisfwd::concurrency {

// One run of events, sorted by bucket (time). Value i packs the bucket (packed[i] >> key_bits) +
// time_base and the key packed[i] & (2**key_bits - 1); every event of a run has the same delta,
// `sign`: +1 (a connection is open from this bucket on) or -1 (it is closed from this bucket on).
// Within one bucket the order of keys is free.
struct EventRun {
    const std::int64_t* packed;
    std::size_t size;
    std::int64_t time_base;
    unsigned key_bits;  // 1..62
    int sign;           // +1 or -1
};

// out[i] = (buckets[i] - time_base) << key_bits | keys[i], ordered by bucket: a stable LSD radix
// sort on the bucket offset (11 bits a pass, as many passes as the offsets' span needs: two for
// spans up to 70 minutes at 1 ms), so a run of a million events sorts in a few milliseconds.
// std::invalid_argument, before anything is written, when key_bits is outside [1, 62], a key is
// outside [0, 2**key_bits) or an offset outside [0, 2**(63 - key_bits)).
void pack_by_bucket(const std::int64_t* buckets, const std::int64_t* keys, std::size_t n, std::int64_t time_base,
                    unsigned key_bits, std::int64_t* out);

// The fold's state between calls, one entry per key: the open connections after the last applied
// bucket, the largest level reached, and the first bucket where it was reached.
struct PeakState {
    std::int64_t* level;
    std::int64_t* peak;
    std::int64_t* peak_at;
    std::size_t n_keys;
};

// Applies, in bucket order, every event of every run whose bucket is < `limit` (runs must begin
// where the previous call stopped), and after *all* events of a bucket (from every run) raises
// peak[k] to level[k], with peak_at[k] = that bucket, for every key whose level now exceeds its
// peak: so a connection that closes and another that opens in one bucket never count as two, and
// peak_at is the first bucket at the peak. consumed[r] receives how many events of run r were
// applied (a prefix). Returns the total. std::invalid_argument, before anything changes, when a
// run is not sorted by bucket, holds a negative value or a key >= n_keys, has key_bits outside
// [1, 62], a sign other than +1/-1, or a bucket that overflows int64.
//
// Two ways to walk the buckets, with the same result: `sweep` visits every bucket of the span at
// every run (O(span x runs): fast when runs are dense in time, as a log's are), `heap` keeps a
// min-heap of run heads (O(events x log runs), whatever the gaps); `automatic` picks the sweep
// when span x runs <= 8 x events.
enum class FoldStrategy { automatic, sweep, heap };

std::size_t fold_runs(const EventRun* runs, std::size_t n_runs, std::int64_t limit, const PeakState& state,
                      std::size_t* consumed, FoldStrategy strategy = FoldStrategy::automatic);

}  // namespace aegisfwd::concurrency
