/* test_settings.c: unit tests for src/policy/settings.c and default.c, through
 * the public API in include/cordon.h (the typed struct from policy/policy.h is
 * only read, to check what a load produced).
 *
 * What is pinned down (shared/DESIGN.md "Settings", README "Settings"):
 *  - every accepted key and its type; every error path returns a negative
 *    errno and a one-line message "NAME: /json/pointer: description", the
 *    pointer escaped per RFC 6901 (~0, ~1);
 *  - unknown keys are refused at every level, duplicate keys are refused;
 *  - keys for other platforms and srt's plumbing are accepted, with a note;
 *  - keys not implemented yet are refused unless their value is the default;
 *  - path entries: strings or {"path", "literal"}, "/ **" stripped, globs
 *    refused unless literal, `~` against opts->home, relative against
 *    opts->cwd;
 *  - cordon_policy_to_json reloads to the same text (round trip);
 *  - the embedded default, cordon_policy_load_file and the precedence of
 *    cordon_policy_load_auto.
 *
 * JSON in the tables is written with single quotes and turned into double
 * quotes before loading (see jq()), so that the tables stay readable.
 *
 * Known bugs are not hidden: their tests exist and are skipped with a
 * "BUG:" comment; set CORDON_TEST_KNOWN_BUGS=1 to run them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cordon.h"
#include "policy/policy.h"

#define NAME "cfg.json"

static const struct cordon_load_opts OPTS = { .home = "/home/u", .cwd = "/work/p" };

/* Skip the rest of a test that demonstrates a known bug (listed in the
 * report), unless CORDON_TEST_KNOWN_BUGS is set. */
#define KNOWN_BUG(why)                                                          \
    do {                                                                        \
        if (!getenv("CORDON_TEST_KNOWN_BUGS")) {                                \
            print_message("[  BUG     ] %s\n", why);                            \
            skip();                                                             \
        }                                                                       \
    } while (0)

/* ---- helpers -------------------------------------------------------------- */

/* Single quotes -> double quotes. Caller frees. */
static char *jq(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    for (char *p = d; *p; p++)
        if (*p == '\'')
            *p = '"';
    return d;
}

static bool msg_is_terminated(const struct cordon_error *err)
{
    return memchr(err->msg, '\0', sizeof(err->msg)) != NULL;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Load text that must be accepted; err must not be touched. */
static cordon_policy *load_ok_opts(const char *json, const char *name,
                                   const struct cordon_load_opts *opts)
{
    cordon_policy *p = NULL;
    struct cordon_error err;
    memset(&err, 0x5a, sizeof(err));
    struct cordon_error untouched = err;
    int r = cordon_policy_load_string(json, name, opts, &p, &err);
    if (r != 0)
        print_error("load of %s failed: %d: %.*s\n", json, r, (int)sizeof(err.msg), err.msg);
    assert_int_equal(r, 0);
    assert_non_null(p);
    /* Success never touches err. */
    assert_memory_equal(&err, &untouched, sizeof(err));
    return p;
}

/* Same, for JSON written with single quotes. */
static cordon_policy *load_ok(const char *sq_json)
{
    char *json = jq(sq_json);
    cordon_policy *p = load_ok_opts(json, NAME, &OPTS);
    free(json);
    return p;
}

/* Load text that must be refused. ptr NULL: a document-level error, whose
 * message starts with the name; otherwise the message must start with
 * "NAME: PTR: " and go on with a description containing substr. */
static void expect_fail_raw(const char *json, int code, const char *ptr, const char *substr)
{
    cordon_policy *p = NULL;
    struct cordon_error err;
    memset(&err, 0, sizeof(err));
    int r = cordon_policy_load_string(json, NAME, &OPTS, &p, &err);
    if (r >= 0) {
        print_error("load of %s should fail\n", json);
        cordon_policy_free(p);
        fail();
    }
    assert_null(p);
    assert_true(msg_is_terminated(&err));
    if (err.code != code || r != -code)
        print_error("load of %s: got %d (code %d, \"%s\"), want -%d\n", json, r, err.code,
                    err.msg, code);
    assert_int_equal(err.code, code);
    assert_int_equal(r, -code);
    if (ptr) {
        char prefix[512];
        snprintf(prefix, sizeof(prefix), "%s: %s: ", NAME, ptr);
        if (!starts_with(err.msg, prefix))
            print_error("load of %s: message \"%s\" does not start with \"%s\"\n", json,
                        err.msg, prefix);
        assert_true(starts_with(err.msg, prefix));
        assert_true(strlen(err.msg) > strlen(prefix)); /* a description follows */
    } else {
        if (!starts_with(err.msg, NAME ":"))
            print_error("load of %s: message \"%s\" does not start with the name\n", json,
                        err.msg);
        assert_true(starts_with(err.msg, NAME ":"));
        assert_true(strlen(err.msg) > strlen(NAME ": "));
    }
    if (substr) {
        if (!strstr(err.msg, substr))
            print_error("load of %s: message \"%s\" lacks \"%s\"\n", json, err.msg, substr);
        assert_non_null(strstr(err.msg, substr));
    }
}

static void expect_fail(const char *sq_json, int code, const char *ptr, const char *substr)
{
    char *json = jq(sq_json);
    expect_fail_raw(json, code, ptr, substr);
    free(json);
}

static void assert_pathlists_equal(const struct cordon_pathlist *a,
                                   const struct cordon_pathlist *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->v[i].path, b->v[i].path);
        assert_int_equal(a->v[i].literal, b->v[i].literal);
    }
}

/* The policy.h invariant for every path. */
static void assert_clean_path(const char *s)
{
    size_t n = strlen(s);
    assert_true(n > 0 && s[0] == '/');
    assert_null(strstr(s, "//"));
    assert_null(strstr(s, "/./"));
    assert_null(strstr(s, "/../"));
    if (n > 1) {
        assert_true(s[n - 1] != '/');
        assert_false(n >= 2 && strcmp(s + n - 2, "/.") == 0);
        assert_false(n >= 3 && strcmp(s + n - 3, "/..") == 0);
    }
}

static void assert_clean_lists(const cordon_policy *p)
{
    const struct cordon_pathlist *ls[] = { &p->fs.deny_read, &p->fs.allow_read,
                                           &p->fs.allow_write, &p->fs.deny_write };
    for (size_t k = 0; k < 4; k++)
        for (size_t i = 0; i < ls[k]->n; i++)
            assert_clean_path(ls[k]->v[i].path);
}

/* to_json is valid JSON, reloads with the same opts, and serialises to the
 * identical text; the reloaded policy has the same lists. Returns the text
 * (caller frees). */
