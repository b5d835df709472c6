/* timeit: run several commands interleaved and record each run's wall time.
 *
 *   timeit -n ITER [-w WARMUP] [-C DIR] [-o OUT.tsv] -- NAME CMD ARGS... ::: NAME CMD ARGS... ...
 *
 * NAME@DIR runs that command in DIR instead (the name recorded is NAME).
 * Each iteration runs every command once; the starting command rotates from
 * one iteration to the next (A B C, B C A, C A B, ...) so that slow drifts of
 * the machine (frequency, page cache, a neighbour) spread evenly over the
 * tools. Commands run with stdin and stdout on /dev/null (stderr inherited),
 * in DIR when given. Times are fork-to-reap with CLOCK_MONOTONIC, written as
 * "name<TAB>iteration<TAB>seconds<TAB>cpu_seconds" lines. cpu_seconds is the
 * CPU time of the command and of every process it started, whether or not it
 * waited for them (a task-clock perf counter with inherit, as `perf stat`
 * counts; -1 when perf_event_open is not allowed): other work on the machine
 * disturbs it much less than wall time. A command that exits non-zero or
 * dies stops everything with exit status 1: a benchmark must not report a
 * partial table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct cmd {
    const char *name;
    const char *dir; /* NULL: the -C directory */
    char **argv;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run_one(const struct cmd *c, const char *dir, double *cpu)
{
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0) {
        perror("timeit: pipe");
        exit(1);
    }
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("timeit: fork");
        exit(1);
    }
    if (pid == 0) {
        char b;
        close(go[1]);
        if (read(go[0], &b, 1) != 1)
            _exit(126);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (null > 2)
                close(null);
        }
        if (c->dir)
            dir = c->dir;
        if (dir && chdir(dir) < 0) {
            fprintf(stderr, "timeit: chdir %s: %s\n", dir, strerror(errno));
            _exit(126);
        }
        execvp(c->argv[0], c->argv);
        fprintf(stderr, "timeit: exec %s: %s\n", c->argv[0], strerror(errno));
        _exit(127);
    }
    close(go[0]);
    /* Counts from the exec on, in the command and every task it creates. */
    struct perf_event_attr a = {
        .type = PERF_TYPE_SOFTWARE,
        .size = sizeof(a),
        .config = PERF_COUNT_SW_TASK_CLOCK,
        .disabled = 1,
        .inherit = 1,
        .enable_on_exec = 1,
    };
    int pfd = (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (write(go[1], "x", 1) != 1) {
        perror("timeit: write");
        exit(1);
    }
    close(go[1]);
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            perror("timeit: waitpid");
            exit(1);
        }
    }
    double t = now() - t0;
    uint64_t ns;
    *cpu = -1;
    if (pfd >= 0) {
        if (read(pfd, &ns, sizeof(ns)) == (ssize_t)sizeof(ns))
            *cpu = (double)ns / 1e9;
        close(pfd);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "timeit: \"%s\" (%s ...) failed: %s %d\n", c->name, c->argv[0],
                WIFEXITED(st) ? "exit status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        exit(1);
    }
    return t;
}

int main(int argc, char **argv)
{
    int iters = 10, warmup = 1, opt;
    const char *dir = NULL, *out = NULL;
    while ((opt = getopt(argc, argv, "+n:w:C:o:")) != -1) {
        switch (opt) {
        case 'n': iters = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'C': dir = optarg; break;
        case 'o': out = optarg; break;
        default:
            fprintf(stderr, "usage: timeit -n N [-w W] [-C DIR] [-o OUT] -- NAME CMD... ::: ...\n");
            return 2;
        }
    }
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    struct cmd cmds[32];
    int ncmd = 0;
    for (int i = optind; i < argc && ncmd < 32;) {
        cmds[ncmd].name = argv[i++];
        char *at = strchr(cmds[ncmd].name, '@');
        cmds[ncmd].dir = NULL;
        if (at) {
            *at = 0;
            cmds[ncmd].dir = at + 1;
        }
        cmds[ncmd].argv = &argv[i];
        while (i < argc && strcmp(argv[i], ":::") != 0)
            i++;
        if (i < argc)
            argv[i++] = NULL;
        if (!cmds[ncmd].argv[0]) {
            fprintf(stderr, "timeit: %s has no command\n", cmds[ncmd].name);
            return 2;
        }
        ncmd++;
    }
    if (ncmd == 0 || iters < 1) {
        fprintf(stderr, "timeit: nothing to run\n");
        return 2;
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        perror(out);
        return 1;
    }
    double cpu;
    for (int w = 0; w < warmup; w++)
        for (int c = 0; c < ncmd; c++)
            run_one(&cmds[c], dir, &cpu);
    for (int it = 0; it < iters; it++) {
        for (int k = 0; k < ncmd; k++) {
            int c = (it + k) % ncmd;
            double t = run_one(&cmds[c], dir, &cpu);
            fprintf(f, "%s\t%d\t%.9f\t%.6f\n", cmds[c].name, it, t, cpu);
        }
        fflush(f);
    }
    if (f != stdout)
        fclose(f);
    return 0;
}
