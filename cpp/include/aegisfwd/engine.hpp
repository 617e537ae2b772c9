// The decision engine (docs/decision.md, "The chain"): LOCAL -> SAME_DC -> SAME_LOCATION -> REMOTE ->
// UNAVAILABLE, exact rendezvous choice of server and IP (docs/hashing.md), live server states.
// The algorithm, the derived structures and the concurrency mechanism are in docs/engine.md.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "aegisfwd/kernel.hpp"
#include "aegisfwd/tables.hpp"

namespace aegisfwd {

namespace detail {
// Allocator for the engine's large tables: 2 MiB-aligned and advised as transparent huge pages
// (Linux), since decisions read them at random and TLB misses are a large part of the cost.
void* huge_allocate(std::size_t bytes);
void huge_deallocate(void* p, std::size_t bytes) noexcept;

template <class T>
struct HugeAllocator {
    using value_type = T;
    HugeAllocator() noexcept = default;
    template <class U>
    HugeAllocator(const HugeAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(huge_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { huge_deallocate(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const HugeAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const HugeAllocator<U>&) const noexcept { return false; }
};
template <class T>
using huge_vector = std::vector<T, HugeAllocator<T>>;
}  // namespace detail

inline constexpr std::uint8_t kStateUp = 0;
inline constexpr std::uint8_t kStateDraining = 1;
inline constexpr std::uint8_t kStateDown = 2;

struct EngineStats {
    double build_ms = 0;            // construction time (validation + derived indexes)
    std::size_t derived_bytes = 0;  // memory of the derived indexes and mutable state
    std::int32_t small_layouts = 0;
    std::int32_t big_layouts = 0;
    std::int32_t nonuniform_groups = 0;  // groups whose IPs have different holders
    std::int32_t checked_entries = 0;    // (group, location) pairs whose IP choice checks the server
};

// Kernels this build can run on this CPU, best last: {"generic", "avx2", "avx512"} or a prefix.
std::vector<std::string> available_isas();

class Engine {
public:
    // Validates `tables` (std::invalid_argument naming the array on any inconsistency) and builds
    // the derived indexes. The arrays must outlive the engine; they are never written.
    // `states` (S values 0/1/2) overrides server_initial_state when given. `isa`: "auto" (the best
    // kernel the CPU runs), "generic", "avx2" or "avx512" (std::invalid_argument when the CPU or the
    // build lacks it).
    explicit Engine(const TablesView& tables, const std::uint8_t* states = nullptr, std::size_t n_states = 0,
                    const std::string& isa = "auto");
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    const TableCounts& counts() const noexcept { return counts_; }
    const EngineStats& stats() const noexcept { return stats_; }
    const char* isa() const noexcept { return isa_name_; }

    // ---- decisions: thread-safe, also concurrently with the state setters ---------------------
    // Out-of-range server/pool or a family other than 4/6 gives tier INVALID (255), -1s, NaN.
    void decide(std::int32_t server, std::int32_t pool, std::uint8_t family, std::uint64_t flow,
                DecisionOut& out) const noexcept;
    // Rows [0, n) on the calling thread; returns the number of INVALID rows.
    std::int64_t decide_range(const std::int32_t* server, const std::int32_t* pool, const std::uint8_t* family,
                              const std::uint64_t* flow, std::size_t n, const BatchColumns& out,
                              std::size_t out_offset = 0) const noexcept;
    // Rows [0, n) on `threads` threads (0: all hardware threads; small batches use fewer).
    std::int64_t decide_batch(const std::int32_t* server, const std::int32_t* pool, const std::uint8_t* family,
                              const std::uint64_t* flow, std::size_t n, const BatchColumns& out,
                              unsigned threads = 0) const;

    // ---- live state -------------------------------------------------------------------------------
    // Servers [first, end) get `state`; std::out_of_range / std::invalid_argument on bad input.
    void set_state(std::int32_t first, std::int32_t end, std::uint8_t state);
    // Every server's state at once (n must be S).
    void set_states(const std::uint8_t* states, std::size_t n);
    std::uint8_t state(std::int32_t server) const;
    void get_states(std::uint8_t* out, std::size_t n) const;
    // Seqlock version: even when stable, +2 per change.
    std::uint64_t version() const noexcept { return seq_.load(std::memory_order_acquire); }

    // Rendezvous over keys with the selected kernel (exposed for tests of the SIMD code).
    std::int32_t argmax(const std::uint64_t* keys, std::int32_t n, std::uint64_t flow_hash) const noexcept {
        return argmax_(keys, n, flow_hash);
    }

private:
    template <class NewState>
    void apply_locked(std::int32_t first, std::int32_t end, NewState new_state);
    void rebuild_list(std::int32_t c);
    detail::BigAnswer compute_big(std::int32_t b, std::int32_t l) const;
    void store_big(std::int32_t b, std::int32_t l, const detail::BigAnswer& a);
    void list_alive_changed(std::int32_t c, bool alive);
    void build_group_ips();
    void begin_write() noexcept;
    void end_write() noexcept;

    TablesView t_;
    TableCounts counts_;
    EngineStats stats_;
    const char* isa_name_ = "generic";
    detail::KernelFn kernel_ = nullptr;
    detail::OneFn one_ = nullptr;
    detail::ArgmaxFn argmax_ = nullptr;
    detail::KernelCtx ctx_{};

    // Static derived indexes.
    detail::huge_vector<detail::ServerRec> srv_;
    detail::huge_vector<std::int32_t> rank_;   // copy of nearest_rank (read per request)
    detail::huge_vector<double> distance_;     // copy of location_distance
    detail::huge_vector<detail::GroupRec> grp_;
    detail::huge_vector<std::int32_t> lay_;  // small layout blobs (see GroupRec; alive words mutable)
    detail::huge_vector<std::int32_t> gip_;
    detail::huge_vector<std::uint64_t> gip_key_;
    detail::huge_vector<detail::IpSet> gsub_;
    std::vector<std::int32_t> server_list_start_, server_lists_;  // server -> lists containing it
    std::vector<std::int32_t> big_layout_;                         // big row -> layout
    std::vector<std::int32_t> big_map_;                            // big row x L -> entry or -1
    std::vector<std::int32_t> list_big_start_, list_bigs_;         // list -> big rows using it
    std::vector<std::int32_t> list_small_start_, list_small_;      // list -> (blob, entry) pairs

    // Mutable state (written under mu_ inside the seqlock; read lock-free).
    std::vector<std::uint8_t> state_;
    detail::huge_vector<detail::ListRec> lists_;
    detail::huge_vector<std::uint64_t> up_key_;
    detail::huge_vector<detail::UpEntry> up_;
    detail::huge_vector<detail::BigAnswer> big_ans_;

    // Writer scratch.
    std::vector<std::uint8_t> mark_;
    std::vector<std::int32_t> touched_;
    std::mutex mu_;
    alignas(64) std::atomic<std::uint64_t> seq_{0};
    char pad_[64 - sizeof(std::atomic<std::uint64_t>)] = {};
};

}  // namespace aegisfwd
