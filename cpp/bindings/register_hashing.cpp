// Hashing scheme v1 (docs/hashing.md), exposed so tests can pin the C++ side against _hashing.py.
#include "aegisfwd/hashing.hpp"
#include "bindings.hpp"

namespace aegisfwd::bindings {

void register_hashing(py::module_& m) {
    m.attr("HASH_SCHEME_VERSION") = kHashSchemeVersion;
    m.def("mix64", &mix64, py::arg("x"), "SplitMix64 finalizer (docs/hashing.md).");
    m.def("server_flow_hash", &server_flow_hash, py::arg("flow"));
    m.def("ip_flow_hash", &ip_flow_hash, py::arg("flow"));
    m.def("ingress_flow_hash", &ingress_flow_hash, py::arg("flow"));
    m.def("weight", &weight, py::arg("flow_hash"), py::arg("key"));
}

}  // namespace aegisfwd::bindings
