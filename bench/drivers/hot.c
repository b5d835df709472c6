/* hot: drives cordon's parsers and policy matching for callgrind.
 *
 *   hot list              print the case names ("wall" marks cases callgrind cannot run)
 *   hot CASE N            run CASE N times inside bench_loop()
 *   hot CASE N --wall     the same, and print nanoseconds per call (wall clock)
 *
 * bench/run runs each case under `valgrind --tool=callgrind
 * --toggle-collect=bench_loop`, so only the loop is counted, and divides the
 * instruction count by N. Instruction counts are repeatable on a noisy
 * machine where wall-clock nanoseconds are not. valgrind 3.19 does not know
 * the seccomp(2) system call that libseccomp probes, so the seccomp case is
 * timed natively instead (--wall). Inputs are what real clients
 * send (curl 7.88 through a proxy, a browser-like request, a SOCKS5 domain
 * request), a realistic srt settings file, and the seccomp filter that
 * every run builds.
 *
 * Linked against libcordon.a from the bench build; uses the library's
 * internal headers (src/), like the unit tests do.
 */
#include "cordon.h"
#include "harden/harden.h"
#include "policy/netrule.h"
#include "policy/policy.h"
#include "proxy/http.h"
#include "proxy/socks5.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile long sink;

/* ---- HTTP ---------------------------------------------------------------- */

static const char req_get_abs[] =
    "GET http://example.com/index.html?q=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "Proxy-Connection: Keep-Alive\r\n"
    "\r\n";

static const char req_connect[] =
    "CONNECT api.anthropic.com:443 HTTP/1.1\r\n"
    "Host: api.anthropic.com:443\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Proxy-Connection: Keep-Alive\r\n"
    "\r\n";

static const char req_browser[] =
    "POST http://registry.example.org/api/v2/packages/search?name=left-pad&limit=20 HTTP/1.1\r\n"
    "Host: registry.example.org\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Accept-Language: en-GB,en;q=0.7,fr;q=0.3\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 48\r\n"
    "Origin: http://registry.example.org\r\n"
    "Referer: http://registry.example.org/search\r\n"
    "Cookie: session=4f3c2a1b9e8d7c6b5a49382716054f3e; theme=dark; consent=yes\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig\r\n"
    "Cache-Control: no-cache\r\n"
    "Pragma: no-cache\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

static const char res_typical[] =
    "HTTP/1.1 200 OK\r\n"
    "Date: Sun, 30 Nov 2025 01:00:00 GMT\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: 1234\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=300\r\n"
    "ETag: \"5f2b-1a2b3c\"\r\n"
    "Vary: Accept-Encoding\r\n"
    "Server: nginx\r\n"
    "\r\n";

static struct http_request g_req;
static struct http_response g_res;

static void parse_req(const char *s)
{
    const char *why = NULL;
    sink += http_parse_request(s, strlen(s), &g_req, &why);
}

static void c_http_get(void) { parse_req(req_get_abs); }
static void c_http_connect(void) { parse_req(req_connect); }
static void c_http_browser(void) { parse_req(req_browser); }
static void c_http_response(void)
{
    const char *why = NULL;
    sink += http_parse_response(res_typical, sizeof(res_typical) - 1, false, &g_res, &why);
}

/* ---- SOCKS5 -------------------------------------------------------------- */

static const uint8_t s5_greet[] = { 5, 2, 0, 2 };
static const uint8_t s5_domain[] = { 5, 1, 0, 3, 17, 'a', 'p', 'i', '.', 'a', 'n', 't', 'h', 'r',
                                     'o', 'p', 'i', 'c', '.', 'c', 'o', 'm', 0x01, 0xbb };
static const uint8_t s5_ipv4[] = { 5, 1, 0, 1, 93, 184, 216, 34, 0x00, 0x50 };
static struct socks5_request g_s5;

