// The shared engine: the derived arrays and the live state of one Engine in a shared-memory
// segment, so that many processes decide from one copy and see one another's state changes at
// their next decision (docs/engine.md "Many processes, one state").
//
// Segment layout (all offsets from the segment start):
//   [0, 4096)           SegmentHeader: identity, sizes, the array directory, the writer mutex and
//                       the seqlock version (writable by every process)
//   [static_offset, +)  AEGISFWD_DERIVED_STATIC arrays, 64-byte aligned; read-only once built
//   [mutable_offset, +) AEGISFWD_DERIVED_MUTABLE arrays (state bytes, up-lists, alive words, big
//                       answers); written by set_state inside the seqlock
// The decision code is the private engine's: only where d_ and seq_ point differs.
#include "aegisfwd/engine.hpp"
#include "aegisfwd/hashing.hpp"
#include "aegisfwd/shared_segment.hpp"
#include "shared_state.hpp"

#include <cstring>
#include <string>

// Robust process-shared mutexes, posix_fallocate and /dev/shm: Linux. Elsewhere create/attach say
// so (AEGISFWD_NO_SHARED_ENGINE builds that variant on Linux too, to check that it compiles).
#if defined(__linux__) && !defined(AEGISFWD_NO_SHARED_ENGINE)
#define AEGISFWD_SHARED_ENGINE 1
#else
#define AEGISFWD_SHARED_ENGINE 0
#endif

#if AEGISFWD_SHARED_ENGINE
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <type_traits>
#endif

