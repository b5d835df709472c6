/* replay_main.c: run a fuzz target over files, without libFuzzer.
 *
 * replay-<name> DIR|FILE...: calls LLVMFuzzerTestOneInput once per regular
 * file (directories are read one level deep, in name order, dot-files
 * skipped), after LLVMFuzzerInitialize when the target defines it. Each
 * input is passed in a buffer of exactly its size, so that ASan catches a
 * read past the end as libFuzzer would. It exits 0 when every input ran, 1
 * when an argument cannot be read or no input was found (an empty corpus
 * directory is a mistake, not a pass); a broken invariant aborts.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Targets without one-time setup leave it undefined. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Seed inputs are small; this only bounds a mistake. */
#define REPLAY_MAX_BYTES (64u << 20)

static int run_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < 0 || (unsigned long long)st.st_size > REPLAY_MAX_BYTES) {
        fprintf(stderr, "replay: %s: cannot stat, or larger than %u bytes\n", path,
                REPLAY_MAX_BYTES);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    while (n < size) {
        ssize_t k = read(fd, buf + n, size - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    int failed = 0;
    unsigned long ran = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) < 0)
                failed = 1;
            else
                ran++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, skip_dot, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        for (int k = 0; k < n; k++) {
            size_t len = strlen(argv[i]) + strlen(names[k]->d_name) + 2;
            char *path = malloc(len);
            if (path) {
                snprintf(path, len, "%s/%s", argv[i], names[k]->d_name);
                struct stat fst;
                if (stat(path, &fst) == 0 && S_ISREG(fst.st_mode)) {
                    if (run_file(path) < 0)
                        failed = 1;
                    else
                        ran++;
                }
                free(path);
            } else {
                failed = 1;
            }
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "replay: %lu input(s) ran\n", ran);
    if (ran == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    return failed;
}
