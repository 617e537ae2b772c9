// aegisfwd._core: assembles the binding areas (one register_*.cpp each), one submodule per area
// (stubs: src/aegisfwd/_core/<area>.pyi). Internal: users import aegisfwd and use aegisfwd.Engine.
#include "bindings.hpp"

namespace {

namespace py = pybind11;

// m.<name>, also importable by its dotted name (import aegisfwd._core.engine): a pybind11 submodule
// is otherwise only an attribute, which type checkers' stub tests and pickle cannot import.
py::module_ area(py::module_& m, const char* name, const char* doc) {
    py::module_ sub = m.def_submodule(name, doc);
    py::module_::import("sys").attr("modules")[sub.attr("__name__")] = sub;
    return sub;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    using namespace aegisfwd::bindings;
    m.doc() = "aegisfwd compiled core (internal; use aegisfwd.Engine)";
    register_isa(m);  // shared by every area that dispatches on the instruction set
    py::module_ hashing = area(m, "hashing", "Hashing scheme v1 (docs/hashing.md), to pin against _hashing.py.");
    register_hashing(hashing);
    py::module_ engine = area(m, "engine", "The compiled decision engine (aegisfwd.Engine runs on it).");
    register_engine(engine);
    py::module_ logeval = area(m, "logeval", "Log-evaluation helpers (aegisfwd evaluate).");
    register_logeval(logeval);
    py::module_ concurrency = area(m, "concurrency", "Peak-concurrency fold of the log evaluation.");
    register_concurrency(concurrency);
    py::module_ compiled = area(m, "compiled", "Checks of compiled topologies: file buffers and table arrays.");
    register_compiled_file(compiled);
    register_validate(compiled);
}
