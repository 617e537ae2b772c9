// check_derived_against_facts(): the derived candidate tables must be what the facts imply.
#include "aegisfwd/crosscheck.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace aegisfwd {
namespace {

using Range = std::pair<std::int32_t, std::int32_t>;  // [first, end) of server indices

[[noreturn]] void fail(const char* array, std::int64_t row, const std::string& what) {
    throw std::invalid_argument(std::string("array '") + array + "' row " + std::to_string(row) + ": " + what);
}

std::string str(std::int64_t v) { return std::to_string(v); }

// Servers holding at least one IP of group g, as sorted, merged ranges (the canonical form of a
// server set: two sets are equal exactly when their merged ranges are).
void group_holders(const TablesView& t, std::int32_t g, std::vector<Range>& out) {
    out.clear();
    const std::int32_t k0 = t.group_ip_start[g], k1 = t.group_ip_start[g + 1];
    for (std::int32_t k = k0; k < k1; ++k) {
        const std::int32_t i = t.group_ips[k];
        for (std::int32_t r = t.ip_holder_start[i]; r < t.ip_holder_start[i + 1]; ++r)
            out.emplace_back(t.ip_holder_ranges[2 * static_cast<std::size_t>(r)],
                             t.ip_holder_ranges[2 * static_cast<std::size_t>(r) + 1]);
    }
    if (k1 - k0 <= 1) return;  // one IP: validate() has its ranges sorted and merged already
    std::sort(out.begin(), out.end());
    std::size_t w = 0;
    for (std::size_t r = 0; r < out.size(); ++r) {
        if (w > 0 && out[r].first <= out[w - 1].second) {
            out[w - 1].second = std::max(out[w - 1].second, out[r].second);
        } else {
            out[w++] = out[r];
        }
    }
    out.resize(w);
}

bool holds(const std::vector<Range>& ranges, std::int32_t s) {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), s,
                               [](std::int32_t v, const Range& r) { return v < r.second; });
    return it != ranges.end() && it->first <= s;
}

// Slow path, only to name the first holder layout y leaves out (the fast walk found a count mismatch).
[[noreturn]] void fail_missing_holder(const TablesView& t, std::int32_t g, std::int32_t y,
                                      const std::vector<Range>& ranges) {
    const std::int32_t a = t.layout_start[y], b = t.layout_start[y + 1];
    for (const Range& r : ranges) {
        for (std::int32_t s = r.first; s < r.second; ++s) {
            const std::int32_t m = t.server_location[s];
            const std::int32_t* loc = std::lower_bound(t.layout_location.data + a, t.layout_location.data + b, m);
            if (loc == t.layout_location.data + b || *loc != m)
                fail("group_layout", g,
                     "layout " + str(y) + " of group " + str(g) + " has no entry for location " + str(m) +
                         " although its server " + str(s) + " holds an IP of the group");
            const std::int32_t c = t.layout_list[loc - t.layout_location.data];
            const std::int32_t* first = t.list_servers.data + t.list_server_start[c];
            const std::int32_t* end = t.list_servers.data + t.list_server_start[c + 1];
            if (!std::binary_search(first, end, s))
                fail("list_servers", t.list_server_start[c],
                     "list " + str(c) + " (location " + str(m) + ", group " + str(g) + ") leaves out server " +
                         str(s) + ", which holds an IP of the group");
        }
    }
    fail("group_layout", g, "layout " + str(y) + " disagrees with the holders of group " + str(g));
}

// Compares list c with `clip`, the holders of group g inside location m (merged ranges), server by
// server; throws naming the first server in one and not the other.
void check_list(const TablesView& t, std::int32_t g, std::int32_t y, std::int32_t m, std::int32_t c,
                const std::vector<Range>& clip) {
    const std::int32_t q0 = t.list_server_start[c], q1 = t.list_server_start[c + 1];
    std::size_t at = 0;
    for (std::int32_t q = q0; q < q1; ++q) {
        const std::int32_t s = t.list_servers[q];
        while (at < clip.size() && clip[at].second <= s) ++at;
        if (at == clip.size() || s < clip[at].first)
            fail("list_servers", q,
                 "server " + str(s) + " of list " + str(c) + " (layout " + str(y) + ", location " + str(m) +
                     ") holds no IP of group " + str(g));
    }
    // Every listed server is a holder, and lists ascend without repeats (validate_structure), so
    // the list equals the clip exactly when the counts agree.
    std::int64_t holders = 0;
    for (const Range& r : clip) holders += r.second - r.first;
    if (holders == q1 - q0) return;
    for (const Range& r : clip)
        for (std::int32_t s = r.first; s < r.second; ++s)
            if (!std::binary_search(t.list_servers.data + q0, t.list_servers.data + q1, s))
                fail("list_servers", q0,
                     "list " + str(c) + " (location " + str(m) + ", group " + str(g) + ") leaves out server " +
                         str(s) + ", which holds an IP of the group");
    fail("list_servers", q0, "list " + str(c) + " disagrees with the holders of group " + str(g));  // unreachable
}

