/* Our WASI preview1 layer for wasm2c output (Debian wabt ships wasm2c and its runtime, no WASI),
 * plus the program's main(). Built by benchmarking/engines/adapters/wasm2c.py:
 *   wasm2c m.wasm -n m -o m.c && cc -O2 -I. m.c wasm-rt-impl.c wasi.c -lm
 *
 * The process gets the module's argv[1..] as its own; argv[0], the environment and the preopened
 * dirs come from SLW_ARGV0, SLW_NENV + SLW_ENV<i> ("K=V"), SLW_NDIRS + SLW_DIR<i> (fds 3, 4, ...; SLW_GUEST<i>: the name the module sees).
 * Confinement as in wasm3_wasi.py: a path is walked one component at a time from its directory
 * fd with O_NOFOLLOW; `..` above the preopen, absolute paths and absolute symlink targets give
 * ENOTCAPABLE; a relative symlink is followed by splicing its target into the walk. Host errors
 * become WASI errno values. A trap prints "wasm2c trap: ..." on stderr and exits 134. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "m.h"
#include "wasm-rt-impl.h"

#define TRAP_EXIT 134
#define MAX_FDS 256
#define MAX_PATH 4096
#define MAX_SYMLINKS 32

enum { W_SUCCESS = 0, W_EACCES = 2, W_EAGAIN = 6, W_EBADF = 8, W_EBUSY = 10, W_EEXIST = 20, W_EFAULT = 21,
       W_EFBIG = 22, W_EINTR = 27, W_EINVAL = 28, W_EIO = 29, W_EISDIR = 31, W_ELOOP = 32, W_EMFILE = 33,
       W_EMLINK = 34, W_ENAMETOOLONG = 37, W_ENFILE = 41, W_ENOENT = 44, W_ENOMEM = 48, W_ENOSPC = 51,
       W_ENOSYS = 52, W_ENOTDIR = 54, W_ENOTEMPTY = 55, W_ENOTSUP = 58, W_ENOTTY = 59, W_ENXIO = 60,
       W_EOVERFLOW = 61, W_EPERM = 63, W_EPIPE = 64, W_ERANGE = 68, W_EROFS = 69, W_ESPIPE = 70,
       W_EXDEV = 75, W_ENOTCAPABLE = 76 };

static u32 werr(int e) {
    switch (e) {
    case EACCES: return W_EACCES; case EAGAIN: return W_EAGAIN; case EBADF: return W_EBADF;
    case EBUSY: return W_EBUSY; case EEXIST: return W_EEXIST; case EFAULT: return W_EFAULT;
    case EFBIG: return W_EFBIG; case EINTR: return W_EINTR; case EINVAL: return W_EINVAL;
    case EISDIR: return W_EISDIR; case ELOOP: return W_ENOTCAPABLE; case EMFILE: return W_EMFILE;
    case EMLINK: return W_EMLINK; case ENAMETOOLONG: return W_ENAMETOOLONG; case ENFILE: return W_ENFILE;
    case ENOENT: return W_ENOENT; case ENOMEM: return W_ENOMEM; case ENOSPC: return W_ENOSPC;
    case ENOSYS: return W_ENOSYS; case ENOTDIR: return W_ENOTDIR; case ENOTEMPTY: return W_ENOTEMPTY;
    case EOPNOTSUPP: return W_ENOTSUP; case ENOTTY: return W_ENOTTY; case ENXIO: return W_ENXIO;
    case EOVERFLOW: return W_EOVERFLOW; case EPERM: return W_EPERM; case EPIPE: return W_EPIPE;
    case ERANGE: return W_ERANGE; case EROFS: return W_EROFS; case ESPIPE: return W_ESPIPE;
    case EXDEV: return W_EXDEV;
    default: return W_EIO;
    }
}

enum { FT_UNKNOWN = 0, FT_CHAR = 2, FT_DIR = 3, FT_FILE = 4, FT_LINK = 7 };

struct Z_wasi_snapshot_preview1_instance_t {
    wasm_rt_memory_t *memory;
};

typedef struct { int host; int kind; const char *preopen; int append; } wfd;
static wfd fds[MAX_FDS];
static int nargs, nenv;
static char **args, **envs;

static int filetype(mode_t m) {
    if (S_ISDIR(m)) return FT_DIR;
    if (S_ISREG(m)) return FT_FILE;
    if (S_ISLNK(m)) return FT_LINK;
    if (S_ISCHR(m)) return FT_CHAR;
    return FT_UNKNOWN;
}

/* bounds-checked pointers into linear memory */
#define W struct Z_wasi_snapshot_preview1_instance_t *w
static u8 *mem(W, u32 ptr, u64 len) {
    if ((u64)ptr + len > w->memory->size) return NULL;
    return w->memory->data + ptr;
}
#define PTR(var, p, n) u8 *var = mem(w, (p), (n)); if (!var) return W_EFAULT
static void put32(u8 *p, u32 v) { memcpy(p, &v, 4); }
static void put64(u8 *p, u64 v) { memcpy(p, &v, 8); }
static u32 get32(u8 *p) { u32 v; memcpy(&v, p, 4); return v; }