static char *roundtrip_opts(const cordon_policy *p, const struct cordon_load_opts *opts)
{
    char *a = cordon_policy_to_json(p);
    assert_non_null(a);
    json_error_t je;
    json_t *v = json_loads(a, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        print_error("to_json is not valid JSON (%s): %s\n", je.text, a);
    assert_non_null(v);
    assert_true(json_is_object(v));
    json_decref(v);

    cordon_policy *q = NULL;
    struct cordon_error err = { 0 };
    int r = cordon_policy_load_string(a, "roundtrip.json", opts, &q, &err);
    if (r != 0)
        print_error("to_json output does not reload: %s\n%s\n", err.msg, a);
    assert_int_equal(r, 0);
    char *b = cordon_policy_to_json(q);
    assert_non_null(b);
    if (strcmp(a, b) != 0)
        print_error("round trip differs:\n%s\n---\n%s\n", a, b);
    assert_string_equal(a, b);
    assert_pathlists_equal(&p->fs.deny_read, &q->fs.deny_read);
    assert_pathlists_equal(&p->fs.allow_read, &q->fs.allow_read);
    assert_pathlists_equal(&p->fs.allow_write, &q->fs.allow_write);
    assert_pathlists_equal(&p->fs.deny_write, &q->fs.deny_write);
    free(b);
    cordon_policy_free(q);
    return a;
}

static char *roundtrip(const cordon_policy *p)
{
    return roundtrip_opts(p, &OPTS);
}

/* to_json of "{}": what a policy that changes nothing looks like. */
static char *empty_policy_json(void)
{
    cordon_policy *p = load_ok("{}");
    char *s = cordon_policy_to_json(p);
    assert_non_null(s);
    cordon_policy_free(p);
    return s;
}

static bool notes_contain(const cordon_policy *p, const char *s)
{
    for (size_t i = 0; i < p->notes.n; i++)
        if (strstr(p->notes.v[i], s))
            return true;
    return false;
}

/* ---- table: documents that must be refused --------------------------------- */

struct err_case {
    const char *name;
    const char *json;  /* single quotes */
    int code;
    const char *ptr;   /* exact JSON pointer, NULL for document-level errors */
    const char *substr;
};

static const struct err_case err_cases[] = {
    /* The document as a whole. */
    { "empty document", "", EINVAL, NULL, "empty" },
    { "whitespace-only document", " \n\t\r  \n", EINVAL, NULL, "empty" },
    { "single space", " ", EINVAL, NULL, "empty" },
    { "top level array", "[]", EINVAL, NULL, "must be a JSON object, got an array" },
    { "top level array of object", "[{}]", EINVAL, NULL, "must be a JSON object" },
    { "top level number", "1", EINVAL, NULL, "invalid JSON" },
    { "top level string", "'{}'", EINVAL, NULL, "invalid JSON" },
    { "top level null", "null", EINVAL, NULL, "invalid JSON" },
    { "top level true", "true", EINVAL, NULL, "invalid JSON" },
    { "truncated", "{'network': {", EINVAL, NULL, "invalid JSON" },
    { "unterminated string", "{'network", EINVAL, NULL, "invalid JSON" },
    { "trailing garbage", "{} x", EINVAL, NULL, "invalid JSON" },
    { "two documents", "{}{}", EINVAL, NULL, "invalid JSON" },
    { "trailing comma", "{'allowPty': true,}", EINVAL, NULL, "invalid JSON" },
    { "comment", "{} // comment", EINVAL, NULL, "invalid JSON" },
    { "bare word", "{network: {}}", EINVAL, NULL, "invalid JSON" },
    { "invalid UTF-8 in a path", "{'filesystem': {'denyRead': ['/a\xff']}}", EINVAL, NULL,
      "invalid JSON" },
    { "lone surrogate escape", "{'filesystem': {'denyRead': ['/a\\ud800']}}", EINVAL, NULL,
      "invalid JSON" },
    { "NUL byte in a path string", "{'filesystem': {'denyRead': ['/a\\u0000b']}}", EINVAL,
      NULL, "u0000" },
    { "NUL byte in a domain string", "{'network': {'deniedDomains': ['a\\u0000.com']}}",
      EINVAL, NULL, "u0000" },
    { "NUL byte in a key", "{'a\\u0000b': 1}", EINVAL, NULL, "NUL" },
    { "raw control character in a string", "{'filesystem': {'denyRead': ['/a\tb']}}",
      EINVAL, NULL, "invalid JSON" },
    { "integer overflow", "{'mandatoryDenySearchDepth': 99999999999999999999}", EINVAL,
      NULL, "invalid JSON" },

    /* Duplicate keys, at every level. */
    { "duplicate top-level key", "{'network': {}, 'network': {}}", EINVAL, NULL, "duplicate" },
    { "duplicate ignored key", "{'allowPty': true, 'allowPty': false}", EINVAL, NULL,
      "duplicate" },
    { "duplicate key in network",
      "{'network': {'deniedDomains': [], 'deniedDomains': ['a.com']}}", EINVAL, NULL,
      "duplicate" },
    { "duplicate key in filesystem",
      "{'filesystem': {'denyRead': ['~/.ssh'], 'denyRead': []}}", EINVAL, NULL, "duplicate" },
    { "duplicate key in a path entry",
      "{'filesystem': {'denyRead': [{'path': '/a', 'path': '/b'}]}}", EINVAL, NULL,
      "duplicate" },
    { "duplicate key in git", "{'git': {'safeDirectories': [], 'safeDirectories': []}}",
      EINVAL, NULL, "duplicate" },
    { "duplicate key in ignoreViolations", "{'ignoreViolations': {'*': [], '*': ['x']}}",
      EINVAL, NULL, "duplicate" },
    { "duplicate key in deniedDomainReasons",
      "{'network': {'deniedDomainReasons': {'a.com': 'x', 'a.com': 'y'}}}", EINVAL, NULL,
      "duplicate" },

    /* Unknown keys, at every level. */
    { "unknown top-level key", "{'allowNestedUserNamespace': true}", EINVAL,
      "/allowNestedUserNamespace", "unknown key" },
    { "keys are case-sensitive", "{'Network': {}}", EINVAL, "/Network", "unknown key" },
    { "unknown key in network (srt's own typo example)",
      "{'network': {'allowLocalbinding': true}}", EINVAL, "/network/allowLocalbinding",
      "unknown key" },
    { "allowMachLookup belongs in network", "{'allowMachLookup': []}", EINVAL,
      "/allowMachLookup", "unknown key" },
    { "filterRequest is library-only", "{'network': {'filterRequest': 'x'}}", EINVAL,
      "/network/filterRequest", "unknown key" },
    { "unknown key in filesystem", "{'filesystem': {'denyread': ['~/.ssh']}}", EINVAL,
      "/filesystem/denyread", "unknown key" },
    { "unknown key in filesystem after valid ones",
      "{'filesystem': {'denyRead': [], 'allowedWrite': ['.']}}", EINVAL,
      "/filesystem/allowedWrite", "unknown key" },
    { "unknown key in git", "{'git': {'safeDirectory': ['/r']}}", EINVAL,
      "/git/safeDirectory", "unknown key" },
    { "unknown key in a path entry",
      "{'filesystem': {'denyRead': [{'path': '/a', 'literl': true}]}}", EINVAL,
      "/filesystem/denyRead/0/literl", "unknown key in a path entry" },
    { "unknown key in a later path entry",
      "{'filesystem': {'allowWrite': ['.', '/x', {'path': '/a', 'glob': true}]}}", EINVAL,
      "/filesystem/allowWrite/2/glob", "unknown key" },

    /* JSON pointers escape "~" and "/" (RFC 6901). */
    { "pointer escapes /", "{'a/b': 1}", EINVAL, "/a~1b", "unknown key" },
    { "pointer escapes ~", "{'~': 1}", EINVAL, "/~0", "unknown key" },
    { "pointer escapes ~ before 1", "{'~1': 1}", EINVAL, "/~01", "unknown key" },
    { "pointer escapes ~ and / together", "{'a~/b': 1}", EINVAL, "/a~0~1b", "unknown key" },
    { "pointer escapes //", "{'//': 1}", EINVAL, "/~1~1", "unknown key" },
    { "pointer of the empty key", "{'': 1}", EINVAL, "/", "unknown key" },
    { "pointer escapes in network", "{'network': {'x/y~z': 1}}", EINVAL,
      "/network/x~1y~0z", "unknown key" },
    { "pointer escapes in a path entry",
      "{'filesystem': {'allowRead': [{'path': '/a', 'p/q': 1}]}}", EINVAL,
      "/filesystem/allowRead/0/p~1q", "unknown key" },
    { "pointer escapes in ignoreViolations", "{'ignoreViolations': {'a/b~c': [1]}}", EINVAL,
      "/ignoreViolations/a~1b~0c/0", "a string" },
    { "pointer escapes in deniedDomainReasons",
      "{'network': {'deniedDomainReasons': {'*/x': 1}}}", EINVAL,
      "/network/deniedDomainReasons/*~1x", "a string" },
    { "pointer keeps UTF-8", "{'\xc3\xa9': 1}", EINVAL, "/\xc3\xa9", "unknown key" },

    /* Types of the sections. */
    { "network is an array", "{'network': []}", EINVAL, "/network",
      "expected an object, got an array" },
    { "network is null", "{'network': null}", EINVAL, "/network", "got null" },
    { "filesystem is a string", "{'filesystem': 'x'}", EINVAL, "/filesystem",
      "got a string" },
    { "git is an integer", "{'git': 1}", EINVAL, "/git", "got an integer" },
    { "git is a boolean", "{'git': true}", EINVAL, "/git", "got a boolean" },

    /* Top-level scalars. */
    { "allowNestedUserNamespaces is a string", "{'allowNestedUserNamespaces': 'true'}",
      EINVAL, "/allowNestedUserNamespaces", "expected a boolean, got a string" },
    { "allowNestedUserNamespaces is 1", "{'allowNestedUserNamespaces': 1}", EINVAL,
      "/allowNestedUserNamespaces", "expected a boolean, got an integer" },
    { "allowNestedUserNamespaces is null", "{'allowNestedUserNamespaces': null}", EINVAL,
      "/allowNestedUserNamespaces", "expected a boolean, got null" },
    { "mandatoryDenySearchDepth 0", "{'mandatoryDenySearchDepth': 0}", EINVAL,
      "/mandatoryDenySearchDepth", "1 to 10, got 0" },
    { "mandatoryDenySearchDepth 11", "{'mandatoryDenySearchDepth': 11}", EINVAL,
      "/mandatoryDenySearchDepth", "1 to 10, got 11" },
    { "mandatoryDenySearchDepth -1", "{'mandatoryDenySearchDepth': -1}", EINVAL,
      "/mandatoryDenySearchDepth", "1 to 10, got -1" },
    { "mandatoryDenySearchDepth INT64_MAX",
      "{'mandatoryDenySearchDepth': 9223372036854775807}", EINVAL,
      "/mandatoryDenySearchDepth", "1 to 10" },
    { "mandatoryDenySearchDepth 2^32+3 (no truncation to int)",
      "{'mandatoryDenySearchDepth': 4294967299}", EINVAL, "/mandatoryDenySearchDepth",
      "1 to 10" },
    /* an integral real (3.0, 1e1) is an integer, as in srt */
    { "mandatoryDenySearchDepth fraction", "{'mandatoryDenySearchDepth': 3.5}", EINVAL,
      "/mandatoryDenySearchDepth", "1 to 10, got 3.5" },
    { "mandatoryDenySearchDepth integral real out of range",
      "{'mandatoryDenySearchDepth': 2e1}", EINVAL, "/mandatoryDenySearchDepth",
      "1 to 10, got 20" },
    { "mandatoryDenySearchDepth string", "{'mandatoryDenySearchDepth': '3'}", EINVAL,
      "/mandatoryDenySearchDepth", "got a string" },
    { "mandatoryDenySearchDepth boolean", "{'mandatoryDenySearchDepth': true}", EINVAL,
      "/mandatoryDenySearchDepth", "got a boolean" },
    { "ignoreViolations is an array", "{'ignoreViolations': []}", EINVAL,
      "/ignoreViolations", "an object" },
    { "ignoreViolations value is a string", "{'ignoreViolations': {'*': 'x'}}", EINVAL,
      "/ignoreViolations/*", "an array of strings" },
    { "ignoreViolations value holds a number", "{'ignoreViolations': {'*': ['a', 1]}}",
      EINVAL, "/ignoreViolations/*/1", "expected a string, got an integer" },

    /* network. */
    { "allowedDomains a URL", "{'network': {'allowedDomains': ['https://example.com']}}",
      EINVAL, "/network/allowedDomains/0", "not a URL" },
    { "allowedDomains single label", "{'network': {'allowedDomains': ['a.com', 'myhost']}}",
      EINVAL, "/network/allowedDomains/1", "at least one dot" },
    { "allowedDomains star", "{'network': {'allowedDomains': ['*']}}", EINVAL,
      "/network/allowedDomains/0", "only allowed in deniedDomains" },
    { "allowedDomains wildcard TLD", "{'network': {'allowedDomains': ['*.com']}}", EINVAL,
      "/network/allowedDomains/0", "too broad" },
    { "allowedDomains unbracketed IPv6", "{'network': {'allowedDomains': ['::1']}}", EINVAL,
      "/network/allowedDomains/0", "brackets" },
    { "allowedDomains port leading zero", "{'network': {'allowedDomains': ['a.com:0443']}}",
      EINVAL, "/network/allowedDomains/0", "leading zeros" },
    { "allowedDomains port too big", "{'network': {'allowedDomains': ['a.com:65536']}}",
      EINVAL, "/network/allowedDomains/0", "port" },
    { "allowedDomains mid wildcard", "{'network': {'allowedDomains': ['a.*.com']}}", EINVAL,
      "/network/allowedDomains/0", "leading label" },
    { "allowedDomains a string", "{'network': {'allowedDomains': 'example.com'}}", EINVAL,
      "/network/allowedDomains", "an array of hosts" },
    { "allowedDomains holds a number", "{'network': {'allowedDomains': [1]}}", EINVAL,
      "/network/allowedDomains/0", "a string" },
    { "deniedDomains holds null", "{'network': {'deniedDomains': ['a.com', null]}}",
      EINVAL, "/network/deniedDomains/1", "got null" },
    { "deniedDomains an object", "{'network': {'deniedDomains': {}}}", EINVAL,
      "/network/deniedDomains", "an array" },
    { "deniedDomainReasons an array", "{'network': {'deniedDomainReasons': []}}", EINVAL,
      "/network/deniedDomainReasons", "an object" },
    { "deniedDomainReasons value a number",
      "{'network': {'deniedDomainReasons': {'a.com': 1}}}", EINVAL,
      "/network/deniedDomainReasons/a.com", "a string" },
    { "strictAllowlist a string", "{'network': {'strictAllowlist': 'yes'}}", EINVAL,
      "/network/strictAllowlist", "a boolean" },
    { "allowAllUnixSockets 0", "{'network': {'allowAllUnixSockets': 0}}", EINVAL,
      "/network/allowAllUnixSockets", "a boolean" },
    { "allowLocalBinding null", "{'network': {'allowLocalBinding': null}}", EINVAL,
      "/network/allowLocalBinding", "a boolean" },

    /* filesystem scalars and lists. */
    { "disabled a string", "{'filesystem': {'disabled': 'false'}}", EINVAL,
      "/filesystem/disabled", "a boolean" },
    { "allowGitConfig 1", "{'filesystem': {'allowGitConfig': 1}}", EINVAL,
      "/filesystem/allowGitConfig", "a boolean" },
    { "denyRead a string", "{'filesystem': {'denyRead': '~/.ssh'}}", EINVAL,
      "/filesystem/denyRead", "an array of paths" },
    { "allowRead an object", "{'filesystem': {'allowRead': {}}}", EINVAL,
      "/filesystem/allowRead", "an array of paths" },
    { "allowWrite element 1 a number", "{'filesystem': {'allowWrite': ['.', 1]}}", EINVAL,
      "/filesystem/allowWrite/1", "a path string or" },
    { "first error wins", "{'filesystem': {'allowWrite': ['/ok', 1, 2]}}", EINVAL,
      "/filesystem/allowWrite/1", NULL },
    { "first key in document order wins", "{'zzz': 1, 'network': []}", EINVAL, "/zzz",
      "unknown key" },
    { "first key in document order wins (other order)", "{'network': [], 'zzz': 1}",
      EINVAL, "/network", "an object" },
    { "denyWrite element 2 null", "{'filesystem': {'denyWrite': ['.', '/x', null]}}", EINVAL,
      "/filesystem/denyWrite/2", "got null" },
    { "allowWrite element an array", "{'filesystem': {'allowWrite': [[]]}}", EINVAL,
      "/filesystem/allowWrite/0", "got an array" },
    { "empty path string", "{'filesystem': {'allowWrite': ['.', '']}}", EINVAL,
      "/filesystem/allowWrite/1", "empty path" },
    { "empty path in an entry", "{'filesystem': {'allowRead': [{'path': ''}]}}", EINVAL,
      "/filesystem/allowRead/0", "empty path" },
    { "empty literal path", "{'filesystem': {'allowRead': [{'path': '', 'literal': true}]}}",
      EINVAL, "/filesystem/allowRead/0", "empty path" },
    { "entry without path", "{'filesystem': {'allowRead': [{'literal': true}]}}", EINVAL,
      "/filesystem/allowRead/0", "needs \"path\"" },
    { "empty entry object", "{'filesystem': {'denyRead': [{}]}}", EINVAL,
      "/filesystem/denyRead/0", "needs \"path\"" },
    { "entry path a number", "{'filesystem': {'allowRead': [{'path': 1}]}}", EINVAL,
      "/filesystem/allowRead/0/path", "a string" },
    { "entry literal a string",
      "{'filesystem': {'allowRead': [{'path': '/a', 'literal': 'yes'}]}}", EINVAL,
      "/filesystem/allowRead/0/literal", "a boolean" },
    { "entry literal null", "{'filesystem': {'denyWrite': [{'path': '/a', 'literal': null}]}}",
      EINVAL, "/filesystem/denyWrite/0/literal", "a boolean" },

    /* Globs: a pattern must start from a literal directory below "/", and a
     * deny pattern may not end in "/" (it would match nothing). */
    { "glob at the root", "{'filesystem': {'denyRead': ['/**/*.pem']}}", EINVAL,
      "/filesystem/denyRead/0", "literal directory" },
    { "glob first component", "{'filesystem': {'allowRead': ['/*/x']}}", EINVAL,
      "/filesystem/allowRead/0", "literal directory" },
    { "glob deny with a trailing slash", "{'filesystem': {'denyWrite': ['/a/*/']}}", EINVAL,
      "/filesystem/denyWrite/0", "would match nothing" },
    { "glob deny read with a trailing slash", "{'filesystem': {'denyRead': ['/a/b?/']}}",
      EINVAL, "/filesystem/denyRead/0", "would match nothing" },

    /* ~user. */
    { "~user in a path", "{'filesystem': {'denyRead': ['~bob/.ssh']}}", EINVAL,
      "/filesystem/denyRead/0", "~user" },
    { "~user alone", "{'filesystem': {'allowWrite': ['~root']}}", EINVAL,
      "/filesystem/allowWrite/0", "\"~root\"" },
    { "~user even when literal",
      "{'filesystem': {'denyRead': [{'path': '~bob', 'literal': true}]}}", EINVAL,
      "/filesystem/denyRead/0", "~user" },

    /* git. */
    { "safeDirectories a string", "{'git': {'safeDirectories': '~'}}", EINVAL,
      "/git/safeDirectories", "an array" },
    { "safeDirectories holds a number", "{'git': {'safeDirectories': [1]}}", EINVAL,
      "/git/safeDirectories/0", "expected a string" },
    { "safeDirectories holds an empty string", "{'git': {'safeDirectories': ['/ok', '']}}",
      EINVAL, "/git/safeDirectories/1", "empty path" },
    { "safeDirectories holds ~user", "{'git': {'safeDirectories': ['~bob/r']}}", EINVAL,
      "/git/safeDirectories/0", "~user" },

    /* Not implemented yet: refused unless the value is the default. */
    { "credentials null", "{'credentials': null}", EINVAL, "/credentials", "an object" },
    { "credentials an array", "{'credentials': []}", EINVAL, "/credentials", "an object" },
    { "credentials unknown key", "{'credentials': {'GITHUB_TOKEN': {}}}", EINVAL,
      "/credentials/GITHUB_TOKEN", "unknown key" },
    { "credentials awsPairs incomplete", "{'credentials': {'awsPairs': [{}]}}", EINVAL,
      "/credentials/awsPairs/0", "needs accessKeyIdVar" },
    { "credentials awsPairs unknown key", "{'credentials': {'awsPairs': [{'region': 'x'}]}}",
      EINVAL, "/credentials/awsPairs/0/region", "unknown key" },
    { "credentials awsPairs not masked", "{'network': {'tlsTerminate': {}}, 'credentials': {"
      "'envVars': [{'name': 'K', 'mode': 'mask'}], 'awsPairs': [{'accessKeyIdVar': 'K', "
      "'secretAccessKeyVar': 'S'}]}}", EINVAL,
      "/credentials/awsPairs/0/secretAccessKeyVar", "mode \"mask\"" },
    { "credentials awsPairs extract", "{'network': {'tlsTerminate': {}}, 'credentials': {"
      "'envVars': [{'name': 'K', 'mode': 'mask'}, {'name': 'S', 'mode': 'mask', "
      "'extract': '(x)'}], 'awsPairs': [{'accessKeyIdVar': 'K', 'secretAccessKeyVar': 'S'}]}}",
      EINVAL, "/credentials/awsPairs/0/secretAccessKeyVar", "no extract" },
    { "credentials awsPairs two slots", "{'network': {'tlsTerminate': {}}, 'credentials': {"
      "'envVars': [{'name': 'K', 'mode': 'mask'}, {'name': 'S', 'mode': 'mask'}], "
      "'awsPairs': [{'accessKeyIdVar': 'K', 'secretAccessKeyVar': 'S'}, "
      "{'accessKeyIdVar': 'S', 'secretAccessKeyVar': 'K'}]}}", EINVAL,
      "/credentials/awsPairs/1/accessKeyIdVar", "two slots" },
    { "credentials sigv4 mode", "{'credentials': {'sigv4': {'streaming': 'allow'}}}", EINVAL,
      "/credentials/sigv4/streaming", "\"deny\" or \"passthrough\"" },
    { "credentials mask without tlsTerminate",
      "{'credentials': {'envVars': [{'name': 'K', 'mode': 'mask'}]}}", EINVAL, "/credentials",
      "tlsTerminate" },
    { "credentials env without mode", "{'credentials': {'envVars': [{'name': 'K'}]}}", EINVAL,
      "/credentials/envVars/0", "needs \"mode\"" },
    { "credentials env without name", "{'credentials': {'envVars': [{'mode': 'deny'}]}}", EINVAL,
      "/credentials/envVars/0", "needs \"name\"" },
    { "credentials env bad name", "{'credentials': {'envVars': [{'name': 'A-B', 'mode': 'deny'}]}}",
      EINVAL, "/credentials/envVars/0/name", "POSIX" },
    { "credentials bad mode", "{'credentials': {'envVars': [{'name': 'A', 'mode': 'hide'}]}}",
      EINVAL, "/credentials/envVars/0/mode", "\"deny\" or \"mask\"" },
    { "credentials env maskDuplicates", "{'credentials': {'envVars': [{'name': 'A', "
      "'mode': 'mask', 'maskDuplicates': true}]}}", EINVAL,
      "/credentials/envVars/0/maskDuplicates", "unknown key" },
    { "credentials extract without group", "{'credentials': {'allowPlaintextInject': true, "
      "'envVars': [{'name': 'A', 'mode': 'mask', 'extract': 'x+'}]}}", EINVAL,
      "/credentials/envVars/0/extract", "capture group" },
    { "credentials extract invalid", "{'credentials': {'allowPlaintextInject': true, "
      "'envVars': [{'name': 'A', 'mode': 'mask', 'extract': '(x'}]}}", EINVAL,
      "/credentials/envVars/0/extract", "regular expression" },
    { "credentials onExtractNoMatch", "{'credentials': {'envVars': [{'name': 'A', "
      "'mode': 'mask', 'onExtractNoMatch': 'ignore'}]}}", EINVAL,
      "/credentials/envVars/0/onExtractNoMatch", "\"error\", \"warn\" or \"deny\"" },
    { "credentials decode", "{'credentials': {'envVars': [{'name': 'A', 'mode': 'mask', "
      "'decode': 'saml'}]}}", EINVAL, "/credentials/envVars/0/decode", "\"jwt\"" },
    { "credentials maskClaims without decode", "{'credentials': {'allowPlaintextInject': true, "
      "'envVars': [{'name': 'A', 'mode': 'mask', 'maskClaims': ['sub']}]}}", EINVAL,
      "/credentials/envVars/0", "needs decode" },
    { "credentials maskClaims empty", "{'credentials': {'envVars': [{'name': 'A', "
      "'mode': 'mask', 'decode': 'jwt', 'maskClaims': []}]}}", EINVAL,
      "/credentials/envVars/0/maskClaims", "empty" },
    { "credentials deny with extract", "{'credentials': {'envVars': [{'name': 'A', "
      "'mode': 'deny', 'extract': '(x)'}]}}", EINVAL, "/credentials/envVars/0", "takes no" },
    { "credentials injectHosts empty", "{'credentials': {'envVars': [{'name': 'A', "
      "'mode': 'mask', 'injectHosts': []}]}}", EINVAL, "/credentials/envVars/0/injectHosts",
      "empty list" },
    { "credentials injectHosts not allowed", "{'network': {'allowedDomains': ['a.test'], "
      "'tlsTerminate': {}}, 'credentials': {'envVars': [{'name': 'A', 'mode': 'mask', "
      "'injectHosts': ['a.test', 'b.test']}]}}", EINVAL,
      "/credentials/envVars/0/injectHosts/1", "not covered by network.allowedDomains" },
    { "credentials injectHosts wildcard wider than allowed", "{'network': {'allowedDomains': "
      "['a.x.test'], 'tlsTerminate': {}}, 'credentials': {'envVars': [{'name': 'A', "
      "'mode': 'mask', 'injectHosts': ['*.x.test']}]}}", EINVAL,
      "/credentials/envVars/0/injectHosts/0", "not covered" },
    { "credentials injectHosts excluded", "{'network': {'allowedDomains': ['*.x.test'], "
      "'tlsTerminate': {'excludeDomains': ['*.x.test']}}, 'credentials': {'envVars': "
      "[{'name': 'A', 'mode': 'mask', 'injectHosts': ['a.x.test']}]}}", EINVAL,
      "/credentials/envVars/0/injectHosts/0", "excludeDomains" },
    { "credentials file with trailing slash", "{'credentials': {'files': [{'path': '/etc/x/', "
      "'mode': 'mask'}]}}", EINVAL, "/credentials/files/0/path", "not a directory" },
    { "credentials with httpProxyPort", "{'network': {'httpProxyPort': 8080, 'tlsTerminate': {}}, "
      "'credentials': {'envVars': [{'name': 'A', 'mode': 'mask'}]}}", EINVAL, "/network",
      "external proxy" },
    { "enableWeakerNestedSandbox true", "{'enableWeakerNestedSandbox': true}", ENOTSUP,
      "/enableWeakerNestedSandbox", "not supported" },

    /* limits and environment (cordon's keys). */
    { "limits an array", "{'limits': []}", EINVAL, "/limits", "an object" },
    { "unknown limit", "{'limits': {'nprocs': 10}}", EINVAL, "/limits/nprocs",
      "unknown limit" },
    { "limit 0", "{'limits': {'nofile': 0}}", EINVAL, "/limits/nofile", "positive integer" },
    { "limit negative", "{'limits': {'cpu': -5}}", EINVAL, "/limits/cpu", "positive integer" },
    { "limit a numeric string", "{'limits': {'fsize': '10'}}", EINVAL, "/limits/fsize",
      "positive integer" },
    { "limit a real", "{'limits': {'as': 1.5}}", EINVAL, "/limits/as", "positive integer" },
    { "limit null", "{'limits': {'nproc': null}}", EINVAL, "/limits/nproc",
      "positive integer" },
    { "environment an array", "{'environment': []}", EINVAL, "/environment", "an object" },
    { "unknown key in environment", "{'environment': {'remove': []}}", EINVAL,
      "/environment/remove", "unknown key" },
    { "environment drop a string", "{'environment': {'drop': 'AWS_*'}}", EINVAL,
      "/environment/drop", "an array of strings" },
    { "environment drop holds a number", "{'environment': {'drop': [1]}}", EINVAL,
      "/environment/drop/0", "a string" },
    { "environment keep holds a bad name", "{'environment': {'keep': ['OK', 'A-B']}}",
      EINVAL, "/environment/keep/1", "variable name" },
    { "environment empty name", "{'environment': {'drop': ['']}}", EINVAL,
      "/environment/drop/0", "variable name" },
    { "environment name with =", "{'environment': {'drop': ['A=B']}}", EINVAL,
      "/environment/drop/0", "\"A=B\"" },
    { "allowUnixSockets a string", "{'network': {'allowUnixSockets': '/run/x.sock'}}",
      EINVAL, "/network/allowUnixSockets", "an array of socket paths" },
    { "allowUnixSockets a number", "{'network': {'allowUnixSockets': ['/a', 1]}}", EINVAL,
      "/network/allowUnixSockets/1", "a string" },
    { "allowUnixSockets empty path", "{'network': {'allowUnixSockets': ['']}}", EINVAL,
      "/network/allowUnixSockets/0", "empty path" },
    { "allowUnixSockets glob", "{'network': {'allowUnixSockets': ['/run/user/*/x.sock']}}",
      EINVAL, "/network/allowUnixSockets/0", "patterns are not supported" },
    { "allowUnixSockets ~user", "{'network': {'allowUnixSockets': ['~root/x.sock']}}",
      EINVAL, "/network/allowUnixSockets/0", "~" },
    { "deniedResolvedAddresses bracketed",
      "{'network': {'deniedResolvedAddresses': ['10.0.0.0/8', '[::1]']}}", EINVAL,
      "/network/deniedResolvedAddresses/1", "without brackets" },
    { "deniedResolvedAddresses prefix too long",
      "{'network': {'deniedResolvedAddresses': ['10.0.0.0/33']}}", EINVAL,
      "/network/deniedResolvedAddresses/0", "too large" },
    { "httpProxyPort zero", "{'network': {'httpProxyPort': 0}}", EINVAL,
      "/network/httpProxyPort", "1 to 65535" },
    { "socksProxyPort a string", "{'network': {'socksProxyPort': '1080'}}", EINVAL,
      "/network/socksProxyPort", "1 to 65535" },
    { "mitmProxy relative socket",
      "{'network': {'mitmProxy': {'socketPath': 's.sock', 'domains': ['a.com']}}}", EINVAL,
      "/network/mitmProxy/socketPath", "absolute" },
    { "mitmProxy no domains", "{'network': {'mitmProxy': {'socketPath': '/s', 'domains': []}}}",
      EINVAL, "/network/mitmProxy/domains", "at least one" },
    { "mitmProxy unknown key", "{'network': {'mitmProxy': {'socketPath': '/s', 'domain': []}}}",
      EINVAL, "/network/mitmProxy/domain", "unknown key" },
    { "parentProxy https URL", "{'network': {'parentProxy': {'http': 'https://p:3128'}}}",
      EINVAL, "/network/parentProxy/http", "http://" },
    { "parentProxy with a path", "{'network': {'parentProxy': {'https': 'http://p:3128/x'}}}",
      EINVAL, "/network/parentProxy/https", "no path" },
    { "parentProxy unknown key", "{'network': {'parentProxy': {'ftp': 'http://p:3128'}}}",
      EINVAL, "/network/parentProxy/ftp", "unknown key" },
    { "tlsTerminate unknown key", "{'network': {'tlsTerminate': {'enabled': true}}}", EINVAL,
      "/network/tlsTerminate/enabled", "unknown key" },
    { "tlsTerminate cert without key",
      "{'network': {'tlsTerminate': {'caCertPath': '/ca.pem'}}}", EINVAL,
      "/network/tlsTerminate", "go together" },
    { "tlsTerminate maxTunnels 0", "{'network': {'tlsTerminate': {'maxTunnels': 0}}}", EINVAL,
      "/network/tlsTerminate/maxTunnels", "1 to 65536" },
    { "tlsTerminate handshake too short",
      "{'network': {'tlsTerminate': {'handshakeTimeoutMs': 99}}}", EINVAL,
      "/network/tlsTerminate/handshakeTimeoutMs", "100 to 600000" },
    { "tlsTerminate with mitmProxy",
      "{'network': {'tlsTerminate': {}, 'mitmProxy': {'socketPath': '/s', 'domains': ['a.com']}}}",
      EINVAL, "/network", "cannot be used together" },
    { "allowPlaintextHeaderSet a string", "{'network': {'allowPlaintextHeaderSet': 'yes'}}",
      EINVAL, "/network/allowPlaintextHeaderSet", "a boolean" },
    { "stripResponseHeaders a string", "{'network': {'stripResponseHeaders': 'set-cookie'}}",
      EINVAL, "/network/stripResponseHeaders", "an array" },
    { "refuseOpaqueTunnels a string", "{'network': {'refuseOpaqueTunnels': 'yes'}}", EINVAL,
      "/network/refuseOpaqueTunnels", "a boolean" },
    { "requireHostMatch a number", "{'network': {'requireHostMatch': 0}}", EINVAL,
      "/network/requireHostMatch", "a boolean" },
    { "ambiguousRequestTarget unknown",
      "{'network': {'ambiguousRequestTarget': 'guess'}}", EINVAL,
      "/network/ambiguousRequestTarget", "\"refuse\", \"normalize\" or \"asSpelled\"" },
    { "defaultPorts zero", "{'network': {'defaultPorts': [443, 0]}}", EINVAL,
      "/network/defaultPorts/1", "1 to 65535" },
    { "allowPrivateAddresses a string", "{'network': {'allowPrivateAddresses': 'yes'}}",
      EINVAL, "/network/allowPrivateAddresses", "a boolean" },
    { "hosts value a name", "{'network': {'hosts': {'a.test': 'b.test'}}}", EINVAL,
      "/network/hosts/a.test", "IPv4 or IPv6" },
    { "dnsServers a name", "{'network': {'dnsServers': ['dns.example']}}", EINVAL,
      "/network/dnsServers/0", "an address" },
    { "upstreamCaFile a number", "{'network': {'upstreamCaFile': 1}}", EINVAL,
      "/network/upstreamCaFile", "a string" },
    { "requestRules with httpProxyPort",
      "{'network': {'httpProxyPort': 8080, 'requestRules': [{'host': 'a.com', 'deny': ['* /x']}]}}",
      EINVAL, "/network", "external proxy" },
    { "requestRules pattern with a dot segment",
      "{'network': {'requestRules': [{'host': 'a.com', 'deny': ['* /a/../x']}]}}",
      EINVAL, "/network/requestRules/0/deny/0", "\"..\" segment" },
    { "requestRules not an array", "{'network': {'requestRules': {'host': 'a.com'}}}",
      EINVAL, "/network/requestRules", "an array of rules" },
    { "requestRules without host", "{'network': {'requestRules': [{'allow': ['GET /']}]}}",
      EINVAL, "/network/requestRules/0", "needs \"host\"" },
    { "requestRules bad host", "{'network': {'requestRules': [{'host': 'a..com'}]}}",
      EINVAL, "/network/requestRules/0/host", "a..com" },
    { "requestRules pattern without space",
      "{'network': {'requestRules': [{'host': 'a.com', 'allow': ['GET/x']}]}}", EINVAL,
      "/network/requestRules/0/allow/0", "one space" },
    { "requestRules pattern relative path",
      "{'network': {'requestRules': [{'host': 'a.com', 'deny': ['GET /a', 'POST x']}]}}",
      EINVAL, "/network/requestRules/0/deny/1", "start with \"/\"" },
    { "requestRules pattern with query",
      "{'network': {'requestRules': [{'host': 'a.com', 'allow': ['GET /a?b']}]}}", EINVAL,
      "/network/requestRules/0/allow/0", "\"?\"" },
    { "requestRules method not a token",
      "{'network': {'requestRules': [{'host': 'a.com', 'allow': ['G(T /a']}]}}", EINVAL,
      "/network/requestRules/0/allow/0", "a token" },
    { "requestRules zero bytes",
      "{'network': {'requestRules': [{'host': 'a.com', 'maxRequestBytes': 0}]}}", EINVAL,
      "/network/requestRules/0/maxRequestBytes", "positive number" },
    { "requestRules unknown key",
      "{'network': {'requestRules': [{'host': 'a.com', 'methods': ['GET']}]}}", EINVAL,
      "/network/requestRules/0/methods", "unknown key" },
    { "injectHeaders entry incomplete", "{'network': {'injectHeaders': [{'host': 'a.test'}]}}",
      EINVAL, "/network/injectHeaders/0", "needs" },
    { "injectHeaders without tlsTerminate", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'Authorization', 'value': 'x'}]}}", EINVAL, "/network/injectHeaders/0/host",
      "tlsTerminate" },
    { "injectHeaders bad header name", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'Bad Name', 'value': 'x'}]}}", EINVAL, "/network/injectHeaders/0/header",
      "not a header name" },
    { "injectHeaders framing header", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'Transfer-Encoding', 'value': 'x'}]}}", EINVAL,
      "/network/injectHeaders/0/header", "cannot be injected" },
    { "injectHeaders unknown substitution", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'X', 'value': '${vault:k}'}]}}", EINVAL, "/network/injectHeaders/0/value",
      "unknown substitution" },
    { "injectHeaders lone dollar", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'X', 'value': 'a$b'}]}}", EINVAL, "/network/injectHeaders/0/value", "$$" },
    { "injectHeaders env name", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'X', 'value': '${env:A-B}'}]}}", EINVAL, "/network/injectHeaders/0/value",
      "not a variable name" },
    { "injectHeaders control byte", "{'network': {'injectHeaders': [{'host': 'a.test', "
      "'header': 'X', 'value': 'a\\r\\nB: c'}]}}", EINVAL, "/network/injectHeaders/0/value",
      "control" },
    { "stripRequestHeaders not a name", "{'network': {'stripRequestHeaders': ['x y']}}", EINVAL,
      "/network/stripRequestHeaders/0", "not a header name" },
    { "transparent not a boolean", "{'network': {'transparent': 'yes'}}", EINVAL,
      "/network/transparent", "expected a boolean, got a string" },
    { "hostPorts an object", "{'network': {'hostPorts': {'a': 1}}}", EINVAL,
      "/network/hostPorts", "an array of ports" },
    { "hostPorts 0", "{'network': {'hostPorts': [5432, 0]}}", EINVAL, "/network/hostPorts/1",
      "from 1 to 65535" },
    { "hostPorts 65536", "{'network': {'hostPorts': [65536]}}", EINVAL,
      "/network/hostPorts/0", "from 1 to 65535" },
    { "hostPorts a string", "{'network': {'hostPorts': ['5432']}}", EINVAL,
      "/network/hostPorts/0", "from 1 to 65535" },
    { "hostPorts twice", "{'network': {'hostPorts': [5432, 11434, 5432]}}", EINVAL,
      "/network/hostPorts/2", "port 5432 is listed twice" },
    { "hostPorts the HTTP proxy's", "{'network': {'hostPorts': [3128]}}", EINVAL,
      "/network/hostPorts/0", "taken inside the sandbox by cordon's HTTP proxy" },
    { "hostPorts the DNS server's", "{'network': {'hostPorts': [53]}}", EINVAL,
      "/network/hostPorts/0", "cordon's DNS server" },
    { "publishPorts the SOCKS proxy's", "{'network': {'publishPorts': [3000, 1080]}}",
      EINVAL, "/network/publishPorts/1", "cordon's SOCKS5 proxy" },
    { "publishPorts the transparent listener's", "{'network': {'publishPorts': [3129]}}",
      EINVAL, "/network/publishPorts/0", "cordon's transparent listener" },
    { "publishPorts also a host port",
      "{'network': {'hostPorts': [1, 2, 8080], 'publishPorts': [8080]}}", EINVAL,
      "/network/publishPorts/0", "also in network.hostPorts (/network/hostPorts/2)" },
    { "publishPorts too many", "{'network': {'publishPorts': [1,2,3,4,5,6,7,8,9,10,11,12,13,"
      "14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,"
      "43,44,45,46,47,48,49,50,51,52,54,55,56,57,58,59,60,61,62,63,64,65,66]}}", EINVAL,
      "/network/publishPorts", "at most 64 ports" },
};

