/* docs/c-api.md: open a compiled topology, decide one request for zone example.com arriving at
 * server lhr01-s001, print the address to bind (or refuse). */
#include <aegisfwd.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
    aegisfwd_engine* engine = NULL;
    if (argc < 2 || aegisfwd_open(argv[1], 0, &engine) != AEGISFWD_OK) {
        fprintf(stderr, "cannot open: %s\n", aegisfwd_last_error());
        return 2;
    }
    int32_t server = -1, pool = -1;
    aegisfwd_lookup(engine, AEGISFWD_KIND_SERVER, "lhr01-s001", strlen("lhr01-s001"), &server);
    aegisfwd_lookup(engine, AEGISFWD_KIND_ZONE, "example.com", strlen("example.com"), &pool);
    aegisfwd_decision d;
    if (aegisfwd_decide(engine, server, pool, 4, 42, &d) >= AEGISFWD_TIER_UNAVAILABLE) {
        puts("refuse the connection");
    } else {
        char ip[64];
        aegisfwd_ip_text(engine, d.ip, ip, sizeof ip, NULL);
        printf("tier %d: bind %s\n", d.tier, ip);
    }
    aegisfwd_close(engine);
    return 0;
}
