// _core.compiled.check_compiled(buffer, verify): the compiled-file loader (cpp/src/compiled_file.cpp, the one
// the C ABI uses) run on a Python buffer. It is Python's loader too: load_compiled and
// CompiledTopology.from_bytes call it (compiled/_verify.py) before mapping any array. Raises
// ValueError with the loader's message; returns the counts. array_schema / count_names: the schema it
// checks, so that a test can hold the Python writer's list (compiled/_format.py) to it.
#include "aegisfwd/compiled_file.hpp"
#include <pybind11/stl.h>

#include "bindings.hpp"

namespace aegisfwd::bindings {

void register_compiled_file(py::module_& m) {
    m.def(
        "check_compiled",
        [](const py::buffer& buffer, bool verify) {
            const py::buffer_info info = buffer.request();
            if (info.ndim != 1 || info.itemsize != 1) throw std::invalid_argument("expected a 1-d byte buffer");
            const auto size = static_cast<std::size_t>(info.size);
            std::unique_ptr<CompiledFile> file;
            {
                py::gil_scoped_release release;
                file = CompiledFile::from_buffer(info.ptr, size, verify);
            }
            py::dict counts;
            for (const char* name : {"locations", "dcs", "servers", "pools", "ips", "zones", "lists", "layouts"})
                counts[name] = file->count(name);
            return counts;
        },
        py::arg("buffer"), py::arg("verify") = true,
        "Validate a compiled topology held in `buffer` (8-byte aligned): header, CRCs and every invariant "
        "of the arrays; ValueError naming the first problem (the message of CompiledFileError).");
    m.def(
        "array_schema",
        [] {
            py::list out;
            for (const auto& a : compiled_array_schema())
                out.append(py::make_tuple(a.name, a.dtype, py::tuple(py::cast(a.dims))));
            return out;
        },
        "The loader's schema: [(name, dtype, dims)] of every array in file order (for the writer's tests).");
    m.def("count_names", [] { return compiled_count_names(); }, "The header's count names, as the loader reads them.");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const CompiledFileError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
}

}  // namespace aegisfwd::bindings
