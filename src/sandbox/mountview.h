/* mountview.h: build the sandbox's root from a plan (see mountview.c). */
#ifndef CORDON_MOUNTVIEW_H
#define CORDON_MOUNTVIEW_H

#include "sandbox.h"

/* Runs in init, in its new user and mount namespace. scratch holds
 * plan->nops ints. On failure returns a negative errno with a message in err.
 * On success the process's root and cwd are the new root. */
int mountview_build(const struct sandbox_plan *plan, int *scratch, char *err, size_t errlen);

#endif
