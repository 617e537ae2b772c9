/* capi_probe: a C program built against the *installed* libaegisfwd (tests/test_capi.py builds it
 * with pkg-config and with CMake's find_package) that exercises the C ABI and writes what it saw for
 * the Python side to compare with aegisfwd.Engine.
 *
 *   capi_probe open FILE                 open and close; prints the status name and message
 *   capi_probe world FILE REQ OUT IDS    decide REQ's rows one by one and as a batch (must agree),
 *                                        write the columns to OUT and every id table to IDS
 *   capi_probe threads FILE ROWS ROUNDS  two threads decide while a third flips a location down/up;
 *                                        every answer must be the one before or after a change
 *   capi_probe flowkey                   the statuses of two calls with a NULL pointer, then for each
 *                                        stdin line "ADDRESS PORT": the flow key in hex, or the
 *                                        status name and message
 */
#define _POSIX_C_SOURCE 200809L
#include <aegisfwd.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char* what, aegisfwd_status st) {
    fprintf(stderr, "capi_probe: %s: %s: %s\n", what, aegisfwd_status_name(st), aegisfwd_last_error());
    return 1;
}

static void* xmalloc(size_t n) {
    void* p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "capi_probe: out of memory\n");
        exit(3);
    }
    return p;
}

static int same_row(const aegisfwd_decision* d, const aegisfwd_batch_columns* b, size_t i) {
    int same_distance = (isnan(d->distance) && isnan(b->distance[i])) || d->distance == b->distance[i];
    return d->tier == b->tier[i] && d->server == b->server[i] && d->dc == b->dc[i] &&
           d->location == b->location[i] && d->ip == b->ip[i] && same_distance;
}

static int cmd_open(const char* path) {
    aegisfwd_engine* e = NULL;
    aegisfwd_status st = aegisfwd_open(path, 0, &e);
    printf("%s\n%s\n", aegisfwd_status_name(st), st == AEGISFWD_OK ? "" : aegisfwd_last_error());
    if (st != AEGISFWD_OK && e != NULL) return 2; /* *out must be NULL on failure */
    aegisfwd_close(e);
    return 0;
}

static int cmd_flowkey(void) {
    char line[512];
    uint64_t unused = 0;
    /* NULL pointers first: refused with a status, never dereferenced. */
    printf("%s\n", aegisfwd_status_name(aegisfwd_client_flow_key(NULL, 9, 443, &unused)));
    printf("%s\n", aegisfwd_status_name(aegisfwd_client_flow_key("192.0.2.1", 9, 443, NULL)));
    while (fgets(line, sizeof line, stdin)) {
        char* space = strrchr(line, ' ');
        if (!space) return 2;
        *space = '\0';
        uint64_t flow = 0;
        aegisfwd_status st = aegisfwd_client_flow_key(line, strlen(line), (uint32_t)strtoul(space + 1, NULL, 10), &flow);
        if (st == AEGISFWD_OK)
            printf("%016llx\n", (unsigned long long)flow);
        else
            printf("%s %s\n", aegisfwd_status_name(st), aegisfwd_last_error());
    }
    return 0;
}

static int read_all(FILE* f, void* p, size_t n) { return fread(p, 1, n, f) == n; }

