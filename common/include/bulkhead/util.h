/* Small helpers shared by every process: sizes, full reads and writes, fds. */
#ifndef BULKHEAD_UTIL_H
#define BULKHEAD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BH_KIB		 (1024ULL)
#define BH_MIB		 (1024ULL * 1024)
#define BH_GIB		 (1024ULL * 1024 * 1024)

/*
 * Parses a size: decimal digits with an optional suffix K, M, G or T
 * (binary multiples, case-insensitive, an optional trailing "B" or "iB" is not
 * accepted). "512M" -> 536870912. Returns 0, or -EINVAL for empty input,
 * junk, a missing number, or -ERANGE on overflow of uint64_t.
 */
int bh_parse_size(const char *s, uint64_t *out);

/* Parses an unsigned decimal integer in [min, max]. 0, -EINVAL or -ERANGE. */
int bh_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Loops over short reads/writes and EINTR. 0 on success; read_full returns
 * -EPIPE at an early end of file. Other errors as -errno. */
int bh_read_full(int fd, void *buf, size_t len);
int bh_write_full(int fd, const void *buf, size_t len);

/* Closes *fd if it is >= 0 and sets it to -1. Keeps errno. */
void bh_closep(int *fd);

/*
 * Reads a whole regular file (at most max_len bytes) into a malloc'd buffer.
 * 0, or -errno; -EFBIG if the file is larger than max_len, -EISDIR for a
 * directory, -EINVAL for anything that is not a regular file.
 */
int bh_read_file(const char *path, size_t max_len, uint8_t **buf, size_t *len);

/* Opens path read-only (close-on-exec, no controlling terminal, and without
 * blocking on a FIFO) for bh_read_fd: the fd, or -errno. */
int bh_open_file(const char *path);

/* bh_read_file on an open fd, read from its start whatever its offset, so
 * that the same file can be read again later. */
int bh_read_fd(int fd, size_t max_len, uint8_t **buf, size_t *len);

/* Monotonic clock in nanoseconds. */
uint64_t bh_now_ns(void);

/* strdup that aborts when memory runs out; NULL gives "". */
char *bh_xstrdup(const char *s);
/* Formats a message into err (if any) and returns -EINVAL: the error path
 * of the option and config parsers. */
int bh_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A byte count with the largest of K, M, G, T that divides it exactly
 * ("512M", "3G", "4097"), as the command line spells sizes. */
void bh_format_size(uint64_t v, char *out, size_t outlen);
/*
 * The bytes that snprintf or vsnprintf stored in a buffer of size bytes
 * (without the NUL), given what it returned: the length it wanted, which
 * for a truncated string is more than the buffer holds and must never be
 * used as a length. 0 for an error or an empty buffer.
 */
size_t bh_fmt_stored(int ret, size_t size);
/*
 * Sorts n elements of size bytes in place, as qsort_r does
 * but without its system calls: glibc's qsort_r asks the kernel for the
 * machine's memory (sysinfo) before it sorts more than 1 KiB, which no
 * sandboxed process's filter allows. A heapsort: no allocation, O(n log n)
 * whatever the input, not stable.
 */
void bh_sort_r(void *base, size_t n, size_t size,
	       int (*cmp)(const void *, const void *, void *), void *arg);

#endif
