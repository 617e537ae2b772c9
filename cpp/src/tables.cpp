// TablesView::validate(): every check the engine's raw-pointer reads depend on.
#include "aegisfwd/tables.hpp"
#include "aegisfwd/crosscheck.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace aegisfwd {
namespace {

[[noreturn]] void fail(const char* array, const std::string& what) {
    throw std::invalid_argument(std::string("array '") + array + "' " + what);
}

template <class T>
void need_data(const char* name, const ArrayView<T>& a) {
    if (a.size > 0 && a.data == nullptr) fail(name, "has a null data pointer");
}

template <class T>
void need_size(const char* name, const ArrayView<T>& a, std::size_t n) {
    need_data(name, a);
    if (a.size != n)
        fail(name, "has " + std::to_string(a.size) + " elements, expected " + std::to_string(n));
}

std::int32_t count_from(const char* name, std::size_t size_plus_one) {
    if (size_plus_one == 0) fail(name, "is empty, expected at least one element (n+1 offsets)");
    if (size_plus_one - 1 > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1))
        fail(name, "is too long for int32 indices");
    return static_cast<std::int32_t>(size_plus_one - 1);
}

// Offsets array of n+1 elements: starts at 0, never decreases, ends at `total`.
void check_offsets(const char* name, const ArrayView<std::int32_t>& a, std::size_t n, std::int64_t total) {
    need_size(name, a, n + 1);
    if (a[0] != 0) fail(name, "must start at 0, holds " + std::to_string(a[0]));
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i + 1] < a[i])
            fail(name, "decreases at row " + std::to_string(i + 1) + " (" + std::to_string(a[i]) + " > " +
                           std::to_string(a[i + 1]) + ")");
    }
    if (a[n] != total)
        fail(name, "must end at " + std::to_string(total) + ", ends at " + std::to_string(a[n]));
}