static void run_err_case(void **state)
{
    const struct err_case *c = *state;
    expect_fail(c->json, c->code, c->ptr, c->substr);
}

/* ---- table: documents that must be accepted -------------------------------- */

struct ok_case {
    const char *name;
    const char *json;  /* single quotes */
    bool inert;        /* the policy equals that of "{}" */
};

static const struct ok_case ok_cases[] = {
    { "empty object", "{}", true },
    { "tls interception", "{'network': {'tlsTerminate': {'caCertPath': '/etc/ca.pem', "
      "'caKeyPath': '/etc/ca.key', 'excludeDomains': ['pinned.example.com', '*.bank.test'], "
      "'extraCaCertPaths': ['/etc/corp.pem'], 'maxTunnels': 10, 'handshakeTimeoutMs': 500}, "
      "'upstreamCaFile': '/etc/up.pem', 'requireHostMatch': false, 'refuseOpaqueTunnels': true, "
      "'stripResponseHeaders': ['Set-Cookie', 'x_secret.header']}}", false },
    { "glob patterns", "{'filesystem': {'denyRead': ['/a/*', '/a/b?', '~/.config/*.json', "
      "'src/**/*.pem', '**/.env'], 'allowRead': ['/a/[ab]'], 'allowWrite': ['/a/**/b', "
      "'/a/**/'], 'denyWrite': [{'path': '/a/*', 'literal': false}]}}", false },
    { "network entries", "{'network': {'allowedDomains': ['example.com', '*.co.uk', "
      "'localhost', '127.0.0.1:8080', '[::1]:443', 'EXAMPLE.org.', 'exa_mple.com'], "
      "'deniedDomains': ['*', '*:22', 'evil.test'], 'defaultPorts': [443], "
      "'allowPrivateAddresses': true, 'hosts': {'a.test': '127.0.0.1', 'b.test': '::1'}, "
      "'dnsServers': ['127.0.0.1:5353', '[::1]:53', '10.0.0.1']}}", false },
    { "upstream proxies", "{'network': {'parentProxy': {'http': 'http://proxy.corp:3128', "
      "'https': 'http://10.0.0.1:8080/', 'noProxy': 'localhost,.corp,10.0.0.0/8'}, "
      "'mitmProxy': {'socketPath': '/run/mitm.sock', 'domains': ['*.example.com']}, "
      "'httpProxyPort': 3128, 'socksProxyPort': 1080, "
      "'deniedResolvedAddresses': ['203.0.113.0/24', 'fd00::/8', '198.51.100.7']}}", false },
    { "whitespace around", "\n\t {} \r\n", true },
    { "empty sections", "{'network': {}, 'filesystem': {}, 'git': {}}", true },
    { "srt's required lists, empty",
      "{'network': {'allowedDomains': [], 'deniedDomains': []}, "
      "'filesystem': {'denyRead': [], 'allowWrite': [], 'denyWrite': []}}",
      true },
    { "empty ignoreViolations lists", "{'ignoreViolations': {'*': [], 'npm test': []}}",
      false },
    { "mandatoryDenySearchDepth 1", "{'mandatoryDenySearchDepth': 1}", false },
    { "mandatoryDenySearchDepth 10", "{'mandatoryDenySearchDepth': 10}", false },
    { "mandatoryDenySearchDepth 3 (the default)", "{'mandatoryDenySearchDepth': 3}", true },
    { "booleans false (defaults)",
      "{'allowNestedUserNamespaces': false, 'network': {'strictAllowlist': false, "
      "'allowAllUnixSockets': false, 'allowLocalBinding': false}, "
      "'filesystem': {'disabled': false, 'allowGitConfig': false}}",
      true },
    /* Not implemented, but the value is the default: accepted, no effect. */
    { "credentials {}", "{'credentials': {}}", true },
    { "credentials, every key", "{'network': {'allowedDomains': ['api.test', '*.x.test'], "
      "'tlsTerminate': {}}, 'credentials': {'allowPlaintextInject': false, 'envVars': "
      "[{'name': 'K', 'mode': 'mask', 'extract': 'k=(\\\\S+)', 'onExtractNoMatch': 'warn', "
      "'injectHosts': ['api.test', 'a.x.test']}, {'name': 'J', 'mode': 'mask', 'decode': 'jwt', "
      "'maskClaims': ['sub']}, {'name': 'D', 'mode': 'deny'}], 'files': [{'path': '/etc/x', "
      "'mode': 'mask', 'maskDuplicates': true, 'injectHosts': ['*.x.test']}, "
      "{'path': '/etc/y', 'mode': 'deny'}], 'awsPairs': [], 'sigv4': {}}}", false },
    { "credentials, aws", "{'network': {'tlsTerminate': {}}, 'credentials': {'envVars': "
      "[{'name': 'AWS_ACCESS_KEY_ID', 'mode': 'mask'}, {'name': 'AWS_SECRET_ACCESS_KEY', "
      "'mode': 'mask'}, {'name': 'K2', 'mode': 'mask'}, {'name': 'S2', 'mode': 'mask'}, "
      "{'name': 'T2', 'mode': 'mask'}], 'awsPairs': [{'accessKeyIdVar': 'K2', "
      "'secretAccessKeyVar': 'S2', 'sessionTokenVar': 'T2'}], 'sigv4': {'streaming': 'deny', "
      "'presigned': 'passthrough', 'sigv4a': 'deny'}}}", false },
    { "injectHeaders and stripRequestHeaders", "{'network': {'tlsTerminate': {}, "
      "'injectHeaders': [{'host': 'api.github.com', 'header': 'Authorization', "
      "'value': 'Bearer ${env:GH} $$ ${file:~/.tok}'}], 'stripRequestHeaders': ['X-Fwd']}}",
      false },
    { "enableWeakerNestedSandbox false", "{'enableWeakerNestedSandbox': false}", true },
    { "limits {}", "{'limits': {}}", true },
    { "environment {}", "{'environment': {}}", true },
    { "environment drop LD_* again (the default)", "{'environment': {'drop': ['LD_*']}}",
      true },
    { "environment empty lists", "{'environment': {'drop': [], 'keep': []}}", true },
    { "limits, every name", "{'limits': {'nproc': 10, 'nofile': 1024, 'fsize': 1048576, "
      "'cpu': 60, 'as': 'unlimited'}}", false },
    { "limits INT64_MAX", "{'limits': {'as': 9223372036854775807}}", false },
    { "environment patterns", "{'environment': {'drop': ['AWS_*', 'X?', 'a_1'], "
      "'keep': ['LD_LIBRARY_PATH', 'LD_LIBRARY_PATH']}}", false },
    { "allowUnixSockets []", "{'network': {'allowUnixSockets': []}}", true },
    { "deniedResolvedAddresses []", "{'network': {'deniedResolvedAddresses': []}}", true },
    { "allowPlaintextHeaderSet false", "{'network': {'allowPlaintextHeaderSet': false}}",
      true },
    { "stripResponseHeaders []", "{'network': {'stripResponseHeaders': []}}", true },
    { "refuseOpaqueTunnels false", "{'network': {'refuseOpaqueTunnels': false}}", true },
    { "ambiguousRequestTarget refuse", "{'network': {'ambiguousRequestTarget': 'refuse'}}",
      true },
    { "defaultPorts [80, 443]", "{'network': {'defaultPorts': [80, 443]}}", true },
    { "allowPrivateAddresses false", "{'network': {'allowPrivateAddresses': false}}", true },
    { "hosts {}", "{'network': {'hosts': {}}}", true },
    { "dnsServers []", "{'network': {'dnsServers': []}}", true },
    { "requestRules []", "{'network': {'requestRules': []}}", true },
    { "requestRules, full rule", "{'network': {'requestRules': [{'host': '*.example.com', "
      "'allow': ['GET /**', 'HEAD /**', 'POST /v1/messages'], 'deny': ['* /admin/**'], "
      "'maxRequestBytes': 1048576, 'maxSessionBytes': 10485760}]}}", false },
    { "allowPlaintextHeaderSet true", "{'network': {'allowPlaintextHeaderSet': true}}",
      false },
    { "ambiguousRequestTarget normalize",
      "{'network': {'ambiguousRequestTarget': 'normalize'}}", false },
    { "ambiguousRequestTarget asSpelled",
      "{'network': {'ambiguousRequestTarget': 'asSpelled'}}", false },
    { "injectHeaders []", "{'network': {'injectHeaders': []}}", true },
    { "stripRequestHeaders []", "{'network': {'stripRequestHeaders': []}}", true },
    { "hostPorts []", "{'network': {'hostPorts': []}}", true },
    { "publishPorts []", "{'network': {'publishPorts': []}}", true },
    { "allowUnixSockets", "{'network': {'allowUnixSockets': ['/run/x.sock', '~/.gnupg']}}",
      false },
    { "hostPorts and publishPorts", "{'network': {'hostPorts': [5432, 11434], "
      "'publishPorts': [3000]}}", false },
    { "port 53 without transparent", "{'network': {'transparent': false, "
      "'hostPorts': [53]}}", false },
    { "every default at once",
      "{'credentials': {}, 'enableWeakerNestedSandbox': false, 'limits': {}, "
      "'environment': {}, 'network': {'allowUnixSockets': [], 'deniedResolvedAddresses': [], "
      "'allowPlaintextHeaderSet': false, 'stripResponseHeaders': [], "
      "'refuseOpaqueTunnels': false, 'ambiguousRequestTarget': 'refuse', "
      "'defaultPorts': [80, 443], 'allowPrivateAddresses': false, 'hosts': {}, "
      "'dnsServers': [], 'requestRules': [], 'injectHeaders': [], "
      "'stripRequestHeaders': [], 'hostPorts': [], 'publishPorts': []}}",
      true },
};

