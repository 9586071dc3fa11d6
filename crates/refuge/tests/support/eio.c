/* LD_PRELOAD shim for refuge's I/O-error test: while the file named by REFUGE_FAULT_TRIGGER
 * exists, write, pwrite, pwrite64, fsync and fdatasync on files whose path starts with
 * REFUGE_FAULT_PREFIX fail with EIO without doing anything; while the file named by
 * REFUGE_FAULT_SYNC_TRIGGER exists, only fsync and fdatasync do (the data reaches the page cache
 * but the caller is told it may not be durable). Each injected fault adds a line to
 * REFUGE_FAULT_LOG. On load, the shim creates REFUGE_FAULT_LOADED, so that the test knows it
 * is in effect. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);

static const char *trigger, *sync_trigger, *prefix, *logpath;
static size_t prefix_len;
static write_fn real_write;
static pwrite_fn real_pwrite, real_pwrite64;
static sync_fn real_fsync, real_fdatasync;

__attribute__((constructor)) static void init(void) {
    real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
    real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    trigger = getenv("REFUGE_FAULT_TRIGGER");
    sync_trigger = getenv("REFUGE_FAULT_SYNC_TRIGGER");
    prefix = getenv("REFUGE_FAULT_PREFIX");
    prefix_len = prefix ? strlen(prefix) : 0;
    logpath = getenv("REFUGE_FAULT_LOG");
    const char *loaded = getenv("REFUGE_FAULT_LOADED");
    if (loaded) {
        int fd = open(loaded, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
    }
}

/* Whether a call of kind `sync` (0: a write, 1: a sync) on fd should fail; if so, log it. */
static int fault(int fd, int sync, const char *what) {
    int saved = errno;
    int on = (trigger && access(trigger, F_OK) == 0) ||
             (sync && sync_trigger && access(sync_trigger, F_OK) == 0);
    if (!on || !prefix_len) {
        errno = saved;
        return 0;
    }
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0 || (size_t)n < prefix_len || memcmp(path, prefix, prefix_len) != 0) {
        errno = saved;
        return 0;
    }
    path[n] = 0;
    if (logpath && real_write) {
        int lfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (lfd >= 0) {
            char line[4200];
            int len = snprintf(line, sizeof line, "EIO %s %s\n", what, path);
            if (len > 0) real_write(lfd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
            close(lfd);
        }
    }
    errno = EIO;
    return 1;
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (!real_write) real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    if (fault(fd, 0, "write")) return -1;
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (!real_pwrite) real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
    if (fault(fd, 0, "pwrite")) return -1;
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    if (!real_pwrite64) real_pwrite64 = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
    if (fault(fd, 0, "pwrite64")) return -1;
    return real_pwrite64(fd, buf, count, offset);
}

int fsync(int fd) {
    if (!real_fsync) real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    if (fault(fd, 1, "fsync")) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    if (fault(fd, 1, "fdatasync")) return -1;
    return real_fdatasync(fd);
}
