/* spawn.c: drives libcordon's process API (cordon_sandbox_*) the way a
 * multithreaded host would; run by tests/integration/test_api.py.
 *
 *   spawn threads N          N threads each spawn a sandbox running
 *                            `sh -c 'echo T$i; exit $i'` with its stdout on a
 *                            pipe, and check the output and the status
 *   spawn audit URL          runs `curl URL` with the audit stream kept and
 *                            prints each record's event and verdict
 *   spawn update DIR URL A,B  curls URL, says so on the fifo DIR/a, waits on
 *                            the fifo DIR/b and curls again; meanwhile the
 *                            entries A and B are allowed live (prints both
 *                            HTTP codes)
 *   spawn kill               kills a sleeping sandbox and reports 128+9
 *   spawn fail               a command in a policy that cannot load: exit 125
 *
 * Settings: $SPAWN_SETTINGS (JSON text) or an empty network with the
 * working directory writable. Prints what it saw; threads exits 1 on a
 * mismatch.
 */
#include <cordon.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cordon_policy *policy(const char *json)
{
    cordon_policy *p = NULL;
    struct cordon_error err = { 0 };
    if (cordon_policy_load_string(json, "spawn.c", NULL, &p, &err) < 0) {
        fprintf(stderr, "spawn: %s\n", err.msg);
        exit(1);
    }
    return p;
}

static const char BASE0[] = "{\"network\": {\"allowedDomains\": [], \"deniedDomains\": []}, "
                            "\"filesystem\": {\"denyRead\": [], \"allowWrite\": [\".\"], "
                            "\"denyWrite\": []}}";
static const char *BASE = BASE0;

struct job {
    int i;
    int ok;
};

static void *one(void *arg)
{
    struct job *j = arg;
    cordon_policy *p = policy(BASE);
    int out[2];
    if (pipe(out) < 0)
        return NULL;
    char script[64];
    snprintf(script, sizeof(script), "echo T%d; exit %d", j->i, j->i);
    char *argv[] = { "/bin/sh", "-c", script, NULL };
    struct cordon_spawn_opts o = { .size = sizeof(o), .argv = argv, .stdin_fd = -1,
                                   .stdout_fd = out[1], .stderr_fd = -1 };
    cordon_sandbox *s = NULL;
    struct cordon_error err = { 0 };
    int r = cordon_sandbox_spawn(p, &o, &s, &err);
    close(out[1]);
    if (r < 0) {
        fprintf(stderr, "spawn: %s\n", err.msg);
        close(out[0]);
        cordon_policy_free(p);
        return NULL;
    }
    char buf[64] = "";
    ssize_t n = read(out[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(out[0]);
    int status = -1;
    r = cordon_sandbox_wait(s, &status, &err);
    char want[16];
    snprintf(want, sizeof(want), "T%d\n", j->i);
    j->ok = r == 0 && status == j->i && strcmp(buf, want) == 0;
    if (!j->ok)
        fprintf(stderr, "spawn: thread %d: r=%d status=%d out=%s\n", j->i, r, status, buf);
    cordon_sandbox_free(s);
    cordon_policy_free(p);
    return NULL;
}

static int threads(int n)
{
    pthread_t t[64];
    struct job jobs[64];
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct job){ .i = i + 1 };
        pthread_create(&t[i], NULL, one, &jobs[i]);
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        ok &= jobs[i].ok;
    }
    printf(ok ? "ok threads %d\n" : "FAIL threads %d\n", n);
    return ok ? 0 : 1;
}