static void run_ok_case(void **state)
{
    const struct ok_case *c = *state;
    cordon_policy *p = load_ok(c->json);
    assert_clean_lists(p);
    char *a = roundtrip(p);
    if (c->inert) {
        char *e = empty_policy_json();
        assert_string_equal(a, e);
        free(e);
        assert_int_equal(p->notes.n, 0);
    }
    free(a);
    cordon_policy_free(p);
}

/* ---- fixed tests: what a load produces ------------------------------------- */

static void test_empty_object_defaults(void **state)
{
    (void)state;
    cordon_policy *p = load_ok("{}");
    const char *src = NULL;
    assert_int_equal(cordon_policy_source(p, &src), CORDON_SOURCE_FILE);
    assert_string_equal(src, NAME);
    assert_int_equal(cordon_policy_source(p, NULL), CORDON_SOURCE_FILE);
    assert_string_equal(p->home, "/home/u");
    assert_string_equal(p->cwd, "/work/p");
    assert_false(p->fs.disabled);
    assert_false(p->fs.allow_git_config);
    assert_int_equal(p->fs.deny_read.n, 0);
    assert_int_equal(p->fs.allow_read.n, 0);
    assert_int_equal(p->fs.allow_write.n, 0);
    assert_int_equal(p->fs.deny_write.n, 0);
    assert_int_equal(p->net.allowed_domains.n, 0);
    assert_int_equal(p->net.denied_domains.n, 0);
    assert_null(p->net.denied_domain_reasons);
    assert_false(p->net.strict_allowlist);
    assert_false(p->net.allow_all_unix_sockets);
    assert_false(p->net.allow_local_binding);
    assert_false(p->allow_nested_userns);
    assert_int_equal(p->mandatory_deny_search_depth, 3);
    assert_int_equal(p->git_safe_directories.n, 0);
    assert_null(p->ignore_violations);
    assert_int_equal(p->notes.n, 0);
    cordon_policy_free(p);
}

