/* err.c: see err.h. Messages are truncated, never overflowed. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 0))) static int fill(struct cordon_error *err, int code,
                                                     const char *fmt, va_list ap)
{
    if (code <= 0)
        code = code < 0 ? -code : EINVAL;
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return -code;
}

int cordon_err_set(struct cordon_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = fill(err, code, fmt, ap);
    va_end(ap);
    return r;
}

int cordon_err_sys(struct cordon_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = fill(err, code, fmt, ap);
    va_end(ap);
    if (err) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(-r));
    }
    return r;
}

int cordon_err_prefix(struct cordon_error *err, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(err->msg))
        snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", old);
    if (err->code <= 0)
        err->code = EINVAL;
    return -err->code;
}
