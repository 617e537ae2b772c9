// Cross-check of a compiled topology's derived tables against its facts.
//
// TablesView::validate() makes every array safe to index; this check makes every answer true. The
// engine takes its candidate servers from the derived tables (group -> layout -> list -> servers)
// and its source IP from the facts (ip_holder_ranges), so a forged file whose lists disagree with
// the holder ranges would make it answer a server together with an IP that server does not hold,
// or a forwarding tier with no IP at all. After this check, for every group g:
//
//   * the servers of g's layout (the union of its lists) are exactly the servers holding at least
//     one IP of g, split by location: list c of entry (m, c) holds exactly those holders inside
//     location m, and no location outside the layout has one;
//   * group_layout[g] is -1 exactly when no server holds an IP of g.
//
// Together with validate() this means any (server, IP) pair the engine can answer is one the facts
// support, whatever the bytes of the file (docs/reliability.md).
#pragma once
#include "aegisfwd/tables.hpp"

namespace aegisfwd {

// Throws std::invalid_argument naming the array and row on the first disagreement
// ("array 'list_servers' row 812: server 4410 of list 97 holds no IP of group 5"). `t` must have
// passed the structural part of validate() (its index ranges are trusted here). Groups sharing a
// layout must have the same holder set, so each layout is walked once: cost O(holder ranges +
// servers of distinct layouts).
void check_derived_against_facts(const TablesView& t, const TableCounts& c);

}  // namespace aegisfwd