// Lists are shared by many layouts (the world file: 119,476 layout entries over 37,796 lists), so
// each list is walked once, against the first holder clip it is used for; later uses compare clips
// (a few ranges) with that one. Equal merged ranges mean equal server sets.
struct ListMemo {
    std::vector<std::int64_t> at, len;  // per list: its clip in `ranges`, or at -1 when not yet seen
    std::vector<Range> ranges;
};

// Layout y must split exactly `holders` (the servers holding an IP of group g) by location.
void check_layout(const TablesView& t, std::int32_t g, std::int32_t y, const std::vector<Range>& holders,
                  ListMemo& memo, std::vector<Range>& clip) {
    std::int64_t total = 0, covered = 0;
    for (const Range& r : holders) total += r.second - r.first;
    std::size_t at = 0;  // locations ascend, so the holder ranges are consumed in order
    for (std::int32_t k = t.layout_start[y]; k < t.layout_start[y + 1]; ++k) {
        const std::int32_t m = t.layout_location[k], c = t.layout_list[k];
        const std::int32_t first = t.location_server_start[m], end = t.location_server_start[m + 1];
        while (at < holders.size() && holders[at].second <= first) ++at;
        clip.clear();
        for (std::size_t j = at; j < holders.size() && holders[j].first < end; ++j)
            clip.emplace_back(std::max(holders[j].first, first), std::min(holders[j].second, end));
        if (clip.empty())
            fail("layout_location", k,
                 "layout " + str(y) + " has an entry for location " + str(m) +
                     ", where no server holds an IP of group " + str(g));
        for (const Range& r : clip) covered += r.second - r.first;
        const auto ci = static_cast<std::size_t>(c);
        if (memo.at[ci] >= 0 && memo.len[ci] == static_cast<std::int64_t>(clip.size()) &&
            std::equal(clip.begin(), clip.end(), memo.ranges.begin() + memo.at[ci]))
            continue;
        check_list(t, g, y, m, c, clip);  // first use of list c (or a mismatch: throws, naming it)
        memo.at[ci] = static_cast<std::int64_t>(memo.ranges.size());
        memo.len[ci] = static_cast<std::int64_t>(clip.size());
        memo.ranges.insert(memo.ranges.end(), clip.begin(), clip.end());
    }
    if (covered != total) fail_missing_holder(t, g, y, holders);
}

}  // namespace

void check_derived_against_facts(const TablesView& t, const TableCounts& c) {
    const auto Y = static_cast<std::size_t>(c.layouts);
    // Holders of the first group seen with each layout, as offsets into `canon`.
    std::vector<std::int64_t> canon_at(Y, -1), canon_len(Y, 0);
    std::vector<std::int32_t> canon_group(Y, -1);
    std::vector<Range> canon, ranges, clip;
    ListMemo memo;
    memo.at.assign(static_cast<std::size_t>(c.lists), -1);
    memo.len.assign(static_cast<std::size_t>(c.lists), 0);
    for (std::int32_t g = 0; g < c.groups; ++g) {
        group_holders(t, g, ranges);
        const std::int32_t y = t.group_layout[g];
        if (ranges.empty()) {
            if (y != -1)
                fail("group_layout", g,
                     "group " + str(g) + " has layout " + str(y) + " but no server holds any of its IPs (expected -1)");
            continue;
        }
        if (y == -1)
            fail("group_layout", g,
                 "group " + str(g) + " has no layout (-1) but server " + str(ranges.front().first) +
                     " holds one of its IPs");
        const auto yi = static_cast<std::size_t>(y);
        if (canon_at[yi] < 0) {
            check_layout(t, g, y, ranges, memo, clip);
            canon_at[yi] = static_cast<std::int64_t>(canon.size());
            canon_len[yi] = static_cast<std::int64_t>(ranges.size());
            canon_group[yi] = g;
            canon.insert(canon.end(), ranges.begin(), ranges.end());
            continue;
        }
        const bool same = canon_len[yi] == static_cast<std::int64_t>(ranges.size()) &&
                          std::equal(ranges.begin(), ranges.end(), canon.begin() + canon_at[yi]);
        if (!same)
            fail("group_layout", g,
                 "group " + str(g) + " shares layout " + str(y) + " with group " + str(canon_group[yi]) +
                     " but their IPs are held by different servers");
    }
}

}  // namespace aegisfwd
