// Log evaluation helpers (cpp/include/aegisfwd/logeval.hpp). Compiled for the baseline instruction
// set: the per-row ingress rendezvous runs in the kernel of the resolved instruction set
// (KernelTable::ingress_rows, cpp/src/ingress_impl.hpp in kernel_<isa>.cpp).
#include "aegisfwd/logeval.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "aegisfwd/hashing.hpp"
#include "aegisfwd/kernel.hpp"

namespace aegisfwd::logeval {
namespace {

using detail::IngressRange;

// The distinct server ranges of a call and their up servers (detail::IngressCandidates owns nothing).
struct Candidates {
    std::vector<IngressRange> ranges;
    std::vector<std::uint64_t> keys;
    std::vector<std::int32_t> index;
};

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
        hash[i] = string_hash(p, len);
        nonempty[i] = len > 0 ? 1 : 0;
    }
}

}  // namespace

void choose_ingress(const std::int32_t* first, const std::int32_t* end, const std::uint64_t* flow, std::size_t n,
                    const std::uint64_t* server_key, const std::uint8_t* state, std::size_t n_servers,
                    std::int32_t* out, unsigned threads, std::string_view isa) {
    const detail::IngressRowsFn rows = detail::kernel_table(resolve_isa(isa)).ingress_rows;
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
            IngressRange R{lo, hi, head[lo], static_cast<std::int32_t>(c.keys.size()), 0};
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
    const detail::IngressCandidates cand{c.ranges.data(), c.keys.data(), c.index.data()};
    parallel_rows(n, threads, [&](std::size_t a, std::size_t b) { rows(flow, rid.data(), a, b, cand, out); });
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

}  // namespace aegisfwd::logeval