static const char ALL_KEYS[] =
    "{"
    " 'network': {"
    "   'allowedDomains': [],"
    "   'deniedDomains': ['evil.example', '*.bad.example', '*'],"
    "   'deniedDomainReasons': {'evil.example': 'exfiltration', '*': 'no network'},"
    "   'strictAllowlist': true,"
    "   'allowAllUnixSockets': true,"
    "   'allowLocalBinding': true"
    " },"
    " 'filesystem': {"
    "   'disabled': true,"
    "   'denyRead': ['~/.ssh', {'path': '/etc/shadow'}],"
    "   'allowRead': ['~/.ssh/known_hosts'],"
    "   'allowWrite': ['.', '/tmp/**', {'path': '/data/x*y', 'literal': true}],"
    "   'denyWrite': ['./.git/hooks'],"
    "   'allowGitConfig': true"
    " },"
    " 'allowNestedUserNamespaces': true,"
    " 'mandatoryDenySearchDepth': 7,"
    " 'git': {'safeDirectories': ['~/repo', '.', '/srv/git/']},"
    " 'ignoreViolations': {'*': ['/usr/bin/x'], 'npm test': ['~/.npm', 'y']}"
    "}";

static void test_every_key(void **state)
{
    (void)state;
    cordon_policy *p = load_ok(ALL_KEYS);

    assert_int_equal(p->net.allowed_domains.n, 0);
    assert_int_equal(p->net.denied_domains.n, 3);
    assert_string_equal(p->net.denied_domains.v[0], "evil.example");
    assert_string_equal(p->net.denied_domains.v[1], "*.bad.example");
    assert_string_equal(p->net.denied_domains.v[2], "*");
    assert_null(p->net.denied_domains.v[3]); /* strlist stays NULL-terminated */
    assert_non_null(p->net.denied_domain_reasons);
    assert_string_equal(json_string_value(json_object_get(p->net.denied_domain_reasons,
                                                          "evil.example")),
                        "exfiltration");
    assert_true(p->net.strict_allowlist);
    assert_true(p->net.allow_all_unix_sockets);
    assert_true(p->net.allow_local_binding);

    assert_true(p->fs.disabled);
    assert_int_equal(p->fs.deny_read.n, 2);
    assert_string_equal(p->fs.deny_read.v[0].path, "/home/u/.ssh");
    assert_string_equal(p->fs.deny_read.v[0].as_written, "~/.ssh");
    assert_string_equal(p->fs.deny_read.v[1].path, "/etc/shadow");
    assert_false(p->fs.deny_read.v[1].literal);
    assert_int_equal(p->fs.allow_read.n, 1);
    assert_string_equal(p->fs.allow_read.v[0].path, "/home/u/.ssh/known_hosts");
    assert_int_equal(p->fs.allow_write.n, 3);
    assert_string_equal(p->fs.allow_write.v[0].path, "/work/p");
    assert_string_equal(p->fs.allow_write.v[1].path, "/tmp");
    assert_string_equal(p->fs.allow_write.v[1].as_written, "/tmp/**");
    assert_string_equal(p->fs.allow_write.v[2].path, "/data/x*y");
    assert_true(p->fs.allow_write.v[2].literal);
    assert_int_equal(p->fs.deny_write.n, 1);
    assert_string_equal(p->fs.deny_write.v[0].path, "/work/p/.git/hooks");
    assert_true(p->fs.allow_git_config);

    assert_true(p->allow_nested_userns);
    assert_int_equal(p->mandatory_deny_search_depth, 7);
    assert_int_equal(p->git_safe_directories.n, 3);
    assert_string_equal(p->git_safe_directories.v[0], "/home/u/repo");
    assert_string_equal(p->git_safe_directories.v[1], "/work/p");
    assert_string_equal(p->git_safe_directories.v[2], "/srv/git");
    assert_non_null(p->ignore_violations);
    json_t *iv = json_object_get(p->ignore_violations, "npm test");
    assert_true(json_is_array(iv));
    /* ignoreViolations values are substrings, not paths: kept as written. */
    assert_string_equal(json_string_value(json_array_get(iv, 0)), "~/.npm");
    assert_int_equal(p->notes.n, 0);
    assert_clean_lists(p);

    char *a = roundtrip(p);
    free(a);
    cordon_policy_free(p);
}

static void test_to_json_shape(void **state)
{
    (void)state;
    cordon_policy *p = load_ok(ALL_KEYS);
    char *s = cordon_policy_to_json(p);
    assert_non_null(s);
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(v);

    json_t *net = json_object_get(v, "network");
    assert_true(json_is_object(net));
    assert_true(json_is_array(json_object_get(net, "allowedDomains")));
    assert_int_equal(json_array_size(json_object_get(net, "deniedDomains")), 3);
    assert_true(json_is_true(json_object_get(net, "strictAllowlist")));
    assert_true(json_is_true(json_object_get(net, "allowAllUnixSockets")));
    assert_true(json_is_true(json_object_get(net, "allowLocalBinding")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(net, "deniedDomainReasons"), "*")),
                        "no network");

    json_t *fs = json_object_get(v, "filesystem");
    assert_true(json_is_object(fs));
    assert_true(json_is_true(json_object_get(fs, "disabled")));
    assert_true(json_is_true(json_object_get(fs, "allowGitConfig")));
    json_t *dr = json_object_get(fs, "denyRead");
    assert_string_equal(json_string_value(json_array_get(dr, 0)), "/home/u/.ssh");
    /* A non-literal object entry becomes a plain string. */
    assert_string_equal(json_string_value(json_array_get(dr, 1)), "/etc/shadow");
    json_t *aw = json_object_get(fs, "allowWrite");
    assert_int_equal(json_array_size(aw), 3);
    assert_string_equal(json_string_value(json_array_get(aw, 0)), "/work/p");
    assert_string_equal(json_string_value(json_array_get(aw, 1)), "/tmp");
    /* A literal entry stays an object, so that it reloads as a literal. */
    json_t *lit = json_array_get(aw, 2);
    assert_true(json_is_object(lit));
    assert_string_equal(json_string_value(json_object_get(lit, "path")), "/data/x*y");
    assert_true(json_is_true(json_object_get(lit, "literal")));
    assert_int_equal(json_object_size(lit), 2);
    assert_int_equal(json_array_size(json_object_get(fs, "allowRead")), 1);
    assert_int_equal(json_array_size(json_object_get(fs, "denyWrite")), 1);

    assert_true(json_is_true(json_object_get(v, "allowNestedUserNamespaces")));
    assert_int_equal(json_integer_value(json_object_get(v, "mandatoryDenySearchDepth")), 7);
    json_t *sd = json_object_get(json_object_get(v, "git"), "safeDirectories");
    assert_int_equal(json_array_size(sd), 3);
    assert_string_equal(json_string_value(json_array_get(sd, 0)), "/home/u/repo");
    assert_true(json_is_object(json_object_get(v, "ignoreViolations")));
    json_decref(v);
    free(s);
    cordon_policy_free(p);
}

/* Defaults applied: every key is present even when the file had none, and
 * the optional objects are absent. */
static void test_to_json_defaults(void **state)
{
    (void)state;
    char *s = empty_policy_json();
    json_t *v = json_loads(s, 0, NULL);
    assert_non_null(v);
    json_t *net = json_object_get(v, "network");
    json_t *fs = json_object_get(v, "filesystem");
    assert_int_equal(json_array_size(json_object_get(net, "allowedDomains")), 0);
    assert_int_equal(json_array_size(json_object_get(net, "deniedDomains")), 0);
    assert_true(json_is_false(json_object_get(net, "strictAllowlist")));
    assert_true(json_is_false(json_object_get(net, "allowAllUnixSockets")));
    assert_true(json_is_false(json_object_get(net, "allowLocalBinding")));
    assert_null(json_object_get(net, "deniedDomainReasons"));
    assert_true(json_is_false(json_object_get(fs, "disabled")));
    assert_true(json_is_false(json_object_get(fs, "allowGitConfig")));
    static const char *const lists[] = { "denyRead", "allowRead", "allowWrite", "denyWrite" };
    for (size_t i = 0; i < 4; i++) {
        assert_true(json_is_array(json_object_get(fs, lists[i])));
        assert_int_equal(json_array_size(json_object_get(fs, lists[i])), 0);
    }
    assert_true(json_is_false(json_object_get(v, "allowNestedUserNamespaces")));
    assert_int_equal(json_integer_value(json_object_get(v, "mandatoryDenySearchDepth")), 3);
    assert_int_equal(json_array_size(json_object_get(json_object_get(v, "git"),
                                                     "safeDirectories")),
                     0);
    assert_null(json_object_get(v, "ignoreViolations"));
    /* cordon's keys: LD_* dropped by default (DESIGN.md, "environment"). */
    assert_true(json_is_object(json_object_get(v, "limits")));
    json_t *env = json_object_get(v, "environment");
    assert_true(json_is_object(env));
    json_t *drop = json_object_get(env, "drop");
    assert_true(json_array_size(drop) >= 1);
    assert_string_equal(json_string_value(json_array_get(drop, 0)), "LD_*");
    assert_int_equal(json_array_size(json_object_get(env, "keep")), 0);
    json_decref(v);
    free(s);
}

static void test_limits_and_environment(void **state)
{
    (void)state;
    cordon_policy *p = load_ok("{'limits': {'nproc': 10, 'nofile': 1024, 'fsize': 1048576, "
                               "'cpu': 60, 'as': 'unlimited'}, "
                               "'environment': {'drop': ['AWS_*', 'LD_*', 'X?'], "
                               "'keep': ['LD_LIBRARY_PATH', 'LD_LIBRARY_PATH']}}");
    char *s = cordon_policy_to_json(p);
    assert_non_null(s);
    json_t *v = json_loads(s, 0, NULL);
    assert_non_null(v);
    json_t *lim = json_object_get(v, "limits");
    assert_int_equal(json_integer_value(json_object_get(lim, "nproc")), 10);
    assert_int_equal(json_integer_value(json_object_get(lim, "nofile")), 1024);
    assert_int_equal(json_integer_value(json_object_get(lim, "fsize")), 1048576);
    assert_int_equal(json_integer_value(json_object_get(lim, "cpu")), 60);
    assert_string_equal(json_string_value(json_object_get(lim, "as")), "unlimited");
    json_t *env = json_object_get(v, "environment");
    json_t *drop = json_object_get(env, "drop");
    json_t *keep = json_object_get(env, "keep");
    /* LD_* first, then the file's patterns; duplicates once. */
    assert_int_equal(json_array_size(drop), 3);
    assert_string_equal(json_string_value(json_array_get(drop, 0)), "LD_*");
    assert_string_equal(json_string_value(json_array_get(drop, 1)), "AWS_*");
    assert_string_equal(json_string_value(json_array_get(drop, 2)), "X?");
    assert_int_equal(json_array_size(keep), 1);
    assert_string_equal(json_string_value(json_array_get(keep, 0)), "LD_LIBRARY_PATH");
    json_decref(v);
    free(s);
    char *a = roundtrip(p);
    free(a);
    cordon_policy_free(p);
}

struct ignored_key {
    const char *json;
    const char *ptr;
};

static void test_ignored_keys_noted(void **state)
{
    (void)state;
    static const struct ignored_key keys[] = {
        { "'allowPty': true", "/allowPty" },
        { "'allowAppleEvents': true", "/allowAppleEvents" },
        { "'enableWeakerNetworkIsolation': true", "/enableWeakerNetworkIsolation" },
        { "'windows': {'backend': 'srt-win', 'proxyPortRange': [1, 2]}", "/windows" },
        { "'ripgrep': {'command': 'rg', 'args': ['--hidden']}", "/ripgrep" },
        { "'seccomp': {'applyPath': '/x/apply-seccomp'}", "/seccomp" },
        { "'bwrapPath': '/usr/bin/bwrap'", "/bwrapPath" },
        { "'socatPath': '/usr/bin/socat'", "/socatPath" },
        { "'javaAgentJarPath': '/x/agent.jar'", "/javaAgentJarPath" },
        { "'network': {'allowMachLookup': ['com.apple.*']}", "/network/allowMachLookup" },
    };
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    char *empty = empty_policy_json();

    /* One at a time: one note naming the file and the pointer, no effect. */
    for (size_t i = 0; i < n; i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "{%s}", keys[i].json);
        cordon_policy *p = load_ok(doc);
        assert_int_equal(p->notes.n, 1);
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "%s: %s: ignored: ", NAME, keys[i].ptr);
        if (!starts_with(p->notes.v[0], prefix))
            print_error("note \"%s\" does not start with \"%s\"\n", p->notes.v[0], prefix);
        assert_true(starts_with(p->notes.v[0], prefix));
        assert_true(strlen(p->notes.v[0]) > strlen(prefix));
        char *s = cordon_policy_to_json(p);
        assert_string_equal(s, empty);
        free(s);
        cordon_policy_free(p);
    }

    /* All at once (other values too): one note each. */
    cordon_policy *p = load_ok("{'allowPty': false, 'allowAppleEvents': null, "
                               "'enableWeakerNetworkIsolation': 'x', 'windows': [], "
                               "'ripgrep': 1, 'seccomp': {}, 'bwrapPath': '', "
                               "'socatPath': 2.5, 'javaAgentJarPath': {'a': [1]}, "
                               "'network': {'allowMachLookup': []}}");
    assert_int_equal(p->notes.n, n);
    for (size_t i = 0; i < n; i++) {
        char needle[128];
        snprintf(needle, sizeof(needle), ": %s: ignored", keys[i].ptr);
        assert_true(notes_contain(p, needle));
    }
    char *s = cordon_policy_to_json(p);
    assert_string_equal(s, empty);
    free(s);
    cordon_policy_free(p);
    free(empty);
}

/* Unsupported keys are accepted only with the value that changes nothing in
 * cordon. requireHostMatch: cordon checks host consistency by default once
 * TLS interception exists, so true is inert and false (a relaxation) is
 * refused. transparent, once refused unless false, is implemented: on by
 * default, false turns DNS and capture off. */
static void test_unsupported_default_require_host_match(void **state)
{
    (void)state;
    cordon_policy *p = load_ok("{'network': {'requireHostMatch': true}}");
    assert_true(p->net.require_host_match);
    cordon_policy_free(p);
    p = load_ok("{'network': {'requireHostMatch': false}}");
    assert_false(p->net.require_host_match);
    cordon_policy_free(p);
    p = load_ok("{}");
    assert_true(p->net.require_host_match); /* cordon's default, stricter than srt */
    cordon_policy_free(p);
}