static int cmd_world(const char* path, const char* req, const char* out_path, const char* ids_path) {
    aegisfwd_engine* e = NULL;
    aegisfwd_status st = aegisfwd_open(path, 0, &e);
    if (st != AEGISFWD_OK) return fail("open", st);
    FILE* f = fopen(req, "rb");
    if (!f) return fail("requests file", AEGISFWD_E_IO);
    uint64_t n64 = 0;
    if (!read_all(f, &n64, 8)) return fail("requests header", AEGISFWD_E_IO);
    size_t n = (size_t)n64;
    int32_t* server = xmalloc(4 * n);
    int32_t* pool = xmalloc(4 * n);
    uint8_t* family = xmalloc(n);
    uint64_t* flow = xmalloc(8 * n);
    if (!read_all(f, server, 4 * n) || !read_all(f, pool, 4 * n) || !read_all(f, family, n) ||
        !read_all(f, flow, 8 * n))
        return fail("requests body", AEGISFWD_E_IO);
    fclose(f);

    aegisfwd_batch_columns b;
    b.tier = xmalloc(n);
    b.server = xmalloc(4 * n);
    b.dc = xmalloc(4 * n);
    b.location = xmalloc(4 * n);
    b.ip = xmalloc(4 * n);
    b.distance = xmalloc(8 * n);
    int64_t invalid = -1;
    st = aegisfwd_decide_batch(e, n, server, pool, family, flow, &b, 2, &invalid);
    if (st != AEGISFWD_OK) return fail("decide_batch", st);

    FILE* out = fopen(out_path, "wb");
    if (!out) return fail("output file", AEGISFWD_E_IO);
    size_t mismatches = 0;
    int64_t scalar_invalid = 0;
    for (size_t i = 0; i < n; ++i) {
        aegisfwd_decision d;
        aegisfwd_tier t = aegisfwd_decide(e, server[i], pool[i], family[i], flow[i], &d);
        if ((int)t != d.tier) ++mismatches;
        if (!same_row(&d, &b, i)) ++mismatches;
        scalar_invalid += d.tier == AEGISFWD_TIER_INVALID;
        if (d.ip >= 0) { /* the text of the chosen IP names the same IP */
            char text[64];
            int32_t back = -1;
            size_t need = 0;
            st = aegisfwd_ip_text(e, d.ip, text, sizeof text, &need);
            if (st != AEGISFWD_OK) return fail("ip_text", st);
            st = aegisfwd_lookup(e, AEGISFWD_KIND_IP, text, need - 1, &back);
            if (st != AEGISFWD_OK || back != d.ip) ++mismatches;
        }
    }
    if (scalar_invalid != invalid) ++mismatches;
    fwrite(b.tier, 1, n, out);
    fwrite(b.server, 4, n, out);
    fwrite(b.dc, 4, n, out);
    fwrite(b.location, 4, n, out);
    fwrite(b.ip, 4, n, out);
    fwrite(b.distance, 8, n, out);
    fclose(out);

    /* Every id table, one id per line, kinds separated by a line "#kind"; each id must look up to
     * its own index (zones: to their pool, which the Python side checks). */
    FILE* ids = fopen(ids_path, "wb");
    if (!ids) return fail("ids file", AEGISFWD_E_IO);
    aegisfwd_counts c;
    if ((st = aegisfwd_counts_get(e, &c)) != AEGISFWD_OK) return fail("counts", st);
    const int32_t sizes[6] = {c.locations, c.dcs, c.servers, c.pools, c.ips, c.zones};
    for (int k = 0; k < 6; ++k) {
        fprintf(ids, "#%d\n", k);
        for (int32_t i = 0; i < sizes[k]; ++i) {
            const char* data = NULL;
            size_t len = 0;
            int32_t back = -1;
            if ((st = aegisfwd_id(e, (aegisfwd_kind)k, i, &data, &len)) != AEGISFWD_OK) return fail("id", st);
            if ((st = aegisfwd_lookup(e, (aegisfwd_kind)k, data, len, &back)) != AEGISFWD_OK) return fail("lookup", st);
            if (k != AEGISFWD_KIND_ZONE && back != i) ++mismatches;
            fwrite(data, 1, len, ids);
            fprintf(ids, "\t%d\n", back);
        }
    }
    fclose(ids);
    int32_t idx = 0;
    if (aegisfwd_lookup(e, AEGISFWD_KIND_SERVER, "no such server", 14, &idx) != AEGISFWD_E_NOT_FOUND) ++mismatches;
    printf("rows=%zu invalid=%lld mismatches=%zu isa=%s version=%s abi=%u\n", n, (long long)invalid, mismatches,
           aegisfwd_isa(e), aegisfwd_version(), aegisfwd_abi_version());
    aegisfwd_close(e);
    return mismatches == 0 ? 0 : 4;
}

/* ---- threads ------------------------------------------------------------------------------------ */
typedef struct {
    const aegisfwd_engine* e;
    size_t n, rounds;
    const int32_t *server, *pool;
    const uint8_t* family;
    const uint64_t* flow;
    const aegisfwd_batch_columns *before, *after;
    size_t decided, bad, saw_before, saw_after;
} worker_args;

static volatile int g_stop = 0;

static void* decide_worker(void* p) {
    worker_args* a = p;
    for (size_t r = 0; r < a->rounds; ++r) {
        for (size_t i = 0; i < a->n; ++i) {
            aegisfwd_decision d;
            aegisfwd_decide(a->e, a->server[i], a->pool[i], a->family[i], a->flow[i], &d);
            int b = same_row(&d, a->before, i), c = same_row(&d, a->after, i);
            a->bad += !b && !c;
            a->saw_before += b && !c;
            a->saw_after += c && !b;
            ++a->decided;
        }
    }
    return NULL;
}

typedef struct {
    aegisfwd_engine* e;
    int32_t location;
    size_t flips;
    aegisfwd_status st;
} flipper_args;