static wfd *getfd(u32 fd) {
    if (fd >= MAX_FDS || fds[fd].host < 0) return NULL;
    return &fds[fd];
}
#define FD(var, fd) wfd *var = getfd(fd); if (!var) return W_EBADF

/* The parent dir (a new host fd the caller closes) and last component of `path` under dir `dfd`. */
static u32 resolve(u32 dirfd, const u8 *path, u32 len, int follow, int *parent, char *last) {
    wfd *base = getfd(dirfd);
    if (!base) return W_EBADF;
    if (base->kind != FT_DIR) return W_ENOTDIR;
    if (len >= MAX_PATH) return W_ENAMETOOLONG;
    char todo[MAX_PATH * 2];
    memcpy(todo, path, len);
    todo[len] = 0;
    if (todo[0] == '/') return W_ENOTCAPABLE;
    int stack[256], depth = 0, links = 0;
    stack[depth++] = dup(base->host);
    size_t pos = 0;
    u32 err = 0;
    for (;;) {
        while (todo[pos] == '/') pos++;
        size_t end = pos;
        while (todo[end] && todo[end] != '/') end++;
        char name[MAX_PATH];
        memcpy(name, todo + pos, end - pos);
        name[end - pos] = 0;
        size_t next = end;
        while (todo[next] == '/') next++;
        int is_last = todo[next] == 0;
        pos = next;
        if (!name[0] || !strcmp(name, ".")) {
            if (is_last) { strcpy(last, "."); break; }
            continue;
        }
        if (!strcmp(name, "..")) {
            if (depth == 1) { err = W_ENOTCAPABLE; break; }
            close(stack[--depth]);
            if (is_last) { strcpy(last, "."); break; }
            continue;
        }
        struct stat st;
        if (fstatat(stack[depth - 1], name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT && is_last) { strcpy(last, name); break; }
            err = werr(errno);
            break;
        }
        if (S_ISLNK(st.st_mode) && (!is_last || follow)) {
            char target[MAX_PATH];
            ssize_t n = readlinkat(stack[depth - 1], name, target, sizeof target - 1);
            if (n < 0) { err = werr(errno); break; }
            target[n] = 0;
            if (target[0] == '/' ) { err = W_ENOTCAPABLE; break; }
            if (++links > MAX_SYMLINKS) { err = W_ELOOP; break; }
            char rest[MAX_PATH * 2];
            snprintf(rest, sizeof rest, "%s/%s", target, todo + pos);
            if (strlen(rest) >= MAX_PATH) { err = W_ENAMETOOLONG; break; }
            strcpy(todo, rest);
            pos = 0;
            continue;
        }
        if (is_last) { strcpy(last, name); break; }
        if (!S_ISDIR(st.st_mode)) { err = W_ENOTDIR; break; }
        if (depth == 256) { err = W_ENAMETOOLONG; break; }
        int d = openat(stack[depth - 1], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0) { err = werr(errno); break; }
        stack[depth++] = d;
    }
    if (!err) *parent = stack[--depth];
    while (depth > 0) close(stack[--depth]);
    return err;
}

#define IMPORT(name) Z_wasi_snapshot_preview1Z_##name