static void test_unsupported_default_transparent(void **state)
{
    (void)state;
    cordon_policy *p = load_ok("{'network': {'transparent': false}}");
    assert_false(p->net.transparent);
    cordon_policy_free(p);
    p = load_ok("{'network': {'transparent': true}}");
    assert_true(p->net.transparent);
    cordon_policy_free(p);
    p = load_ok("{}");
    assert_true(p->net.transparent); /* capture is on by default */
    cordon_policy_free(p);
}

/* ---- path entries ------------------------------------------------------------ */

struct path_case {
    const char *entry;  /* JSON of one entry, single quotes */
    const char *want;
    bool literal;
    const char *as_written;
};

static const struct path_case path_cases[] = {
    { "'/a/b'", "/a/b", false, "/a/b" },
    { "'/a/b/'", "/a/b", false, "/a/b/" },
    { "'//etc//passwd'", "/etc/passwd", false, "//etc//passwd" },
    { "'/a/./b/../c'", "/a/c", false, "/a/./b/../c" },
    { "'/..'", "/", false, "/.." },
    { "'/'", "/", false, "/" },
    { "'~'", "/home/u", false, "~" },
    { "'~/'", "/home/u", false, "~/" },
    { "'~/.ssh'", "/home/u/.ssh", false, "~/.ssh" },
    { "'~/.ssh/'", "/home/u/.ssh", false, "~/.ssh/" },
    { "'~/../other'", "/home/other", false, "~/../other" },
    { "'.'", "/work/p", false, "." },
    { "'./'", "/work/p", false, "./" },
    { "'..'", "/work", false, ".." },
    { "'../../../..'", "/", false, "../../../.." },
    { "'src'", "/work/p/src", false, "src" },
    { "'src/../lib/.'", "/work/p/lib", false, "src/../lib/." },
    { "'.ssh'", "/work/p/.ssh", false, ".ssh" },
    { "'./~bob'", "/work/p/~bob", false, "./~bob" },
    { "'x~'", "/work/p/x~", false, "x~" },
    /* A trailing "/ **" is the directory itself. */
    { "'/tmp/**'", "/tmp", false, "/tmp/**" },
    { "'~/.ssh/**'", "/home/u/.ssh", false, "~/.ssh/**" },
    { "'~/**'", "/home/u", false, "~/**" },
    { "'src/**'", "/work/p/src", false, "src/**" },
    { "'/**'", "/", false, "/**" },
    { "'/a/b/../**'", "/a", false, "/a/b/../**" },
    /* Object form. */
    { "{'path': '/a/b'}", "/a/b", false, "/a/b" },
    { "{'path': '/a/b', 'literal': false}", "/a/b", false, "/a/b" },
    { "{'path': '/a/**', 'literal': false}", "/a", false, "/a/**" },
    { "{'path': '/a/*', 'literal': true}", "/a/*", true, "/a/*" },
    { "{'literal': true, 'path': '/a/[x]?'}", "/a/[x]?", true, "/a/[x]?" },
    { "{'path': '/a/**', 'literal': true}", "/a/**", true, "/a/**" },  /* not stripped */
    { "{'path': '~/f*', 'literal': true}", "/home/u/f*", true, "~/f*" },
    { "{'path': '*.log', 'literal': true}", "/work/p/*.log", true, "*.log" },
    { "{'path': '/x/./y/', 'literal': true}", "/x/y", true, "/x/./y/" },
    { "{'path': '~', 'literal': true}", "/home/u", true, "~" },
    /* Other bytes pass through. */
    { "'/\\u00e9t\\u00e9'", "/\xc3\xa9t\xc3\xa9", false, "/\xc3\xa9t\xc3\xa9" },
    { "'/a b/ c'", "/a b/ c", false, "/a b/ c" },
    { "'/proc/self'", "/proc/self", false, "/proc/self" },
};

/* Every case, in each of the four lists at once. */
static void test_path_entries(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        char doc[1024];
        snprintf(doc, sizeof(doc),
                 "{'filesystem': {'denyRead': [%s], 'allowRead': [%s], 'allowWrite': [%s], "
                 "'denyWrite': [%s]}}",
                 c->entry, c->entry, c->entry, c->entry);
        cordon_policy *p = load_ok(doc);
        const struct cordon_pathlist *ls[] = { &p->fs.deny_read, &p->fs.allow_read,
                                               &p->fs.allow_write, &p->fs.deny_write };
        for (size_t k = 0; k < 4; k++) {
            assert_int_equal(ls[k]->n, 1);
            if (strcmp(ls[k]->v[0].path, c->want) != 0)
                print_error("entry %s -> \"%s\", want \"%s\"\n", c->entry, ls[k]->v[0].path,
                            c->want);
            assert_string_equal(ls[k]->v[0].path, c->want);
            assert_int_equal(ls[k]->v[0].literal, c->literal);
            assert_string_equal(ls[k]->v[0].as_written, c->as_written);
        }
        assert_clean_lists(p);
        char *a = roundtrip(p);
        free(a);
        cordon_policy_free(p);
    }
}

static void test_path_order_and_duplicates_kept(void **state)
{
    (void)state;
    cordon_policy *p = load_ok("{'filesystem': {'denyRead': ['/c', '/a', '/b', '/a/', '~']}}");
    assert_int_equal(p->fs.deny_read.n, 5);
    assert_string_equal(p->fs.deny_read.v[0].path, "/c");
    assert_string_equal(p->fs.deny_read.v[1].path, "/a");
    assert_string_equal(p->fs.deny_read.v[2].path, "/b");
    assert_string_equal(p->fs.deny_read.v[3].path, "/a");
    assert_string_equal(p->fs.deny_read.v[4].path, "/home/u");
    char *a = roundtrip(p);
    free(a);
    cordon_policy_free(p);
}

/* Many entries: the lists grow past their first allocation. */
static void test_path_many_entries(void **state)
{
    (void)state;
    enum { N = 300 };
    size_t cap = 64 + N * 16;
    char *doc = malloc(cap);
    assert_non_null(doc);
    size_t n = (size_t)snprintf(doc, cap, "{\"filesystem\": {\"denyRead\": [");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(doc + n, cap - n, "%s\"/d/%d\"", i ? ", " : "", i);
    snprintf(doc + n, cap - n, "]}}");
    cordon_policy *p = load_ok_opts(doc, NAME, &OPTS);
    assert_int_equal(p->fs.deny_read.n, N);
    assert_string_equal(p->fs.deny_read.v[N - 1].path, "/d/299");
    char *a = roundtrip(p);
    free(a);
    cordon_policy_free(p);
    free(doc);
}

/* `~` uses opts->home, relative paths opts->cwd, both normalised. */
static void test_opts_home_and_cwd(void **state)
{
    (void)state;
    const struct cordon_load_opts o = { .home = "/h//x/", .cwd = "/c/./d/" };
    char *json = jq("{'filesystem': {'denyRead': ['~/a', 'b', '~']}, "
                    "'git': {'safeDirectories': ['~/r', 'r']}}");
    cordon_policy *p = load_ok_opts(json, NAME, &o);
    assert_string_equal(p->home, "/h/x");
    assert_string_equal(p->cwd, "/c/d");
    assert_string_equal(p->fs.deny_read.v[0].path, "/h/x/a");
    assert_string_equal(p->fs.deny_read.v[1].path, "/c/d/b");
    assert_string_equal(p->fs.deny_read.v[2].path, "/h/x");
    assert_string_equal(p->git_safe_directories.v[0], "/h/x/r");
    assert_string_equal(p->git_safe_directories.v[1], "/c/d/r");
    char *a = roundtrip_opts(p, &o);
    free(a);
    cordon_policy_free(p);

    /* The same text under other opts gives other paths. */
    p = load_ok_opts(json, NAME, &OPTS);
    assert_string_equal(p->fs.deny_read.v[0].path, "/home/u/a");
    assert_string_equal(p->fs.deny_read.v[1].path, "/work/p/b");
    cordon_policy_free(p);
    free(json);
}

/* allowUnixSockets paths expand like filesystem paths; hostPorts and
 * publishPorts keep their order; all three print (and load back) only when
 * set. */
static void test_local_services_keys(void **state)
{
    (void)state;
    const struct cordon_load_opts o = { .home = "/h", .cwd = "/c" };
    char *json = jq("{'network': {'allowUnixSockets': ['~/.ssh/agent.sock', 'run/', "
                    "'/run/user/1000/gnupg/../gnupg/S.gpg-agent'], "
                    "'hostPorts': [11434, 5432], 'publishPorts': [3000]}}");
    cordon_policy *p = load_ok_opts(json, NAME, &o);
    free(json);
    assert_int_equal(p->net.unix_sockets.n, 3);
    assert_string_equal(p->net.unix_sockets.v[0], "/h/.ssh/agent.sock");
    assert_string_equal(p->net.unix_sockets.v[1], "/c/run");
    assert_string_equal(p->net.unix_sockets.v[2], "/run/user/1000/gnupg/S.gpg-agent");
    assert_int_equal(p->net.nhost_ports, 2);
    assert_int_equal(p->net.host_ports[0], 11434);
    assert_int_equal(p->net.host_ports[1], 5432);
    assert_int_equal(p->net.npublish_ports, 1);
    assert_int_equal(p->net.publish_ports[0], 3000);
    char *out = cordon_policy_to_json(p);
    json_t *j = json_loads(out, 0, NULL);
    json_t *net = json_object_get(j, "network");
    assert_string_equal(json_string_value(json_array_get(json_object_get(net,
                        "allowUnixSockets"), 1)), "/c/run");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(net, "hostPorts"), 0)),
                     11434);
    assert_int_equal(json_array_size(json_object_get(net, "publishPorts")), 1);
    json_decref(j);
    free(out);
    char *a = roundtrip_opts(p, &o);
    free(a);
    cordon_policy_free(p);

    p = load_ok("{}");
    out = cordon_policy_to_json(p);
    j = json_loads(out, 0, NULL);
    net = json_object_get(j, "network");
    assert_null(json_object_get(net, "allowUnixSockets"));
    assert_null(json_object_get(net, "hostPorts"));
    assert_null(json_object_get(net, "publishPorts"));
    json_decref(j);
    free(out);
    cordon_policy_free(p);
}

/* NULL fields: $HOME (the passwd entry when unset) and the real cwd. */
static void test_opts_null_fields(void **state)
{
    (void)state;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));

    setenv("HOME", "/env/home", 1);
    char *json = jq("{'filesystem': {'denyRead': ['~/k', 'rel']}}");
    cordon_policy *p = load_ok_opts(json, NAME, NULL);
    assert_string_equal(p->fs.deny_read.v[0].path, "/env/home/k");
    char want[PATH_MAX + 8];
    snprintf(want, sizeof(want), "%s/rel", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(p->fs.deny_read.v[1].path, want);
    cordon_policy_free(p);

    const struct cordon_load_opts only_cwd = { .home = NULL, .cwd = "/w" };
    unsetenv("HOME");
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_dir && pw->pw_dir[0] == '/') {
        p = load_ok_opts(json, NAME, &only_cwd);
        char *home = strdup(pw->pw_dir);
        assert_non_null(home);
        cordon_path_normalize(home);
        assert_string_equal(p->home, home);
        free(home);
        cordon_policy_free(p);
    }

    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_home);
    free(json);
}

/* opts->cwd must be absolute; a relative or empty one must be refused (or
 * resolved), never corrupt memory. */
static void test_opts_relative_cwd(void **state)
{
    (void)state;
    static const char *const bad[] = { "", "rel", "work/p" };
    for (size_t i = 0; i < 3; i++) {
        const struct cordon_load_opts o = { .home = "/home/u", .cwd = bad[i] };
        cordon_policy *p = NULL;
        struct cordon_error err = { 0 };
        int r = cordon_policy_load_string("{}", NAME, &o, &p, &err);
        assert_int_equal(r, -EINVAL);
        assert_null(p);
        assert_int_equal(err.code, EINVAL);
        assert_non_null(strstr(err.msg, "absolute"));
    }
}

/* ---- messages ------------------------------------------------------------------ */

static void test_name_in_messages(void **state)
{
    (void)state;
    static const char *const names[] = { "/etc/cordon/my settings.json", "x", "a: b" };
    for (size_t i = 0; i < 3; i++) {
        cordon_policy *p = NULL;
        struct cordon_error err = { 0 };
        assert_true(cordon_policy_load_string("{\"zz\": 1}", names[i], &OPTS, &p, &err) < 0);
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "%s: /zz: ", names[i]);
        assert_true(starts_with(err.msg, prefix));
        assert_true(cordon_policy_load_string("", names[i], &OPTS, &p, &err) < 0);
        assert_true(starts_with(err.msg, names[i]));
        assert_non_null(strstr(err.msg, "empty"));
        assert_true(cordon_policy_load_string("{", names[i], &OPTS, &p, &err) < 0);
        assert_true(starts_with(err.msg, names[i]));
        assert_null(p);
    }
    /* NULL name: a placeholder, never "(null)". */
    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    assert_int_equal(cordon_policy_load_string("{\"zz\": 1}", NULL, &OPTS, &p, &err), -EINVAL);
    assert_true(starts_with(err.msg, "<settings>: /zz: "));
    assert_null(strstr(err.msg, "(null)"));
    p = load_ok_opts("{}", NULL, &OPTS);
    const char *src = NULL;
    cordon_policy_source(p, &src);
    assert_string_equal(src, "<settings>");
    cordon_policy_free(p);
}

/* A long key: the pointer may be cut, the message stays terminated and
 * starts with the name. */
static void test_long_key_message(void **state)
{
    (void)state;
    enum { K = 5000 };
    char *doc = malloc(K + 16);
    assert_non_null(doc);
    memcpy(doc, "{\"", 2);
    memset(doc + 2, '/', K);
    memcpy(doc + 2 + K, "\": 1}", 6);
    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    assert_int_equal(cordon_policy_load_string(doc, NAME, &OPTS, &p, &err), -EINVAL);
    assert_true(msg_is_terminated(&err));
    assert_true(starts_with(err.msg, NAME ": /~1~1~1"));
    assert_null(p);
    free(doc);
}

