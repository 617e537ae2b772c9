// Log evaluation helpers (docs/evaluate.md "From a row to a decision"): the ingress rendezvous for
// rows that name only a colo, the flow-key string hash over Arrow string buffers, the dictionary
// compaction of the output columns and the dense ids of the concurrency keys.
//
// Both must equal their Python definitions bit for bit (src/aegisfwd/_ingress.py choose_ingress_py,
// src/aegisfwd/evaluation/_arrow.py string_hash_py); tests pin them. Nothing here knows Python:
// every function checks its inputs and throws std::invalid_argument before it writes anything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aegisfwd/flow_key.hpp"
#include "aegisfwd/isa.hpp"

namespace aegisfwd::logeval {

// For each row i, the up server (state[s] == 0) of [first[i], end[i]) with the largest ingress
// rendezvous weight mix64(ingress_flow_hash(flow[i]) ^ server_key[s]); on equal weights (only
// duplicate keys can tie: mix64 is a bijection) the lower index wins. out[i] = -1 when the range
// is empty or holds no up server. Rows with end <= first are empty; any other row must satisfy
// 0 <= first < end <= n_servers (std::invalid_argument otherwise, before anything is written).
// `threads` = 0: all cores; `isa`: a name for resolve_isa (aegisfwd/isa.hpp): "auto", "generic",
// "avx2" or "avx512" (std::invalid_argument for an unknown one or one this CPU or build lacks).
void choose_ingress(const std::int32_t* first, const std::int32_t* end, const std::uint64_t* flow, std::size_t n,
                    const std::uint64_t* server_key, const std::uint8_t* state, std::size_t n_servers,
                    std::int32_t* out, unsigned threads, std::string_view isa);

// string_hash (aegisfwd/flow_key.hpp) of every value of an Arrow string array given as its
// offsets (n + 1 entries, relative to `data`) and data buffer.
// `valid` (n bytes, nonzero = valid; may be null = all valid): a null value hashes as the empty
// string. nonempty[i] = valid and length > 0. Offsets must be non-decreasing and within
// [0, data_len] (std::invalid_argument otherwise).
void string_hashes(const std::int32_t* offsets, std::size_t n, const std::uint8_t* data, std::size_t data_len,
                   const std::uint8_t* valid, std::uint64_t* hash, std::uint8_t* nonempty);
void string_hashes(const std::int64_t* offsets, std::size_t n, const std::uint8_t* data, std::size_t data_len,
                   const std::uint8_t* valid, std::uint64_t* hash, std::uint8_t* nonempty);

// Drop the dictionary entries no row uses: `indices` (n values in [-1, size); -1 = null) are
// rewritten into `out` as positions in the kept entries, and `kept` receives the old index of each
// kept entry, ascending; returns how many were kept. std::invalid_argument for an index outside
// [-1, size), before anything is written. `kept` must hold `size` entries.
std::size_t compact_indices(const std::int32_t* indices, std::size_t n, std::size_t size, std::int32_t* out,
                            std::int32_t* kept);

// Dense ids (0, 1, 2, ... in order of first appearance) for pairs of 64-bit values: the keys of the
// evaluator's concurrency counts (origin id, egress IP and port). Open addressing; thread-safe (one
// call at a time).
class PairIndex {
public:
    PairIndex();
    PairIndex(const PairIndex&) = delete;
    PairIndex& operator=(const PairIndex&) = delete;
    ~PairIndex();

    std::size_t size() const;
    // ids[i] = id of (a[i], b[i]); a pair not seen before gets the next id, and its row is appended
    // to `fresh` (so `fresh` lists the new ids' first rows, in id order).
    void index(const std::uint64_t* a, const std::uint64_t* b, std::size_t n, std::int64_t* ids,
               std::vector<std::int64_t>& fresh);

private:
    struct Impl;
    Impl* impl_;
};

}  // namespace aegisfwd::logeval
