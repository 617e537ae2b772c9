// The instruction-set names every dispatching area of _core accepts (cpp/include/aegisfwd/isa.hpp):
// aegisfwd._core.available_isas and resolve_isa, one resolver for the engine and the log helpers.
#include <pybind11/stl.h>

#include <string>

#include "aegisfwd/isa.hpp"
#include "bindings.hpp"

namespace aegisfwd::bindings {

void register_isa(py::module_& m) {
    m.def("available_isas", &available_isas,
          "Kernel instruction sets this build can run on this CPU, best last ('generic' always).");
    m.def(
        "resolve_isa", [](const std::string& name) { return std::string(isa_name(resolve_isa(name))); },
        py::arg("name"),
        "The instruction set a name selects: 'auto' -> the best available; 'generic', 'avx2', 'avx512' -> "
        "itself when available. ValueError for an unknown name or one this CPU or build lacks.");
}

}  // namespace aegisfwd::bindings
