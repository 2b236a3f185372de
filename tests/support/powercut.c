/*
 * powercut: an LD_PRELOAD shim that records what a power cut would leave of a directory.
 *
 * The model is a disk with a volatile write cache under an ext4-like file system, taken
 * strictly (POSIX, not ext4's stronger habits):
 *   - a regular file's content is durable as of its last fsync/fdatasync (sync_file_range
 *     does not count, nor does anything else);
 *   - a directory's entries (name -> inode) are durable as of its last fsync;
 *   - POWERCUT_DIR itself exists durably; its entries only as of its last fsync.
 * Whatever exists under POWERCUT_DIR when the shim starts with an empty image is taken as
 * durable (a test created it, or materialized it from an earlier image).
 *
 * Environment:
 *   POWERCUT_DIR    absolute path of the watched data directory (realpath'd at start)
 *   POWERCUT_IMAGE  absolute path of an existing directory holding the durable image:
 *                   .inodes/<key>  durable content of one inode (key below), updated
 *                                  in place at each sync, only where it changed
 *                   .ns/=<rel>     durable entries of the directory <rel> ("" is
 *                                  POWERCUT_DIR; '/' and '%' in <rel> are %-escaped), one
 *                                  line per entry: name<TAB>key<TAB>f|d (name %-escaped)
 *                   .stats         counters (see write_stats), rewritten atomically
 *                   .control       written by the test to arm faults at run time (see
 *                                  refresh_control)
 *   POWERCUT_FAIL_SYNC_AFTER=N     the N-th (1-based) and every later fsync/fdatasync of a
 *                                  path under POWERCUT_DIR fails with EIO, no image update
 *   POWERCUT_ENOSPC_AFTER_BYTES=N  a write/pwrite/pwrite64/writev/pwritev(64)(2) to an fd
 *                                  under POWERCUT_DIR that would take the bytes written in
 *                                  total above N fails with ENOSPC, and so does every
 *                                  later one (a full disk stays full)
 *
 * An inode's key is "<st_ino>-<birth seconds>.<birth nanoseconds>" (statx btime; just
 * "<st_ino>" where the file system has no birth time): file systems reuse inode numbers,
 * and a name whose deletion was not yet durable must keep its own old content, not that of
 * a newer file that got the same number.
 *
 * sync() and syncfs() make the whole watched tree durable (that is what they do to a real
 * disk); they are not counted as syncs and never fail.
 *
 * A sync cut short by the kill leaves the image part updated, as a disk may hold part of
 * what an fsync that never returned was writing. Namespace and .stats files are replaced
 * whole (temporary name, then rename).
 *
 * Not modelled: renames of directories (a namespace is kept by path), hard links across
 * directories beyond what the names show, torn or reordered writes between syncs (what a
 * cut leaves of a file is its content at its last completed fsync), copy_file_range,
 * sendfile and mmap writes (not counted towards ENOSPC).
 *
 * Build: cc -shared -fPIC -O1 -o libpowercut.so powercut.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

typedef int (*fsync_fn)(int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwritev64_fn)(int, const struct iovec *, int, off64_t);
typedef ssize_t (*pwritev2_fn)(int, const struct iovec *, int, off_t, int);
typedef void (*sync_fn)(void);

static fsync_fn real_fsync, real_fdatasync, real_syncfs;
static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static writev_fn real_writev;
static pwritev_fn real_pwritev;
static pwritev64_fn real_pwritev64;
static pwritev2_fn real_pwritev2;
static sync_fn real_sync;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
/* One lock for the image and the counters: syncs from several threads update it in turn. */
static pthread_mutex_t image_lock = PTHREAD_MUTEX_INITIALIZER;
/* Set while the shim itself does I/O, so its own calls pass straight through. */
static __thread int in_shim;

static int enabled;
static char watch_dir[PATH_MAX];
static size_t watch_len;
static char image_dir[PATH_MAX];
static long long fail_sync_after = -1;
static long long enospc_after = -1;

static unsigned long long sync_count, bytes_written, eio_injected, enospc_injected;
static int disk_full;

static void *resolve(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "powercut: cannot resolve %s: %s\n", name, dlerror());
        abort();
    }
    return f;
}

/* The image is the test's evidence: if it cannot be kept, stop loudly rather than lie. */
static void die(const char *what, const char *path) {
    fprintf(stderr, "powercut: %s %s: %s\n", what, path, strerror(errno));
    abort();
}

/* snprintf that refuses to truncate a path: a cut-short name would write somewhere else. */
__attribute__((format(printf, 3, 4))) static void format_path(char *out, size_t size,
                                                              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        die("path too long:", fmt);
    }
}