/* cordon.h: msg is "one line, no trailing newline". */
static void test_message_is_one_line(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{'a\\nb': 1}",
        "{'filesystem': {'denyRead': ['/a\\n*']}}",
        "{'filesystem': {'denyRead': ['~bob\\n']}}",
    };
    /* Without a newline in the input, the messages are one line. */
    expect_fail("{'network': {'allowedDomains': ['a..com']}}", EINVAL,
                "/network/allowedDomains/0", NULL);
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char *json = jq(docs[i]);
        cordon_policy *p = NULL;
        struct cordon_error err = { 0 };
        assert_true(cordon_policy_load_string(json, NAME, &OPTS, &p, &err) < 0);
        free(json);
        if (strchr(err.msg, '\n')) {
            /* BUG: keys and path strings are copied into the message as
             * they are (settings.c fail() and ptr_push_key(); paths.c
             * cordon_path_expand), so a "\n" (or an ESC sequence) in the
             * settings ends up raw in the "one line" message the CLI prints. */
            KNOWN_BUG("a key or path containing \\n yields a multi-line error message, e.g. "
                      "{\"a\\nb\": 1}");
            assert_null(strchr(err.msg, '\n'));
        }
    }
}

/* ---- cordon_policy_add_path ------------------------------------------------- */

static void test_add_path(void **state)
{
    (void)state;
    cordon_policy *p = load_ok("{'filesystem': {'denyRead': ['/first']}}");
    struct cordon_error err;
    memset(&err, 0x5a, sizeof(err));
    struct cordon_error untouched = err;

    assert_int_equal(cordon_policy_add_path(p, CORDON_DENY_READ, "~/x", &err), 0);
    assert_int_equal(cordon_policy_add_path(p, CORDON_ALLOW_READ, "rel/", &err), 0);
    assert_int_equal(cordon_policy_add_path(p, CORDON_ALLOW_WRITE, "/tmp/**", &err), 0);
    assert_int_equal(cordon_policy_add_path(p, CORDON_DENY_WRITE, "/a/./b/..", &err), 0);
    assert_int_equal(cordon_policy_add_path(p, CORDON_ALLOW_WRITE, "~", &err), 0);
    assert_memory_equal(&err, &untouched, sizeof(err));

    assert_int_equal(p->fs.deny_read.n, 2);
    assert_string_equal(p->fs.deny_read.v[0].path, "/first");
    assert_string_equal(p->fs.deny_read.v[1].path, "/home/u/x");
    assert_string_equal(p->fs.deny_read.v[1].as_written, "~/x");
    assert_false(p->fs.deny_read.v[1].literal);
    assert_int_equal(p->fs.allow_read.n, 1);
    assert_string_equal(p->fs.allow_read.v[0].path, "/work/p/rel");
    assert_int_equal(p->fs.allow_write.n, 2);
    assert_string_equal(p->fs.allow_write.v[0].path, "/tmp");
    assert_string_equal(p->fs.allow_write.v[1].path, "/home/u");
    assert_int_equal(p->fs.deny_write.n, 1);
    assert_string_equal(p->fs.deny_write.v[0].path, "/a");
    assert_clean_lists(p);

    char *a = roundtrip(p);
    assert_non_null(strstr(a, "\"/home/u/x\""));
    free(a);
    cordon_policy_free(p);
}

struct add_err_case {
    enum cordon_path_list list;
    const char *path;
    int code;
    const char *prefix;
    const char *substr;
};

static void test_add_path_errors(void **state)
{
    (void)state;
    static const struct add_err_case cases[] = {
        { CORDON_DENY_READ, "", EINVAL, "--deny-read: ", "empty path" },
        { CORDON_ALLOW_WRITE, "/*", EINVAL, "--allow-write: ", "literal directory" },
        { CORDON_DENY_WRITE, "/a/*/", EINVAL, "--deny-write: ", "\"/a/*/\"" },
        { CORDON_ALLOW_READ, "~bob", EINVAL, "--allow-read: ", "~user" },
        { CORDON_DENY_WRITE, "/a/\xff", EINVAL, "--deny-write: ", "UTF-8" },
        { (enum cordon_path_list)42, "/a", EINVAL, "", "unknown path list" },
    };
    cordon_policy *p = load_ok("{}");
    char *before = cordon_policy_to_json(p);
    assert_non_null(before);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct add_err_case *c = &cases[i];
        struct cordon_error err = { 0 };
        int r = cordon_policy_add_path(p, c->list, c->path, &err);
        if (r != -c->code)
            print_error("add_path(%d, \"%s\") = %d (%s), want -%d\n", c->list, c->path, r,
                        err.msg, c->code);
        assert_int_equal(r, -c->code);
        assert_int_equal(err.code, c->code);
        assert_true(starts_with(err.msg, c->prefix));
        assert_non_null(strstr(err.msg, c->substr));
    }
    /* A refused path leaves the policy as it was. */
    char *after = cordon_policy_to_json(p);
    assert_non_null(after);
    assert_string_equal(before, after);
    free(before);
    free(after);
    cordon_policy_free(p);
}

/* ---- the embedded default ------------------------------------------------------ */

/* README, "Default policy". */
static const char *const DEFAULT_DENY_READ[] = {
    "~/.ssh", "~/.gnupg", "~/.aws", "~/.azure", "~/.config/gcloud", "~/.kube",
    "~/.docker/config.json", "~/.netrc", "~/.git-credentials", "~/.config/gh", "~/.npmrc",
    "~/.pypirc", "~/.cargo/credentials.toml", "~/.terraform.d", "~/.password-store",
    "~/.local/share/keyrings", "~/.mozilla", "~/.thunderbird", "~/.config/google-chrome",
    "~/.config/chromium", "~/.config/BraveSoftware", "~/.config/microsoft-edge",
    "~/.config/vivaldi", "~/.config/opera", "~/snap/firefox", "~/snap/chromium",
    "~/.var/app/org.mozilla.firefox", "~/.var/app/com.google.Chrome",
    "~/.var/app/org.chromium.Chromium",
};

static void test_default_policy(void **state)
{
    (void)state;
    cordon_policy *p = NULL;
    struct cordon_error err;
    memset(&err, 0x5a, sizeof(err));
    struct cordon_error untouched = err;
    assert_int_equal(cordon_policy_load_default(&OPTS, &p, &err), 0);
    assert_memory_equal(&err, &untouched, sizeof(err));
    const char *src = "not null";
    assert_int_equal(cordon_policy_source(p, &src), CORDON_SOURCE_EMBEDDED);
    assert_null(src);

    const size_t n = sizeof(DEFAULT_DENY_READ) / sizeof(DEFAULT_DENY_READ[0]);
    assert_int_equal(p->fs.deny_read.n, n);
    for (size_t i = 0; i < n; i++) {
        char want[256];
        snprintf(want, sizeof(want), "/home/u%s", DEFAULT_DENY_READ[i] + 1);
        bool found = false;
        for (size_t k = 0; k < p->fs.deny_read.n; k++)
            if (strcmp(p->fs.deny_read.v[k].path, want) == 0)
                found = !p->fs.deny_read.v[k].literal;
        if (!found)
            print_error("default denyRead lacks %s\n", want);
        assert_true(found);
    }
    assert_int_equal(p->fs.allow_write.n, 1);
    assert_string_equal(p->fs.allow_write.v[0].path, "/work/p");
    assert_int_equal(p->fs.allow_read.n, 0);
    assert_int_equal(p->fs.deny_write.n, 0);
    assert_false(p->fs.disabled);
    assert_int_equal(p->net.allowed_domains.n, 0);  /* no network */
    assert_false(p->allow_nested_userns);
    assert_int_equal(p->notes.n, 0);
    assert_clean_lists(p);
    char *a = roundtrip(p);
    free(a);
    cordon_policy_free(p);

    /* Expanded against other opts, the same entries move with them. */
    const struct cordon_load_opts o = { .home = "/root", .cwd = "/" };
    assert_int_equal(cordon_policy_load_default(&o, &p, &err), 0);
    assert_string_equal(p->fs.allow_write.v[0].path, "/");
    assert_string_equal(p->fs.deny_read.v[0].path, "/root/.ssh");
    cordon_policy_free(p);

    /* The embedded text is an ordinary settings document. */
    p = load_ok_opts(cordon_default_settings, NAME, &OPTS);
    assert_int_equal(p->fs.deny_read.n, n);
    cordon_policy_free(p);
}

/* ---- files -------------------------------------------------------------------- */

static char tmpdir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int tmp_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/cordon-test-settings.XXXXXX",
             base && base[0] == '/' ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmp_teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return 0;
}

/* Remove everything inside tmpdir, keep tmpdir. */
static int tmp_clean(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return mkdir(tmpdir, 0700);
}

static const char *tpath(char *buf, const char *rel)
{
    snprintf(buf, PATH_MAX, "%s/%s", tmpdir, rel);
    return buf;
}

static void mkdirs(const char *rel)
{
    char path[PATH_MAX];
    tpath(path, rel);
    for (char *s = path + strlen(tmpdir) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(path, 0755);
            *s = '/';
        }
    }
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static void write_file_len(const char *rel, const char *data, size_t len)
{
    char path[PATH_MAX];
    int fd = open(tpath(path, rel), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, data + off, len - off);
        assert_true(k > 0);
        off += (size_t)k;
    }
    close(fd);
}

static void write_file(const char *rel, const char *data)
{
    write_file_len(rel, data, strlen(data));
}

/* Load tmpdir/rel; return the error (0 on success) and keep the policy. */
static int load_file_rel(const char *rel, cordon_policy **out, struct cordon_error *err)
{
    char path[PATH_MAX];
    *out = NULL;
    memset(err, 0, sizeof(*err));
    return cordon_policy_load_file(tpath(path, rel), &OPTS, out, err);
}

static void test_file_valid(void **state)
{
    (void)state;
    write_file("s.json", "{\"filesystem\": {\"allowWrite\": [\".\", \"~/out\"]}}\n");
    cordon_policy *p;
    struct cordon_error err;
    assert_int_equal(load_file_rel("s.json", &p, &err), 0);
    char path[PATH_MAX];
    const char *src = NULL;
    assert_int_equal(cordon_policy_source(p, &src), CORDON_SOURCE_FILE);
    assert_string_equal(src, tpath(path, "s.json"));
    assert_int_equal(p->fs.allow_write.n, 2);
    assert_string_equal(p->fs.allow_write.v[1].path, "/home/u/out");
    cordon_policy_free(p);
}

static void test_file_errors(void **state)
{
    (void)state;
    char path[PATH_MAX];
    cordon_policy *p;
    struct cordon_error err;

    /* Missing. */
    assert_int_equal(load_file_rel("missing.json", &p, &err), -ENOENT);
    assert_null(p);
    assert_true(starts_with(err.msg, tpath(path, "missing.json")));
    assert_non_null(strstr(err.msg, "No such file"));

    /* A directory. */
    mkdirs("dir.json");
    assert_int_equal(load_file_rel("dir.json", &p, &err), -EISDIR);
    assert_true(starts_with(err.msg, tpath(path, "dir.json")));

    /* Empty and whitespace-only. */
    write_file("empty.json", "");
    assert_int_equal(load_file_rel("empty.json", &p, &err), -EINVAL);
    assert_true(starts_with(err.msg, tpath(path, "empty.json")));
    assert_non_null(strstr(err.msg, "empty"));
    write_file("blank.json", "\n  \t\r\n");
    assert_int_equal(load_file_rel("blank.json", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "empty"));

    /* Invalid JSON: file:line:column. */
    write_file("bad.json", "{\n  \"network\": }\n");
    assert_int_equal(load_file_rel("bad.json", &p, &err), -EINVAL);
    char prefix[2 * PATH_MAX];
    snprintf(prefix, sizeof(prefix), "%s:2:", tpath(path, "bad.json"));
    assert_true(starts_with(err.msg, prefix));
    assert_non_null(strstr(err.msg, "invalid JSON"));

    /* Valid JSON, invalid settings: file: pointer: problem. */
    write_file("ptr.json", "{\"filesystem\": {\"allowWrite\": [\".\", 1]}}");
    assert_int_equal(load_file_rel("ptr.json", &p, &err), -EINVAL);
    snprintf(prefix, sizeof(prefix), "%s: /filesystem/allowWrite/1: ", tpath(path, "ptr.json"));
    assert_true(starts_with(err.msg, prefix));

    /* A NUL byte in the file hides nothing after it. */
    static const char nul[] = "{}\0{\"filesystem\": {\"disabled\": true}}";
    write_file_len("nul.json", nul, sizeof(nul) - 1);
    assert_int_equal(load_file_rel("nul.json", &p, &err), -EINVAL);
    assert_null(p);
    write_file_len("nul2.json", "\0{}", 3);
    assert_int_equal(load_file_rel("nul2.json", &p, &err), -EINVAL);

    /* Unreadable (root reads anything: skipped as root). */
    if (geteuid() != 0) {
        write_file("noperm.json", "{}");
        chmod(tpath(path, "noperm.json"), 0);
        assert_int_equal(load_file_rel("noperm.json", &p, &err), -EACCES);
        assert_true(starts_with(err.msg, path));
    }
}

/* Settings files are capped at 16 MiB (SETTINGS_MAX_BYTES). */
static void test_file_size_cap(void **state)
{
    (void)state;
    const size_t max = 16u << 20;
    char *buf = malloc(max + 1);
    assert_non_null(buf);
    memset(buf, ' ', max + 1);
    buf[0] = '{';
    buf[1] = '}';
    cordon_policy *p;
    struct cordon_error err;
    char path[PATH_MAX];

    write_file_len("big.json", buf, max - 1);
    assert_int_equal(load_file_rel("big.json", &p, &err), 0);
    cordon_policy_free(p);

    write_file_len("big.json", buf, max + 1);
    assert_int_equal(load_file_rel("big.json", &p, &err), -EFBIG);
    assert_null(p);
    assert_true(starts_with(err.msg, tpath(path, "big.json")));
    assert_non_null(strstr(err.msg, "larger than"));

    write_file_len("big.json", buf, max);
    free(buf);
    int r = load_file_rel("big.json", &p, &err);
    if (r != 0) {
        /* BUG: read_file() (settings.c) refuses when n == cap == 16 MiB before
         * it reads EOF, so a file of exactly SETTINGS_MAX_BYTES is refused with
         * "larger than 16777216 bytes" although it is not larger. */
        KNOWN_BUG("a settings file of exactly 16777216 bytes is refused with EFBIG "
                  "\"larger than 16777216 bytes\"");
    }
    assert_int_equal(r, 0);
    cordon_policy_free(p);
}

/* ---- cordon_policy_load_auto ------------------------------------------------ */

static char *saved_home, *saved_xdg;

static int auto_setup(void **state)
{
    saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    saved_xdg = getenv("XDG_CONFIG_HOME") ? strdup(getenv("XDG_CONFIG_HOME")) : NULL;
    return tmp_setup(state);
}

static int auto_teardown(void **state)
{
    if (saved_home)
        setenv("HOME", saved_home, 1);
    else
        unsetenv("HOME");
    if (saved_xdg)
        setenv("XDG_CONFIG_HOME", saved_xdg, 1);
    else
        unsetenv("XDG_CONFIG_HOME");
    free(saved_home);
    free(saved_xdg);
    return tmp_teardown(state);
}

