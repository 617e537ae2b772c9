// aegisfwd._core.compiled.validate_tables: the C++ validator of compiled tables (TablesView::validate, with
// the cross-check of derived tables against facts) for load_compiled, which runs it on a freshly
// mapped file before any engine is built, so that a forged file fails at load whatever backend
// reads it later.
#include <string>
#include <utility>
#include <vector>

#include "aegisfwd/string_table.hpp"
#include "aegisfwd/tables.hpp"
#include "bindings.hpp"

namespace aegisfwd::bindings {
namespace {

template <class T>
ArrayView<T> array_of(const py::dict& arrays, const char* name, std::vector<py::object>& keep) {
    if (!arrays.contains(name)) throw std::invalid_argument(std::string("missing array '") + name + "'");
    auto a = checked_array<T>(arrays[name], std::string("array '") + name + "'");
    keep.push_back(a);
    return view_of<T>(a);
}

py::dict validate_tables(const py::dict& arrays, bool derived) {
    std::vector<py::object> keep;  // the arrays stay referenced while the GIL is released
    TablesView t;
    t.location_dc_start = array_of<std::int32_t>(arrays, "location_dc_start", keep);
    t.location_server_start = array_of<std::int32_t>(arrays, "location_server_start", keep);
    t.dc_location = array_of<std::int32_t>(arrays, "dc_location", keep);
    t.dc_server_start = array_of<std::int32_t>(arrays, "dc_server_start", keep);
    t.server_dc = array_of<std::int32_t>(arrays, "server_dc", keep);
    t.server_location = array_of<std::int32_t>(arrays, "server_location", keep);
    t.server_key = array_of<std::uint64_t>(arrays, "server_key", keep);
    t.server_initial_state = array_of<std::uint8_t>(arrays, "server_initial_state", keep);
    t.ip_pool = array_of<std::int32_t>(arrays, "ip_pool", keep);
    t.ip_family = array_of<std::uint8_t>(arrays, "ip_family", keep);
    t.ip_key = array_of<std::uint64_t>(arrays, "ip_key", keep);
    t.ip_holder_start = array_of<std::int32_t>(arrays, "ip_holder_start", keep);
    t.ip_holder_ranges = array_of<std::int32_t>(arrays, "ip_holder_ranges", keep);
    t.group_ip_start = array_of<std::int32_t>(arrays, "group_ip_start", keep);
    t.group_ips = array_of<std::int32_t>(arrays, "group_ips", keep);
    t.location_distance = array_of<double>(arrays, "location_distance", keep);
    t.nearest_order = array_of<std::int32_t>(arrays, "nearest_order", keep);
    t.nearest_rank = array_of<std::int32_t>(arrays, "nearest_rank", keep);
    t.list_location = array_of<std::int32_t>(arrays, "list_location", keep);
    t.list_server_start = array_of<std::int32_t>(arrays, "list_server_start", keep);
    t.list_servers = array_of<std::int32_t>(arrays, "list_servers", keep);
    t.layout_start = array_of<std::int32_t>(arrays, "layout_start", keep);
    t.layout_location = array_of<std::int32_t>(arrays, "layout_location", keep);
    t.layout_list = array_of<std::int32_t>(arrays, "layout_list", keep);
    t.group_layout = array_of<std::int32_t>(arrays, "group_layout", keep);
    // Id string tables, when the dict has them (an engine's arrays need not).
    static constexpr const char* kKinds[] = {"location", "dc", "server", "pool", "ip", "zone"};
    std::vector<std::string> names;
    std::vector<std::pair<ArrayView<std::uint8_t>, ArrayView<std::int64_t>>> strings;
    for (const char* kind : kKinds) {
        const std::string b = std::string(kind) + "_id_bytes", o = std::string(kind) + "_id_offsets";
        if (!arrays.contains(b.c_str())) continue;
        strings.emplace_back(array_of<std::uint8_t>(arrays, b.c_str(), keep),
                             array_of<std::int64_t>(arrays, o.c_str(), keep));
        names.push_back(b);
        names.push_back(o);
    }
    TableCounts c;
    {
        py::gil_scoped_release nogil;
        c = derived ? t.validate() : t.validate_structure();
        for (std::size_t k = 0; k < strings.size(); ++k)
            check_string_table(names[2 * k].c_str(), names[2 * k + 1].c_str(), strings[k].first, strings[k].second);
    }
    py::dict out;
    out["locations"] = c.locations;
    out["dcs"] = c.dcs;
    out["servers"] = c.servers;
    out["pools"] = c.pools;
    out["ips"] = c.ips;
    out["groups"] = c.groups;
    out["holder_ranges"] = c.holder_ranges;
    out["lists"] = c.lists;
    out["layouts"] = c.layouts;
    return out;
}

}  // namespace

void register_validate(py::module_& m) {
    m.def("validate_tables", &validate_tables, py::arg("arrays"), py::arg("derived") = true,
          "Run the C++ validator of compiled tables (structure, then derived tables against facts, "
          "then the id string tables present: offsets and unique ids) "
          "on a dict name -> numpy array; ValueError naming the array and row on the first problem. "
          "Returns the index-space sizes. derived=False skips the cross-check (to measure its cost).");
}

}  // namespace aegisfwd::bindings