static void c_socks5_domain(void)
{
    bool no_auth;
    sink += socks5_parse_greeting(s5_greet, sizeof(s5_greet), &no_auth);
    sink += socks5_parse_request(s5_domain, sizeof(s5_domain), &g_s5);
}
static void c_socks5_ipv4(void)
{
    bool no_auth;
    sink += socks5_parse_greeting(s5_greet, sizeof(s5_greet), &no_auth);
    sink += socks5_parse_request(s5_ipv4, sizeof(s5_ipv4), &g_s5);
}

/* ---- settings ------------------------------------------------------------ */

static const char settings_srt[] =
    "{\n"
    "  \"network\": {\n"
    "    \"allowedDomains\": [\"github.com\", \"*.github.com\", \"api.github.com\",\n"
    "      \"registry.npmjs.org\", \"pypi.org\", \"files.pythonhosted.org\",\n"
    "      \"api.anthropic.com\", \"*.googleapis.com\", \"proxy.golang.org\",\n"
    "      \"crates.io\", \"static.crates.io\", \"127.0.0.1:8080\"],\n"
    "    \"deniedDomains\": [\"uploads.github.com\", \"*.evil.test\", \"169.254.169.254\"],\n"
    "    \"allowLocalBinding\": false\n"
    "  },\n"
    "  \"filesystem\": {\n"
    "    \"denyRead\": [\"~/.ssh\", \"~/.aws\", \"~/.gnupg\", \"~/.config/gcloud\", \"~/.netrc\",\n"
    "      \"~/.docker/config.json\", \"~/.kube\", \"~/.npmrc\"],\n"
    "    \"allowRead\": [],\n"
    "    \"allowWrite\": [\".\", \"~/.cache/pip\", \"~/.npm\"],\n"
    "    \"denyWrite\": [\".env\", \"secrets\"]\n"
    "  }\n"
    "}\n";

static const struct cordon_load_opts load_opts = { .home = "/home/agent", .cwd = "/home/agent/work" };

static void c_settings_srt(void)
{
    cordon_policy *p = NULL;
    struct cordon_error err;
    if (cordon_policy_load_string(settings_srt, "settings.json", &load_opts, &p, &err) < 0) {
        fprintf(stderr, "hot: settings: %s\n", err.msg);
        exit(1);
    }
    cordon_policy_free(p);
}

static void c_settings_default(void)
{
    cordon_policy *p = NULL;
    struct cordon_error err;
    if (cordon_policy_load_default(&load_opts, &p, &err) < 0) {
        fprintf(stderr, "hot: default settings: %s\n", err.msg);
        exit(1);
    }
    cordon_policy_free(p);
}

/* ---- seccomp filter ------------------------------------------------------ */

/* Once per run, in the supervisor before clone(2): part of start-up. The
 * default policy's options (notification, nothing nested, no unix sockets):
 * what a run does (a copy of the filter compiled at build time, after
 * libseccomp's probe of the kernel's API level), and what building it with
 * libseccomp would cost. */
static const struct seccomp_opts default_seccomp = { .notify_denials = true,
                                                     .observe_writes = true };

static void seccomp_case(int (*build)(const struct seccomp_opts *, struct seccomp_prog *,
                                      struct cordon_error *))
{
    struct seccomp_prog prog = { 0 };
    struct cordon_error err;
    if (build(&default_seccomp, &prog, &err) < 0) {
        fprintf(stderr, "hot: seccomp: %s\n", err.msg);
        exit(1);
    }
    sink += prog.len;
    harden_seccomp_free(&prog);
}

static void c_seccomp_build(void)
{
    seccomp_case(harden_seccomp_build);
}

static void c_seccomp_compile(void)
{
    seccomp_case(harden_seccomp_compile);
}

/* ---- host matching ------------------------------------------------------- */

static cordon_policy *g_pol;