static long long parse_number(const char *name, const char *v) {
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v || (*end && *end != '\n') || n < 0) {
        fprintf(stderr, "powercut: %s must be a non-negative number, not %s\n", name, v);
        abort();
    }
    return n;
}

static long long env_number(const char *name) {
    const char *v = getenv(name);
    return v && *v ? parse_number(name, v) : -1;
}

static void write_all_or_die(int fd, const char *buf, size_t len, const char *path) {
    while (len > 0) {
        ssize_t n = real_write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("cannot write", path);
        buf += n;
        len -= (size_t)n;
    }
}

/* Writes `len` bytes to IMAGE/rel through a temporary name, so a reader sees old or new. */
static void image_put(const char *rel, const char *buf, size_t len) {
    char path[PATH_MAX], tmp[PATH_MAX];
    format_path(path, sizeof path, "%s/%s", image_dir, rel);
    format_path(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot create", tmp);
    write_all_or_die(fd, buf, len, tmp);
    close(fd);
    if (rename(tmp, path) != 0)
        die("cannot rename", tmp);
}

static void write_stats(void) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "syncs %llu\nbytes %llu\neio %llu\nenospc %llu\n",
                     sync_count, bytes_written, eio_injected, enospc_injected);
    image_put(".stats", buf, (size_t)n);
}

/* A growable text buffer for namespace files. */
struct text {
    char *buf;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t, const char *fmt,
                                                           ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("cannot format", "namespace");
        if (t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *grown = realloc(t->buf, cap);
        if (!grown)
            die("out of memory for", "namespace");
        t->buf = grown;
        t->cap = cap;
    }
}

/* %-escapes bytes that would break the line format (and '/', for namespace file names). */
static void escape_into(struct text *t, const char *s, int slash) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x21 || *p == '%' || *p == 0x7f || (slash && *p == '/'))
            text_add(t, "%%%02X", *p);
        else
            text_add(t, "%c", *p);
    }
}

static void inode_key(const struct statx *sx, char *out, size_t size) {
    if (sx->stx_mask & STATX_BTIME)
        snprintf(out, size, "%llu-%lld.%09u", (unsigned long long)sx->stx_ino,
                 (long long)sx->stx_btime.tv_sec, sx->stx_btime.tv_nsec);
    else
        snprintf(out, size, "%llu", (unsigned long long)sx->stx_ino);
}

/* Is `path` the watched directory or below it? */
static int under_watch(const char *path) {
    return strncmp(path, watch_dir, watch_len) == 0 &&
           (path[watch_len] == '\0' || path[watch_len] == '/');
}

/* The path `fd` refers to, if it is under the watched directory. */
static int tracked_fd(int fd, char *path, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, size - 1);
    if (n < 0)
        return 0;
    path[n] = '\0';
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && strcmp(path + n - dl, deleted) == 0)
        path[n - dl] = '\0';
    return under_watch(path);
}

/* Reads up to `len` bytes at `at`, fewer only at the end of the file. */
static size_t read_full(int fd, char *buf, size_t len, off_t at, const char *path) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, at + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("cannot read", path);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void pwrite_all_or_die(int fd, const char *buf, size_t len, off_t at, const char *path) {
    while (len > 0) {
        ssize_t n = real_pwrite(fd, buf, len, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("cannot write", path);
        buf += n;
        len -= (size_t)n;
        at += n;
    }
}

/*
 * Makes .inodes/<key> hold the whole current content of the file open as `fd`. Only the
 * chunks that differ are written (and the size set), so that syncing a large, growing file
 * (sled's log) costs reads, not rewrites of the whole image. The update is in place: if
 * the process dies in the middle, the image holds part of the new content, as a disk may
 * when the power fails during an fsync that never returned.
 */
static void save_content(int fd, const char *path) {
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &sx) != 0)
        die("cannot statx", path);
    char key[96], dst[PATH_MAX];
    inode_key(&sx, key, sizeof key);
    format_path(dst, sizeof dst, "%s/.inodes/%s", image_dir, key);

    /* Reopen for reading: the fd may be write-only. /proc/self/fd works for deleted files. */
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int src = open(link, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        die("cannot reopen", path);
    int out = open(dst, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0)
        die("cannot create", dst);
    enum { CHUNK = 1 << 16 };
    static char now[CHUNK], kept[CHUNK]; /* only used under image_lock or before threads */
    off_t at = 0;
    for (;;) {
        size_t n = read_full(src, now, CHUNK, at, path);
        if (n == 0)
            break;
        size_t k = read_full(out, kept, n, at, dst);
        if (k != n || memcmp(now, kept, n) != 0)
            pwrite_all_or_die(out, now, n, at, dst);
        at += (off_t)n;
        if (n < CHUNK)
            break;
    }
    if (ftruncate(out, at) != 0)
        die("cannot truncate", dst);
    close(src);
    close(out);
}

