// Peak concurrency fold (aegisfwd._core.fold_event_runs). Internal: the evaluator calls it through
// aegisfwd.evaluation._concurrency, which owns the runs and the per-key state.
#include <string>
#include <vector>

#include "aegisfwd/concurrency.hpp"
#include "bindings.hpp"

namespace aegisfwd::bindings {
namespace {

carray<std::int64_t> state_array(const py::handle& obj, const char* what, std::size_t n) {
    auto a = checked_array<std::int64_t>(obj, what);
    if (a.ndim() != 1) throw std::invalid_argument(std::string(what) + " must be 1-dimensional");
    if (!a.writeable()) throw std::invalid_argument(std::string(what) + " must be writeable");
    if (static_cast<std::size_t>(a.size()) != n)
        throw std::invalid_argument(std::string(what) + " must have one entry per key (" + std::to_string(n) +
                                    "), got " + std::to_string(a.size()));
    return a;
}

concurrency::FoldStrategy strategy_of(const std::string& name) {
    if (name == "auto") return concurrency::FoldStrategy::automatic;
    if (name == "sweep") return concurrency::FoldStrategy::sweep;
    if (name == "heap") return concurrency::FoldStrategy::heap;
    throw std::invalid_argument("strategy must be 'auto', 'sweep' or 'heap', got '" + name + "'");
}

py::array_t<std::int64_t> fold_event_runs(const py::list& runs, std::int64_t limit, const py::handle& level,
                                          const py::handle& peak, const py::handle& peak_at,
                                          const std::string& strategy) {
    const auto how = strategy_of(strategy);
    auto lv = checked_array<std::int64_t>(level, "level");
    if (lv.ndim() != 1) throw std::invalid_argument("level must be 1-dimensional");
    const auto n_keys = static_cast<std::size_t>(lv.size());
    lv = state_array(level, "level", n_keys);
    auto pk = state_array(peak, "peak", n_keys);
    auto at = state_array(peak_at, "peak_at", n_keys);
    std::vector<carray<std::int64_t>> held;  // keeps every run's buffer alive without the GIL
    std::vector<concurrency::EventRun> parsed;
    held.reserve(runs.size());
    parsed.reserve(runs.size());
    for (std::size_t r = 0; r < runs.size(); ++r) {
        const std::string what = "runs[" + std::to_string(r) + "]";
        if (!py::isinstance<py::tuple>(runs[r]) || py::len(runs[r]) != 4)
            throw std::invalid_argument(what + " must be a tuple (packed, time_base, key_bits, sign)");
        auto item = py::reinterpret_borrow<py::tuple>(runs[r]);
        held.push_back(checked_array<std::int64_t>(item[0], what + ".packed"));
        if (held.back().ndim() != 1) throw std::invalid_argument(what + ".packed must be 1-dimensional");
        const auto key_bits = item[2].cast<long long>();
        const auto sign = item[3].cast<long long>();
        if (key_bits < 1 || key_bits > 62) throw std::invalid_argument(what + ": key_bits must be in [1, 62]");
        if (sign != 1 && sign != -1) throw std::invalid_argument(what + ": sign must be +1 or -1");
        parsed.push_back(concurrency::EventRun{held.back().data(), static_cast<std::size_t>(held.back().size()),
                                               item[1].cast<std::int64_t>(), static_cast<unsigned>(key_bits),
                                               static_cast<int>(sign)});
    }
    py::array_t<std::int64_t> consumed(static_cast<py::ssize_t>(parsed.size()));
    std::vector<std::size_t> counts(parsed.size());
    {
        // Safe without the GIL: the runs' buffers are held by `held`, the state arrays by this
        // frame; every run is checked before any state changes.
        py::gil_scoped_release release;
        const concurrency::PeakState state{lv.mutable_data(), pk.mutable_data(), at.mutable_data(), n_keys};
        concurrency::fold_runs(parsed.data(), parsed.size(), limit, state, counts.data(), how);
    }
    auto out = consumed.mutable_unchecked<1>();
    for (std::size_t r = 0; r < counts.size(); ++r) out(static_cast<py::ssize_t>(r)) = static_cast<std::int64_t>(counts[r]);
    return consumed;
}

py::array_t<std::int64_t> pack_by_bucket(const py::handle& buckets, const py::handle& keys, std::int64_t time_base,
                                         unsigned key_bits) {
    auto b = checked_array<std::int64_t>(buckets, "buckets");
    auto k = checked_array<std::int64_t>(keys, "keys");
    if (b.ndim() != 1 || k.ndim() != 1) throw std::invalid_argument("buckets and keys must be 1-dimensional");
    const auto n = static_cast<std::size_t>(b.size());
    if (static_cast<std::size_t>(k.size()) != n)
        throw std::invalid_argument("buckets and keys must have one length; got " + std::to_string(n) + " and " +
                                    std::to_string(k.size()));
    OwnedColumn<std::int64_t> out(n);
    {
        // Safe without the GIL: both inputs are held by this frame and only read; `out` is private.
        py::gil_scoped_release release;
        concurrency::pack_by_bucket(b.data(), k.data(), n, time_base, key_bits, out.get());
    }
    return out.release();
}

}  // namespace

void register_concurrency(py::module_& m) {
    m.def("fold_event_runs", &fold_event_runs, py::arg("runs"), py::arg("limit"), py::arg("level"), py::arg("peak"),
          py::arg("peak_at"), py::arg("strategy") = "auto",
          "Fold, in bucket order, every event with bucket < limit of runs [(int64 packed sorted by bucket, "
          "time_base, key_bits, sign)] into the int64 per-key level/peak/peak_at arrays (in place); returns "
          "the int64 count of events applied per run (docs/evaluate.md 'Concurrent connections'). strategy: "
          "'auto', 'sweep' (bucket by bucket) or 'heap' (run heads in a heap): the same result.");
    m.def("pack_by_bucket", &pack_by_bucket, py::arg("buckets"), py::arg("keys"), py::arg("time_base"),
          py::arg("key_bits"),
          "int64 (buckets - time_base) << key_bits | keys, stably sorted by bucket (radix sort): one run "
          "of fold_event_runs.");
}

}  // namespace aegisfwd::bindings
