// Log evaluation helpers (aegisfwd._core.logeval: choose_ingress, string_hashes, compact_indices,
// PairIndex). Internal: the evaluator calls them through aegisfwd._ingress, aegisfwd.evaluation._arrow,
// _output and _summary, which keep their plain-Python definitions next to them where there is one.
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "aegisfwd/logeval.hpp"
#include "bindings.hpp"

namespace aegisfwd::bindings {
namespace {

template <class T>
carray<T> vector1d(const py::handle& obj, const char* what) {
    auto a = checked_array<T>(obj, what);
    if (a.ndim() != 1) throw std::invalid_argument(std::string(what) + " must be 1-dimensional");
    return a;
}

// A 1-d C-contiguous array of one-byte flags (numpy bool or uint8).
py::array byte_flags(const py::handle& obj, const char* what) {
    if (!py::isinstance<py::array>(obj))
        throw std::invalid_argument(std::string(what) + " must be a numpy array of bool or uint8");
    auto a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (a.itemsize() != 1 || (kind != 'b' && kind != 'u'))
        throw std::invalid_argument(std::string(what) + " must have dtype bool or uint8, got " +
                                    std::string(py::str(a.dtype())));
    if (a.ndim() != 1) throw std::invalid_argument(std::string(what) + " must be 1-dimensional");
    if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(std::string(what) + " must be C-contiguous");
    return a;
}

py::array_t<std::int32_t> choose_ingress(const py::handle& first, const py::handle& end, const py::handle& flows,
                                         const py::handle& server_keys, const py::handle& states, unsigned threads,
                                         const std::string& isa) {
    auto f = vector1d<std::int32_t>(first, "first");
    auto e = vector1d<std::int32_t>(end, "end");
    auto h = vector1d<std::uint64_t>(flows, "flows");
    auto k = vector1d<std::uint64_t>(server_keys, "server_keys");
    auto s = vector1d<std::uint8_t>(states, "states");
    const auto n = static_cast<std::size_t>(f.size());
    if (static_cast<std::size_t>(e.size()) != n || static_cast<std::size_t>(h.size()) != n)
        throw std::invalid_argument("first, end and flows must have one length; got " + std::to_string(n) + ", " +
                                    std::to_string(e.size()) + ", " + std::to_string(h.size()));
    if (s.size() != k.size())
        throw std::invalid_argument("states must have one entry per server key; got " + std::to_string(s.size()) +
                                    " states for " + std::to_string(k.size()) + " keys");
    OwnedColumn<std::int32_t> out(n);
    {
        // Safe without the GIL: every buffer is held by the arrays above (they outlive this block)
        // and only read; `out` is private until returned. Every range is checked against the key
        // count before any row is evaluated (std::invalid_argument otherwise).
        py::gil_scoped_release release;
        logeval::choose_ingress(f.data(), e.data(), h.data(), n, k.data(), s.data(), static_cast<std::size_t>(k.size()),
                                out.get(), threads, isa);
    }
    return out.release();
}

template <class Off>
py::tuple string_hashes_of(const carray<Off>& offsets, const carray<std::uint8_t>& data, const py::handle& valid) {
    if (offsets.size() < 1) throw std::invalid_argument("offsets must hold n + 1 entries (at least one)");
    const auto n = static_cast<std::size_t>(offsets.size() - 1);
    py::array v;
    const std::uint8_t* vp = nullptr;
    if (!valid.is_none()) {
        v = byte_flags(valid, "valid");
        if (static_cast<std::size_t>(v.size()) != n)
            throw std::invalid_argument("valid must have one entry per value; got " + std::to_string(v.size()) +
                                        " for " + std::to_string(n) + " values");
        vp = static_cast<const std::uint8_t*>(v.data());
    }
    OwnedColumn<std::uint64_t> hash(n);
    OwnedColumn<std::uint8_t> nonempty(n);
    {
        // Safe without the GIL: offsets, data and valid are held by this frame and only read; the
        // offsets are checked against the data length before any value is read.
        py::gil_scoped_release release;
        logeval::string_hashes(offsets.data(), n, data.data(), static_cast<std::size_t>(data.size()), vp, hash.get(),
                               nonempty.get());
    }
    return py::make_tuple(hash.release(), nonempty.release().view("bool"));
}

py::tuple string_hashes(const py::handle& offsets, const py::handle& data, const py::handle& valid) {
    auto d = vector1d<std::uint8_t>(data, "data");
    if (py::isinstance<py::array_t<std::int64_t>>(offsets))
        return string_hashes_of<std::int64_t>(vector1d<std::int64_t>(offsets, "offsets"), d, valid);
    return string_hashes_of<std::int32_t>(vector1d<std::int32_t>(offsets, "offsets"), d, valid);
}

py::tuple compact_indices(const py::handle& indices, std::int64_t size) {
    auto idx = vector1d<std::int32_t>(indices, "indices");
    if (size < 0) throw std::invalid_argument("size must be >= 0");
    const auto n = static_cast<std::size_t>(idx.size());
    OwnedColumn<std::int32_t> out(n);
    std::vector<std::int32_t> kept(static_cast<std::size_t>(size));
    std::size_t k;
    {
        // Safe without the GIL: `indices` is held by this frame and only read; every index is
        // checked against `size` before it is used.
        py::gil_scoped_release release;
        k = logeval::compact_indices(idx.data(), n, static_cast<std::size_t>(size), out.get(), kept.data());
    }
    py::array_t<std::int32_t> kept_arr(static_cast<py::ssize_t>(k));
    std::copy(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(k), kept_arr.mutable_data());
    return py::make_tuple(out.release(), kept_arr);
}

py::tuple pair_index(logeval::PairIndex& self, const py::handle& a, const py::handle& b) {
    auto x = vector1d<std::uint64_t>(a, "a");
    auto y = vector1d<std::uint64_t>(b, "b");
    const auto n = static_cast<std::size_t>(x.size());
    if (static_cast<std::size_t>(y.size()) != n)
        throw std::invalid_argument("a and b must have one length; got " + std::to_string(n) + " and " +
                                    std::to_string(y.size()));
    OwnedColumn<std::int64_t> ids(n);
    std::vector<std::int64_t> fresh;
    {
        // Safe without the GIL: a and b are held by this frame and only read; `self` is kept alive
        // by the calling frame and serialises calls with its own mutex.
        py::gil_scoped_release release;
        self.index(x.data(), y.data(), n, ids.get(), fresh);
    }
    py::array_t<std::int64_t> fresh_arr(static_cast<py::ssize_t>(fresh.size()));
    std::copy(fresh.begin(), fresh.end(), fresh_arr.mutable_data());
    return py::make_tuple(ids.release(), fresh_arr);
}

}  // namespace

void register_logeval(py::module_& m) {
    m.def("choose_ingress", &choose_ingress, py::arg("first"), py::arg("end"), py::arg("flows"),
          py::arg("server_keys"), py::arg("states"), py::arg("threads") = 0u, py::arg("isa") = "auto",
          "Ingress rendezvous per row (aegisfwd._ingress.choose_ingress): int32 first/end, uint64 flows, "
          "uint64 server_keys, uint8 states (one per key) -> int32 server per row, -1 where the range has "
          "no up server. threads=0: all cores.");
    m.def("string_hashes", &string_hashes, py::arg("offsets"), py::arg("data"), py::arg("valid") = py::none(),
          "string_hash (docs/evaluate.md 'Flow key') of every value of an Arrow string array given as "
          "int32 or int64 offsets (n + 1, relative to data) and uint8 data; valid: bool/uint8 per value "
          "or None. Returns (uint64 hashes, bool non-empty); a null hashes as the empty string.");
    py::class_<logeval::PairIndex>(m, "PairIndex",
                                   "Dense ids, in order of first appearance, for pairs of uint64 values.")
        .def(py::init<>())
        .def("__len__", &logeval::PairIndex::size)
        .def("index", &pair_index, py::arg("a"), py::arg("b"),
             "uint64 columns a, b -> (int64 id per row, int64 rows where a new id was given, in id order).");
    m.def("compact_indices", &compact_indices, py::arg("indices"), py::arg("size"),
          "Drop unused dictionary entries: int32 indices in [-1, size) (-1 = null) -> (int32 indices "
          "into the kept entries, -1 kept; int32 old index of each kept entry, ascending).");
}

}  // namespace aegisfwd::bindings