/* Rewrites the durable entries of the directory at `path` from the real directory now. */
static void save_namespace(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        die("cannot list", path);
    struct text t = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct statx sx;
        if (statx(dirfd(d), e->d_name, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_TYPE | STATX_BTIME,
                  &sx) != 0)
            continue; /* removed since the listing: not an entry any more */
        char type;
        if (S_ISREG(sx.stx_mode))
            type = 'f';
        else if (S_ISDIR(sx.stx_mode))
            type = 'd';
        else
            continue;
        char key[96];
        inode_key(&sx, key, sizeof key);
        escape_into(&t, e->d_name, 0);
        text_add(&t, "\t%s\t%c\n", key, type);
    }
    closedir(d);

    struct text name = {0};
    text_add(&name, ".ns/=");
    const char *rel = path + watch_len;
    if (*rel == '/')
        rel++;
    escape_into(&name, rel, 1);
    image_put(name.buf, t.buf ? t.buf : "", t.len);
    free(name.buf);
    free(t.buf);
}

/* Makes everything under `path` durable, as sync() would. */
static void save_tree(const char *path) {
    save_namespace(path);
    DIR *d = opendir(path);
    if (!d)
        die("cannot list", path);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[PATH_MAX];
        format_path(child, sizeof child, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(child, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            save_tree(child);
        } else if (S_ISREG(st.st_mode)) {
            int fd = open(child, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                save_content(fd, child);
                close(fd);
            }
        }
    }
    closedir(d);
}

/*
 * IMAGE/.control, if present, sets the faults while the process runs: lines
 * "POWERCUT_FAIL_SYNC_AFTER=N" and "POWERCUT_ENOSPC_AFTER_BYTES=N", as the environment
 * does (a line it lacks leaves that fault as it was). A test waits until the process is
 * idle, reads .stats, and arms a fault for the next sync or write, whatever the counts
 * were. Write it atomically (temporary name, then rename). Read again whenever its inode,
 * size or time changes; called under image_lock.
 */
static void refresh_control(void) {
    static struct stat seen;
    char path[PATH_MAX];
    format_path(path, sizeof path, "%s/.control", image_dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (st.st_ino == seen.st_ino && st.st_size == seen.st_size &&
        st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec)
        return;
    seen = st;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(line, "POWERCUT_FAIL_SYNC_AFTER") == 0)
            fail_sync_after = parse_number(line, eq + 1);
        else if (strcmp(line, "POWERCUT_ENOSPC_AFTER_BYTES") == 0)
            enospc_after = parse_number(line, eq + 1);
    }
    fclose(f);
}

static void make_dir(const char *rel) {
    char path[PATH_MAX];
    format_path(path, sizeof path, "%s/%s", image_dir, rel);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("cannot create", path);
}

static void init(void) {
    real_fsync = (fsync_fn)resolve("fsync");
    real_fdatasync = (fsync_fn)resolve("fdatasync");
    real_syncfs = (fsync_fn)resolve("syncfs");
    real_sync = (sync_fn)resolve("sync");
    real_write = (write_fn)resolve("write");
    real_pwrite = (pwrite_fn)resolve("pwrite");
    real_pwrite64 = (pwrite64_fn)resolve("pwrite64");
    real_writev = (writev_fn)resolve("writev");
    real_pwritev = (pwritev_fn)resolve("pwritev");
    real_pwritev64 = (pwritev64_fn)resolve("pwritev64");
    real_pwritev2 = (pwritev2_fn)resolve("pwritev2");

    const char *dir = getenv("POWERCUT_DIR");
    const char *image = getenv("POWERCUT_IMAGE");
    if (!dir || !*dir || !image || !*image)
        return; /* not configured: a transparent shim */
    if (!realpath(dir, watch_dir))
        die("cannot resolve POWERCUT_DIR", dir);
    watch_len = strlen(watch_dir);
    if (!realpath(image, image_dir))
        die("cannot resolve POWERCUT_IMAGE", image);
    if (under_watch(image_dir)) {
        fprintf(stderr, "powercut: POWERCUT_IMAGE must not be under POWERCUT_DIR\n");
        abort();
    }
    fail_sync_after = env_number("POWERCUT_FAIL_SYNC_AFTER");
    enospc_after = env_number("POWERCUT_ENOSPC_AFTER_BYTES");

    in_shim = 1;
    char ns[PATH_MAX];
    format_path(ns, sizeof ns, "%s/.ns", image_dir);
    struct stat st;
    int fresh = stat(ns, &st) != 0;
    make_dir(".ns");
    make_dir(".inodes");
    if (fresh)
        save_tree(watch_dir); /* what exists before the process starts is on the disk */
    write_stats();
    in_shim = 0;
    enabled = 1;
}

