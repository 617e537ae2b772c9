// Cost of a decision through the C ABI (libaegisfwd, aegisfwd.h) beside the C++ core's own calls,
// in one process and one run: same file, same requests, same kernel, rounds interleaved.
//
//   bench_capi FILE REQUESTS ROUNDS  ->  one JSON object on stdout (ns per call / per row)
//
// Built by benchmarks/capi/run_capi_bench.py: the core from the repository's sources (as the
// wheel compiles them), the C ABI from the installed libaegisfwd. Exits 1 if the two disagree.
#include <aegisfwd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "aegisfwd/compiled_file.hpp"
#include "aegisfwd/engine.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double ns_per(F&& body, std::size_t calls) {
    const auto t0 = Clock::now();
    body();
    const auto t1 = Clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(calls);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

volatile std::int64_t g_sink;

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: bench_capi FILE REQUESTS ROUNDS\n");
        return 64;
    }
    const std::string path = argv[1];
    const int rounds = std::atoi(argv[3]);
    std::ifstream in(argv[2], std::ios::binary);
    std::uint64_t n64 = 0;
    in.read(reinterpret_cast<char*>(&n64), 8);
    const std::size_t n = n64;
    std::vector<std::int32_t> server(n), pool(n);
    std::vector<std::uint8_t> family(n);
    std::vector<std::uint64_t> flow(n);
    in.read(reinterpret_cast<char*>(server.data()), 4 * n);
    in.read(reinterpret_cast<char*>(pool.data()), 4 * n);
    in.read(reinterpret_cast<char*>(family.data()), n);
    in.read(reinterpret_cast<char*>(flow.data()), 8 * n);
    if (!in) {
        std::fprintf(stderr, "bench_capi: cannot read %s\n", argv[2]);
        return 1;
    }

    aegisfwd_engine* e = nullptr;
    if (aegisfwd_open(path.c_str(), 0, &e) != AEGISFWD_OK) {
        std::fprintf(stderr, "bench_capi: %s\n", aegisfwd_last_error());
        return 1;
    }
    const auto file = aegisfwd::CompiledFile::open(path);
    const aegisfwd::Engine core(file->tables());
    if (std::strcmp(core.isa(), aegisfwd_isa(e)) != 0) {
        std::fprintf(stderr, "bench_capi: kernels differ (%s vs %s)\n", core.isa(), aegisfwd_isa(e));
        return 1;
    }

    // Same answers, row by row, before timing anything.
    for (std::size_t i = 0; i < n; ++i) {
        aegisfwd::DecisionOut a;
        aegisfwd_decision b;
        core.decide(server[i], pool[i], family[i], flow[i], a);
        aegisfwd_decide(e, server[i], pool[i], family[i], flow[i], &b);
        const bool same_distance = (std::isnan(a.distance) && std::isnan(b.distance)) || a.distance == b.distance;
        if (a.tier != b.tier || a.server != b.server || a.dc != b.dc || a.location != b.location || a.ip != b.ip ||
            !same_distance) {
            std::fprintf(stderr, "bench_capi: row %zu differs between the core and the C ABI\n", i);
            return 1;
        }
    }

    const std::size_t repeat_calls = 4 * n;
    std::vector<double> core_one, capi_one, core_distinct, capi_distinct, core_batch, capi_batch;
    std::vector<std::uint8_t> tier(n);
    std::vector<std::int32_t> cs(n), cd(n), cl(n), ci(n);
    std::vector<double> dist(n);
    const aegisfwd::BatchColumns cols{tier.data(), cs.data(), cd.data(), cl.data(), ci.data(), dist.data()};
    const aegisfwd_batch_columns ccols{tier.data(), cs.data(), cd.data(), cl.data(), ci.data(), dist.data()};
    std::int64_t sink = 0;
    // One request repeated: its table rows stay in cache, the call overhead shows most.
    const auto core_one_run = [&] {
        aegisfwd::DecisionOut d;
        for (std::size_t k = 0; k < repeat_calls; ++k) {
            core.decide(server[0], pool[0], family[0], flow[0] + (k & 1), d);
            sink += d.ip;
        }
    };
    const auto capi_one_run = [&] {
        aegisfwd_decision d;
        for (std::size_t k = 0; k < repeat_calls; ++k) {
            aegisfwd_decide(e, server[0], pool[0], family[0], flow[0] + (k & 1), &d);
            sink += d.ip;
        }
    };
    // Distinct requests, one call each.
    const auto core_distinct_run = [&] {
        aegisfwd::DecisionOut d;
        for (std::size_t i = 0; i < n; ++i) {
            core.decide(server[i], pool[i], family[i], flow[i], d);
            sink += d.ip;
        }
    };
    const auto capi_distinct_run = [&] {
        aegisfwd_decision d;
        for (std::size_t i = 0; i < n; ++i) {
            aegisfwd_decide(e, server[i], pool[i], family[i], flow[i], &d);
            sink += d.ip;
        }
    };
    // The same requests as one batch on one thread: per row.
    const auto core_batch_run = [&] {
        sink += core.decide_batch(server.data(), pool.data(), family.data(), flow.data(), n, cols, 1);
    };
    const auto capi_batch_run = [&] {
        std::int64_t invalid = 0;
        aegisfwd_decide_batch(e, n, server.data(), pool.data(), family.data(), flow.data(), &ccols, 1, &invalid);
        sink += invalid;
    };
    for (int r = 0; r < rounds; ++r) {
        // Alternate which side runs first, so neither always gets the warmer caches.
        const bool core_first = (r % 2) == 0;
        for (int side = 0; side < 2; ++side) {
            if ((side == 0) == core_first) {
                core_one.push_back(ns_per(core_one_run, repeat_calls));
                core_distinct.push_back(ns_per(core_distinct_run, n));
                core_batch.push_back(ns_per(core_batch_run, n));
            } else {
                capi_one.push_back(ns_per(capi_one_run, repeat_calls));
                capi_distinct.push_back(ns_per(capi_distinct_run, n));
                capi_batch.push_back(ns_per(capi_batch_run, n));
            }
        }
    }
    g_sink = sink;
    std::printf(
        "{\"rows\": %zu, \"rounds\": %d, \"isa\": \"%s\", \"core_one_ns\": %.2f, \"capi_one_ns\": %.2f, "
        "\"core_distinct_ns\": %.2f, \"capi_distinct_ns\": %.2f, \"core_batch_row_ns\": %.2f, "
        "\"capi_batch_row_ns\": %.2f}\n",
        n, rounds, core.isa(), median(core_one), median(capi_one), median(core_distinct), median(capi_distinct),
        median(core_batch), median(capi_batch));
    aegisfwd_close(e);
    return 0;
}
