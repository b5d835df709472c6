/* cleanup.h: scope-bound release of fds, memory and secrets.
 *
 * Owns: the _cleanup_ helpers used across cordon (systemd and crun style).
 * Invariant: every helper tolerates the "empty" value (NULL, -1), so a variable
 * can be initialised to it and handed off with TAKE_PTR / TAKE_FD.
 */
#ifndef CORDON_CLEANUP_H
#define CORDON_CLEANUP_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void cordon_freep(void *p)
{
    free(*(void **)p);
}

static inline void cordon_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void cordon_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static inline void cordon_strv_freep(char ***v)
{
    cordon_strv_free(*v);
}

#define _cleanup_free_ _cleanup_(cordon_freep)
#define _cleanup_close_ _cleanup_(cordon_closep)
#define _cleanup_strv_ _cleanup_(cordon_strv_freep)

#define TAKE_PTR(p)                                                            \
    ({                                                                         \
        __typeof__(p) _tp = (p);                                               \
        (p) = NULL;                                                            \
        _tp;                                                                   \
    })

#define TAKE_FD(fd)                                                            \
    ({                                                                         \
        int _tf = (fd);                                                        \
        (fd) = -1;                                                             \
        _tf;                                                                   \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
