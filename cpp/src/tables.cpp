// TablesView::validate(): every check the engine's raw-pointer reads depend on, and the one
// statement of the compiled arrays' invariants (CompiledFile runs it on every file it opens;
// docs/compiled-format.md lists the checks and where they run).
//
// Checks run in passes that each rely only on what the earlier passes proved (a value is range
// checked before it indexes another array), so any bytes give an error, never a read out of bounds.
#include "aegisfwd/tables.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "aegisfwd/crosscheck.hpp"
#include "checks.hpp"

namespace aegisfwd {
namespace {

using checks::cell;
using checks::fail;
using checks::need_data;
using checks::need_size;
using checks::row;

constexpr std::int32_t kUnreachable = std::numeric_limits<std::int32_t>::max();

std::string str(std::int64_t v) { return std::to_string(v); }

std::int32_t count_from(const char* name, std::size_t size_plus_one) {
    if (size_plus_one == 0) fail(name, "is empty, expected at least one element (n+1 offsets)");
    if (size_plus_one - 1 > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1))
        fail(name, "is too long for int32 indices");
    return static_cast<std::int32_t>(size_plus_one - 1);
}

void check_offsets(const char* name, const ArrayView<std::int32_t>& a, std::size_t n, std::int64_t total) {
    checks::offsets(name, a, n, total);
}

// Locations, DCs and servers: each location and each DC is one contiguous range of servers.
void check_tree(const TablesView& t, const TableCounts& c) {
    const auto L = static_cast<std::size_t>(c.locations), D = static_cast<std::size_t>(c.dcs);
    const auto S = static_cast<std::size_t>(c.servers);
    check_offsets("location_dc_start", t.location_dc_start, L, c.dcs);
    check_offsets("dc_server_start", t.dc_server_start, D, c.servers);
    check_offsets("location_server_start", t.location_server_start, L, c.servers);
    need_size("dc_location", t.dc_location, D);
    need_size("server_dc", t.server_dc, S);
    need_size("server_location", t.server_location, S);
    need_size("server_key", t.server_key, S);
    need_size("server_initial_state", t.server_initial_state, S);
    checks::indices("dc_location", t.dc_location, 0, c.locations);
    checks::indices("server_dc", t.server_dc, 0, c.dcs);
    checks::indices("server_location", t.server_location, 0, c.locations);
    for (std::size_t l = 0; l < L; ++l)
        for (std::int32_t d = t.location_dc_start[l]; d < t.location_dc_start[l + 1]; ++d)
            if (t.dc_location[static_cast<std::size_t>(d)] != static_cast<std::int32_t>(l))
                fail("dc_location", "disagrees with 'location_dc_start' at " + row(static_cast<std::size_t>(d)) +
                                        " (holds " + str(t.dc_location[static_cast<std::size_t>(d)]) +
                                        ", 'location_dc_start' puts it in location " + str(static_cast<std::int64_t>(l)) + ")");
    for (std::size_t d = 0; d < D; ++d)
        for (std::int32_t s = t.dc_server_start[d]; s < t.dc_server_start[d + 1]; ++s)
            if (t.server_dc[static_cast<std::size_t>(s)] != static_cast<std::int32_t>(d))
                fail("server_dc", "disagrees with 'dc_server_start' at " + row(static_cast<std::size_t>(s)) +
                                      " (holds " + str(t.server_dc[static_cast<std::size_t>(s)]) +
                                      ", 'dc_server_start' puts it in DC " + str(static_cast<std::int64_t>(d)) + ")");
    for (std::size_t s = 0; s < S; ++s) {
        const std::int32_t expected = t.dc_location[static_cast<std::size_t>(t.server_dc[s])];
        if (t.server_location[s] != expected)
            fail("server_location", "disagrees with 'dc_location' at " + row(s) + " (holds " +
                                        str(t.server_location[s]) + ", its DC is in location " + str(expected) + ")");
    }
    for (std::size_t l = 0; l < L; ++l) {
        const std::int32_t expected = t.dc_server_start[static_cast<std::size_t>(t.location_dc_start[l])];
        if (t.location_server_start[l] != expected)
            fail("location_server_start", "disagrees with 'dc_server_start' at " + row(l) + " (holds " +
                                              str(t.location_server_start[l]) + ", its first DC starts at " +
                                              str(expected) + ")");
    }
    for (std::size_t s = 0; s < S; ++s)
        if (t.server_initial_state[s] > 2)
            fail("server_initial_state", "holds index " + str(t.server_initial_state[s]) + " outside [0, 3) at " +
                                             row(s) + " (states: 0 up, 1 draining, 2 down)");
}

// IPs: pool, family, and the holder ranges (per IP non-empty, sorted, disjoint, not touching).
void check_ips(const TablesView& t, const TableCounts& c) {
    const auto I = static_cast<std::size_t>(c.ips);
    need_size("ip_pool", t.ip_pool, I);
    need_size("ip_family", t.ip_family, I);
    need_size("ip_key", t.ip_key, I);
    checks::indices("ip_pool", t.ip_pool, 0, c.pools);
    for (std::size_t i = 0; i < I; ++i)
        if (t.ip_family[i] != 4 && t.ip_family[i] != 6)
            fail("ip_family", "holds " + str(t.ip_family[i]) + " at " + row(i) + ", not 4 or 6");
    for (std::size_t i = 1; i < I; ++i)
        if (t.ip_pool[i] < t.ip_pool[i - 1])
            fail("ip_pool", "is not sorted by pool at " + row(i) + " (" + str(t.ip_pool[i - 1]) + " > " +
                                str(t.ip_pool[i]) + ")");
    check_offsets("ip_holder_start", t.ip_holder_start, I, c.holder_ranges);
    const auto R = static_cast<std::size_t>(c.holder_ranges);
    for (std::size_t k = 0; k < 2 * R; ++k)
        checks::index("ip_holder_ranges", t.ip_holder_ranges[k], 0, static_cast<std::int64_t>(c.servers) + 1, k / 2,
                      k % 2);
    // Per IP, the flattened [first, end, first, end, ...] strictly ascend.
    for (std::size_t i = 0; i < I; ++i) {
        std::int64_t prev_end = -1;
        for (std::int32_t r = t.ip_holder_start[i]; r < t.ip_holder_start[i + 1]; ++r) {
            const std::int64_t first = t.ip_holder_ranges[2 * static_cast<std::size_t>(r)];
            const std::int64_t end = t.ip_holder_ranges[2 * static_cast<std::size_t>(r) + 1];
            if (first <= prev_end || end <= first)
                fail("ip_holder_ranges", "is not strictly ascending within IP " + str(static_cast<std::int64_t>(i)) +
                                             " at " + row(static_cast<std::size_t>(r)) + " ([" + str(first) + ", " +
                                             str(end) + "): ranges must be non-empty, sorted and apart)");
            prev_end = end;
        }
    }
}

// Groups: group 2p + (family == 6) lists the IPs of pool p and that family, each once, ascending.
void check_groups(const TablesView& t, const TableCounts& c) {
    const auto I = static_cast<std::size_t>(c.ips), G = static_cast<std::size_t>(c.groups);
    need_size("group_ips", t.group_ips, I);
    check_offsets("group_ip_start", t.group_ip_start, G, c.ips);
    checks::indices("group_ips", t.group_ips, 0, c.ips);
    for (std::size_t g = 0; g < G; ++g)
        for (std::int32_t k = t.group_ip_start[g]; k < t.group_ip_start[g + 1]; ++k) {
            const auto i = static_cast<std::size_t>(t.group_ips[static_cast<std::size_t>(k)]);
            if (t.ip_pool[i] != static_cast<std::int32_t>(g / 2) || t.ip_family[i] != (g % 2 ? 6 : 4))
                fail("group_ips", "disagrees with the pool and family of its IPs at " + row(static_cast<std::size_t>(k)) +
                                      " (IP " + str(static_cast<std::int64_t>(i)) + " of pool " + str(t.ip_pool[i]) +
                                      ", IPv" + str(t.ip_family[i]) + ", listed in group " +
                                      str(static_cast<std::int64_t>(g)) + ")");
        }
    for (std::size_t g = 0; g < G; ++g)
        for (std::int32_t k = t.group_ip_start[g] + 1; k < t.group_ip_start[g + 1]; ++k)
            if (t.group_ips[static_cast<std::size_t>(k)] <= t.group_ips[static_cast<std::size_t>(k) - 1])
                fail("group_ips", "is not strictly ascending within group " + str(static_cast<std::int64_t>(g)) +
                                      " at " + row(static_cast<std::size_t>(k)));
}

// Distances, and row l of nearest_order: exactly the m != l at a non-NaN distance, sorted by
// (distance, m), padded with -1; nearest_rank its inverse, INT32_MAX for the unreachable.
void check_distances(const TablesView& t, const TableCounts& c) {
    const auto L = static_cast<std::size_t>(c.locations);
    need_size("location_distance", t.location_distance, L * L);
    need_size("nearest_order", t.nearest_order, L * L);
    need_size("nearest_rank", t.nearest_rank, L * L);
    const double* dist = t.location_distance.data;
    for (std::size_t k = 0; k < L * L; ++k)
        if (dist[k] < 0)
            fail("location_distance", "holds a negative distance at " + cell(k / L, k % L) + " (" +
                                          std::to_string(dist[k]) + ")");
    for (std::size_t l = 0; l < L; ++l)
        if (!(dist[l * L + l] == 0)) fail("location_distance", "has a non-zero diagonal at " + row(l));
    for (std::size_t l = 0; l < L; ++l) {
        const double* drow = dist + l * L;
        const std::int32_t* orow = t.nearest_order.data + l * L;
        const std::int32_t* rrow = t.nearest_rank.data + l * L;
        const auto unreachable = [&](std::size_t m) { return m == l || std::isnan(drow[m]); };
        std::size_t reachable = 0;
        for (std::size_t m = 0; m < L; ++m) {
            reachable += !unreachable(m);
            checks::index("nearest_order", orow[m], -1, c.locations, l, m);
            if (rrow[m] != kUnreachable && (rrow[m] < 0 || rrow[m] >= c.locations))
                fail("nearest_rank", "holds a value outside [0, " + str(c.locations) + ") other than INT32_MAX at " +
                                         cell(l, m) + " (" + str(rrow[m]) + ")");
        }
        for (std::size_t j = 0; j < L; ++j)
            if ((orow[j] >= 0) != (j < reachable))
                fail("nearest_order", "does not list as many locations as are reachable at " + cell(l, j) + " (" +
                                          str(static_cast<std::int64_t>(reachable)) +
                                          " reachable, then -1 padding; holds " + str(orow[j]) + ")");
        // rank[order[j]] == j makes the listed locations distinct; with unreachable ones ranked
        // INT32_MAX they are all reachable, hence (by the count) exactly the reachable ones.
        for (std::size_t j = 0; j < reachable; ++j)
            if (rrow[static_cast<std::size_t>(orow[j])] != static_cast<std::int32_t>(j))
                throw std::invalid_argument("arrays 'nearest_order' and 'nearest_rank' disagree at " + cell(l, j) +
                                            " (location " + str(orow[j]) + " has rank " +
                                            str(rrow[static_cast<std::size_t>(orow[j])]) + ")");
        for (std::size_t m = 0; m < L; ++m)
            if (rrow[m] != kUnreachable && unreachable(m))
                fail("nearest_rank", "ranks an unreachable location at " + cell(l, m));
        for (std::size_t j = 1; j < reachable; ++j) {
            const auto a = static_cast<std::size_t>(orow[j - 1]), b = static_cast<std::size_t>(orow[j]);
            if (drow[b] < drow[a] || (drow[b] == drow[a] && b <= a))
                fail("nearest_order", "is not sorted by (distance, location) at " + cell(l, j));
        }
    }
}

// Candidate lists: each non-empty, strictly ascending, inside the servers of its location.
void check_lists(const TablesView& t, const TableCounts& c) {
    const auto C = static_cast<std::size_t>(c.lists);
    need_size("list_location", t.list_location, C);
    need_data("list_servers", t.list_servers);
    if (t.list_servers.size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        fail("list_servers", "is too long for int32 offsets");
    checks::indices("list_location", t.list_location, 0, c.locations);
    check_offsets("list_server_start", t.list_server_start, C, static_cast<std::int64_t>(t.list_servers.size));
    checks::indices("list_servers", t.list_servers, 0, c.servers);
    for (std::size_t li = 0; li < C; ++li)
        if (t.list_server_start[li + 1] == t.list_server_start[li])
            fail("list_server_start", "gives list " + str(static_cast<std::int64_t>(li)) + " no server");
    for (std::size_t li = 0; li < C; ++li)
        for (std::int32_t k = t.list_server_start[li] + 1; k < t.list_server_start[li + 1]; ++k)
            if (t.list_servers[static_cast<std::size_t>(k)] <= t.list_servers[static_cast<std::size_t>(k) - 1])
                fail("list_servers", "is not strictly ascending within list " + str(static_cast<std::int64_t>(li)) +
                                         " at " + row(static_cast<std::size_t>(k)));
    for (std::size_t li = 0; li < C; ++li) {
        // Ascending, so the first and last servers bound the list.
        const auto loc = static_cast<std::size_t>(t.list_location[li]);
        const std::int32_t k0 = t.list_server_start[li], k1 = t.list_server_start[li + 1] - 1;
        for (const std::int32_t k : {k0, k1}) {
            const std::int32_t s = t.list_servers[static_cast<std::size_t>(k)];
            if (s < t.location_server_start[loc] || s >= t.location_server_start[loc + 1])
                fail("list_servers", "holds a server of list " + str(static_cast<std::int64_t>(li)) +
                                         " outside its location " + str(static_cast<std::int64_t>(loc)) + " (server " +
                                         str(s) + " at " + row(static_cast<std::size_t>(k)) + ")");
        }
    }
}

// Layouts: per layout, locations strictly ascending, each mapped to a list of that location.
void check_layouts(const TablesView& t, const TableCounts& c) {
    const auto Y = static_cast<std::size_t>(c.layouts);
    need_size("layout_location", t.layout_location, t.layout_list.size);
    need_data("layout_list", t.layout_list);
    if (t.layout_list.size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        fail("layout_list", "is too long for int32 offsets");
    check_offsets("layout_start", t.layout_start, Y, static_cast<std::int64_t>(t.layout_list.size));
    checks::indices("layout_location", t.layout_location, 0, c.locations);
    checks::indices("layout_list", t.layout_list, 0, c.lists);
    for (std::size_t y = 0; y < Y; ++y)
        for (std::int32_t k = t.layout_start[y] + 1; k < t.layout_start[y + 1]; ++k)
            if (t.layout_location[static_cast<std::size_t>(k)] <= t.layout_location[static_cast<std::size_t>(k) - 1])
                fail("layout_location", "is not strictly ascending within layout " + str(static_cast<std::int64_t>(y)) +
                                            " at " + row(static_cast<std::size_t>(k)));
    for (std::size_t k = 0; k < t.layout_list.size; ++k) {
        const std::int32_t li = t.layout_list[k];
        const std::int32_t of = t.list_location[static_cast<std::size_t>(li)];
        if (of != t.layout_location[k])
            fail("layout_list", "disagrees with 'layout_location' at " + row(k) + " (list " + str(li) +
                                    " is of location " + str(of) + ", the entry is for location " +
                                    str(t.layout_location[k]) + ")");
    }
    checks::indices("group_layout", t.group_layout, -1, c.layouts);
}

}  // namespace

TableCounts TablesView::validate() const {
    const TableCounts c = validate_structure();
    // The derived candidate tables must be what the facts imply (crosscheck.hpp).
    check_derived_against_facts(*this, c);
    return c;
}

TableCounts TablesView::validate_structure() const {
    TableCounts c;
    c.locations = count_from("location_server_start", location_server_start.size);
    c.dcs = count_from("dc_server_start", dc_server_start.size);
    need_data("server_dc", server_dc);
    if (server_dc.size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1))
        fail("server_dc", "is too long for int32 indices");
    c.servers = static_cast<std::int32_t>(server_dc.size);
    c.ips = count_from("ip_holder_start", ip_holder_start.size);
    need_data("group_layout", group_layout);
    if (group_layout.size % 2 != 0) fail("group_layout", "must have an even length (2 groups per pool)");
    if (group_layout.size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1))
        fail("group_layout", "is too long for int32 indices");
    c.groups = static_cast<std::int32_t>(group_layout.size);
    c.pools = c.groups / 2;
    c.lists = count_from("list_server_start", list_server_start.size);
    c.layouts = count_from("layout_start", layout_start.size);
    need_data("ip_holder_ranges", ip_holder_ranges);
    if (ip_holder_ranges.size % 2 != 0) fail("ip_holder_ranges", "must have shape (R, 2)");
    if (ip_holder_ranges.size / 2 > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1))
        fail("ip_holder_ranges", "is too long for int32 indices");
    c.holder_ranges = static_cast<std::int32_t>(ip_holder_ranges.size / 2);
    if (c.locations > (1 << 24)) fail("location_server_start", "describes more than 2^24 locations");

    check_tree(*this, c);
    check_ips(*this, c);
    check_groups(*this, c);
    check_distances(*this, c);
    check_lists(*this, c);
    check_layouts(*this, c);
    return c;
}

}  // namespace aegisfwd
