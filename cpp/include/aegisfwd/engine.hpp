// The decision engine (docs/decision.md, "The chain"): LOCAL -> SAME_DC -> SAME_LOCATION -> REMOTE ->
// UNAVAILABLE, exact rendezvous choice of server and IP (docs/hashing.md), live server states.
// The algorithm, the derived structures and the concurrency mechanism are in docs/engine.md.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aegisfwd/huge_alloc.hpp"
#include "aegisfwd/kernel.hpp"
#include "aegisfwd/tables.hpp"

namespace aegisfwd {

namespace detail {

// The engine's derived arrays (docs/engine.md "Derived structures"), listed once: X(type, name).
// Static ones never change after construction; mutable ones are written by state changes (inside
// the seqlock). A private engine keeps them in huge-page vectors; a shared engine in one
// shared-memory segment, the static ones mapped read-only.
#define AEGISFWD_DERIVED_STATIC(X)                                                                 \
    X(::aegisfwd::detail::ServerRec, srv) /* S */                                                  \
    X(std::int32_t, rank)                 /* copy of nearest_rank (read per request) */            \
    X(double, distance)                   /* copy of location_distance */                          \
    X(::aegisfwd::detail::GroupRec, grp)  /* 2P */                                                 \
    X(std::int32_t, gip)                                                                           \
    X(std::uint64_t, gip_key)                                                                      \
    X(::aegisfwd::detail::IpSet, gsub)                                                             \
    X(std::int32_t, server_list_start) /* server -> lists containing it */                         \
    X(std::int32_t, server_lists)                                                                  \
    X(std::int32_t, big_layout) /* big row -> layout */                                            \
    X(std::int32_t, big_map)    /* big row x L -> entry or -1 */                                   \
    X(std::int32_t, list_big_start) /* list -> big rows using it */                                \
    X(std::int32_t, list_bigs)                                                                     \
    X(std::int32_t, list_small_start) /* list -> (blob, entry) pairs */                            \
    X(std::int32_t, list_small)
#define AEGISFWD_DERIVED_MUTABLE(X)                                                                \
    X(std::uint8_t, state)                                                                         \
    X(std::int32_t, lay) /* small layout blobs (see GroupRec; the alive words are mutable) */      \
    X(::aegisfwd::detail::ListRec, lists)                                                          \
    X(std::uint64_t, up_key)                                                                       \
    X(::aegisfwd::detail::UpEntry, up)                                                             \
    X(::aegisfwd::detail::BigAnswer, big_ans)

template <class T>
struct Span {
    T* data = nullptr;
    std::size_t size = 0;
    T& operator[](std::size_t i) const noexcept { return data[i]; }
    std::size_t bytes() const noexcept { return size * sizeof(T); }
};

// Where the engine reads and writes its derived arrays.
struct DerivedSpans {
#define AEGISFWD_X(T, name) Span<T> name;
    AEGISFWD_DERIVED_STATIC(AEGISFWD_X)
    AEGISFWD_DERIVED_MUTABLE(AEGISFWD_X)
#undef AEGISFWD_X
};

// Private storage of the derived arrays (also the build's scratch for a shared engine).
struct DerivedStore {
#define AEGISFWD_X(T, name) huge_vector<T> name;
    AEGISFWD_DERIVED_STATIC(AEGISFWD_X)
    AEGISFWD_DERIVED_MUTABLE(AEGISFWD_X)
#undef AEGISFWD_X
};

struct SharedState;  // the shared engine's segment and its header (engine_shared.cpp)

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

class Engine {
public:
    // Validates `tables` (std::invalid_argument naming the array on any inconsistency) and builds
    // the derived indexes. The arrays must outlive the engine; they are never written.
    // `states` (S values 0/1/2) overrides server_initial_state when given. `isa`: a name for
    // resolve_isa (aegisfwd/isa.hpp): "auto" (the best kernel the CPU runs), "generic", "avx2" or
    // "avx512" (std::invalid_argument for an unknown name or one the CPU or the build lacks).
    explicit Engine(const TablesView& tables, const std::uint8_t* states = nullptr, std::size_t n_states = 0,
                    const std::string& isa = "auto");