static void* flip_worker(void* p) {
    flipper_args* a = p;
    while (!g_stop) {
        a->st = aegisfwd_set_location_state(a->e, a->location, (a->flips & 1) ? AEGISFWD_STATE_UP : AEGISFWD_STATE_DOWN);
        if (a->st != AEGISFWD_OK) break;
        ++a->flips;
        /* Let the deciders run between changes (a change holds the seqlock while it rebuilds; a
         * writer in a tight loop would starve them on a 2-core machine). */
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void alloc_cols(aegisfwd_batch_columns* b, size_t n) {
    b->tier = xmalloc(n);
    b->server = xmalloc(4 * n);
    b->dc = xmalloc(4 * n);
    b->location = xmalloc(4 * n);
    b->ip = xmalloc(4 * n);
    b->distance = xmalloc(8 * n);
}

static int cmd_threads(const char* path, size_t n, size_t rounds) {
    aegisfwd_engine* e = NULL;
    aegisfwd_status st = aegisfwd_open(path, 0, &e);
    if (st != AEGISFWD_OK) return fail("open", st);
    aegisfwd_counts c;
    aegisfwd_counts_get(e, &c);
    uint8_t* up = calloc((size_t)c.servers, 1);
    if ((st = aegisfwd_set_states(e, up, (size_t)c.servers)) != AEGISFWD_OK) return fail("set_states", st);
    int32_t* server = xmalloc(4 * n);
    int32_t* pool = xmalloc(4 * n);
    uint8_t* family = xmalloc(n);
    uint64_t* flow = xmalloc(8 * n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; ++i) { /* xorshift: deterministic requests over the whole world */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        server[i] = (int32_t)(x % (uint64_t)c.servers);
        pool[i] = (int32_t)((x >> 20) % (uint64_t)c.pools);
        family[i] = (x >> 40) & 1 ? 6 : 4;
        flow[i] = x * 0x9E3779B97F4A7C15ull;
    }
    aegisfwd_batch_columns before, after;
    alloc_cols(&before, n);
    alloc_cols(&after, n);
    aegisfwd_decide_batch(e, n, server, pool, family, flow, &before, 1, NULL);
    /* The location that egresses most of these rows: taking it down and up changes many answers. */
    int32_t location = 0;
    {
        size_t* per = calloc((size_t)c.locations, sizeof *per);
        for (size_t i = 0; i < n; ++i)
            if (before.location[i] >= 0) ++per[before.location[i]];
        for (int32_t l = 1; l < c.locations; ++l)
            if (per[l] > per[location]) location = l;
        free(per);
    }
    aegisfwd_set_location_state(e, location, AEGISFWD_STATE_DOWN);
    aegisfwd_decide_batch(e, n, server, pool, family, flow, &after, 1, NULL);
    aegisfwd_set_location_state(e, location, AEGISFWD_STATE_UP);
    size_t differ = 0;
    for (size_t i = 0; i < n; ++i) {
        aegisfwd_decision d = {0};
        d.tier = before.tier[i];
        d.server = before.server[i];
        d.dc = before.dc[i];
        d.location = before.location[i];
        d.ip = before.ip[i];
        d.distance = before.distance[i];
        differ += !same_row(&d, &after, i);
    }
    worker_args w[2];
    pthread_t tid[3];
    for (int k = 0; k < 2; ++k) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].e = e;
        w[k].n = n;
        w[k].rounds = rounds;
        w[k].server = server;
        w[k].pool = pool;
        w[k].family = family;
        w[k].flow = flow;
        w[k].before = &before;
        w[k].after = &after;
    }
    flipper_args fl = {e, location, 0, AEGISFWD_OK};
    pthread_create(&tid[2], NULL, flip_worker, &fl);
    pthread_create(&tid[0], NULL, decide_worker, &w[0]);
    pthread_create(&tid[1], NULL, decide_worker, &w[1]);
    pthread_join(tid[0], NULL);
    pthread_join(tid[1], NULL);
    g_stop = 1;
    pthread_join(tid[2], NULL);
    if (fl.st != AEGISFWD_OK) return fail("set_location_state", fl.st);
    size_t bad = w[0].bad + w[1].bad;
    printf("location=%d rows_that_change=%zu decided=%zu flips=%zu bad=%zu saw_before=%zu saw_after=%zu\n",
           location, differ, w[0].decided + w[1].decided, fl.flips, bad, w[0].saw_before + w[1].saw_before,
           w[0].saw_after + w[1].saw_after);
    aegisfwd_close(e);
    return bad == 0 && differ > 0 ? 0 : 4;
}

int main(int argc, char** argv) {
    if (argc >= 3 && strcmp(argv[1], "open") == 0) return cmd_open(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "flowkey") == 0) return cmd_flowkey();
    if (argc >= 6 && strcmp(argv[1], "world") == 0) return cmd_world(argv[2], argv[3], argv[4], argv[5]);
    if (argc >= 5 && strcmp(argv[1], "threads") == 0)
        return cmd_threads(argv[2], (size_t)strtoull(argv[3], NULL, 10), (size_t)strtoull(argv[4], NULL, 10));
    fprintf(stderr, "usage: capi_probe open FILE | world FILE REQ OUT IDS | threads FILE ROWS ROUNDS | flowkey\n");
    return 64;
}
