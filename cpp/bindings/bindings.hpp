// Helpers shared by the binding areas: exact-dtype array checks and zero-copy owned results.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

#include "aegisfwd/huge_alloc.hpp"
#include "aegisfwd/tables.hpp"

namespace aegisfwd::bindings {

namespace py = pybind11;

// The one array type at the boundary: C-contiguous, exactly dtype T. No forcecast: our contract is
// to *check* dtypes (aegisfwd._inputs converts user input first), never to convert silently.
template <class T>
using carray = py::array_t<T, py::array::c_style>;

template <class T>
const char* dtype_name();
template <> inline const char* dtype_name<std::int32_t>() { return "int32"; }
template <> inline const char* dtype_name<std::int64_t>() { return "int64"; }
template <> inline const char* dtype_name<std::uint8_t>() { return "uint8"; }
template <> inline const char* dtype_name<std::uint64_t>() { return "uint64"; }
template <> inline const char* dtype_name<double>() { return "float64"; }

// `obj` as a C-contiguous, aligned numpy array of exactly dtype T (native byte order); else
// std::invalid_argument (ValueError) naming `what`.
template <class T>
carray<T> checked_array(const py::handle& obj, const std::string& what) {
    if (!py::isinstance<py::array>(obj))
        throw std::invalid_argument(what + " must be a numpy array of " + dtype_name<T>() + ", got " +
                                    std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto arr = py::reinterpret_borrow<py::array>(obj);
    // EquivTypes: same kind and size in native byte order (uint64 == ulonglong, '>i4' != int32).
    if (!py::isinstance<py::array_t<T>>(obj))
        throw std::invalid_argument(what + " must have dtype " + dtype_name<T>() + ", got " +
                                    std::string(py::str(arr.dtype())));
    if (!(arr.flags() & py::array::c_style))
        throw std::invalid_argument(what + " must be C-contiguous");
    if (!(arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw std::invalid_argument(what + " must be aligned");
    return py::reinterpret_borrow<carray<T>>(obj);
}

template <class T>
ArrayView<T> view_of(const carray<T>& a) {
    return ArrayView<T>{a.data(), static_cast<std::size_t>(a.size())};
}

// A result column: allocated before the GIL is released, filled without it, then handed to numpy
// without a copy (a capsule frees it with the array). Large columns come from the core's huge-page
// allocator: the first write to each page is then one fault per 2 MiB instead of one per 4 KiB
// (world, 4M rows: 63 instead of 73-85 ns per decision).
template <class T>
struct OwnedColumn {
    T* data;
    std::size_t n;
    explicit OwnedColumn(std::size_t n_)
        : data(static_cast<T*>(detail::huge_allocate((n_ == 0 ? 1 : n_) * sizeof(T)))), n(n_) {}
    OwnedColumn(const OwnedColumn&) = delete;
    OwnedColumn& operator=(const OwnedColumn&) = delete;
    ~OwnedColumn() { detail::huge_free(data); }
    T* get() const noexcept { return data; }
    py::array_t<T> release() {
        T* p = data;
        py::capsule owner(p, [](void* q) { detail::huge_free(q); });
        data = nullptr;  // owned by the capsule from here on
        return py::array_t<T>({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(T))}, p, owner);
    }
};

// One per area (register_*.cpp); module.cpp calls them, each with its submodule of _core.
void register_isa(py::module_& m);
void register_hashing(py::module_& m);
void register_engine(py::module_& m);
void register_logeval(py::module_& m);
void register_concurrency(py::module_& m);
void register_compiled_file(py::module_& m);
void register_validate(py::module_& m);

}  // namespace aegisfwd::bindings
