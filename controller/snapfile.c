/* Snapshot files: a checked header on each, whole-or-absent writes, and
 * guest RAM as a sparse image with a checksum per populated range. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <bulkhead/le.h>
#include <bulkhead/util.h>

#include "snapfile.h"

#define MAGIC	   "BULKHEAD"
#define BLOCK	   (2ULL << 20) /* the unit of the RAM copy */
#define PROGRESS   (64ULL << 20)
#define TMP_SUFFIX ".tmp"

static const char *kind_name(uint32_t kind, char buf[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(kind >> (8 * i));

		buf[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	buf[4] = '\0';
	return buf;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0, or -EBADMSG at the end of the file (short). */
static int read_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* A fresh name.tmp; one left by an interrupted write goes first. */
static int open_tmp(int dirfd, const char *name, char *tmp, size_t tmplen)
{
	int fd;

	if ((size_t)snprintf(tmp, tmplen, "%s" TMP_SUFFIX, name) >= tmplen)
		return -ENAMETOOLONG;
	fd = openat(dirfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		if (unlinkat(dirfd, tmp, 0) < 0)
			return -errno;
		fd = openat(
		    dirfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	return fd < 0 ? -errno : fd;
}

/* Syncs and closes fd, and renames tmp over name; on any failure tmp
 * goes. */
static int commit_tmp(int dirfd, int fd, const char *tmp, const char *name)
{
	int r = 0;

	if (fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

int bh_snapfile_write(int dirfd, const char *name, uint32_t kind,
		      const void *data, size_t len, char *err, size_t errlen)
{
	uint8_t hdr[BH_SNAP_HEADER_SIZE] = { 0 };
	char tmp[256];
	int fd, r;

	memcpy(hdr, MAGIC, 8);
	bh_put_le32(hdr + 8, kind);
	bh_put_le32(hdr + 12, BH_SNAP_VERSION);
	bh_put_le64(hdr + 16, len);
	bh_put_le64(hdr + 24, XXH3_64bits(data, len));
	fd = open_tmp(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create it: %s", name,
			 strerror(-fd));
		return fd;
	}
	r = write_all(fd, hdr, sizeof(hdr), 0);
	if (r == 0 && len)
		r = write_all(fd, data, len, sizeof(hdr));
	if (r < 0) {
		close(fd);
		unlinkat(dirfd, tmp, 0);
	} else {
		r = commit_tmp(dirfd, fd, tmp, name);
	}
	if (r < 0)
		snprintf(err, errlen, "%s: cannot write it: %s", name,
			 strerror(-r));
	return r;
}

int bh_snapfile_read(int dirfd, const char *name, uint32_t kind, size_t max,
		     void **data, size_t *len, char *err, size_t errlen)
{
	uint8_t hdr[BH_SNAP_HEADER_SIZE];
	char want[5], got[5];
	uint64_t plen;
	struct stat st;
	void *buf = NULL;
	int fd, r;

	*data = NULL;
	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", name,
			 r == -ENOENT ? "missing from the snapshot"
				      : strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", name);
		goto out;
	}
	if ((uint64_t)st.st_size < sizeof(hdr)) {
		r = -EBADMSG;
		snprintf(err, errlen,
			 "%s: truncated (%llu bytes, less than its header)",
			 name, (unsigned long long)st.st_size);
		goto out;
	}
	r = read_all(fd, hdr, sizeof(hdr), 0);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read it: %s", name,
			 strerror(-r));
		goto out;
	}
	if (memcmp(hdr, MAGIC, 8) != 0) {
		r = -EPROTO;
		snprintf(err, errlen, "%s: not a Bulkhead snapshot file", name);
		goto out;
	}
	if (bh_get_le32(hdr + 8) != kind) {
		r = -EPROTO;
		snprintf(err, errlen, "%s: holds '%s', not '%s'", name,
			 kind_name(bh_get_le32(hdr + 8), got),
			 kind_name(kind, want));
		goto out;
	}
	if (bh_get_le32(hdr + 12) != BH_SNAP_VERSION) {
		r = -EPROTO;
		snprintf(err, errlen,
			 "%s: format version %u; this bulkhead reads version "
			 "%u",
			 name, bh_get_le32(hdr + 12), BH_SNAP_VERSION);
		goto out;
	}
	plen = bh_get_le64(hdr + 16);
	if (plen > max) {
		r = -EBADMSG;
		snprintf(err, errlen,
			 "%s: says it holds %llu bytes, more than the %zu such "
			 "a file may",
			 name, (unsigned long long)plen, max);
		goto out;
	}
	if ((uint64_t)st.st_size != sizeof(hdr) + plen) {
		r = -EBADMSG;
		snprintf(err, errlen,
			 "%s: %s (%llu bytes after its header, which says "
			 "%llu)",
			 name,
			 (uint64_t)st.st_size < sizeof(hdr) + plen
			     ? "truncated"
			     : "longer than written",
			 (unsigned long long)(st.st_size - sizeof(hdr)),
			 (unsigned long long)plen);
		goto out;
	}
	buf = malloc(plen ? plen : 1);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	r = plen ? read_all(fd, buf, plen, sizeof(hdr)) : 0;
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read it: %s", name,
			 strerror(-r));
		goto out;
	}
	if (XXH3_64bits(buf, plen) != bh_get_le64(hdr + 24)) {
		r = -EBADMSG;
		snprintf(err, errlen,
			 "%s: corrupted (its checksum does not match)", name);
		goto out;
	}
	*data = buf;
	*len = plen;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

/* ---- guest RAM --------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	/* len is a multiple of 8 (pages), p malloc-aligned. */
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Where the memfd's pages are, from off: the next extent [*a, *b), or 0
 * when there is none. A file system without SEEK_DATA is one extent. */
static int next_extent(int fd, uint64_t off, uint64_t size, uint64_t *a,
		       uint64_t *b)
{
	off_t d, h;

	if (off >= size)
		return 0;
	d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			return 0;
		if (errno != EINVAL)
			return -errno;
		*a = off;
		*b = size;
		return 1;
	}
	h = lseek(fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	*a = (uint64_t)d;
	*b = (uint64_t)h < size ? (uint64_t)h : size;
	return *a < *b;
}

struct range_list {
	struct bh_snapmem_range *r;
	size_t n, cap;
	XXH3_state_t *st; /* the open range's hash */
};

static int range_add(struct range_list *l, uint64_t off, const uint8_t *p,
		     size_t len)
{
	struct bh_snapmem_range *last = l->n ? &l->r[l->n - 1] : NULL;

	if (last && last->offset + last->length == off) {
		last->length += len;
	} else {
		if (last)
			last->hash = XXH3_64bits_digest(l->st);
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 64;
			void *r = realloc(l->r, cap * sizeof(*l->r));

			if (!r)
				return -ENOMEM;
			l->r = r;
			l->cap = cap;
		}
		l->r[l->n++] = (struct bh_snapmem_range){ off, len, 0 };
		XXH3_64bits_reset(l->st);
	}
	XXH3_64bits_update(l->st, p, len);
	return 0;
}

int bh_snapmem_save(int memfd, uint64_t size, int dirfd, const char *name,
		    struct bh_snapmem_range **ranges, size_t *nranges,
		    bh_snapmem_progress_fn progress, void *arg, char *err,
		    size_t errlen)
{
	struct range_list l = { 0 };
	uint64_t off = 0, a = 0, b = 0, done = 0, next_report = PROGRESS;
	uint8_t *buf = NULL;
	char tmp[256];
	int fd, r;

	*ranges = NULL;
	*nranges = 0;
	fd = open_tmp(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create it: %s", name,
			 strerror(-fd));
		return fd;
	}
	l.st = XXH3_createState();
	buf = malloc(BLOCK);
	if (!l.st || !buf) {
		r = -ENOMEM;
		goto fail;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto fail;
	}
	while ((r = next_extent(memfd, off, size, &a, &b)) > 0) {
		for (uint64_t at = a; at < b;) {
			/* Whole blocks, but never past the extent. */
			uint64_t end = (at / BLOCK + 1) * BLOCK;
			size_t n = (size_t)((end < b ? end : b) - at);

			r = read_all(memfd, buf, n, at);
			if (r == 0 && !all_zero(buf, n)) {
				r = write_all(fd, buf, n, at);
				if (r == 0)
					r = range_add(&l, at, buf, n);
			}
			if (r < 0)
				goto fail;
			at += n;
			done += n;
			if (progress && done >= next_report) {
				progress(arg, at, size);
				next_report = done + PROGRESS;
			}
		}
		off = b;
	}
	if (r < 0)
		goto fail;
	if (l.n)
		l.r[l.n - 1].hash = XXH3_64bits_digest(l.st);
	r = commit_tmp(dirfd, fd, tmp, name);
	fd = -1;
	if (r < 0)
		goto fail;
	if (progress)
		progress(arg, size, size);
	XXH3_freeState(l.st);
	free(buf);
	*ranges = l.r;
	*nranges = l.n;
	return 0;
fail:
	if (fd >= 0) {
		close(fd);
		unlinkat(dirfd, tmp, 0);
	}
	snprintf(err, errlen, "%s: cannot write guest memory: %s", name,
		 strerror(-r));
	if (l.st)
		XXH3_freeState(l.st);
	free(l.r);
	free(buf);
	return r;
}

