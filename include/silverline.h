/*
 * silverline.h - the host API that SilverLine runtimes give WebAssembly modules.
 *
 * Functions are imported from the host module "silverline" (see docs/modules.md).
 * Every function returns a non-negative value on success and a negative SL_E* code
 * on failure; no call ever traps on bad input. Build with:
 *     clang --target=wasm32-wasi -O2 -I include mod.c -o mod.wasm
 */
#ifndef SILVERLINE_H
#define SILVERLINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Channel flags for sl_open (docs/protocol.md, "Channels"). */
#define SL_READ  0x1 /* receive messages published on the topic */
#define SL_WRITE 0x2 /* publish on the topic (no '+' or '#' allowed) */
#define SL_QOS1  0x4
#define SL_QOS2  0x8

/* Error codes (returned negated). */
#define SL_EBADF     (-1) /* fd not open, or not open for this direction */
#define SL_EACCES    (-2) /* topic not granted by the module's create message */
#define SL_EINVAL    (-3) /* bad argument: flags, wildcard in a writable topic, bad buffer */
#define SL_ETIMEDOUT (-4) /* receive/poll timed out */
#define SL_EMFILE    (-5) /* too many open channels (256 per module) */
#define SL_EAGAIN    (-6) /* the runtime could not take the message (ring full) */
#define SL_EINTR     (-7) /* the module is being stopped: return from main soon */

/* Log levels for sl_log (Python's numeric levels). */
#define SL_LOG_DEBUG 10
#define SL_LOG_INFO  20
#define SL_LOG_WARN  30
#define SL_LOG_ERROR 40

/* Timeouts for sl_receive / sl_poll. */
#define SL_FOREVER (-1)
#define SL_NOWAIT  0

#define SL_IMPORT(name) __attribute__((import_module("silverline"), import_name(name)))

/* Open a channel on `topic` (not NUL-terminated, `len` bytes). Returns fd >= 0.
 * "$SL/x" topics are private to the node: they become "{realm}/x/{module uuid}". */
SL_IMPORT("open") int32_t sl_open_n(const char *topic, size_t len, int32_t flags);

/* Close a channel. Returns 0. */
SL_IMPORT("close") int32_t sl_close(int32_t fd);

/* Publish `len` bytes on a channel opened with SL_WRITE. Returns 0. */
SL_IMPORT("publish") int32_t sl_publish(int32_t fd, const void *buf, size_t len);

/* Receive one message from a channel opened with SL_READ. Returns the message's full
 * length; when it is larger than `cap`, only `cap` bytes are copied (the rest is dropped,
 * like recv(MSG_TRUNC)). timeout_ms: SL_FOREVER, SL_NOWAIT or milliseconds. */
SL_IMPORT("receive") int32_t sl_receive(int32_t fd, void *buf, size_t cap, int32_t timeout_ms);

/* Wait until one of `nfds` channels has a message. Returns that fd (the first ready one in
 * the array), or SL_ETIMEDOUT. */
SL_IMPORT("poll") int32_t sl_poll(const int32_t *fds, size_t nfds, int32_t timeout_ms);

/* Write the module's uuid (36 characters, plus a NUL when `cap` > 36). Returns 36. */
SL_IMPORT("get_uuid") int32_t sl_get_uuid(char *buf, size_t cap);

/* Log `len` bytes of text at `level` through the runtime's log. Returns 0. */
SL_IMPORT("log") int32_t sl_log_n(int32_t level, const char *text, size_t len);

/* Conveniences for NUL-terminated strings. */
static inline int32_t sl_open(const char *topic, int32_t flags) {
    return sl_open_n(topic, strlen(topic), flags);
}
static inline int32_t sl_log(int32_t level, const char *text) {
    return sl_log_n(level, text, strlen(text));
}
static inline int32_t sl_publish_str(int32_t fd, const char *text) {
    return sl_publish(fd, text, strlen(text));
}

#ifdef __cplusplus
}
#endif
#endif /* SILVERLINE_H */