namespace aegisfwd {

namespace {
// 4 independent lanes of mix64 over 8-byte words, so hashing a ~40 MB table set takes milliseconds.
struct Hasher {
    std::uint64_t lane[4] = {0x243F6A8885A308D3ULL, 0x13198A2E03707344ULL, 0xA4093822299F31D0ULL,
                             0x082EFA98EC4E6C89ULL};
    void bytes(const void* p, std::size_t n) noexcept {
        const auto* b = static_cast<const std::uint8_t*>(p);
        std::size_t i = 0;
        for (; i + 32 <= n; i += 32) {
            for (int k = 0; k < 4; ++k) {
                std::uint64_t w;
                std::memcpy(&w, b + i + 8 * k, 8);
                lane[k] = mix64(lane[k] ^ w) + 0x9E3779B97F4A7C15ULL;
            }
        }
        std::uint64_t w = 0;
        for (int k = 0; i < n; ++i, ++k) w |= static_cast<std::uint64_t>(b[i]) << (8 * (k % 8));
        lane[0] = mix64(lane[0] ^ w ^ (n << 1));
    }
    std::uint64_t value() const noexcept {
        return mix64(lane[0] ^ mix64(lane[1] ^ mix64(lane[2] ^ mix64(lane[3]))));
    }
};

}  // namespace

std::uint64_t Engine::tables_hash(const TablesView& t) noexcept {
    Hasher h;
    auto add = [&h](const auto& view) {
        const std::uint64_t n = view.size;
        h.bytes(&n, sizeof n);
        h.bytes(view.data, view.size * sizeof(view.data[0]));
    };
    add(t.location_dc_start);
    add(t.location_server_start);
    add(t.dc_location);
    add(t.dc_server_start);
    add(t.server_dc);
    add(t.server_location);
    add(t.server_key);
    add(t.server_initial_state);
    add(t.ip_pool);
    add(t.ip_family);
    add(t.ip_key);
    add(t.ip_holder_start);
    add(t.ip_holder_ranges);
    add(t.group_ip_start);
    add(t.group_ips);
    add(t.location_distance);
    add(t.nearest_order);
    add(t.nearest_rank);
    add(t.list_location);
    add(t.list_server_start);
    add(t.list_servers);
    add(t.layout_start);
    add(t.layout_location);
    add(t.layout_list);
    add(t.group_layout);
    return h.value();
}

const std::string& Engine::shared_name() const noexcept {
    static const std::string none;
    return shared_ != nullptr ? shared_->seg.name() : none;
}

#if AEGISFWD_SHARED_ENGINE

namespace detail {
namespace {

constexpr char kMagic[8] = {'A', 'E', 'G', 'I', 'S', 'S', 'H', 'M'};
// Bump when SegmentHeader, the array list or any record type changes: an older or newer build then
// refuses the segment instead of misreading it.
constexpr std::uint32_t kLayoutVersion = 1;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kAlign = 64;

#define AEGISFWD_COUNT(T, name) +1
constexpr std::size_t kStaticArrays = 0 AEGISFWD_DERIVED_STATIC(AEGISFWD_COUNT);
constexpr std::size_t kArrays = kStaticArrays + 0 AEGISFWD_DERIVED_MUTABLE(AEGISFWD_COUNT);
#undef AEGISFWD_COUNT

struct ArrayDesc {
    std::uint64_t offset;     // from the segment start
    std::uint64_t count;      // elements
    std::uint64_t elem_size;  // sizeof the element type (a cross-build sanity check)
};

// The seqlock word and the flags are shared between processes through plain memory: that is only
// correct for lock-free atomics (address-free, no hidden lock in the process).
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the seqlock word must be lock-free");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "the ready flag must be lock-free");
static_assert(sizeof(std::atomic<std::uint64_t>) == 8, "the seqlock word must be a plain 64-bit word");

struct SegmentHeader {
    char magic[8];
    std::uint32_t layout_version;
    std::uint32_t header_bytes;  // sizeof(SegmentHeader) of the builder
    std::uint64_t total_bytes;
    std::uint64_t static_offset, static_bytes;
    std::uint64_t mutable_offset, mutable_bytes;
    std::uint64_t tables_hash;  // Engine::tables_hash of the compiled arrays it was built from
    TableCounts counts;
    std::int32_t small_layouts, big_layouts, nonuniform_groups, checked_entries;
    double build_ms;
    std::int64_t creator_pid;
    std::uint32_t n_arrays;
    std::uint32_t reserved;
    ArrayDesc arrays[kArrays];
    alignas(64) std::atomic<std::uint32_t> ready;  // 1 once every array is in place (release)
    alignas(64) pthread_mutex_t writer;            // robust, process-shared: serialises set_state
    alignas(64) std::atomic<std::uint64_t> seq;    // the seqlock version (docs/engine.md)
    char pad[64 - sizeof(std::atomic<std::uint64_t>)];
};
static_assert(sizeof(SegmentHeader) <= kPage, "the segment header must fit its page");
static_assert(std::is_standard_layout<SegmentHeader>::value, "the header is shared memory");

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

SegmentHeader* header_of(const SharedSegment& seg) { return reinterpret_cast<SegmentHeader*>(seg.data()); }

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

}  // namespace detail


namespace {
using detail::ArrayDesc;
using detail::header_of;
using detail::SegmentHeader;
using detail::kArrays;
using detail::kStaticArrays;
using detail::kPage;
using detail::kAlign;
using detail::round_up;
}  // namespace


bool Engine::unlink_shared(const std::string& name) { return detail::SharedSegment::unlink(name); }

std::unique_ptr<Engine> Engine::create_shared(const TablesView& tables, const std::string& name,
                                              const std::uint8_t* states, std::size_t n_states,
                                              const std::string& isa) {
    detail::SharedSegment::check_name(name);
    // Build privately (the same steps as a per-process engine), then move every array into the
    // segment: the build code stays one, and the copy costs a few milliseconds.
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<Engine> e(new Engine(tables, states, n_states, isa));
    const std::uint64_t hash = tables_hash(tables);

    // Directory: static arrays, then mutable ones, each region page-aligned (mprotect works on pages).
    ArrayDesc desc[kArrays];
    std::size_t at = kPage;
    std::size_t k = 0;
    const std::size_t static_offset = at;
#define AEGISFWD_X(T, name)                                                                              \
    desc[k++] = ArrayDesc{at, e->d_.name.size, sizeof(T)};                                               \
    at = round_up(at + e->d_.name.bytes(), kAlign);
    AEGISFWD_DERIVED_STATIC(AEGISFWD_X)
    at = round_up(at, kPage);
    const std::size_t mutable_offset = at;
    AEGISFWD_DERIVED_MUTABLE(AEGISFWD_X)
#undef AEGISFWD_X
    const std::size_t total = round_up(at, kPage);

    auto shared = std::make_unique<detail::SharedState>();
    shared->seg = detail::SharedSegment::create(name, total);
    try {
        std::uint8_t* base = shared->seg.data();
        SegmentHeader* h = header_of(shared->seg);
        std::memcpy(h->magic, detail::kMagic, sizeof h->magic);
        h->layout_version = detail::kLayoutVersion;
        h->header_bytes = sizeof(SegmentHeader);
        h->total_bytes = total;
        h->static_offset = static_offset;
        h->static_bytes = mutable_offset - static_offset;
        h->mutable_offset = mutable_offset;
        h->mutable_bytes = total - mutable_offset;
        h->tables_hash = hash;
        h->counts = e->counts_;
        h->small_layouts = e->stats_.small_layouts;
        h->big_layouts = e->stats_.big_layouts;
        h->nonuniform_groups = e->stats_.nonuniform_groups;
        h->checked_entries = e->stats_.checked_entries;
        h->creator_pid = static_cast<std::int64_t>(::getpid());
        h->n_arrays = static_cast<std::uint32_t>(kArrays);
        std::copy(desc, desc + kArrays, h->arrays);
        new (&h->ready) std::atomic<std::uint32_t>(0);
        new (&h->seq) std::atomic<std::uint64_t>(0);

        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        const int err = pthread_mutex_init(&h->writer, &attr);
        pthread_mutexattr_destroy(&attr);
        if (err != 0) throw SharedSegmentError("shared engine '" + name + "': cannot set up its writer lock: " + detail::errno_text(err));

        // Copy every array in, then point the engine at the copies and drop the private ones.
        k = 0;
#define AEGISFWD_X(T, name)                                                                              \
    {                                                                                                    \
        T* dst = reinterpret_cast<T*>(base + desc[k++].offset);                                          \
        if (e->d_.name.size > 0) std::memcpy(static_cast<void*>(dst), e->d_.name.data, e->d_.name.bytes()); \
        e->d_.name.data = dst;                                                                           \
    }
        AEGISFWD_DERIVED_STATIC(AEGISFWD_X)
        AEGISFWD_DERIVED_MUTABLE(AEGISFWD_X)
#undef AEGISFWD_X
        e->own_.reset();
        e->seq_ = &h->seq;
        e->bind_context();
        e->stats_.derived_bytes = total + e->mark_.size();
        e->stats_.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        h->build_ms = e->stats_.build_ms;
        shared->seg.protect_read_only(static_offset, mutable_offset - static_offset);
        h->ready.store(1, std::memory_order_release);
    } catch (...) {
        detail::SharedSegment::unlink(name);
        throw;
    }
    e->shared_ = std::move(shared);
    return e;
}

std::unique_ptr<Engine> Engine::attach_shared(const TablesView& tables, const std::string& name,
                                              const std::string& isa) {
    return std::unique_ptr<Engine>(new Engine(AttachTag{}, tables, name, isa));
}

Engine::Engine(AttachTag, const TablesView& tables, const std::string& name, const std::string& isa) : t_(tables) {
    const auto t0 = std::chrono::steady_clock::now();
    auto shared = std::make_unique<detail::SharedState>();
    shared->seg = detail::SharedSegment::open(name, sizeof(SegmentHeader));
    const SegmentHeader* h = header_of(shared->seg);
    auto refuse = [&name](const std::string& why) {
        return SharedSegmentError("shared engine '" + name + "' " + why);
    };
    if (std::memcmp(h->magic, detail::kMagic, sizeof h->magic) != 0)
        throw refuse("is not an aegisfwd shared engine segment (wrong magic)");
    if (h->layout_version != detail::kLayoutVersion || h->header_bytes != sizeof(SegmentHeader) ||
        h->n_arrays != kArrays)
        throw refuse("has layout version " + std::to_string(h->layout_version) + ", this build reads version " +
                     std::to_string(detail::kLayoutVersion) + " (rebuild it with this aegisfwd)");
    const std::size_t size = shared->seg.size();
    if (h->total_bytes != size)
        throw refuse(std::string(size < h->total_bytes ? "is truncated" : "has the wrong size") + ": " +
                     std::to_string(size) + " bytes, its header says " + std::to_string(h->total_bytes));
    if (h->ready.load(std::memory_order_acquire) != 1)
        throw refuse("is not finished (its builder is still building it, or died doing so)");
    counts_ = t_.validate();
    if (h->tables_hash != tables_hash(tables))
        throw refuse("was built from another compiled topology (content hash differs): attach with the file it "
                     "was created from");
    if (std::memcmp(&h->counts, &counts_, sizeof counts_) != 0)
        throw refuse("holds counts that do not match its compiled topology");
    // The directory: each array inside its region, of the element size and count this build expects.
    const std::size_t L = static_cast<std::size_t>(counts_.locations);
    const std::size_t S = static_cast<std::size_t>(counts_.servers);
    const std::size_t C = static_cast<std::size_t>(counts_.lists);
    const std::size_t NB = static_cast<std::size_t>(h->big_layouts);
    const std::size_t LS = t_.list_servers.size;
    std::uint8_t* base = shared->seg.data();
    std::size_t k = 0;
    auto place = [&](auto& span, std::size_t expected, const char* what) {
        using T = std::remove_reference_t<decltype(span[0])>;
        const ArrayDesc& a = h->arrays[k];
        const bool is_static = k < kStaticArrays;
        ++k;
        const std::uint64_t lo = is_static ? h->static_offset : h->mutable_offset;
        const std::uint64_t hi = is_static ? h->static_offset + h->static_bytes : h->mutable_offset + h->mutable_bytes;
        if (a.elem_size != sizeof(T) || a.offset % alignof(T) != 0 || a.offset < lo || a.offset > hi ||
            a.count > (hi - a.offset) / sizeof(T) || (expected != SIZE_MAX && a.count != expected) || hi > size)
            throw refuse(std::string("has a corrupt directory entry for '") + what + "'");
        span.data = reinterpret_cast<T*>(base + a.offset);
        span.size = static_cast<std::size_t>(a.count);
    };
    constexpr std::size_t any = SIZE_MAX;
    place(d_.srv, S, "srv");
    place(d_.rank, L * L, "rank");
    place(d_.distance, L * L, "distance");
    place(d_.grp, static_cast<std::size_t>(counts_.groups), "grp");
    place(d_.gip, any, "gip");
    place(d_.gip_key, any, "gip_key");
    place(d_.gsub, any, "gsub");
    place(d_.server_list_start, S + 1, "server_list_start");
    place(d_.server_lists, LS, "server_lists");
    place(d_.big_layout, NB, "big_layout");
    place(d_.big_map, NB * L, "big_map");
    place(d_.list_big_start, C + 1, "list_big_start");
    place(d_.list_bigs, any, "list_bigs");
    place(d_.list_small_start, C + 1, "list_small_start");
    place(d_.list_small, any, "list_small");
    place(d_.state, S, "state");
    place(d_.lay, any, "lay");
    place(d_.lists, C, "lists");
    place(d_.up_key, LS, "up_key");
    place(d_.up, LS, "up");
    place(d_.big_ans, NB * L, "big_ans");
    if (d_.gip_key.size != d_.gip.size) throw refuse("has a corrupt directory entry for 'gip_key'");
    static_assert(kArrays == 21, "place() every derived array above");

    select_kernel(isa);
    shared->seg.protect_read_only(h->static_offset, h->static_bytes);
    seq_ = &header_of(shared->seg)->seq;
    stats_.small_layouts = h->small_layouts;
    stats_.big_layouts = h->big_layouts;
    stats_.nonuniform_groups = h->nonuniform_groups;
    stats_.checked_entries = h->checked_entries;
    shared_ = std::move(shared);
    mark_.assign(C, 0);
    touched_.reserve(64);
    bind_context();
    stats_.derived_bytes = size + mark_.size();
    stats_.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void Engine::lock_shared_writer() {
    SegmentHeader* h = header_of(shared_->seg);
    const int err = pthread_mutex_lock(&h->writer);
    if (err == EOWNERDEAD) {
        // The last writer died holding the lock, maybe inside a change: make the state whole again.
        rebuild_all_locked();
        pthread_mutex_consistent(&h->writer);
        return;
    }
    if (err != 0)
        throw SharedSegmentError("shared engine '" + shared_->seg.name() + "': writer lock failed: " +
                                 detail::errno_text(err));
}

void Engine::unlock_shared_writer() noexcept { pthread_mutex_unlock(&header_of(shared_->seg)->writer); }

void Engine::recover_stalled_writer() const noexcept {
    SegmentHeader* h = header_of(shared_->seg);
    const int err = pthread_mutex_trylock(&h->writer);
    if (err == EBUSY) return;  // a live writer is inside its change: keep waiting
    if (err != 0 && err != EOWNERDEAD) return;
    auto* self = const_cast<Engine*>(this);  // the mutable arrays are shared memory, not this object
    if (err == EOWNERDEAD || (seq_->load(std::memory_order_relaxed) & 1) != 0) {
        try {
            self->rebuild_all_locked();
        } catch (...) {
        }
    }
    if (err == EOWNERDEAD) pthread_mutex_consistent(&h->writer);
    pthread_mutex_unlock(&h->writer);
}

#else  // !AEGISFWD_SHARED_ENGINE

namespace {
[[noreturn]] void unsupported() {
    throw SharedSegmentError("shared engines need Linux (robust process-shared mutexes, POSIX shared memory)");
}
}  // namespace

bool Engine::unlink_shared(const std::string&) { unsupported(); }
std::unique_ptr<Engine> Engine::create_shared(const TablesView&, const std::string&, const std::uint8_t*, std::size_t,
                                              const std::string&) {
    unsupported();
}
std::unique_ptr<Engine> Engine::attach_shared(const TablesView&, const std::string&, const std::string&) {
    unsupported();
}
// Never reached: no engine is shared here (shared_ stays null).
void Engine::lock_shared_writer() { unsupported(); }
void Engine::unlock_shared_writer() noexcept {}
void Engine::recover_stalled_writer() const noexcept {}

#endif  // AEGISFWD_SHARED_ENGINE

}  // namespace aegisfwd
