// Cost of a decision through the C ABI (libaegisfwd, aegisfwd.h) beside the C++ core's own calls,
// in one process and one run: same file, same requests, same kernel, rounds interleaved (see
// the timing loop for how a shared machine's noise is kept out).
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
#include <utility>
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

    // Each series is timed in chunks of kChunkRows rows (about 0.1-1 ms, shorter than a scheduler
    // slice), every chunk once per round; per chunk the fastest round counts. On a shared,
    // oversubscribed machine that is the time of an undisturbed pass over all the rows.
    constexpr std::size_t kChunkRows = 2000;
    const std::size_t chunks = (n + kChunkRows - 1) / kChunkRows;
    std::vector<std::uint8_t> tier(n);
    std::vector<std::int32_t> cs(n), cd(n), cl(n), ci(n);
    std::vector<double> dist(n);
    std::int64_t sink = 0;
    using Run = void (*)(void*, std::size_t, std::size_t);
    struct Series {
        const char* name;
        std::vector<double> best;     // per chunk, ns
        std::vector<double> rounds;   // per round, ns per row (for the median)
    };
    struct Ctx {
        const aegisfwd::Engine* core;
        const aegisfwd_engine* e;
        const std::int32_t *server, *pool;
        const std::uint8_t* family;
        const std::uint64_t* flow;
        aegisfwd::BatchColumns cols;
        aegisfwd_batch_columns ccols;
        std::int64_t* sink;
    } ctx{&core,  e, server.data(), pool.data(), family.data(), flow.data(),
          {tier.data(), cs.data(), cd.data(), cl.data(), ci.data(), dist.data()},
          {tier.data(), cs.data(), cd.data(), cl.data(), ci.data(), dist.data()}, &sink};
    // One request repeated (its table rows stay in cache: the call overhead shows most), distinct
    // requests one call each, and the rows as batches on one thread.
    const Run runs[6] = {
        [](void* p, std::size_t a, std::size_t b) {
            auto& c = *static_cast<Ctx*>(p);
            aegisfwd::DecisionOut d;
            for (std::size_t k = a; k < b; ++k) {
                c.core->decide(c.server[0], c.pool[0], c.family[0], c.flow[0] + (k & 1), d);
                *c.sink += d.ip;
            }
        },
        [](void* p, std::size_t a, std::size_t b) {
            auto& c = *static_cast<Ctx*>(p);
            aegisfwd_decision d;
            for (std::size_t k = a; k < b; ++k) {
                aegisfwd_decide(c.e, c.server[0], c.pool[0], c.family[0], c.flow[0] + (k & 1), &d);
                *c.sink += d.ip;
            }
        },
        [](void* p, std::size_t a, std::size_t b) {
            auto& c = *static_cast<Ctx*>(p);
            aegisfwd::DecisionOut d;
            for (std::size_t i = a; i < b; ++i) {
                c.core->decide(c.server[i], c.pool[i], c.family[i], c.flow[i], d);
                *c.sink += d.ip;
            }
        },
        [](void* p, std::size_t a, std::size_t b) {
            auto& c = *static_cast<Ctx*>(p);
            aegisfwd_decision d;
            for (std::size_t i = a; i < b; ++i) {
                aegisfwd_decide(c.e, c.server[i], c.pool[i], c.family[i], c.flow[i], &d);
                *c.sink += d.ip;
            }
        },
        [](void* p, std::size_t a, std::size_t b) {
            auto& c = *static_cast<Ctx*>(p);
            const aegisfwd::BatchColumns out{c.cols.tier + a, c.cols.server + a, c.cols.dc + a,
                                             c.cols.location + a, c.cols.ip + a, c.cols.distance + a};
            *c.sink += c.core->decide_batch(c.server + a, c.pool + a, c.family + a, c.flow + a, b - a, out, 1);
        },
        [](void* p, std::size_t a, std::size_t b) {
            auto& c = *static_cast<Ctx*>(p);
            const aegisfwd_batch_columns out{c.ccols.tier + a, c.ccols.server + a, c.ccols.dc + a,
                                             c.ccols.location + a, c.ccols.ip + a, c.ccols.distance + a};
            std::int64_t invalid = 0;
            aegisfwd_decide_batch(c.e, b - a, c.server + a, c.pool + a, c.family + a, c.flow + a, &out, 1, &invalid);
            *c.sink += invalid;
        },
    };
    Series series[6] = {{"core_one", {}, {}},      {"capi_one", {}, {}},       {"core_distinct", {}, {}},
                        {"capi_distinct", {}, {}}, {"core_batch_row", {}, {}}, {"capi_batch_row", {}, {}}};
    for (auto& s : series) s.best.assign(chunks, 1e300);
    for (int r = 0; r < rounds; ++r) {
        for (int pair = 0; pair < 3; ++pair) {
            // Alternate which side runs first, so neither always gets the warmer caches.
            const int order[2] = {(r % 2) ? 2 * pair + 1 : 2 * pair, (r % 2) ? 2 * pair : 2 * pair + 1};
            for (const int k : order) {
                double total = 0;
                for (std::size_t c = 0; c < chunks; ++c) {
                    const std::size_t first = c * kChunkRows, last = std::min(n, first + kChunkRows);
                    const double t = ns_per([&] { runs[k](&ctx, first, last); }, 1);
                    series[k].best[c] = std::min(series[k].best[c], t);
                    total += t;
                }
                series[k].rounds.push_back(total / static_cast<double>(n));
            }
        }
    }
    g_sink = sink;
    std::printf("{\"rows\": %zu, \"rounds\": %d, \"chunk_rows\": %zu, \"isa\": \"%s\"", n, rounds, kChunkRows,
                core.isa());
    for (const auto& s : series) {
        double sum = 0;
        for (const double t : s.best) sum += t;
        std::printf(", \"%s_ns\": %.2f, \"%s_median_ns\": %.2f", s.name, sum / static_cast<double>(n), s.name,
                    median(s.rounds));
    }
    std::printf("}\n");
    aegisfwd_close(e);
    return 0;
}