/* Each test starts with an empty tree: tmp/home, tmp/xdg, HOME and
 * XDG_CONFIG_HOME pointing there. */
static int auto_each(void **state)
{
    if (tmp_clean(state) < 0)
        return -1;
    char path[PATH_MAX];
    mkdirs("home");
    mkdirs("xdg");
    setenv("HOME", tpath(path, "home"), 1);
    setenv("XDG_CONFIG_HOME", tpath(path, "xdg"), 1);
    return 0;
}

/* Candidates, told apart by their mandatoryDenySearchDepth. */
#define XDG_FILE "xdg/cordon/settings.json"
#define SRT_FILE "home/.srt-settings.json"
#define DOTCONFIG_FILE "home/.config/cordon/settings.json"
#define EXPLICIT_FILE "explicit.json"

static void put(const char *rel, int depth)
{
    char doc[64];
    snprintf(doc, sizeof(doc), "{\"mandatoryDenySearchDepth\": %d}", depth);
    if (strchr(rel, '/')) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", rel);
        *strrchr(dir, '/') = '\0';
        mkdirs(dir);
    }
    write_file(rel, doc);
}

static const struct cordon_load_opts AUTO_OPTS = { .home = NULL, .cwd = "/work/p" };

/* Load with load_auto; expect success from `rel` (NULL: embedded) and depth. */
static void expect_auto(const char *explicit_rel, const char *rel, int depth)
{
    char path[PATH_MAX], ex[PATH_MAX];
    cordon_policy *p = NULL;
    struct cordon_error err;
    memset(&err, 0x5a, sizeof(err));
    struct cordon_error untouched = err;
    int r = cordon_policy_load_auto(explicit_rel ? tpath(ex, explicit_rel) : NULL, &AUTO_OPTS,
                                    &p, &err);
    if (r != 0)
        print_error("load_auto failed: %s\n", err.msg);
    assert_int_equal(r, 0);
    assert_memory_equal(&err, &untouched, sizeof(err));
    const char *src = NULL;
    if (rel) {
        assert_int_equal(cordon_policy_source(p, &src), CORDON_SOURCE_FILE);
        assert_non_null(src);
        if (strcmp(src, tpath(path, rel)) != 0)
            print_error("load_auto loaded %s, want %s\n", src, path);
        assert_string_equal(src, tpath(path, rel));
    } else {
        assert_int_equal(cordon_policy_source(p, &src), CORDON_SOURCE_EMBEDDED);
        assert_null(src);
    }
    assert_int_equal(p->mandatory_deny_search_depth, depth);
    cordon_policy_free(p);
}

/* Load with load_auto; expect an error that names `rel`. */
static void expect_auto_err(const char *explicit_rel, const char *rel, int code,
                            const char *substr)
{
    char path[PATH_MAX], ex[PATH_MAX];
    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    int r = cordon_policy_load_auto(explicit_rel ? tpath(ex, explicit_rel) : NULL, &AUTO_OPTS,
                                    &p, &err);
    if (r >= 0) {
        print_error("load_auto should fail on %s\n", rel);
        cordon_policy_free(p);
        fail();
    }
    assert_null(p);
    assert_int_equal(r, -code);
    assert_int_equal(err.code, code);
    if (!starts_with(err.msg, tpath(path, rel)))
        print_error("message \"%s\" does not name %s\n", err.msg, path);
    assert_true(starts_with(err.msg, path));
    if (substr)
        assert_non_null(strstr(err.msg, substr));
}

static void test_auto_embedded_when_nothing_exists(void **state)
{
    (void)state;
    expect_auto(NULL, NULL, 3);
    /* The embedded default is expanded against $HOME. */
    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    assert_int_equal(cordon_policy_load_auto(NULL, &AUTO_OPTS, &p, &err), 0);
    char want[PATH_MAX];
    assert_string_equal(p->fs.deny_read.v[0].path, tpath(want, "home/.ssh"));
    assert_string_equal(p->fs.allow_write.v[0].path, "/work/p");
    cordon_policy_free(p);
}

static void test_auto_srt_file(void **state)
{
    (void)state;
    put(SRT_FILE, 5);
    expect_auto(NULL, SRT_FILE, 5);
}

static void test_auto_xdg_beats_srt(void **state)
{
    (void)state;
    put(SRT_FILE, 5);
    put(XDG_FILE, 4);
    expect_auto(NULL, XDG_FILE, 4);
}

static void test_auto_explicit_beats_all(void **state)
{
    (void)state;
    put(SRT_FILE, 5);
    put(XDG_FILE, 4);
    put(DOTCONFIG_FILE, 7);
    put(EXPLICIT_FILE, 6);
    expect_auto(EXPLICIT_FILE, EXPLICIT_FILE, 6);
}

static void test_auto_explicit_missing_is_error(void **state)
{
    (void)state;
    put(SRT_FILE, 5);
    put(XDG_FILE, 4);
    expect_auto_err(EXPLICIT_FILE, EXPLICIT_FILE, ENOENT, "cannot open");
    mkdirs("explicit-dir");
    expect_auto_err("explicit-dir", "explicit-dir", EISDIR, NULL);
}

static void test_auto_empty_xdg_is_error(void **state)
{
    (void)state;
    put(SRT_FILE, 5);
    mkdirs("xdg/cordon");
    write_file(XDG_FILE, "");
    expect_auto_err(NULL, XDG_FILE, EINVAL, "empty");
    write_file(XDG_FILE, " \n");
    expect_auto_err(NULL, XDG_FILE, EINVAL, "empty");
}

static void test_auto_empty_srt_is_error(void **state)
{
    (void)state;
    write_file(SRT_FILE, "");
    expect_auto_err(NULL, SRT_FILE, EINVAL, "empty");
}

static void test_auto_invalid_candidate_is_error(void **state)
{
    (void)state;
    put(SRT_FILE, 5);
    mkdirs("xdg/cordon");
    write_file(XDG_FILE, "{");
    expect_auto_err(NULL, XDG_FILE, EINVAL, "invalid JSON");
    write_file(XDG_FILE, "{\"filesystem\": {\"denyread\": []}}");
    expect_auto_err(NULL, XDG_FILE, EINVAL, ": /filesystem/denyread: ");
    char path[PATH_MAX];
    rm_rf(tpath(path, XDG_FILE));
    mkdirs(XDG_FILE);
    expect_auto_err(NULL, XDG_FILE, EISDIR, NULL);
}

/* A candidate that is a dangling symlink exists: an error, not a fallback. */
static void test_auto_dangling_symlink_is_error(void **state)
{
    (void)state;
    char path[PATH_MAX], target[PATH_MAX];
    put(SRT_FILE, 5);
    mkdirs("xdg/cordon");
    assert_int_equal(symlink(tpath(target, "nowhere.json"), tpath(path, XDG_FILE)), 0);
    expect_auto_err(NULL, XDG_FILE, ENOENT, NULL);
}

static void test_auto_xdg_unset_uses_dot_config(void **state)
{
    (void)state;
    unsetenv("XDG_CONFIG_HOME");
    put(SRT_FILE, 5);
    expect_auto(NULL, SRT_FILE, 5);
    put(DOTCONFIG_FILE, 7);
    expect_auto(NULL, DOTCONFIG_FILE, 7);
    /* Empty or relative XDG_CONFIG_HOME is ignored (XDG base directory spec). */
    setenv("XDG_CONFIG_HOME", "", 1);
    expect_auto(NULL, DOTCONFIG_FILE, 7);
    setenv("XDG_CONFIG_HOME", "xdg", 1);
    put(XDG_FILE, 4);
    expect_auto(NULL, DOTCONFIG_FILE, 7);
}

/* When XDG_CONFIG_HOME is set, ~/.config/cordon is not a candidate. */
static void test_auto_xdg_replaces_dot_config(void **state)
{
    (void)state;
    put(DOTCONFIG_FILE, 7);
    expect_auto(NULL, NULL, 3);
    put(SRT_FILE, 5);
    expect_auto(NULL, SRT_FILE, 5);
}

/* opts->home, when given, is where ~/.srt-settings.json is looked for. */
static void test_auto_opts_home(void **state)
{
    (void)state;
    char home[PATH_MAX], path[PATH_MAX];
    put(SRT_FILE, 5);
    put("other/.srt-settings.json", 8);
    const struct cordon_load_opts o = { .home = tpath(home, "other"), .cwd = "/work/p" };
    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    assert_int_equal(cordon_policy_load_auto(NULL, &o, &p, &err), 0);
    const char *src = NULL;
    cordon_policy_source(p, &src);
    assert_string_equal(src, tpath(path, "other/.srt-settings.json"));
    assert_int_equal(p->mandatory_deny_search_depth, 8);
    cordon_policy_free(p);
}

/* A candidate name longer than PATH_MAX must not be cut into another name:
 * here $XDG_CONFIG_HOME is padded with "/." so that
 * "$XDG_CONFIG_HOME/cordon/settings.json" is PATH_MAX + 1 characters long,
 * and a file sits at the name cut two characters short ("settings.js"). */
static void test_auto_long_xdg_not_truncated(void **state)
{
    (void)state;
    char path[PATH_MAX];
    mkdirs("xdg/cordon");
    write_file("xdg/cordon/settings.js", "{\"mandatoryDenySearchDepth\": 9}");
    const char *suffix = "/cordon/settings.json";
    size_t base = strlen(tpath(path, "xdg"));
    /* Pad to exactly PATH_MAX + 1 - strlen(suffix) characters. */
    size_t want = PATH_MAX + 1 - strlen(suffix);
    char *xdg = malloc(want + 2);
    assert_non_null(xdg);
    memcpy(xdg, path, base);
    size_t n = base;
    if ((want - n) % 2)
        xdg[n++] = '/';  /* "xdg/" then "./" pairs keep it a valid name */
    while (n < want) {
        xdg[n++] = '/';
        xdg[n++] = '.';
    }
    xdg[n] = '\0';
    assert_int_equal(strlen(xdg) + strlen(suffix), PATH_MAX + 1);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    free(xdg);

    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    int r = cordon_policy_load_auto(NULL, &AUTO_OPTS, &p, &err);
    const char *src = NULL;
    if (r == 0)
        cordon_policy_source(p, &src);
    bool loaded_cut_name = r == 0 && src && strlen(src) >= 3 &&
                           strcmp(src + strlen(src) - 3, ".js") == 0;
    cordon_policy_free(p);
    if (loaded_cut_name) {
        /* BUG: cordon_policy_load_auto (settings.c) builds candidates with
         * snprintf(cand[i], PATH_MAX, ...) and does not check truncation, so
         * an over-long $XDG_CONFIG_HOME (or $HOME) loads whatever file has
         * the truncated name. */
        KNOWN_BUG("load_auto with a $XDG_CONFIG_HOME that makes the candidate longer than "
                  "PATH_MAX loads the file at the truncated name (.../cordon/settings.js)");
    }
    assert_false(loaded_cut_name);
}

/* ---- main --------------------------------------------------------------------- */

#define N_ERR (sizeof(err_cases) / sizeof(err_cases[0]))
#define N_OK (sizeof(ok_cases) / sizeof(ok_cases[0]))

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_empty_object_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_to_json_shape),
        cmocka_unit_test(test_to_json_defaults),
        cmocka_unit_test(test_limits_and_environment),
        cmocka_unit_test(test_ignored_keys_noted),
        cmocka_unit_test(test_unsupported_default_require_host_match),
        cmocka_unit_test(test_unsupported_default_transparent),
        cmocka_unit_test(test_path_entries),
        cmocka_unit_test(test_path_order_and_duplicates_kept),
        cmocka_unit_test(test_path_many_entries),
        cmocka_unit_test(test_opts_home_and_cwd),
        cmocka_unit_test(test_opts_null_fields),
        cmocka_unit_test(test_local_services_keys),
        cmocka_unit_test(test_opts_relative_cwd),
        cmocka_unit_test(test_name_in_messages),
        cmocka_unit_test(test_long_key_message),
        cmocka_unit_test(test_message_is_one_line),
        cmocka_unit_test(test_add_path),
        cmocka_unit_test(test_add_path_errors),
        cmocka_unit_test(test_default_policy),
    };
    const size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);

    /* One named test per table row, so a failure names its case. */
    static struct CMUnitTest tests[sizeof(fixed) / sizeof(fixed[0]) + N_ERR + N_OK];
    size_t n = 0;
    for (size_t i = 0; i < n_fixed; i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < N_ERR; i++)
        tests[n++] = (struct CMUnitTest){ .name = err_cases[i].name,
                                          .test_func = run_err_case,
                                          .initial_state = (void *)(uintptr_t)&err_cases[i] };
    for (size_t i = 0; i < N_OK; i++)
        tests[n++] = (struct CMUnitTest){ .name = ok_cases[i].name,
                                          .test_func = run_ok_case,
                                          .initial_state = (void *)(uintptr_t)&ok_cases[i] };

    static const struct CMUnitTest files[] = {
        cmocka_unit_test_setup(test_file_valid, tmp_clean),
        cmocka_unit_test_setup(test_file_errors, tmp_clean),
        cmocka_unit_test_setup(test_file_size_cap, tmp_clean),
    };
    static const struct CMUnitTest autos[] = {
        cmocka_unit_test_setup(test_auto_embedded_when_nothing_exists, auto_each),
        cmocka_unit_test_setup(test_auto_srt_file, auto_each),
        cmocka_unit_test_setup(test_auto_xdg_beats_srt, auto_each),
        cmocka_unit_test_setup(test_auto_explicit_beats_all, auto_each),
        cmocka_unit_test_setup(test_auto_explicit_missing_is_error, auto_each),
        cmocka_unit_test_setup(test_auto_empty_xdg_is_error, auto_each),
        cmocka_unit_test_setup(test_auto_empty_srt_is_error, auto_each),
        cmocka_unit_test_setup(test_auto_invalid_candidate_is_error, auto_each),
        cmocka_unit_test_setup(test_auto_dangling_symlink_is_error, auto_each),
        cmocka_unit_test_setup(test_auto_xdg_unset_uses_dot_config, auto_each),
        cmocka_unit_test_setup(test_auto_xdg_replaces_dot_config, auto_each),
        cmocka_unit_test_setup(test_auto_opts_home, auto_each),
        cmocka_unit_test_setup(test_auto_long_xdg_not_truncated, auto_each),
    };

    int failed = 0;
    failed += _cmocka_run_group_tests("settings", tests, n, NULL, NULL);
    failed += cmocka_run_group_tests_name("settings-files", files, tmp_setup, tmp_teardown);
    failed += cmocka_run_group_tests_name("settings-auto", autos, auto_setup, auto_teardown);
    return failed;
}
