/* LD_PRELOAD shim: a disk that stalls under one SQLite commit, for as long as a test says.
 *
 * SQLite in WAL mode writes a transaction's pages to the `-wal` file when it commits (pwrite64,
 * which libsqlite3 imports from libc). While the file named by SLOW_WAL_FLAG exists, the first
 * such write removes it (so one commit, and only one, stalls), adds a line to SLOW_WAL_LOG, and
 * then waits as long as the file named by SLOW_WAL_HOLD exists (60 s at most).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off_t);

static int is_wal(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 4)
        return 0;
    path[n] = '\0';
    return strcmp(path + n - 4, "-wal") == 0;
}

static void stall(void) {
    const char *log = getenv("SLOW_WAL_LOG");
    FILE *out = log != NULL ? fopen(log, "a") : NULL;
    if (out != NULL) {
        fputs("held\n", out);
        fclose(out);
    }
    const char *hold = getenv("SLOW_WAL_HOLD");
    struct timespec tick = {0, 10 * 1000000L};
    for (int i = 0; hold != NULL && i < 6000 && access(hold, F_OK) == 0; i++)
        nanosleep(&tick, NULL);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static pwrite64_fn real;
    if (real == NULL)
        real = (pwrite64_fn)dlsym(RTLD_NEXT, "pwrite64");
    const char *flag = getenv("SLOW_WAL_FLAG");
    /* unlink() succeeds for one caller only: one commit stalls. */
    if (flag != NULL && is_wal(fd) && unlink(flag) == 0)
        stall();
    return real(fd, buf, count, offset);
}
