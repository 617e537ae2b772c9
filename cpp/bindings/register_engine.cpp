// aegisfwd._core.engine: thin bindings over aegisfwd::Engine. The public API is aegisfwd.Engine
// (src/aegisfwd/engine.py), which normalises user input before calling these.
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "aegisfwd/engine.hpp"
#include "aegisfwd/shared_segment.hpp"
#include "bindings.hpp"

namespace aegisfwd::bindings {
namespace {

struct CoreEngine {
    // Keeps every array the engine reads (and whatever owns their memory, e.g. a memory-mapped
    // compiled file) alive for as long as the engine exists.
    std::vector<py::object> keep;
    std::unique_ptr<Engine> engine;
};

template <class T>
ArrayView<T> take(const py::handle& arrays, const char* name, std::vector<py::object>& keep) {
    py::object obj;
    try {
        obj = arrays[py::str(name)];
    } catch (py::error_already_set& e) {
        if (!e.matches(PyExc_KeyError)) throw;
        throw std::invalid_argument(std::string("missing array '") + name + "'");
    }
    auto a = checked_array<T>(obj, std::string("array '") + name + "'");
    keep.push_back(a);
    return view_of<T>(a);
}

TablesView tables_of(const py::object& arrays, std::vector<py::object>& k) {
    TablesView t;
    t.location_dc_start = take<std::int32_t>(arrays, "location_dc_start", k);
    t.location_server_start = take<std::int32_t>(arrays, "location_server_start", k);
    t.dc_location = take<std::int32_t>(arrays, "dc_location", k);
    t.dc_server_start = take<std::int32_t>(arrays, "dc_server_start", k);
    t.server_dc = take<std::int32_t>(arrays, "server_dc", k);
    t.server_location = take<std::int32_t>(arrays, "server_location", k);
    t.server_key = take<std::uint64_t>(arrays, "server_key", k);
    t.server_initial_state = take<std::uint8_t>(arrays, "server_initial_state", k);
    t.ip_pool = take<std::int32_t>(arrays, "ip_pool", k);
    t.ip_family = take<std::uint8_t>(arrays, "ip_family", k);
    t.ip_key = take<std::uint64_t>(arrays, "ip_key", k);
    t.ip_holder_start = take<std::int32_t>(arrays, "ip_holder_start", k);
    t.ip_holder_ranges = take<std::int32_t>(arrays, "ip_holder_ranges", k);
    t.group_ip_start = take<std::int32_t>(arrays, "group_ip_start", k);
    t.group_ips = take<std::int32_t>(arrays, "group_ips", k);
    t.location_distance = take<double>(arrays, "location_distance", k);
    t.nearest_order = take<std::int32_t>(arrays, "nearest_order", k);
    t.nearest_rank = take<std::int32_t>(arrays, "nearest_rank", k);
    t.list_location = take<std::int32_t>(arrays, "list_location", k);
    t.list_server_start = take<std::int32_t>(arrays, "list_server_start", k);
    t.list_servers = take<std::int32_t>(arrays, "list_servers", k);
    t.layout_start = take<std::int32_t>(arrays, "layout_start", k);
    t.layout_location = take<std::int32_t>(arrays, "layout_location", k);
    t.layout_list = take<std::int32_t>(arrays, "layout_list", k);
    t.group_layout = take<std::int32_t>(arrays, "group_layout", k);
    return t;
}

std::unique_ptr<CoreEngine> make_engine(const py::object& arrays, const py::object& states, const std::string& isa) {
    auto core = std::make_unique<CoreEngine>();
    const TablesView t = tables_of(arrays, core->keep);
    if (states.is_none()) {
        core->engine = std::make_unique<Engine>(t, nullptr, 0, isa);
    } else {
        auto st = checked_array<std::uint8_t>(states, "states");
        core->engine = std::make_unique<Engine>(t, st.data(), static_cast<std::size_t>(st.size()), isa);
    }
    return core;
}

// A shared engine (docs/engine.md "Many processes, one state"): the derived tables and the live
// state in the shared-memory segment /dev/shm/<name>; the compiled arrays stay the caller's.
std::unique_ptr<CoreEngine> create_shared(const py::object& arrays, const std::string& name, const py::object& states,
                                          const std::string& isa) {
    auto core = std::make_unique<CoreEngine>();
    const TablesView t = tables_of(arrays, core->keep);
    if (states.is_none()) {
        core->engine = Engine::create_shared(t, name, nullptr, 0, isa);
    } else {
        auto st = checked_array<std::uint8_t>(states, "states");
        core->engine = Engine::create_shared(t, name, st.data(), static_cast<std::size_t>(st.size()), isa);
    }
    return core;
}

std::unique_ptr<CoreEngine> attach_shared(const py::object& arrays, const std::string& name, const std::string& isa) {
    auto core = std::make_unique<CoreEngine>();
    const TablesView t = tables_of(arrays, core->keep);
    core->engine = Engine::attach_shared(t, name, isa);
    return core;
}

template <class T>
carray<T> column(const py::handle& obj, const char* what) {
    auto a = checked_array<T>(obj, what);
    if (a.ndim() != 1) throw std::invalid_argument(std::string(what) + " must be 1-dimensional");
    return a;
}

py::tuple decide_batch(const CoreEngine& self, const py::handle& server, const py::handle& pool,
                       const py::handle& family, const py::handle& flow, unsigned threads) {
    auto s = column<std::int32_t>(server, "server");
    auto p = column<std::int32_t>(pool, "pool");
    auto f = column<std::uint8_t>(family, "family");
    auto h = column<std::uint64_t>(flow, "flow");
    const auto n = static_cast<std::size_t>(s.size());
    if (static_cast<std::size_t>(p.size()) != n || static_cast<std::size_t>(f.size()) != n ||
        static_cast<std::size_t>(h.size()) != n)
        throw std::invalid_argument("server, pool, family and flow must have the same length (got " +
                                    std::to_string(n) + ", " + std::to_string(p.size()) + ", " +
                                    std::to_string(f.size()) + ", " + std::to_string(h.size()) + ")");
    OwnedColumn<std::uint8_t> tier(n);
    OwnedColumn<std::int32_t> srv(n), dc(n), loc(n), ip(n);
    OwnedColumn<double> dist(n);
    const BatchColumns out{tier.get(), srv.get(), dc.get(), loc.get(), ip.get(), dist.get()};
    std::int64_t invalid;
    {
        // Safe without the GIL: the input buffers are held by s/p/f/h (references taken above, so
        // they outlive this block) and are only read; the outputs are private until returned; the
        // engine is kept alive by `self`, which the calling frame references. Rows are range-checked
        // one by one inside the kernel (a bad row becomes INVALID), so no value can steer a read
        // outside the tables; lengths were checked above.
        py::gil_scoped_release release;
        invalid = self.engine->decide_batch(s.data(), p.data(), f.data(), h.data(), n, out, threads);
    }
    return py::make_tuple(tier.release(), srv.release(), dc.release(), loc.release(), ip.release(),
                          dist.release(), invalid);
}

}  // namespace

void register_engine(py::module_& m) {
    m.attr("ENGINE_CAPSULE_NAME") = "aegisfwd.engine.v1";
    py::register_exception<SharedSegmentError>(m, "SharedSegmentError", PyExc_RuntimeError);
    m.def("unlink_shared", &Engine::unlink_shared, py::arg("name"),
          "Remove the shared engine segment /dev/shm/<name>; False when it did not exist.");

    py::class_<CoreEngine>(m, "Engine", "Compiled decision engine over the arrays of a CompiledTopology.")
        .def(py::init(&make_engine), py::arg("arrays"), py::arg("states") = py::none(), py::arg("isa") = "auto",
             "Build from a mapping of array name -> numpy array (docs/compiled-format.md). The arrays "
             "are checked (dtype, contiguity, every index range) and kept alive, never copied.")
        .def_static("create_shared", &create_shared, py::arg("arrays"), py::arg("name"),
                    py::arg("states") = py::none(), py::arg("isa") = "auto",
                    "Build the derived tables and the live state into a new shared-memory segment "
                    "/dev/shm/<name> (SharedSegmentError if it exists).")
        .def_static("attach_shared", &attach_shared, py::arg("arrays"), py::arg("name"), py::arg("isa") = "auto",
                    "Map the existing segment /dev/shm/<name> built from these same arrays "
                    "(SharedSegmentError when missing, foreign, truncated or built from other arrays).")
        .def_property_readonly("shared_name",
                               [](const CoreEngine& self) { return self.engine->shared_name(); },
                               "The segment name of a shared engine, '' for a per-process one.")
        .def(
            "decide",
            [](const CoreEngine& self, std::int32_t server, std::int32_t pool, std::uint8_t family,
               std::uint64_t flow) {
                DecisionOut o{};
                self.engine->decide(server, pool, family, flow, o);
                return py::make_tuple(o.tier, o.server, o.dc, o.location, o.ip, o.distance);
            },
            py::arg("server"), py::arg("pool"), py::arg("family"), py::arg("flow"),
            "One decision on indices: (tier, server, dc, location, ip, distance).")
        .def("decide_batch", &decide_batch, py::arg("server"), py::arg("pool"), py::arg("family"), py::arg("flow"),
             py::arg("threads") = 0u,
             "Columns int32 server/pool, uint8 family, uint64 flow (C-contiguous, exact dtypes) -> "
             "(tier, server, dc, location, ip, distance, n_invalid). threads=0: all cores.")
        .def(
            "set_state",
            [](CoreEngine& self, std::int32_t first, std::int32_t end, std::uint8_t state) {
                self.engine->set_state(first, end, state);
            },
            py::arg("first"), py::arg("end"), py::arg("state"), "Servers [first, end) get state 0/1/2.")
        .def(
            "set_states",
            [](CoreEngine& self, const py::handle& states) {
                auto a = column<std::uint8_t>(states, "states");
                self.engine->set_states(a.data(), static_cast<std::size_t>(a.size()));
            },
            py::arg("states"), "Every server's state at once (uint8 array of length S).")
        .def(
            "get_states",
            [](const CoreEngine& self) {
                OwnedColumn<std::uint8_t> out(static_cast<std::size_t>(self.engine->counts().servers));
                self.engine->get_states(out.get(), out.n);
                return out.release();
            },
            "A copy of every server's state (uint8).")
        .def(
            "state", [](const CoreEngine& self, std::int32_t s) { return self.engine->state(s); }, py::arg("server"))
        .def_property_readonly("version", [](const CoreEngine& self) { return self.engine->version(); })
        .def_property_readonly("isa", [](const CoreEngine& self) { return std::string(self.engine->isa()); })
        .def_property_readonly("counts",
                               [](const CoreEngine& self) {
                                   const auto& c = self.engine->counts();
                                   py::dict d;
                                   d["locations"] = c.locations;
                                   d["dcs"] = c.dcs;
                                   d["servers"] = c.servers;
                                   d["pools"] = c.pools;
                                   d["ips"] = c.ips;
                                   d["groups"] = c.groups;
                                   d["holder_ranges"] = c.holder_ranges;
                                   d["lists"] = c.lists;
                                   d["layouts"] = c.layouts;
                                   return d;
                               })
        .def_property_readonly("stats",
                               [](const CoreEngine& self) {
                                   const auto& s = self.engine->stats();
                                   py::dict d;
                                   d["build_ms"] = s.build_ms;
                                   d["derived_bytes"] = s.derived_bytes;
                                   d["small_layouts"] = s.small_layouts;
                                   d["big_layouts"] = s.big_layouts;
                                   d["nonuniform_groups"] = s.nonuniform_groups;
                                   d["checked_entries"] = s.checked_entries;
                                   d["isa"] = std::string(self.engine->isa());
                                   return d;
                               })
        .def(
            "argmax",
            [](const CoreEngine& self, const py::handle& keys, std::uint64_t flow_hash) {
                auto k = column<std::uint64_t>(keys, "keys");
                if (k.size() == 0) throw std::invalid_argument("keys must not be empty");
                return self.engine->argmax(k.data(), static_cast<std::int32_t>(k.size()), flow_hash);
            },
            py::arg("keys"), py::arg("flow_hash"),
            "Rendezvous argmax with this engine's kernel: position of the largest (mix64(h ^ key), key).")
        .def(
            "_capsule",
            [](const CoreEngine& self) {
                return py::capsule(static_cast<const void*>(self.engine.get()), "aegisfwd.engine.v1");
            },
            "PyCapsule 'aegisfwd.engine.v1' holding the const aegisfwd::Engine*; valid while this object "
            "lives (for aegisfwd._fast).");
}

}  // namespace aegisfwd::bindings