int bh_snapmem_load(int dirfd, const char *name, uint64_t size,
		    const struct bh_snapmem_range *ranges, size_t nranges,
		    int memfd, bh_snapmem_progress_fn progress, void *arg,
		    char *err, size_t errlen)
{
	uint64_t prev_end = 0, total = 0, done = 0, next_report = PROGRESS;
	XXH3_state_t *st = NULL;
	uint8_t *buf = NULL;
	struct stat sb;
	int fd, r = 0;

	for (size_t i = 0; i < nranges; i++) {
		const struct bh_snapmem_range *g = &ranges[i];
		uint64_t end;

		if (!g->length || g->offset < prev_end ||
		    __builtin_add_overflow(g->offset, g->length, &end) ||
		    end > size) {
			snprintf(err, errlen,
				 "%s: range %zu (%llu bytes at 0x%llx) is "
				 "outside guest memory or out of order",
				 name, i, (unsigned long long)g->length,
				 (unsigned long long)g->offset);
			return -EINVAL;
		}
		prev_end = end;
		total += g->length;
	}
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", name,
			 r == -ENOENT ? "missing from the snapshot"
				      : strerror(-r));
		return r;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != size) {
		r = -EBADMSG;
		snprintf(err, errlen,
			 "%s: %llu bytes, not the %llu of the guest's memory",
			 name, (unsigned long long)sb.st_size,
			 (unsigned long long)size);
		goto out;
	}
	st = XXH3_createState();
	buf = malloc(BLOCK);
	if (!st || !buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	for (size_t i = 0; i < nranges; i++) {
		const struct bh_snapmem_range *g = &ranges[i];

		XXH3_64bits_reset(st);
		for (uint64_t at = g->offset; at < g->offset + g->length;) {
			uint64_t left = g->offset + g->length - at;
			size_t n = (size_t)(left < BLOCK ? left : BLOCK);

			r = read_all(fd, buf, n, at);
			if (r == 0)
				r = write_all(memfd, buf, n, at);
			if (r < 0) {
				snprintf(err, errlen,
					 "%s: cannot load guest memory: %s",
					 name, strerror(-r));
				goto out;
			}
			XXH3_64bits_update(st, buf, n);
			at += n;
			done += n;
			if (progress && done >= next_report) {
				progress(arg, done, total);
				next_report = done + PROGRESS;
			}
		}
		if (XXH3_64bits_digest(st) != g->hash) {
			r = -EBADMSG;
			snprintf(err, errlen,
				 "%s: corrupted (the %llu bytes at 0x%llx do "
				 "not match their checksum)",
				 name, (unsigned long long)g->length,
				 (unsigned long long)g->offset);
			goto out;
		}
	}
	if (progress)
		progress(arg, total, total);
out:
	if (st)
		XXH3_freeState(st);
	free(buf);
	close(fd);
	return r;
}