static void decide(const char *host, uint16_t port, bool expect)
{
    struct net_target t;
    const char *why = NULL;
    if (net_canon_host(host, &t, &why) < 0) {
        fprintf(stderr, "hot: %s: %s\n", host, why);
        exit(1);
    }
    t.port = port;
    struct net_verdict v = net_decide(&g_pol->net.rules, &t);
    if (v.allow != expect) {
        fprintf(stderr, "hot: %s:%u decided %d, expected %d\n", host, port, v.allow, expect);
        exit(1);
    }
    sink += v.allow;
}

static void c_match_exact(void) { decide("registry.npmjs.org", 443, true); }
static void c_match_wildcard(void) { decide("raw.objects.github.com", 443, true); }
static void c_match_denied(void) { decide("uploads.github.com", 443, false); }
static void c_match_miss(void) { decide("example.net", 443, false); }
static void c_match_mixed_case(void) { decide("API.GitHub.COM.", 443, true); }
static void c_match_idn(void) { decide("b\xc3\xbc" "cher.example", 443, false); }
static void c_match_ipv4_odd(void) { decide("2130706433", 8080, true); } /* 127.0.0.1 */

/* ---- driver -------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(void);
    const char *what;
    bool wall;
} cases[] = {
    { "http_get_absolute", c_http_get, "http_parse_request: curl GET absolute-form, 4 fields" },
    { "http_connect", c_http_connect, "http_parse_request: CONNECT host:443, 3 fields" },
    { "http_browser", c_http_browser, "http_parse_request: browser-like POST, 15 fields" },
    { "http_response", c_http_response, "http_parse_response: 200 with 8 fields" },
    { "socks5_domain", c_socks5_domain, "socks5 greeting + CONNECT to a domain" },
    { "socks5_ipv4", c_socks5_ipv4, "socks5 greeting + CONNECT to an IPv4 address" },
    { "settings_srt", c_settings_srt, "load + free an srt settings file (15 domains, 13 paths)" },
    { "settings_default", c_settings_default, "load + free the embedded default policy" },
    { "seccomp_build", c_seccomp_build, "the seccomp filter a run gets (compiled at build "
      "time), once per run", true },
    { "seccomp_compile", c_seccomp_compile, "the same filter built with libseccomp", true },
    { "match_exact", c_match_exact, "canonicalise + decide: exact allow entry" },
    { "match_wildcard", c_match_wildcard, "canonicalise + decide: *.github.com" },
    { "match_denied", c_match_denied, "canonicalise + decide: on the deny list" },
    { "match_miss", c_match_miss, "canonicalise + decide: no entry (full scan)" },
    { "match_mixed_case", c_match_mixed_case, "canonicalise + decide: upper case, trailing dot" },
    { "match_idn", c_match_idn, "canonicalise + decide: IDN name (libidn2), no entry" },
    { "match_ipv4_odd", c_match_ipv4_odd, "canonicalise + decide: 2130706433 = 127.0.0.1:8080" },
};

__attribute__((noinline)) void bench_loop(void (*fn)(void), long n);
__attribute__((noinline)) void bench_loop(void (*fn)(void), long n)
{
    for (long i = 0; i < n; i++)
        fn();
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            printf("%s\t%s\t%s\n", cases[i].name, cases[i].what, cases[i].wall ? "wall" : "");
        return 0;
    }
    bool wall = argc == 4 && strcmp(argv[3], "--wall") == 0;
    if (argc != 3 && !wall) {
        fprintf(stderr, "usage: hot list | hot CASE N [--wall]\n");
        return 2;
    }
    struct cordon_error err;
    if (cordon_policy_load_string(settings_srt, "settings.json", &load_opts, &g_pol, &err) < 0) {
        fprintf(stderr, "hot: %s\n", err.msg);
        return 1;
    }
    long n = atol(argv[2]);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].fn(); /* warm up: first-call costs (lazy binding, libidn2 tables) */
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            bench_loop(cases[i].fn, n);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (wall)
                printf("%.0f\n", ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
                                   (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n);
            cordon_policy_free(g_pol);
            return 0;
        }
    }
    fprintf(stderr, "hot: unknown case %s\n", argv[1]);
    return 2;
}