static void ensure_init(void) { pthread_once(&init_once, init); }

__attribute__((constructor)) static void powercut_start(void) { ensure_init(); }

/* fsync (data_only = 0) or fdatasync (1) of `fd`. */
static int do_sync(int fd, int data_only) {
    ensure_init();
    fsync_fn real = data_only ? real_fdatasync : real_fsync;
    char path[PATH_MAX];
    if (!enabled || in_shim || !tracked_fd(fd, path, sizeof path))
        return real(fd);
    in_shim = 1;
    pthread_mutex_lock(&image_lock);
    refresh_control();
    sync_count++;
    if (fail_sync_after > 0 && sync_count >= (unsigned long long)fail_sync_after) {
        eio_injected++;
        write_stats();
        pthread_mutex_unlock(&image_lock);
        in_shim = 0;
        errno = EIO;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        save_namespace(path);
    else
        save_content(fd, path);
    write_stats();
    pthread_mutex_unlock(&image_lock);
    in_shim = 0;
    return real(fd);
}

int fsync(int fd) { return do_sync(fd, 0); }

int fdatasync(int fd) { return do_sync(fd, 1); }

void sync(void) {
    ensure_init();
    if (enabled && !in_shim) {
        in_shim = 1;
        pthread_mutex_lock(&image_lock);
        save_tree(watch_dir);
        pthread_mutex_unlock(&image_lock);
        in_shim = 0;
    }
    real_sync();
}

int syncfs(int fd) {
    ensure_init();
    if (enabled && !in_shim) {
        in_shim = 1;
        pthread_mutex_lock(&image_lock);
        save_tree(watch_dir);
        pthread_mutex_unlock(&image_lock);
        in_shim = 0;
    }
    return real_syncfs(fd);
}

/*
 * Write accounting. Returns 1 if a write of `len` bytes to `fd` may go ahead (reserving
 * the bytes), 0 with errno = ENOSPC if the disk is "full". *counted says whether `fd` is
 * under the watched directory, so that settle() can return what was not written.
 */
static int reserve(int fd, size_t len, int *counted) {
    *counted = 0;
    ensure_init();
    char path[PATH_MAX];
    if (!enabled || in_shim || !tracked_fd(fd, path, sizeof path))
        return 1;
    int ok = 1;
    in_shim = 1;
    pthread_mutex_lock(&image_lock);
    refresh_control();
    if (disk_full || (enospc_after >= 0 && bytes_written + len > (unsigned long long)enospc_after)) {
        disk_full = 1;
        enospc_injected++;
        ok = 0;
    } else {
        bytes_written += len;
        *counted = 1;
    }
    write_stats();
    pthread_mutex_unlock(&image_lock);
    in_shim = 0;
    if (!ok)
        errno = ENOSPC;
    return ok;
}

static void settle(int counted, size_t reserved, ssize_t written) {
    if (!counted)
        return;
    size_t done = written > 0 ? (size_t)written : 0;
    if (done >= reserved)
        return;
    int saved = errno;
    pthread_mutex_lock(&image_lock);
    bytes_written -= reserved - done;
    pthread_mutex_unlock(&image_lock);
    errno = saved;
}

static size_t iov_len(const struct iovec *iov, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

ssize_t write(int fd, const void *buf, size_t len) {
    int counted;
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_write(fd, buf, len);
    settle(counted, len, n);
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t at) {
    int counted;
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_pwrite(fd, buf, len, at);
    settle(counted, len, n);
    return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t at) {
    int counted;
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_pwrite64(fd, buf, len, at);
    settle(counted, len, n);
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    int counted;
    size_t len = iov_len(iov, cnt);
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_writev(fd, iov, cnt);
    settle(counted, len, n);
    return n;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t at) {
    int counted;
    size_t len = iov_len(iov, cnt);
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_pwritev(fd, iov, cnt, at);
    settle(counted, len, n);
    return n;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t at) {
    int counted;
    size_t len = iov_len(iov, cnt);
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_pwritev64(fd, iov, cnt, at);
    settle(counted, len, n);
    return n;
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t at, int flags) {
    int counted;
    size_t len = iov_len(iov, cnt);
    if (!reserve(fd, len, &counted))
        return -1;
    ssize_t n = real_pwritev2(fd, iov, cnt, at, flags);
    settle(counted, len, n);
    return n;
}
