/* audit.c: see audit.h. */
#include "audit.h"
#include "core/escape.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void rfc3339_now(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

static const char *fs_(json_t *f, const char *k)
{
    const char *s = json_string_value(json_object_get(f, k));
    return s ? s : "";
}

/* One denial as srt prints it in <sandbox_violations> (srt-compat.md 3.7).
 * Paths, hosts and names come from the sandbox: the line is escaped
 * (core/escape.h), so it is one line of text whatever they hold. */
static void report_denial(struct audit *a, const char *event, json_t *f)
{
    if (!a->on_denial)
        return;
    char line[1200], out[4 * sizeof(line)];
    const char *cat = NULL;
    long long port = json_integer_value(json_object_get(f, "port"));
    const char *reason = fs_(f, "reason");
    if (strcmp(event, "net.connect") == 0) {
        cat = "network";
        snprintf(line, sizeof(line), "deny network-outbound %s:%lld%s%s%s", fs_(f, "host"), port,
                 *reason ? " (" : "", reason, *reason ? ")" : "");
    } else if (strcmp(event, "net.request") == 0) {
        cat = "network";
        snprintf(line, sizeof(line), "deny http-request %s %s:%lld%s%s%s%s", fs_(f, "method"),
                 fs_(f, "host"), port, fs_(f, "path"), *reason ? " (" : "", reason,
                 *reason ? ")" : "");
    } else if (strcmp(event, "dns.query") == 0) {
        cat = "network";
        snprintf(line, sizeof(line), "deny dns-query %s %s%s%s%s", fs_(f, "name"),
                 fs_(f, "type"), *reason ? " (" : "", reason, *reason ? ")" : "");
    } else if (strcmp(event, "unix.connect") == 0) {
        /* as srt's macOS profile logs it: the socket's path */
        cat = "network";
        snprintf(line, sizeof(line), "deny network-outbound %s%s%s%s", fs_(f, "path"),
                 *reason ? " (" : "", reason, *reason ? ")" : "");
    } else if (strcmp(event, "fs.deny") == 0) {
        cat = strcmp(fs_(f, "op"), "read") == 0 ? "read" : "write";
        const char *rule = fs_(f, "rule");
        snprintf(line, sizeof(line), "deny %s %s%s%s%s", fs_(f, "op"), fs_(f, "path"),
                 *rule ? " (" : "", rule, *rule ? ")" : "");
    } else if (strcmp(event, "syscall.deny") == 0) {
        cat = "syscall";
        snprintf(line, sizeof(line), "deny syscall %s (%s)", fs_(f, "syscall"),
                 fs_(f, "errno"));
    } else {
        cat = "other";
        snprintf(line, sizeof(line), "deny %s", event);
    }
    text_escape(out, sizeof(out), line);
    a->on_denial(a->denial_ud, cat, out);
}

void audit_emit(struct audit *a, const char *event, bool allow, json_t *fields)
{
    audit_emit_quiet(a, event, allow, false, fields);
}

void audit_emit_quiet(struct audit *a, const char *event, bool allow, bool quiet,
                      json_t *fields)
{
    if (!allow) {
        a->denials++;
        if (!quiet)
            report_denial(a, event, fields);
    }
    if (a->fd < 0) {
        json_decref(fields);
        return;
    }
    char ts[40];
    rfc3339_now(ts, sizeof(ts));
    json_t *rec = json_pack("{s:i, s:s, s:s, s:s}", "v", CORDON_AUDIT_VERSION, "ts", ts,
                            "event", event, "verdict", allow ? "allow" : "deny");
    if (!rec) {
        json_decref(fields);
        return;
    }
    if (fields) {
        json_object_update_missing(rec, fields);
        json_decref(fields);
    }
    char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(rec);
    if (!line)
        return;
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps leaves room: we replace the NUL and write len+1 */
    const char *p = line;
    size_t left = len + 1;
    while (left > 0) {
        ssize_t w = write(a->fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    free(line);
}

json_t *audit_str(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *e = malloc(n * 4 + 1);
    if (!e)
        return NULL;
    size_t k = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7f)
            k += (size_t)snprintf(e + k, 5, "\\x%02x", ch);
        else
            e[k++] = (char)ch;
    }
    e[k] = '\0';
    j = json_string(e);
    free(e);
    return j;
}
