/* err.h: error reporting for fallible setup functions.
 *
 * Convention (shared/DESIGN.md): a fallible function takes
 * `struct cordon_error *err` last and returns a negative errno with the message
 * filled in; success never touches `err`. Callers add context on the way up
 * with cordon_err_prefix(). Only the CLI prints.
 */
#ifndef CORDON_ERR_H
#define CORDON_ERR_H

#include "cordon.h"

/* Fill err (when not NULL) and return -code. code is a positive errno value;
 * 0 is turned into EINVAL so the return value is always negative. */
int cordon_err_set(struct cordon_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like cordon_err_set, appending ": strerror(code)". */
int cordon_err_sys(struct cordon_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend "context: " to the message already in err; returns -err->code. */
int cordon_err_prefix(struct cordon_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
