/* Small helpers: size and number parsing, full reads and writes, files. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bulkhead/util.h"

/*
 * Parses the leading decimal digits of s by hand: strtoull would accept
 * leading blanks, a sign and wrap "-1" to UINT64_MAX.
 */
static int parse_digits(const char *s, uint64_t *val, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*val = v;
	*end = p;
	return 0;
}

int bh_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mult = 1;
	const char *p;
	int ret;

	if (!s)
		return -EINVAL;
	ret = parse_digits(s, &v, &p);
	if (ret < 0)
		return ret;
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = BH_KIB;
		break;
	case 'm':
	case 'M':
		mult = BH_MIB;
		break;
	case 'g':
	case 'G':
		mult = BH_GIB;
		break;
	case 't':
	case 'T':
		mult = BH_GIB * 1024;
		break;
	default:
		return -EINVAL;
	}
	if (*p != '\0' && p[1] != '\0')
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int bh_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int ret;

	if (!s)
		return -EINVAL;
	ret = parse_digits(s, &v, &end);
	if (ret < 0)
		return ret;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int bh_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bh_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void bh_closep(int *fd)
{
	int saved_errno = errno;

	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	errno = saved_errno;
}

int bh_read_fd(int fd, size_t max_len, uint8_t **buf, size_t *len)
{
	/* One byte past max_len tells "exactly max_len" from "larger". */
	size_t limit = max_len < SIZE_MAX - 1 ? max_len + 1 : SIZE_MAX - 1;
	uint8_t *data = NULL, *tmp;
	size_t cap, got = 0;
	struct stat st;
	int ret;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max_len)
		return -EFBIG;

	/* st_size is only a hint: /proc files report 0 and files can grow. */
	cap = (size_t)st.st_size + 1;
	if (cap < 4096)
		cap = 4096;
	if (cap > limit)
		cap = limit;
	data = malloc(cap + 1);
	if (!data)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (got == cap) {
			if (cap >= limit) {
				ret = -EFBIG;
				goto err_free;
			}
			cap = cap > limit / 2 ? limit : cap * 2;
			tmp = realloc(data, cap + 1);
			if (!tmp) {
				ret = -ENOMEM;
				goto err_free;
			}
			data = tmp;
		}
		/* From the start, whatever the fd's offset: the same fd can be
		 * read again. */
		n = pread(fd, data + got, cap - got, (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max_len) {
		ret = -EFBIG;
		goto err_free;
	}
	/* A terminating NUL lets text callers use the buffer as a string. */
	data[got] = '\0';
	*buf = data;
	*len = got;
	return 0;

err_free:
	free(data);
	return ret;
}

int bh_open_file(const char *path)
{
	/* O_NONBLOCK so that opening a FIFO does not hang before fstat can
	 * reject it; it has no effect on regular files. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

int bh_read_file(const char *path, size_t max_len, uint8_t **buf, size_t *len)
{
	int fd = bh_open_file(path);
	int ret;

	if (fd < 0)
		return fd;
	ret = bh_read_fd(fd, max_len, buf, len);
	close(fd);
	return ret;
}

uint64_t bh_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

char *bh_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		abort();
	return p;
}

int bh_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

void bh_format_size(uint64_t v, char *out, size_t outlen)
{
	static const char suffixes[] = "KMGT";
	const char *s = NULL;
	size_t i;

	for (i = 0; i < sizeof(suffixes) - 1 && v && v % 1024 == 0; i++) {
		v /= 1024;
		s = &suffixes[i];
	}
	if (s)
		snprintf(out, outlen, "%" PRIu64 "%c", v, *s);
	else
		snprintf(out, outlen, "%" PRIu64, v);
}

size_t bh_fmt_stored(int ret, size_t size)
{
	if (ret < 0 || size == 0)
		return 0;
	return (size_t)ret < size ? (size_t)ret : size - 1;
}

static void sort_swap(unsigned char *a, unsigned char *b, size_t size)
{
	for (size_t i = 0; i < size; i++) {
		unsigned char t = a[i];

		a[i] = b[i];
		b[i] = t;
	}
}

/* Moves element i down the heap of the first n elements until neither
 * child is larger. */
static void sort_sift(unsigned char *b, size_t i, size_t n, size_t size,
		      int (*cmp)(const void *, const void *, void *), void *arg)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = 2 * i + 2;

		if (l < n && cmp(b + l * size, b + big * size, arg) > 0)
			big = l;
		if (r < n && cmp(b + r * size, b + big * size, arg) > 0)
			big = r;
		if (big == i)
			return;
		sort_swap(b + i * size, b + big * size, size);
		i = big;
	}
}

void bh_sort_r(void *base, size_t n, size_t size,
	       int (*cmp)(const void *, const void *, void *), void *arg)
{
	unsigned char *b = base;

	if (n < 2 || size == 0)
		return;
	for (size_t i = n / 2; i-- > 0;)
		sort_sift(b, i, n, size, cmp, arg);
	for (size_t end = n - 1; end > 0; end--) {
		sort_swap(b, b + end * size, size);
		sort_sift(b, 0, end, size, cmp, arg);
	}
}