/* -- args, environ, clocks, random, process */
static u32 sizes(W, int n, char **items, u32 count_ptr, u32 size_ptr) {
    PTR(c, count_ptr, 4);
    PTR(s, size_ptr, 4);
    u32 total = 0;
    for (int i = 0; i < n; i++) total += strlen(items[i]) + 1;
    put32(c, n);
    put32(s, total);
    return 0;
}
static u32 strings(W, int n, char **items, u32 ptrs, u32 buf) {
    for (int i = 0; i < n; i++) {
        u32 len = strlen(items[i]) + 1;
        PTR(p, ptrs + 4 * i, 4);
        PTR(b, buf, len);
        put32(p, buf);
        memcpy(b, items[i], len);
        buf += len;
    }
    return 0;
}
u32 IMPORT(args_sizes_get)(W, u32 c, u32 s) { return sizes(w, nargs, args, c, s); }
u32 IMPORT(args_get)(W, u32 p, u32 b) { return strings(w, nargs, args, p, b); }
u32 IMPORT(environ_sizes_get)(W, u32 c, u32 s) { return sizes(w, nenv, envs, c, s); }
u32 IMPORT(environ_get)(W, u32 p, u32 b) { return strings(w, nenv, envs, p, b); }

static int clock_of(u32 id, clockid_t *c) {
    static const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
    if (id > 3) return 0;
    *c = ids[id];
    return 1;
}
/* clock_res_get (res = 1) and clock_time_get: nanoseconds into memory */
static u32 clock_query(W, u32 id, u32 out, int res) {
    clockid_t c;
    struct timespec ts;
    if (!clock_of(id, &c)) return W_EINVAL;
    PTR(o, out, 8);
    if (res) clock_getres(c, &ts);
    else clock_gettime(c, &ts);
    put64(o, (u64)ts.tv_sec * 1000000000ull + ts.tv_nsec);
    return 0;
}
u32 IMPORT(clock_res_get)(W, u32 id, u32 out) { return clock_query(w, id, out, 1); }
u32 IMPORT(clock_time_get)(W, u32 id, u64 precision, u32 out) { (void)precision; return clock_query(w, id, out, 0); }
u32 IMPORT(random_get)(W, u32 buf, u32 len) {
    PTR(b, buf, len);
    for (u32 done = 0; done < len;) {
        ssize_t n = getrandom(b + done, len - done, 0);
        if (n < 0) return werr(errno);
        done += n;
    }
    return 0;
}
u32 IMPORT(sched_yield)(W) { (void)w; sched_yield(); return 0; }
u32 IMPORT(poll_oneoff)(W, u32 in, u32 out, u32 n, u32 nevents) {
    /* clock subscriptions only (sleep) */
    PTR(subs, in, (u64)48 * n);
    PTR(evs, out, (u64)32 * n);
    PTR(ne, nevents, 4);
    u64 shortest = UINT64_MAX;
    for (u32 i = 0; i < n; i++) {
        u8 *s = subs + 48 * i;
        if (s[8] != 0) return W_ENOTSUP;
        u64 timeout;
        memcpy(&timeout, s + 24, 8);
        u16 flags;
        memcpy(&flags, s + 40, 2);
        if (flags & 1) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            u64 t = (u64)now.tv_sec * 1000000000ull + now.tv_nsec;
            timeout = timeout > t ? timeout - t : 0;
        }
        if (timeout < shortest) shortest = timeout;
    }
    if (n && shortest != UINT64_MAX) {
        struct timespec ts = {(time_t)(shortest / 1000000000ull), (long)(shortest % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
    for (u32 i = 0; i < n; i++) {
        u8 *e = evs + 32 * i;
        memset(e, 0, 32);
        memcpy(e, subs + 48 * i, 8); /* userdata */
    }
    put32(ne, n);
    return 0;
}
void IMPORT(proc_exit)(W, u32 code) { (void)w; exit((int)code); }
u32 IMPORT(proc_raise)(W, u32 sig) { (void)w; (void)sig; return W_ENOSYS; }

/* -- fds */
static u32 iov_io(W, u32 fd, u32 iovs, u32 n, u32 result, int writing, int positional, u64 offset) {
    FD(f, fd);
    PTR(r, result, 4);
    PTR(v, iovs, (u64)8 * n);
    u32 total = 0;
    if (writing && f->append && !positional) lseek(f->host, 0, SEEK_END);
    for (u32 i = 0; i < n; i++) {
        u32 p = get32(v + 8 * i), len = get32(v + 8 * i + 4);
        PTR(b, p, len);
        u32 done = 0;
        while (done < len) {
            ssize_t k = positional ? (writing ? pwrite(f->host, b + done, len - done, offset + total + done)
                                              : pread(f->host, b + done, len - done, offset + total + done))
                                   : (writing ? write(f->host, b + done, len - done) : read(f->host, b + done, len - done));
            if (k < 0) {
                if (errno == EINTR) continue;
                if (total + done) break;
                return werr(errno);
            }
            if (k == 0) break;
            done += k;
            if (!writing) break; /* a short read returns what there is */
        }
        total += done;
        if (done < len) break;
    }
    put32(r, total);
    return 0;
}
u32 IMPORT(fd_write)(W, u32 fd, u32 iovs, u32 n, u32 r) { return iov_io(w, fd, iovs, n, r, 1, 0, 0); }
u32 IMPORT(fd_read)(W, u32 fd, u32 iovs, u32 n, u32 r) { return iov_io(w, fd, iovs, n, r, 0, 0, 0); }
u32 IMPORT(fd_pwrite)(W, u32 fd, u32 iovs, u32 n, u64 off, u32 r) { return iov_io(w, fd, iovs, n, r, 1, 1, off); }
u32 IMPORT(fd_pread)(W, u32 fd, u32 iovs, u32 n, u64 off, u32 r) { return iov_io(w, fd, iovs, n, r, 0, 1, off); }

u32 IMPORT(fd_seek)(W, u32 fd, u64 offset, u32 whence, u32 out) {
    FD(f, fd);
    PTR(o, out, 8);
    if (whence > 2) return W_EINVAL;
    if (f->kind == FT_CHAR) return W_ESPIPE;
    off_t r = lseek(f->host, (off_t)(s64)offset, whence == 0 ? SEEK_SET : whence == 1 ? SEEK_CUR : SEEK_END);
    if (r < 0) return werr(errno);
    put64(o, (u64)r);
    return 0;
}
u32 IMPORT(fd_tell)(W, u32 fd, u32 out) { return IMPORT(fd_seek)(w, fd, 0, 1, out); }
u32 IMPORT(fd_close)(W, u32 fd) {
    (void)w;
    FD(f, fd);
    if (fd >= 3) close(f->host);
    f->host = -1;
    return 0;
}
u32 IMPORT(fd_sync)(W, u32 fd) { (void)w; FD(f, fd); return fsync(f->host) < 0 ? werr(errno) : 0; }
u32 IMPORT(fd_datasync)(W, u32 fd) { (void)w; FD(f, fd); return fdatasync(f->host) < 0 ? werr(errno) : 0; }
u32 IMPORT(fd_fdstat_get)(W, u32 fd, u32 out) {
    FD(f, fd);
    PTR(o, out, 24);
    memset(o, 0, 24);
    o[0] = (u8)f->kind;
    u16 flags = f->append ? 1 : 0;
    memcpy(o + 2, &flags, 2);
    put64(o + 8, (1ull << 30) - 1);
    put64(o + 16, (1ull << 30) - 1);
    return 0;
}
u32 IMPORT(fd_fdstat_set_flags)(W, u32 fd, u32 flags) {
    (void)w;
    FD(f, fd);
    f->append = flags & 1;
    if (fd >= 3) {
        int fl = fcntl(f->host, F_GETFL);
        fcntl(f->host, F_SETFL, flags & 4 ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
    }
    return 0;
}
u32 IMPORT(fd_prestat_get)(W, u32 fd, u32 out) {
    wfd *f = getfd(fd);
    if (!f || !f->preopen) return W_EBADF;
    PTR(o, out, 8);
    memset(o, 0, 8);
    put32(o + 4, strlen(f->preopen));
    return 0;
}
u32 IMPORT(fd_prestat_dir_name)(W, u32 fd, u32 buf, u32 len) {
    wfd *f = getfd(fd);
    if (!f || !f->preopen) return W_EBADF;
    size_t n = strlen(f->preopen);
    if (len < n) return W_ENAMETOOLONG;
    PTR(b, buf, n);
    memcpy(b, f->preopen, n);
    return 0;
}
static void filestat(u8 *o, const struct stat *st) {
    memset(o, 0, 64);
    put64(o, st->st_dev);
    put64(o + 8, st->st_ino);
    o[16] = (u8)filetype(st->st_mode);
    put64(o + 24, st->st_nlink);
    put64(o + 32, st->st_size);
    put64(o + 40, (u64)st->st_atim.tv_sec * 1000000000ull + st->st_atim.tv_nsec);
    put64(o + 48, (u64)st->st_mtim.tv_sec * 1000000000ull + st->st_mtim.tv_nsec);
    put64(o + 56, (u64)st->st_ctim.tv_sec * 1000000000ull + st->st_ctim.tv_nsec);
}
u32 IMPORT(fd_filestat_get)(W, u32 fd, u32 out) {
    FD(f, fd);
    PTR(o, out, 64);
    struct stat st;
    if (fstat(f->host, &st) < 0) return werr(errno);
    filestat(o, &st);
    return 0;
}
u32 IMPORT(fd_filestat_set_size)(W, u32 fd, u64 size) {
    (void)w;
    FD(f, fd);
    return ftruncate(f->host, (off_t)size) < 0 ? werr(errno) : 0;
}
static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
u32 IMPORT(fd_readdir)(W, u32 fd, u32 buf, u32 len, u64 cookie, u32 used) {
    FD(f, fd);
    if (f->kind != FT_DIR) return W_ENOTDIR;
    PTR(b, buf, len);
    PTR(u, used, 4);
    int d = openat(f->host, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return werr(errno);
    DIR *dir = fdopendir(d);
    if (!dir) { close(d); return werr(errno); }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (n == cap) { cap = cap ? 2 * cap : 64; names = realloc(names, cap * sizeof *names); }
        names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof *names, cmp_names);
    u32 out = 0;
    for (size_t i = cookie; i < n && out < len; i++) {
        u8 head[24] = {0};
        struct stat st;
        u32 nl = strlen(names[i]);
        int kind = fstatat(f->host, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 ? filetype(st.st_mode) : FT_UNKNOWN;
        put64(head, i + 1);
        put64(head + 8, kind == FT_UNKNOWN ? 0 : st.st_ino);
        put32(head + 16, nl);
        head[20] = (u8)kind;
        u32 k = 24 < len - out ? 24 : len - out;
        memcpy(b + out, head, k);
        out += k;
        k = nl < len - out ? nl : len - out;
        memcpy(b + out, names[i], k);
        out += k;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    put32(u, out);
    return 0;
}

/* -- paths */
#define RESOLVE(dirfd, p, n, follow)                                   \
    int parent;                                                        \
    char name[MAX_PATH];                                               \
    {                                                                  \
        PTR(path_, p, n);                                              \
        u32 e_ = resolve(dirfd, path_, n, follow, &parent, name);      \
        if (e_) return e_;                                             \
    }

u32 IMPORT(path_open)(W, u32 dirfd, u32 lookup, u32 p, u32 n, u32 oflags, u64 rights, u64 inheriting,
                      u32 fdflags, u32 out) {
    (void)inheriting;
    PTR(o, out, 4);
    RESOLVE(dirfd, p, n, lookup & 1);
    int write_ = (rights & (1ull << 6)) || ((oflags & (1 | 8)) && !(oflags & 2));
    int read_ = (rights & (1ull << 1)) || !write_;
    int flags = O_NOFOLLOW | O_CLOEXEC;
    if (oflags & 2) flags |= O_RDONLY | O_DIRECTORY;
    else flags |= read_ && write_ ? O_RDWR : write_ ? O_WRONLY : O_RDONLY;
    if (oflags & 1) flags |= O_CREAT;
    if (oflags & 4) flags |= O_EXCL;
    if (oflags & 8) flags |= O_TRUNC;
    int h = openat(parent, name, flags, 0644);
    if (h < 0 && errno == EISDIR) h = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(parent);
    if (h < 0) return werr(e);
    int fd = 3;
    while (fd < MAX_FDS && fds[fd].host >= 0) fd++;
    if (fd == MAX_FDS) { close(h); return W_EMFILE; }
    struct stat st;
    fstat(h, &st);
    fds[fd] = (wfd){h, filetype(st.st_mode), NULL, (int)(fdflags & 1)};
    put32(o, fd);
    return 0;
}
u32 IMPORT(path_create_directory)(W, u32 dirfd, u32 p, u32 n) {
    RESOLVE(dirfd, p, n, 0);
    int r = mkdirat(parent, name, 0755), e = errno;
    close(parent);
    return r < 0 ? werr(e) : 0;
}
u32 IMPORT(path_remove_directory)(W, u32 dirfd, u32 p, u32 n) {
    RESOLVE(dirfd, p, n, 0);
    int r = unlinkat(parent, name, AT_REMOVEDIR), e = errno;
    close(parent);
    return r < 0 ? werr(e) : 0;
}
u32 IMPORT(path_unlink_file)(W, u32 dirfd, u32 p, u32 n) {
    RESOLVE(dirfd, p, n, 0);
    int r = unlinkat(parent, name, 0), e = errno;
    close(parent);
    return r < 0 ? werr(e) : 0;
}
u32 IMPORT(path_filestat_get)(W, u32 dirfd, u32 lookup, u32 p, u32 n, u32 out) {
    PTR(o, out, 64);
    RESOLVE(dirfd, p, n, lookup & 1);
    struct stat st;
    int r = fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW), e = errno;
    close(parent);
    if (r < 0) return werr(e);
    filestat(o, &st);
    return 0;
}
u32 IMPORT(path_readlink)(W, u32 dirfd, u32 p, u32 n, u32 buf, u32 cap, u32 used) {
    PTR(b, buf, cap);
    PTR(u, used, 4);
    RESOLVE(dirfd, p, n, 0);
    ssize_t k = readlinkat(parent, name, (char *)b, cap);
    int e = errno;
    close(parent);
    if (k < 0) return werr(e);
    put32(u, (u32)k);
    return 0;
}
u32 IMPORT(path_rename)(W, u32 fd1, u32 p1, u32 n1, u32 fd2, u32 p2, u32 n2) {
    int parent2;
    char name2[MAX_PATH];
    {
        PTR(path2, p2, n2);
        u32 e2 = resolve(fd2, path2, n2, 0, &parent2, name2);
        if (e2) return e2;
    }
    int parent;
    char name[MAX_PATH];
    u8 *path1 = mem(w, p1, n1);
    u32 e1 = path1 ? resolve(fd1, path1, n1, 0, &parent, name) : W_EFAULT;
    if (e1) { close(parent2); return e1; }
    int r = renameat(parent, name, parent2, name2), e = errno;
    close(parent);
    close(parent2);
    return r < 0 ? werr(e) : 0;
}

/* -- the program */
static const char *env_or(const char *k, const char *dflt) {
    const char *v = getenv(k);
    return v ? v : dflt;
}

int main(int argc, char **argv) {
    char key[32];
    nargs = argc;
    args = malloc(sizeof(char *) * (argc + 1));
    args[0] = (char *)env_or("SLW_ARGV0", "module");
    for (int i = 1; i < argc; i++) args[i] = argv[i];
    nenv = atoi(env_or("SLW_NENV", "0"));
    envs = malloc(sizeof(char *) * (nenv + 1));
    for (int i = 0; i < nenv; i++) {
        snprintf(key, sizeof key, "SLW_ENV%d", i);
        envs[i] = (char *)env_or(key, "");
    }
    for (int i = 0; i < MAX_FDS; i++) fds[i].host = -1;
    for (int i = 0; i < 3; i++) fds[i] = (wfd){i, FT_CHAR, NULL, 0};
    int ndirs = atoi(env_or("SLW_NDIRS", "0"));
    for (int i = 0; i < ndirs && 3 + i < MAX_FDS; i++) {
        snprintf(key, sizeof key, "SLW_DIR%d", i);
        const char *d = env_or(key, ".");
        int h = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (h < 0) {
            fprintf(stderr, "wasm2c: cannot open preopened dir %s: %s\n", d, strerror(errno));
            return 125;
        }
        snprintf(key, sizeof key, "SLW_GUEST%d", i); /* the module's name for it (default: the host path) */
        fds[3 + i] = (wfd){h, FT_DIR, env_or(key, d), 0};
    }
    wasm_rt_init();
    Z_m_init_module();
    static Z_m_instance_t inst;
    static struct Z_wasi_snapshot_preview1_instance_t wasi;
    /* wasm2c.py defines these from the generated header: a module may import no WASI at all
     * (then instantiate takes no import instance) or export no memory */
#if SLW_WASI_IMPORTS
    Z_m_instantiate(&inst, &wasi);
#else
    Z_m_instantiate(&inst);
#endif
#if SLW_MEMORY_EXPORT
    wasi.memory = Z_mZ_memory(&inst);
#endif
    wasm_rt_trap_t trap = wasm_rt_impl_try();
    if (trap != WASM_RT_TRAP_NONE) {
        fflush(stdout);
        fprintf(stderr, "wasm2c trap: %s\n", wasm_rt_strerror(trap));
        return TRAP_EXIT;
    }
    Z_mZ__start(&inst);
    return 0;
}
