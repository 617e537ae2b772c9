// aegisfwd._core: assembles the binding areas (one register_*.cpp each). Internal: users import
// aegisfwd and use aegisfwd.Engine.
#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "aegisfwd compiled core (internal; use aegisfwd.Engine)";
    aegisfwd::bindings::register_hashing(m);
    aegisfwd::bindings::register_engine(m);
    aegisfwd::bindings::register_logkeys(m);
    aegisfwd::bindings::register_concurrency(m);
    aegisfwd::bindings::register_compiled_file(m);
    aegisfwd::bindings::register_validate(m);
}