    // ---- shared engines (docs/engine.md "Many processes, one state") ----------------------------
    // Builds the derived indexes and the live state into a new shared-memory segment /dev/shm/<name>
    // (SharedSegmentError if it exists or cannot be made). Any process can then attach_shared() to
    // it with the same tables; a state change by any of them is seen by all at their next decision.
    static std::unique_ptr<Engine> create_shared(const TablesView& tables, const std::string& name,
                                                 const std::uint8_t* states = nullptr, std::size_t n_states = 0,
                                                 const std::string& isa = "auto");
    // Maps an existing segment. SharedSegmentError when it is missing, not an aegisfwd engine
    // segment, of another layout version, truncated, unfinished, or built from other tables (a
    // content hash of every compiled array is stored in its header). Only the segment header and
    // the mutable state are mapped writable.
    static std::unique_ptr<Engine> attach_shared(const TablesView& tables, const std::string& name,
                                                 const std::string& isa = "auto");
    // Removes /dev/shm/<name>; engines mapping it keep working. False when it did not exist.
    static bool unlink_shared(const std::string& name);
    // 64-bit content hash of the arrays a TablesView reads (lengths and bytes, in kTableArrayNames
    // order): what a shared segment records to refuse other tables.
    static std::uint64_t tables_hash(const TablesView& tables) noexcept;

    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine();

    const TableCounts& counts() const noexcept { return counts_; }
    const EngineStats& stats() const noexcept { return stats_; }
    const char* isa() const noexcept { return isa_name_; }
    bool is_shared() const noexcept { return shared_ != nullptr; }
    // The segment name of a shared engine ("" for a private one).
    const std::string& shared_name() const noexcept;

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
    std::uint64_t version() const noexcept { return seq_->load(std::memory_order_acquire); }

    // Rendezvous over keys with the selected kernel (exposed for tests of the SIMD code).
    std::int32_t argmax(const std::uint64_t* keys, std::int32_t n, std::uint64_t flow_hash) const noexcept {
        return argmax_(keys, n, flow_hash);
    }

private:
    struct AttachTag {};
    Engine(AttachTag, const TablesView& tables, const std::string& name, const std::string& isa);

    // Construction, step by step (engine.cpp).
    void select_kernel(const std::string& isa);
    void build_servers(detail::DerivedStore& v, const std::uint8_t* states, std::size_t n_states);
    void build_up_lists(detail::DerivedStore& v);
    void build_server_lists(detail::DerivedStore& v);
    void build_layouts(detail::DerivedStore& v);
    void build_big_answers(detail::DerivedStore& v);
    void build_groups(detail::DerivedStore& v);
    void build_group_ips(detail::DerivedStore& v);
    void copy_distance_tables(detail::DerivedStore& v);
    void bind(detail::DerivedStore& v) noexcept;  // d_ <- the vectors of v
    void finish(std::chrono::steady_clock::time_point t0);  // kernel context, scratch, stats
    void bind_context() noexcept;                           // ctx_ <- d_

    // State changes (seqlock writer).
    template <class NewState>
    void apply_locked(std::int32_t first, std::int32_t end, NewState new_state);
    void rebuild_list(std::int32_t c);
    void rebuild_all_locked();  // every list, alive bit and big answer from the state bytes
    detail::BigAnswer compute_big(std::int32_t b, std::int32_t l) const;
    void store_big(std::int32_t b, std::int32_t l, const detail::BigAnswer& a);
    void list_alive_changed(std::int32_t c, bool alive);
    void begin_write() noexcept;
    void end_write() noexcept;
    template <class Fn>
    void with_writer_lock(Fn fn);
    void wait_for_writer(unsigned spins) const noexcept;
    // Shared engines (engine_shared.cpp): the writer lock is a robust process-shared mutex in the
    // segment; taking it after its holder died repairs the state (rebuild_all_locked) first.
    void lock_shared_writer();
    void unlock_shared_writer() noexcept;
    // A reader that has waited long on an odd version: when the writer holding it has died (a
    // shared engine's writer may be another process), repair the state and release the version.
    void recover_stalled_writer() const noexcept;

    TablesView t_;
    TableCounts counts_;
    EngineStats stats_;
    const char* isa_name_ = "generic";
    detail::KernelFn kernel_ = nullptr;
    detail::OneFn one_ = nullptr;
    detail::ArgmaxFn argmax_ = nullptr;
    detail::KernelCtx ctx_{};

    detail::DerivedSpans d_;                      // every derived array, wherever it lives
    std::unique_ptr<detail::DerivedStore> own_;   // private engine: the storage of d_
    std::unique_ptr<detail::SharedState> shared_;  // shared engine: the segment holding d_

    // Build scratch: layout -> small blob / big row (-1), dropped once the groups are built.
    std::vector<std::int32_t> layout_small_, layout_big_;

    // Writer scratch (private to each process).
    std::vector<std::uint8_t> mark_;
    std::vector<std::int32_t> touched_;
    std::mutex mu_;  // private engine's writer lock (a shared engine locks the segment's mutex)
    std::atomic<std::uint64_t>* seq_ = &own_seq_;  // the seqlock word: own_seq_ or the segment's
    alignas(64) std::atomic<std::uint64_t> own_seq_{0};
    char pad_[64 - sizeof(std::atomic<std::uint64_t>)] = {};
};

}  // namespace aegisfwd