/* Read the audit stream to EOF and print each record's event and verdict. */
static void dump_audit(int fd)
{
    FILE *f = fdopen(dup(fd), "r");
    char line[8192];
    while (f && fgets(line, sizeof(line), f)) {
        const char *ev = strstr(line, "\"event\":\"");
        const char *vd = strstr(line, "\"verdict\":\"");
        if (ev && vd)
            printf("record %.*s %.*s\n", (int)strcspn(ev + 9, "\""), ev + 9,
                   (int)strcspn(vd + 11, "\""), vd + 11);
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("SPAWN_SETTINGS"))
        BASE = getenv("SPAWN_SETTINGS");
    if (argc >= 3 && strcmp(argv[1], "threads") == 0)
        return threads(atoi(argv[2]) > 64 ? 64 : atoi(argv[2]));
    struct cordon_error err = { 0 };
    cordon_sandbox *s = NULL;
    int status = -1;
    if (argc >= 3 && strcmp(argv[1], "audit") == 0) {
        cordon_policy *p = policy(BASE);
        char *cmd[] = { "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}\n", argv[2], NULL };
        struct cordon_spawn_opts o = { .size = sizeof(o), .argv = cmd, .stdin_fd = -1,
                                       .stdout_fd = -1, .stderr_fd = -1, .audit = true };
        if (cordon_sandbox_spawn(p, &o, &s, &err) < 0) {
            fprintf(stderr, "spawn: %s\n", err.msg);
            return 1;
        }
        dump_audit(cordon_sandbox_audit_fd(s));
        int r = cordon_sandbox_wait(s, &status, &err);
        printf("status %d %d\n", r, status);
        cordon_sandbox_free(s);
        cordon_policy_free(p);
        return 0;
    }
    if (argc >= 5 && strcmp(argv[1], "update") == 0) {
        cordon_policy *p = policy(BASE);
        const char *url = argv[3];
        char script[800];
        snprintf(script, sizeof(script),
                 "curl -s -o /dev/null -w '%%{http_code}\\n' %s; echo 1 > %s/a; read x < %s/b; "
                 "curl -s -o /dev/null -w '%%{http_code}\\n' %s", url, argv[2], argv[2], url);
        char *cmd[] = { "/bin/sh", "-c", script, NULL };
        struct cordon_spawn_opts o = { .size = sizeof(o), .argv = cmd, .stdin_fd = -1,
                                       .stdout_fd = -1, .stderr_fd = -1, .live_updates = true };
        if (cordon_sandbox_spawn(p, &o, &s, &err) < 0) {
            fprintf(stderr, "spawn: %s\n", err.msg);
            return 1;
        }
        char fa[600], fb[600], line[8];
        snprintf(fa, sizeof(fa), "%s/a", argv[2]);
        snprintf(fb, sizeof(fb), "%s/b", argv[2]);
        FILE *ra = fopen(fa, "r"); /* the first request is done once this reads */
        if (!ra || !fgets(line, sizeof(line), ra))
            return 1;
        fclose(ra);
        /* the entries: allowed from now on */
        char *list = strdup(argv[4]);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            if (cordon_policy_add_domain(p, false, tok, &err) < 0) {
                fprintf(stderr, "spawn: %s\n", err.msg);
                return 1;
            }
        free(list);
        if (cordon_sandbox_update(s, p, &err) < 0) {
            fprintf(stderr, "spawn: %s\n", err.msg);
            return 1;
        }
        FILE *f = fopen(fb, "w"); /* let the command go on */
        if (f) {
            sleep(1); /* the update line reaches the supervisor first */
            fputs("go\n", f);
            fclose(f);
        }
        int r = cordon_sandbox_wait(s, &status, &err);
        printf("status %d %d\n", r, status);
        cordon_sandbox_free(s);
        cordon_policy_free(p);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "kill") == 0) {
        cordon_policy *p = policy(BASE);
        char *cmd[] = { "sleep", "30", NULL };
        struct cordon_spawn_opts o = { .size = sizeof(o), .argv = cmd, .stdin_fd = -1,
                                       .stdout_fd = -1, .stderr_fd = -1 };
        if (cordon_sandbox_spawn(p, &o, &s, &err) < 0)
            return 1;
        usleep(300 * 1000);
        cordon_sandbox_kill(s, SIGKILL);
        int r = cordon_sandbox_wait(s, &status, &err);
        printf("status %d %d\n", r, status);
        cordon_sandbox_free(s);
        cordon_policy_free(p);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "fail") == 0) {
        cordon_policy *p = policy(BASE);
        char *cmd[] = { "true", NULL };
        struct cordon_spawn_opts o = { .size = sizeof(o), .argv = cmd, .stdin_fd = -1,
                                       .stdout_fd = -1, .stderr_fd = -1, .cwd = "/nonexistent" };
        int r = cordon_sandbox_spawn(p, &o, &s, &err);
        printf("spawn %d\n", r < 0 ? -r : 0);
        if (r == 0) {
            r = cordon_sandbox_wait(s, &status, &err);
            printf("wait %d\n", r < 0 ? -r : status);
            cordon_sandbox_free(s);
        }
        struct cordon_spawn_opts bad = { .size = 1, .argv = cmd };
        printf("size %d\n", -cordon_sandbox_spawn(p, &bad, &s, &err));
        cordon_policy_free(p);
        return 0;
    }
    fprintf(stderr, "usage: spawn threads N | audit HOST | update FIFO HOST | kill | fail\n");
    return 2;
}
