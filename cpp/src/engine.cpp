// Engine construction (derived indexes, as named build steps), kernel dispatch, the seqlock and
// state changes. The shared-memory placement of the same structures is in engine_shared.cpp.
#include "aegisfwd/engine.hpp"
#include "aegisfwd/isa.hpp"
#include "shared_state.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>


namespace aegisfwd {
namespace {

using detail::GroupRec;
using detail::ListRec;
using detail::ServerRec;

// Layouts with at most this many locations are resolved per request (a short scan over their
// entries, ranking by nearest_rank); larger ones keep a per-ingress-location answer up to date.
constexpr std::int32_t kSmallLayoutMax = 8;
constexpr std::int32_t kNone32 = -1;

template <class T>
inline void store_relaxed(T* p, T v) noexcept {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
template <class T>
inline T load_relaxed(const T* p) noexcept {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

}  // namespace

Engine::Engine(const TablesView& tables, const std::uint8_t* states, std::size_t n_states, const std::string& isa)
    : t_(tables), own_(std::make_unique<detail::DerivedStore>()) {
    const auto t0 = std::chrono::steady_clock::now();
    counts_ = t_.validate();
    select_kernel(isa);
    detail::DerivedStore& v = *own_;
    // Each step reads what the earlier ones built (through d_, re-bound after each).
    build_servers(v, states, n_states);
    build_up_lists(v);
    build_server_lists(v);
    build_layouts(v);
    build_big_answers(v);
    build_groups(v);
    copy_distance_tables(v);
    bind(v);
    finish(t0);
}

Engine::~Engine() = default;

void Engine::select_kernel(const std::string& isa) {
    const Isa chosen = resolve_isa(isa);
    const detail::KernelTable& table = detail::kernel_table(chosen);
    kernel_ = table.decide_rows;
    one_ = table.decide_one;
    argmax_ = table.argmax;
    isa_name_ = isa_name(chosen);
}

void Engine::bind(detail::DerivedStore& v) noexcept {
#define AEGISFWD_X(T, name) d_.name = detail::Span<T>{v.name.data(), v.name.size()};
    AEGISFWD_DERIVED_STATIC(AEGISFWD_X)
    AEGISFWD_DERIVED_MUTABLE(AEGISFWD_X)
#undef AEGISFWD_X
}

// Server records and the live state bytes (server_initial_state, or `states` when given).
void Engine::build_servers(detail::DerivedStore& v, const std::uint8_t* states, std::size_t n_states) {
    const std::int32_t S = counts_.servers;
    v.srv.resize(static_cast<std::size_t>(S));
    for (std::int32_t s = 0; s < S; ++s) {
        const std::int32_t d = t_.server_dc[s];
        v.srv[s] = ServerRec{t_.server_location[s], d, t_.dc_server_start[d], t_.dc_server_start[d + 1]};
    }
    v.state.assign(t_.server_initial_state.data, t_.server_initial_state.data + S);
    if (states != nullptr) {
        if (n_states != static_cast<std::size_t>(S))
            throw std::invalid_argument("states has " + std::to_string(n_states) + " values, expected " +
                                        std::to_string(S));
        for (std::size_t s = 0; s < n_states; ++s) {
            if (states[s] > kStateDown)
                throw std::invalid_argument("states holds " + std::to_string(states[s]) + " at row " +
                                            std::to_string(s) + " (expected 0 up, 1 draining, 2 down)");
        }
        v.state.assign(states, states + n_states);
    }
    bind(v);
}

// Every candidate list gets a slot range of its size in up_key/up; its up servers fill the front.
void Engine::build_up_lists(detail::DerivedStore& v) {
    const std::int32_t C = counts_.lists;
    const std::size_t LS = t_.list_servers.size;
    v.lists.resize(static_cast<std::size_t>(C));
    v.up_key.resize(LS);
    v.up.resize(LS);
    for (std::int32_t c = 0; c < C; ++c) {
        const std::int32_t m = t_.list_location[c];
        v.lists[c] = ListRec{t_.list_server_start[c], 0, t_.location_server_start[m],
                             t_.location_server_start[m + 1] - t_.location_server_start[m]};
    }
    bind(v);
    for (std::int32_t c = 0; c < C; ++c) rebuild_list(c);
}

// Reverse index for state changes: server -> the lists containing it (CSR).
void Engine::build_server_lists(detail::DerivedStore& v) {
    const std::int32_t S = counts_.servers, C = counts_.lists;
    const std::size_t LS = t_.list_servers.size;
    v.server_list_start.assign(static_cast<std::size_t>(S) + 1, 0);
    for (std::size_t k = 0; k < LS; ++k) ++v.server_list_start[static_cast<std::size_t>(t_.list_servers[k]) + 1];
    for (std::int32_t s = 0; s < S; ++s) v.server_list_start[s + 1] += v.server_list_start[s];
    v.server_lists.resize(LS);
    std::vector<std::int32_t> fill(v.server_list_start.begin(), v.server_list_start.end() - 1);
    for (std::int32_t c = 0; c < C; ++c)
        for (std::int32_t k = t_.list_server_start[c]; k < t_.list_server_start[c + 1]; ++k)
            v.server_lists[fill[t_.list_servers[k]]++] = c;
    bind(v);
}

// Layouts: small ones (at most kSmallLayoutMax entries) become blobs in `lay`, big ones rows of
// the per-location answer table; plus the reverse indexes list -> small blobs / big rows.
void Engine::build_layouts(detail::DerivedStore& v) {
    const std::int32_t C = counts_.lists, Y = counts_.layouts;
    const auto Ls = static_cast<std::size_t>(counts_.locations);
    layout_small_.assign(static_cast<std::size_t>(Y), -1);
    layout_big_.assign(static_cast<std::size_t>(Y), -1);
    v.list_small_start.assign(static_cast<std::size_t>(C) + 1, 0);
    v.list_big_start.assign(static_cast<std::size_t>(C) + 1, 0);
    // rank_t[m][l]: rank of location m seen from l; -1 for m == l (the ingress location's own entry
    // wins), INT32_MAX when unreachable.
    std::vector<std::int32_t> rank_t(Ls * Ls);
    for (std::size_t l = 0; l < Ls; ++l)
        for (std::size_t m = 0; m < Ls; ++m) rank_t[m * Ls + l] = m == l ? -1 : t_.nearest_rank[l * Ls + m];
    std::vector<std::int32_t> best_rank(Ls);
    std::vector<std::uint8_t> best_q(Ls);
    {
        std::size_t words = 0;
        for (std::int32_t y = 0; y < Y; ++y) {
            const std::int32_t k = t_.layout_start[y + 1] - t_.layout_start[y];
            if (k > 0 && k <= detail::kSmallLayoutMax) words += 2 + 2 * static_cast<std::size_t>(k) + (Ls + 3) / 4;
        }
        v.lay.reserve(words);
    }
    for (std::int32_t y = 0; y < Y; ++y) {
        const std::int32_t a = t_.layout_start[y], k = t_.layout_start[y + 1] - a;
        if (k == 0) continue;
        if (k <= detail::kSmallLayoutMax) {
            std::uint32_t alive = 0;
            for (std::int32_t q = 0; q < k; ++q)
                if (v.lists[t_.layout_list[a + q]].count > 0) alive |= 1u << q;
            layout_small_[y] = static_cast<std::int32_t>(v.lay.size());
            v.lay.push_back(static_cast<std::int32_t>(alive));
            v.lay.push_back(k);
            v.lay.insert(v.lay.end(), t_.layout_location.data + a, t_.layout_location.data + a + k);
            v.lay.insert(v.lay.end(), t_.layout_list.data + a, t_.layout_list.data + a + k);
            // Preferred entry per ingress location while every list is live: its own location's
            // entry if it has one, else the entry at the smallest rank; 0xFF when none is reachable.
            // (Vectorised over l through the transposed rank matrix: a column per location.)
            const std::size_t pref_at = v.lay.size();
            v.lay.resize(pref_at + (Ls + 3) / 4, 0);
            std::fill(best_rank.begin(), best_rank.end(), std::numeric_limits<std::int32_t>::max());
            std::fill(best_q.begin(), best_q.end(), std::uint8_t{0xFF});
            for (std::int32_t q = 0; q < k; ++q) {
                const std::int32_t* col = rank_t.data() + static_cast<std::size_t>(t_.layout_location[a + q]) * Ls;
                const auto qq = static_cast<std::uint8_t>(q);
                for (std::size_t l = 0; l < Ls; ++l) {
                    const bool better = col[l] < best_rank[l];
                    best_rank[l] = better ? col[l] : best_rank[l];
                    best_q[l] = better ? qq : best_q[l];
                }
            }
            std::copy(best_q.begin(), best_q.end(), reinterpret_cast<std::uint8_t*>(v.lay.data() + pref_at));
            for (std::int32_t q = a; q < a + k; ++q) ++v.list_small_start[static_cast<std::size_t>(t_.layout_list[q]) + 1];
            ++stats_.small_layouts;
        } else {
            layout_big_[y] = static_cast<std::int32_t>(v.big_layout.size());
            v.big_layout.push_back(y);
            for (std::int32_t q = a; q < a + k; ++q) ++v.list_big_start[static_cast<std::size_t>(t_.layout_list[q]) + 1];
        }
    }
    for (std::int32_t c = 0; c < C; ++c) {
        v.list_small_start[c + 1] += v.list_small_start[c];
        v.list_big_start[c + 1] += v.list_big_start[c];
    }
    v.list_small.resize(2 * static_cast<std::size_t>(v.list_small_start[C]));
    v.list_bigs.resize(static_cast<std::size_t>(v.list_big_start[C]));
    const auto NB = static_cast<std::int32_t>(v.big_layout.size());
    stats_.big_layouts = NB;
    v.big_map.assign(static_cast<std::size_t>(NB) * Ls, kNone32);
    std::vector<std::int32_t> fill_small(v.list_small_start.begin(), v.list_small_start.end() - 1);
    std::vector<std::int32_t> fill_big(v.list_big_start.begin(), v.list_big_start.end() - 1);
    for (std::int32_t y = 0; y < Y; ++y) {
        const std::int32_t a = t_.layout_start[y], k = t_.layout_start[y + 1] - a;
        for (std::int32_t q = 0; q < k; ++q) {
            const std::int32_t c = t_.layout_list[a + q];
            if (layout_small_[y] >= 0) {
                const std::int32_t at = fill_small[c]++;
                v.list_small[2 * static_cast<std::size_t>(at)] = layout_small_[y];  // the blob
                v.list_small[2 * static_cast<std::size_t>(at) + 1] = q;
            } else if (layout_big_[y] >= 0) {
                v.list_bigs[fill_big[c]++] = layout_big_[y];
                v.big_map[static_cast<std::size_t>(layout_big_[y]) * Ls + t_.layout_location[a + q]] = q;
            }
        }
    }
    bind(v);
}

// The answer of every big layout for every ingress location under the initial states.
void Engine::build_big_answers(detail::DerivedStore& v) {
    const std::int32_t L = counts_.locations;
    const auto Ls = static_cast<std::size_t>(L);
    const auto NB = static_cast<std::int32_t>(v.big_layout.size());
    v.big_ans.resize(static_cast<std::size_t>(NB) * Ls);
    bind(v);
    for (std::int32_t b = 0; b < NB; ++b)
        for (std::int32_t l = 0; l < L; ++l) v.big_ans[static_cast<std::size_t>(b) * Ls + l] = compute_big(b, l);
}

// Group records: each (pool, family) group's layout, then its source-IP sets.
void Engine::build_groups(detail::DerivedStore& v) {
    const std::int32_t G = counts_.groups;
    v.grp.resize(static_cast<std::size_t>(G));
    for (std::int32_t g = 0; g < G; ++g) {
        GroupRec rec{0, detail::kLayoutNone, 0, 0};
        const std::int32_t y = t_.group_layout[g];
        if (y >= 0 && layout_small_[y] >= 0) {
            rec.layout_a = layout_small_[y];
            rec.layout_k = t_.layout_start[y + 1] - t_.layout_start[y];
        } else if (y >= 0 && layout_big_[y] >= 0) {
            rec.layout_a = layout_big_[y];
            rec.layout_k = detail::kLayoutBig;
        }
        v.grp[g] = rec;
    }
    build_group_ips(v);
    layout_small_ = {};  // build scratch
    layout_big_ = {};
    bind(v);
}

// The two L x L tables read per request, copied next to the derived ones (huge pages).
void Engine::copy_distance_tables(detail::DerivedStore& v) {
    v.rank.assign(t_.nearest_rank.data, t_.nearest_rank.data + t_.nearest_rank.size);
    v.distance.assign(t_.location_distance.data, t_.location_distance.data + t_.location_distance.size);
    bind(v);
}

// The kernels' view of d_, the writer's scratch and the statistics.
void Engine::finish(std::chrono::steady_clock::time_point t0) {
    mark_.assign(static_cast<std::size_t>(counts_.lists), 0);
    touched_.reserve(64);
    bind_context();
    std::size_t bytes = mark_.size();
#define AEGISFWD_X(T, name) bytes += d_.name.bytes();
    AEGISFWD_DERIVED_STATIC(AEGISFWD_X)
    AEGISFWD_DERIVED_MUTABLE(AEGISFWD_X)
#undef AEGISFWD_X
    stats_.derived_bytes = bytes;
    stats_.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void Engine::bind_context() noexcept {
    ctx_.L = counts_.locations;
    ctx_.S = counts_.servers;
    ctx_.P = counts_.pools;
    ctx_.srv = d_.srv.data;
    ctx_.grp = d_.grp.data;
    ctx_.lay = d_.lay.data;
    ctx_.lists = d_.lists.data;
    ctx_.big_ans = d_.big_ans.data;
    ctx_.up_key = d_.up_key.data;
    ctx_.up = d_.up.data;
    ctx_.nearest_rank = d_.rank.data;
    ctx_.distance = d_.distance.data;
    ctx_.gip = d_.gip.data;
    ctx_.gip_key = d_.gip_key.data;
    ctx_.gsub = d_.gsub.data;
    ctx_.ip_holder_start = t_.ip_holder_start.data;
    ctx_.ip_holder_ranges = t_.ip_holder_ranges.data;
}

// ---- derived mutable state ----------------------------------------------------------------------

void Engine::rebuild_list(std::int32_t c) {
    const std::int32_t b = t_.list_server_start[c], e = t_.list_server_start[c + 1];
    std::int32_t w = b;
    for (std::int32_t k = b; k < e; ++k) {
        const std::int32_t s = t_.list_servers[k];
        if (d_.state[s] != kStateUp) continue;
        store_relaxed(&d_.up[w].server, s);
        store_relaxed(&d_.up[w].dc, t_.server_dc[s]);
        store_relaxed(&d_.up_key[w], t_.server_key[s]);
        ++w;
    }
    store_relaxed(&d_.lists[c].count, w - b);
}

// Answer of big layout b for ingress location l: the local list if it has an up server, else the
// nearest reachable location (nearest_order: by distance, then location index) whose list has one.
detail::BigAnswer Engine::compute_big(std::int32_t b, std::int32_t l) const {
    const auto Ls = static_cast<std::size_t>(counts_.locations);
    const std::int32_t* map = d_.big_map.data + static_cast<std::size_t>(b) * Ls;
    const std::int32_t* layout_list = t_.layout_list.data + t_.layout_start[d_.big_layout[b]];
    std::int32_t q = map[l];
    if (q >= 0 && d_.lists[layout_list[q]].count > 0) return detail::BigAnswer{l, layout_list[q], q, 0};
    const std::int32_t* order = t_.nearest_order.data + static_cast<std::size_t>(l) * Ls;
    for (std::size_t k = 0; k < Ls; ++k) {
        const std::int32_t m = order[k];
        if (m < 0) break;
        q = map[m];
        if (q >= 0 && d_.lists[layout_list[q]].count > 0) return detail::BigAnswer{m, layout_list[q], q, 0};
    }
    return detail::BigAnswer{l, -1, 0, 0};  // every field a valid index (see BigAnswer)
}

void Engine::store_big(std::int32_t b, std::int32_t l, const detail::BigAnswer& a) {
    detail::BigAnswer* p = &d_.big_ans[static_cast<std::size_t>(b) * static_cast<std::size_t>(counts_.locations) + l];
    store_relaxed(&p->location, a.location);
    store_relaxed(&p->list, a.list);
    store_relaxed(&p->entry, a.entry);
}

void Engine::list_alive_changed(std::int32_t c, bool alive) {
    // Small layouts: flip the entry's bit in the layout's alive word.
    for (std::int32_t k = d_.list_small_start[c]; k < d_.list_small_start[c + 1]; ++k) {
        const std::int32_t blob = d_.list_small[2 * static_cast<std::size_t>(k)];
        const std::int32_t q = d_.list_small[2 * static_cast<std::size_t>(k) + 1];
        auto mask = static_cast<std::uint32_t>(d_.lay[blob]);
        mask = alive ? (mask | (1u << q)) : (mask & ~(1u << q));
        store_relaxed(&d_.lay[blob], static_cast<std::int32_t>(mask));
    }
    // Big layouts: update the answers that this list wins or loses.
    const std::int32_t L = counts_.locations;
    const auto Ls = static_cast<std::size_t>(L);
    const std::int32_t mc = t_.list_location[c];
    for (std::int32_t k = d_.list_big_start[c]; k < d_.list_big_start[c + 1]; ++k) {
        const std::int32_t b = d_.list_bigs[k];
        const detail::BigAnswer* ans = d_.big_ans.data + static_cast<std::size_t>(b) * Ls;
        const std::int32_t qc = d_.big_map[static_cast<std::size_t>(b) * Ls + mc];
        for (std::int32_t l = 0; l < L; ++l) {
            const detail::BigAnswer cur = ans[l];
            if (alive) {
                if (l == mc) {
                    store_big(b, l, detail::BigAnswer{mc, c, qc, 0});
                    continue;
                }
                if (cur.list >= 0 && cur.location == l) continue;  // a live local list stays
                const std::int32_t* rank = t_.nearest_rank.data + static_cast<std::size_t>(l) * Ls;
                const std::int32_t r = rank[mc];
                if (r == std::numeric_limits<std::int32_t>::max()) continue;  // unreachable from l
                if (cur.list < 0 || r < rank[cur.location]) store_big(b, l, detail::BigAnswer{mc, c, qc, 0});
            } else if (cur.list == c) {
                store_big(b, l, compute_big(b, l));
            }
        }
    }
}

// Source-IP sets. A group whose deployed IPs all have the same holders chooses among all of them
// whatever the server (ip_n > 0). Otherwise, per entry of its layout, the IPs held in that
// location: when each of them is held by every server of the entry's list or by none, every
// candidate there holds exactly that subset (IpSet n > 0); else the kernel checks the winner's
// holdings (n < 0) -- the only case that reads ip_holder_ranges at decision time.
void Engine::build_group_ips(detail::DerivedStore& v) {
    const std::int32_t G = counts_.groups;
    std::vector<std::int32_t> deployed, in_loc, held_by_all;
    auto overlap = [this](std::int32_t i, std::int32_t first, std::int32_t end) {
        // servers of [first, end) holding IP i (its ranges are sorted and disjoint)
        const std::int32_t* r = t_.ip_holder_ranges.data;
        std::int32_t lo = t_.ip_holder_start[i], hi = t_.ip_holder_start[i + 1];
        while (lo < hi) {  // first range ending after `first`
            const std::int32_t mid = lo + (hi - lo) / 2;
            if (r[2 * mid + 1] <= first) lo = mid + 1; else hi = mid;
        }
        std::int64_t n = 0;
        for (std::int32_t k = lo; k < t_.ip_holder_start[i + 1] && r[2 * k] < end; ++k)
            n += std::min(end, r[2 * k + 1]) - std::max(first, r[2 * k]);
        return n;
    };
    auto same_holders = [this](std::int32_t i, std::int32_t j) {
        const std::int32_t a0 = t_.ip_holder_start[i], a1 = t_.ip_holder_start[i + 1];
        const std::int32_t b0 = t_.ip_holder_start[j], b1 = t_.ip_holder_start[j + 1];
        return a1 - a0 == b1 - b0 && std::equal(t_.ip_holder_ranges.data + 2 * a0, t_.ip_holder_ranges.data + 2 * a1,
                                                t_.ip_holder_ranges.data + 2 * b0);
    };
    auto append = [this, &v](const std::vector<std::int32_t>& ips) {
        const auto begin = static_cast<std::int32_t>(v.gip.size());
        for (const std::int32_t i : ips) {
            v.gip.push_back(i);
            v.gip_key.push_back(t_.ip_key[i]);
        }
        return begin;
    };
    for (std::int32_t g = 0; g < G; ++g) {
        GroupRec& rec = v.grp[g];
        deployed.clear();
        bool uniform = true;
        for (std::int32_t q = t_.group_ip_start[g]; q < t_.group_ip_start[g + 1]; ++q) {
            const std::int32_t i = t_.group_ips[q];
            if (t_.ip_holder_start[i + 1] == t_.ip_holder_start[i]) continue;  // reserved: never chosen
            if (!deployed.empty() && uniform && !same_holders(deployed.front(), i)) uniform = false;
            deployed.push_back(i);
        }
        const std::int32_t y = t_.group_layout[g];
        if (uniform || y < 0) {
            rec.ip_begin = append(deployed);
            rec.ip_n = static_cast<std::int32_t>(deployed.size());
            continue;
        }
        ++stats_.nonuniform_groups;
        rec.ip_begin = static_cast<std::int32_t>(v.gsub.size());
        rec.ip_n = -1;
        for (std::int32_t k = t_.layout_start[y]; k < t_.layout_start[y + 1]; ++k) {
            const std::int32_t m = t_.layout_location[k], c = t_.layout_list[k];
            const std::int32_t first = t_.location_server_start[m], end = t_.location_server_start[m + 1];
            const std::int64_t size = t_.list_server_start[c + 1] - t_.list_server_start[c];
            in_loc.clear();
            held_by_all.clear();
            for (const std::int32_t i : deployed) {
                const std::int64_t n = overlap(i, first, end);
                if (n == 0) continue;
                in_loc.push_back(i);
                if (n == size) held_by_all.push_back(i);
            }
            if (held_by_all.size() == in_loc.size()) {
                v.gsub.push_back(detail::IpSet{append(held_by_all), static_cast<std::int32_t>(held_by_all.size())});
            } else {
                v.gsub.push_back(detail::IpSet{append(in_loc), -static_cast<std::int32_t>(in_loc.size())});
                ++stats_.checked_entries;
            }
        }
    }
}

void Engine::begin_write() noexcept {
    const std::uint64_t v = seq_->load(std::memory_order_relaxed);
    seq_->store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
}

void Engine::end_write() noexcept { seq_->store(seq_->load(std::memory_order_relaxed) + 1, std::memory_order_release); }

template <class Fn>
void Engine::with_writer_lock(Fn fn) {
    if (shared_ == nullptr) {
        std::lock_guard<std::mutex> lock(mu_);
        fn();
        return;
    }
    lock_shared_writer();  // repairs the state first when the last writer died holding the lock
    try {
        fn();
    } catch (...) {
        unlock_shared_writer();
        throw;
    }
    unlock_shared_writer();
}

// Recomputes every derived mutable structure from the state bytes alone: the repair after a writer
// process died inside a change (its half-applied lists, alive bits and answers are rewritten; the
// state bytes it already stored are kept, so its change is either applied server by server or not).
// Called with the writer lock held; leaves the version even.
void Engine::rebuild_all_locked() {
    if ((seq_->load(std::memory_order_relaxed) & 1) == 0) begin_write();
    const std::int32_t C = counts_.lists;
    for (std::int32_t c = 0; c < C; ++c) rebuild_list(c);
    for (std::int32_t c = 0; c < C; ++c) {
        const bool alive = d_.lists[c].count > 0;
        for (std::int32_t k = d_.list_small_start[c]; k < d_.list_small_start[c + 1]; ++k) {
            const std::int32_t blob = d_.list_small[2 * static_cast<std::size_t>(k)];
            const std::int32_t q = d_.list_small[2 * static_cast<std::size_t>(k) + 1];
            auto mask = static_cast<std::uint32_t>(load_relaxed(&d_.lay[blob]));
            mask = alive ? (mask | (1u << q)) : (mask & ~(1u << q));
            store_relaxed(&d_.lay[blob], static_cast<std::int32_t>(mask));
        }
    }
    const auto NB = static_cast<std::int32_t>(d_.big_layout.size);
    for (std::int32_t b = 0; b < NB; ++b)
        for (std::int32_t l = 0; l < counts_.locations; ++l) store_big(b, l, compute_big(b, l));
    end_write();
}

template <class NewState>
void Engine::apply_locked(std::int32_t first, std::int32_t end, NewState new_state) {
    touched_.clear();
    begin_write();
    for (std::int32_t s = first; s < end; ++s) {
        const std::uint8_t old = d_.state[s], now = new_state(s);
        if (old == now) continue;
        store_relaxed(&d_.state[s], now);
        if ((old == kStateUp) == (now == kStateUp)) continue;  // draining <-> down: same candidates
        for (std::int32_t q = d_.server_list_start[s]; q < d_.server_list_start[s + 1]; ++q) {
            const std::int32_t c = d_.server_lists[q];
            if (!mark_[c]) {
                mark_[c] = 1;
                touched_.push_back(c);
            }
        }
    }
    for (const std::int32_t c : touched_) {
        mark_[c] = 0;
        const bool was_alive = d_.lists[c].count > 0;
        rebuild_list(c);
        const bool alive = d_.lists[c].count > 0;
        if (was_alive != alive) list_alive_changed(c, alive);
    }
    end_write();
}

void Engine::set_state(std::int32_t first, std::int32_t end, std::uint8_t state) {
    if (first < 0 || end < first || end > counts_.servers)
        throw std::out_of_range("server range [" + std::to_string(first) + ", " + std::to_string(end) +
                                ") outside [0, " + std::to_string(counts_.servers) + ")");
    if (state > kStateDown)
        throw std::invalid_argument("state " + std::to_string(state) + " (expected 0 up, 1 draining, 2 down)");
    with_writer_lock([&] { apply_locked(first, end, [state](std::int32_t) { return state; }); });
}

void Engine::set_states(const std::uint8_t* states, std::size_t n) {
    if (n != static_cast<std::size_t>(counts_.servers))
        throw std::invalid_argument("states has " + std::to_string(n) + " values, expected " +
                                    std::to_string(counts_.servers));
    for (std::size_t s = 0; s < n; ++s)
        if (states[s] > kStateDown)
            throw std::invalid_argument("states holds " + std::to_string(states[s]) + " at row " + std::to_string(s) +
                                        " (expected 0 up, 1 draining, 2 down)");
    with_writer_lock([&] { apply_locked(0, counts_.servers, [states](std::int32_t s) { return states[s]; }); });
}

std::uint8_t Engine::state(std::int32_t server) const {
    if (server < 0 || server >= counts_.servers)
        throw std::out_of_range("server index " + std::to_string(server) + " outside [0, " +
                                std::to_string(counts_.servers) + ")");
    return load_relaxed(&d_.state[server]);
}

void Engine::get_states(std::uint8_t* out, std::size_t n) const {
    if (n != static_cast<std::size_t>(counts_.servers))
        throw std::invalid_argument("output has " + std::to_string(n) + " values, expected " +
                                    std::to_string(counts_.servers));
    for (std::size_t s = 0; s < n; ++s) out[s] = load_relaxed(&d_.state[s]);
}

// ---- decisions (seqlock readers) ------------------------------------------------------------------

// A reader that found the version odd: spin briefly, then yield; now and then check whether the
// writer of a shared engine (maybe another process) died inside its change.
void Engine::wait_for_writer(unsigned spins) const noexcept {
    cpu_relax();
    if (spins < 1000) return;
    std::this_thread::yield();
    if (shared_ != nullptr && (spins & 0x3FFF) == 0) recover_stalled_writer();
}

void Engine::decide(std::int32_t server, std::int32_t pool, std::uint8_t family, std::uint64_t flow,
                    DecisionOut& out) const noexcept {
    for (unsigned spins = 0;; ++spins) {
        const std::uint64_t v0 = seq_->load(std::memory_order_acquire);
        if (v0 & 1) {
            wait_for_writer(spins);
            continue;
        }
        one_(ctx_, server, pool, family, flow, out);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (seq_->load(std::memory_order_relaxed) == v0) return;
    }
}

std::int64_t Engine::decide_range(const std::int32_t* server, const std::int32_t* pool, const std::uint8_t* family,
                                  const std::uint64_t* flow, std::size_t n, const BatchColumns& out,
                                  std::size_t out_offset) const noexcept {
    std::int64_t invalid = 0;
    for (std::size_t i = 0; i < n; i += detail::kChunk) {
        const std::size_t m = std::min(detail::kChunk, n - i);
        for (unsigned spins = 0;; ++spins) {
            const std::uint64_t v0 = seq_->load(std::memory_order_acquire);
            if (v0 & 1) {
                wait_for_writer(spins);
                continue;
            }
            const std::int64_t inv = kernel_(ctx_, server + i, pool + i, family + i, flow + i, m, out, out_offset + i);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (seq_->load(std::memory_order_relaxed) == v0) {
                invalid += inv;
                break;
            }
        }
    }
    return invalid;
}

std::int64_t Engine::decide_batch(const std::int32_t* server, const std::int32_t* pool, const std::uint8_t* family,
                                  const std::uint64_t* flow, std::size_t n, const BatchColumns& out,
                                  unsigned threads) const {
    constexpr std::size_t kMinRowsPerThread = 16384;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    const std::size_t useful = std::max<std::size_t>(1, n / kMinRowsPerThread);
    const auto T = static_cast<unsigned>(std::min<std::size_t>(threads, useful));
    if (T <= 1) return decide_range(server, pool, family, flow, n, out, 0);

    // Contiguous parts, aligned to whole chunks.
    const std::size_t chunks = (n + detail::kChunk - 1) / detail::kChunk;
    std::vector<std::size_t> bounds(T + 1);
    for (unsigned k = 0; k <= T; ++k) bounds[k] = std::min(n, (chunks * k / T) * detail::kChunk);
    std::vector<std::int64_t> invalid(T, 0);
    std::vector<std::thread> pool_threads;
    pool_threads.reserve(T - 1);
    auto work = [&](unsigned k) {
        const std::size_t a = bounds[k], b = bounds[k + 1];
        invalid[k] = decide_range(server + a, pool + a, family + a, flow + a, b - a, out, a);
    };
    try {
        for (unsigned k = 1; k < T; ++k) pool_threads.emplace_back(work, k);
    } catch (...) {
        for (auto& th : pool_threads) th.join();
        throw;
    }
    work(0);
    for (auto& th : pool_threads) th.join();
    std::int64_t total = 0;
    for (const auto v : invalid) total += v;
    return total;
}

}  // namespace aegisfwd
