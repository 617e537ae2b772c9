// aegisfwd._core: assembles the binding submodules (one register_*.cpp per area).
#include <pybind11/pybind11.h>

#include "aegisfwd/hashing.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "aegisfwd compiled core (internal; use aegisfwd.Engine)";
    m.attr("HASH_SCHEME_VERSION") = aegisfwd::kHashSchemeVersion;
    m.def("mix64", &aegisfwd::mix64, py::arg("x"));
}
