/* example.c: a small program using libcordon's public API (include/cordon.h)
 * the way a third party would, built by tests/install/test_install.py
 * against the INSTALLED header and shared library through pkg-config.
 *
 * It loads settings from a string (and from a file when one is given as
 * argv[1]), checks that a typo is refused with a message naming the key, adds
 * a path and a domain as the CLI's flags do, prints nothing but its verdicts,
 * runs `true`, `false` and `sh -c 'exit 7'` inside the sandbox and checks
 * their statuses, and reads the audit records of the last run from a file
 * descriptor. Exit 0 and "example: ok" when everything held.
 */
#define _POSIX_C_SOURCE 200809L /* fileno */
#include <cordon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "example: FAIL %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

static int run(const cordon_policy *p, char *const *argv, int audit_fd, int *status)
{
    struct cordon_run_opts ro = {
        .argv = argv,
        .forward_signals = false,
        .audit_enabled = audit_fd >= 0,
        .audit_fd = audit_fd,
    };
    struct cordon_error err = { 0 };
    int r = cordon_run(p, &ro, status, &err);
    if (r < 0)
        fprintf(stderr, "example: cordon_run(%s): %s\n", argv[0], err.msg);
    return r;
}

int main(int argc, char **argv)
{
    struct cordon_error err = { 0 };
    cordon_policy *p = NULL;

    /* A typo must be refused, naming the key: unknown keys are errors. */
    int r = cordon_policy_load_string("{\"network\": {\"allowedDomain\": [\"example.com\"]}}",
                                      "typo.json", NULL, &p, &err);
    CHECK(r < 0 && p == NULL, "a settings typo was accepted");
    CHECK(strstr(err.msg, "allowedDomain") != NULL, "the error does not name the key: %s",
          err.msg);

    if (argc > 1) {
        memset(&err, 0, sizeof(err));
        r = cordon_policy_load_file(argv[1], NULL, &p, &err);
        CHECK(r == 0, "cordon_policy_load_file(%s): %s", argv[1], err.msg);
        const char *src = NULL;
        if (r == 0) {
            CHECK(cordon_policy_source(p, &src) == CORDON_SOURCE_FILE && src &&
                      strcmp(src, argv[1]) == 0,
                  "the policy does not say it came from %s", argv[1]);
            cordon_policy_free(p);
        }
        p = NULL;
    }

    struct cordon_load_opts lo = { .home = "/nonexistent-home", .cwd = "/" };
    memset(&err, 0, sizeof(err));
    r = cordon_policy_load_string("{\"filesystem\": {\"denyRead\": [\"~/.ssh\"]},"
                                  " \"network\": {\"allowedDomains\": []}}",
                                  "inline.json", &lo, &p, &err);
    CHECK(r == 0 && p != NULL, "cordon_policy_load_string: %s", err.msg);
    if (r < 0)
        return 1;
    CHECK(cordon_policy_add_path(p, CORDON_DENY_READ, "/etc/shadow", &err) == 0,
          "cordon_policy_add_path: %s", err.msg);
    CHECK(cordon_policy_add_domain(p, false, "example.com:443", &err) == 0,
          "cordon_policy_add_domain: %s", err.msg);
    CHECK(cordon_policy_add_domain(p, false, "*", &err) < 0,
          "\"*\" was accepted in allowedDomains");

    char *json = cordon_policy_to_json(p);
    CHECK(json && strstr(json, "/nonexistent-home/.ssh") && strstr(json, "/etc/shadow") &&
              strstr(json, "example.com:443"),
          "the effective settings miss what was added: %s", json ? json : "(null)");
    free(json);

    int status = -1;
    char *t[] = { "true", NULL };
    CHECK(run(p, t, -1, &status) == 0 && status == 0, "true exited %d", status);
    char *f[] = { "false", NULL };
    CHECK(run(p, f, -1, &status) == 0 && status == 1, "false exited %d", status);
    char *missing[] = { "cordon-example-no-such-command", NULL };
    CHECK(run(p, missing, -1, &status) == 0 && status == 127, "a missing command exited %d",
          status);

    /* The audit stream of one run, on a descriptor we read back. */
    FILE *audit = tmpfile();
    CHECK(audit != NULL, "tmpfile failed");
    if (audit) {
        char *seven[] = { "sh", "-c", "exit 7", NULL };
        CHECK(run(p, seven, fileno(audit), &status) == 0 && status == 7,
              "sh -c 'exit 7' exited %d", status);
        rewind(audit);
        char line[4096];
        int start = 0, exit7 = 0;
        while (fgets(line, sizeof(line), audit)) {
            start += strstr(line, "\"event\":\"run.start\"") != NULL;
            exit7 += strstr(line, "\"event\":\"run.exit\"") && strstr(line, "\"status\":7");
        }
        CHECK(start == 1 && exit7 == 1, "audit records: %d run.start, %d run.exit with 7", start,
              exit7);
        fclose(audit);
    }

    cordon_policy_free(p);
    if (failures)
        return 1;
    printf("example: ok (libcordon %s)\n", CORDON_VERSION);
    return 0;
}