void check_index(const char* name, std::int64_t value, std::int64_t lo, std::int64_t hi, std::size_t row) {
    if (value < lo || value >= hi)
        fail(name, "holds index " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + ") at row " + std::to_string(row));
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
    c.holder_ranges = static_cast<std::int32_t>(ip_holder_ranges.size / 2);

    if (c.locations > (1 << 24)) fail("location_server_start", "describes more than 2^24 locations");
    const std::size_t L = static_cast<std::size_t>(c.locations);
    const std::size_t D = static_cast<std::size_t>(c.dcs);
    const std::size_t S = static_cast<std::size_t>(c.servers);
    const std::size_t I = static_cast<std::size_t>(c.ips);
    const std::size_t G = static_cast<std::size_t>(c.groups);
    const std::size_t C = static_cast<std::size_t>(c.lists);
    const std::size_t Y = static_cast<std::size_t>(c.layouts);

    // ---- locations, DCs, servers: nested contiguous ranges ---------------------------------
    check_offsets("location_dc_start", location_dc_start, L, c.dcs);
    check_offsets("location_server_start", location_server_start, L, c.servers);
    check_offsets("dc_server_start", dc_server_start, D, c.servers);
    need_size("dc_location", dc_location, D);
    for (std::size_t l = 0; l < L; ++l) {
        for (std::int32_t d = location_dc_start[l]; d < location_dc_start[l + 1]; ++d) {
            if (dc_location[static_cast<std::size_t>(d)] != static_cast<std::int32_t>(l))
                fail("dc_location", "holds " + std::to_string(dc_location[static_cast<std::size_t>(d)]) +
                                        " at row " + std::to_string(d) + " but location_dc_start puts it in " +
                                        std::to_string(l));
        }
        // The servers of a location are exactly the servers of its DCs.
        const std::int32_t d0 = location_dc_start[l], d1 = location_dc_start[l + 1];
        const std::int32_t first = d0 < d1 ? dc_server_start[static_cast<std::size_t>(d0)] : location_server_start[l];
        const std::int32_t end = d0 < d1 ? dc_server_start[static_cast<std::size_t>(d1)] : location_server_start[l];
        if (location_server_start[l] != first || location_server_start[l + 1] != end)
            fail("location_server_start", "row " + std::to_string(l) + " disagrees with the servers of its DCs");
    }
    need_size("server_dc", server_dc, S);
    need_size("server_location", server_location, S);
    need_size("server_key", server_key, S);
    need_size("server_initial_state", server_initial_state, S);
    for (std::size_t d = 0; d < D; ++d) {
        for (std::int32_t s = dc_server_start[d]; s < dc_server_start[d + 1]; ++s) {
            const auto si = static_cast<std::size_t>(s);
            if (server_dc[si] != static_cast<std::int32_t>(d))
                fail("server_dc", "holds " + std::to_string(server_dc[si]) + " at row " + std::to_string(s) +
                                      " but dc_server_start puts it in " + std::to_string(d));
            if (server_location[si] != dc_location[d])
                fail("server_location", "holds " + std::to_string(server_location[si]) + " at row " +
                                            std::to_string(s) + ", its DC is in " + std::to_string(dc_location[d]));
        }
    }
    for (std::size_t s = 0; s < S; ++s) {
        if (server_initial_state[s] > 2)
            fail("server_initial_state", "holds state " + std::to_string(server_initial_state[s]) +
                                             " (expected 0 up, 1 draining, 2 down) at row " + std::to_string(s));
    }

    // ---- IPs and their holders -----------------------------------------------------------------
    need_size("ip_pool", ip_pool, I);
    need_size("ip_family", ip_family, I);
    need_size("ip_key", ip_key, I);
    check_offsets("ip_holder_start", ip_holder_start, I, c.holder_ranges);
    for (std::size_t i = 0; i < I; ++i) {
        check_index("ip_pool", ip_pool[i], 0, c.pools, i);
        if (ip_family[i] != 4 && ip_family[i] != 6)
            fail("ip_family", "holds " + std::to_string(ip_family[i]) + " (expected 4 or 6) at row " + std::to_string(i));
        std::int64_t prev_end = -1;
        for (std::int32_t r = ip_holder_start[i]; r < ip_holder_start[i + 1]; ++r) {
            const std::int64_t first = ip_holder_ranges[2 * static_cast<std::size_t>(r)];
            const std::int64_t end = ip_holder_ranges[2 * static_cast<std::size_t>(r) + 1];
            if (first < 0 || end > c.servers || first >= end)
                fail("ip_holder_ranges", "row " + std::to_string(r) + " is [" + std::to_string(first) + ", " +
                                             std::to_string(end) + "), not a non-empty range inside [0, " +
                                             std::to_string(c.servers) + ")");
            if (first <= prev_end)
                fail("ip_holder_ranges", "row " + std::to_string(r) +
                                             " overlaps or touches the previous range of its IP (ranges must be "
                                             "sorted and merged)");
            prev_end = end;
        }
    }

    // ---- groups: (pool, family) -> IPs -------------------------------------------------------
    need_size("group_ips", group_ips, I);
    check_offsets("group_ip_start", group_ip_start, G, c.ips);
    for (std::size_t g = 0; g < G; ++g) {
        std::int64_t prev = -1;
        for (std::int32_t k = group_ip_start[g]; k < group_ip_start[g + 1]; ++k) {
            const std::int32_t i = group_ips[static_cast<std::size_t>(k)];
            check_index("group_ips", i, 0, c.ips, static_cast<std::size_t>(k));
            if (i <= prev) fail("group_ips", "is not ascending within group " + std::to_string(g));
            prev = i;
            const auto ii = static_cast<std::size_t>(i);
            if (ip_pool[ii] != static_cast<std::int32_t>(g / 2) || ip_family[ii] != (g % 2 ? 6 : 4))
                fail("group_ips", "lists IP " + std::to_string(i) + " under group " + std::to_string(g) +
                                      " whose pool/family it does not have");
        }
    }

    // ---- distances and nearest order ---------------------------------------------------------
    need_size("location_distance", location_distance, L * L);
    need_size("nearest_order", nearest_order, L * L);
    need_size("nearest_rank", nearest_rank, L * L);
    for (std::size_t l = 0; l < L; ++l) {
        const double* drow = location_distance.data + l * L;
        const std::int32_t* orow = nearest_order.data + l * L;
        const std::int32_t* rrow = nearest_rank.data + l * L;
        bool padding = false;
        for (std::size_t k = 0; k < L; ++k) {
            const std::int32_t m = orow[k];
            if (m == -1) {
                padding = true;
                continue;
            }
            if (padding) fail("nearest_order", "row " + std::to_string(l) + " has an entry after its -1 padding");
            check_index("nearest_order", m, 0, c.locations, l * L + k);
            const auto mi = static_cast<std::size_t>(m);
            if (mi == l) fail("nearest_order", "row " + std::to_string(l) + " lists the location itself");
            if (!(drow[mi] >= 0.0))  // also rejects NaN: unreachable locations are not listed
                fail("nearest_order", "row " + std::to_string(l) + " lists location " + std::to_string(m) +
                                          " whose distance is negative or unreachable");
            if (rrow[mi] != static_cast<std::int32_t>(k))
                fail("nearest_rank", "row " + std::to_string(l) + " gives location " + std::to_string(m) +
                                         " rank " + std::to_string(rrow[mi]) + ", nearest_order has it at " +
                                         std::to_string(k));
            if (k > 0) {
                const auto prev = static_cast<std::size_t>(orow[k - 1]);
                if (drow[prev] > drow[mi] || (drow[prev] == drow[mi] && prev > mi))
                    fail("nearest_order", "row " + std::to_string(l) + " is not sorted by (distance, location)");
            }
        }
        for (std::size_t m = 0; m < L; ++m) {
            const std::int32_t r = rrow[m];
            if (r == std::numeric_limits<std::int32_t>::max()) {
                if (m != l && drow[m] >= 0.0)
                    fail("nearest_rank", "row " + std::to_string(l) + " marks reachable location " +
                                             std::to_string(m) + " as unreachable");
                continue;
            }
            check_index("nearest_rank", r, 0, c.locations, l * L + m);
            if (orow[static_cast<std::size_t>(r)] != static_cast<std::int32_t>(m))
                fail("nearest_rank", "row " + std::to_string(l) + " disagrees with nearest_order for location " +
                                         std::to_string(m));
        }
        if (drow[l] != 0.0) fail("location_distance", "has a non-zero diagonal at row " + std::to_string(l));
    }

    // ---- candidate lists -----------------------------------------------------------------------
    need_size("list_location", list_location, C);
    need_data("list_servers", list_servers);
    if (list_servers.size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        fail("list_servers", "is too long for int32 offsets");
    check_offsets("list_server_start", list_server_start, C, static_cast<std::int64_t>(list_servers.size));
    for (std::size_t li = 0; li < C; ++li) {
        const std::int32_t loc = list_location[li];
        check_index("list_location", loc, 0, c.locations, li);
        const std::int32_t first = location_server_start[static_cast<std::size_t>(loc)];
        const std::int32_t end = location_server_start[static_cast<std::size_t>(loc) + 1];
        std::int64_t prev = -1;
        for (std::int32_t k = list_server_start[li]; k < list_server_start[li + 1]; ++k) {
            const std::int32_t s = list_servers[static_cast<std::size_t>(k)];
            if (s < first || s >= end)
                fail("list_servers", "holds server " + std::to_string(s) + " at row " + std::to_string(k) +
                                         ", outside location " + std::to_string(loc) + " of list " + std::to_string(li));
            if (s <= prev) fail("list_servers", "is not ascending within list " + std::to_string(li));
            prev = s;
        }
    }

    // ---- layouts -------------------------------------------------------------------------------
    need_size("layout_location", layout_location, layout_list.size);
    need_data("layout_list", layout_list);
    if (layout_list.size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        fail("layout_list", "is too long for int32 offsets");
    check_offsets("layout_start", layout_start, Y, static_cast<std::int64_t>(layout_list.size));
    for (std::size_t y = 0; y < Y; ++y) {
        std::int64_t prev = -1;
        for (std::int32_t k = layout_start[y]; k < layout_start[y + 1]; ++k) {
            const auto ki = static_cast<std::size_t>(k);
            const std::int32_t loc = layout_location[ki];
            check_index("layout_location", loc, 0, c.locations, ki);
            if (loc <= prev) fail("layout_location", "is not strictly ascending within layout " + std::to_string(y));
            prev = loc;
            const std::int32_t li = layout_list[ki];
            check_index("layout_list", li, 0, c.lists, ki);
            if (list_location[static_cast<std::size_t>(li)] != loc)
                fail("layout_list", "row " + std::to_string(k) + " maps location " + std::to_string(loc) +
                                        " to list " + std::to_string(li) + " of another location");
        }
    }
    for (std::size_t g = 0; g < G; ++g) check_index("group_layout", group_layout[g], -1, c.layouts, g);
    return c;
}

}  // namespace aegisfwd
