/* wasi_fs DIR: files and directories inside a preopened dir (create, write, seek, read, stat,
 * readdir, rename, unlink, mkdir, rmdir); `wasi_fs DIR escape` tries to leave DIR through `..`
 * and through a symlink and prints what it got (a sandbox must refuse both). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[1024];
static const char *P(const char *dir, const char *name) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { printf("opendir failed: %s\n", strerror(errno)); return; }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], cmp);
    printf("entries:");
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

static void try_read(const char *what, const char *p) {
    FILE *f = fopen(p, "r");
    if (!f) { printf("%s: refused\n", what); return; }
    char buf[64] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    printf("%s: READ %zu bytes: %s", what, n, buf);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: wasi_fs DIR [escape]\n"); return 2; }
    const char *dir = argv[1];
    if (argc > 2 && strcmp(argv[2], "escape") == 0) {
        char up[1024];
        snprintf(up, sizeof up, "%s/../secret.txt", dir);
        try_read("dotdot", up);
        try_read("symlink", P(dir, "link"));
        int fd = open(P(dir, "../created.txt"), O_WRONLY | O_CREAT, 0644);
        printf("create outside: %s\n", fd >= 0 ? "CREATED" : "refused");
        return 0;
    }
    list(dir);
    /* read with seek */
    int fd = open(P(dir, "b.txt"), O_RDWR);
    if (fd < 0) { printf("open b.txt: %s\n", strerror(errno)); return 1; }
    char buf[32] = {0};
    lseek(fd, 3, SEEK_SET);
    ssize_t n = read(fd, buf, 4);
    printf("seek 3 read %zd: %.*s\n", n, (int)n, buf);
    off_t end = lseek(fd, 0, SEEK_END);
    printf("size by seek: %lld\n", (long long)end);
    n = write(fd, "ABC", 3);
    printf("appended %zd\n", n);
    lseek(fd, -5, SEEK_CUR);
    n = read(fd, buf, 5);
    printf("tail: %.*s\n", (int)n, buf);
    close(fd);
    struct stat st;
    if (stat(P(dir, "b.txt"), &st) == 0) printf("stat size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));
    /* directories */
    printf("mkdir: %d\n", mkdir(P(dir, "sub"), 0755));
    FILE *f = fopen(P(dir, "sub/new.txt"), "w");
    if (!f) { printf("create sub/new.txt: %s\n", strerror(errno)); return 1; }
    fputs("new file\n", f);
    fclose(f);
    if (stat(P(dir, "sub"), &st) == 0) printf("sub is dir %d\n", S_ISDIR(st.st_mode));
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/sub/new.txt", dir);
    snprintf(to, sizeof to, "%s/moved.txt", dir);
    printf("rename sub/new.txt -> moved.txt: %d\n", rename(from, to));
    printf("rmdir sub: %d\n", rmdir(P(dir, "sub")));
    printf("unlink a.txt: %d\n", unlink(P(dir, "a.txt")));
    printf("open missing: %s\n", open(P(dir, "missing"), O_RDONLY) < 0 && errno == ENOENT ? "ENOENT" : "?");
    printf("rmdir of a file: %s\n", rmdir(P(dir, "b.txt")) < 0 && errno == ENOTDIR ? "ENOTDIR" : "?");
    list(dir);
    return 0;
}
