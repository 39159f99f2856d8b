/* The files of a snapshot directory: each with a header that names its
 * kind and format version and checksums its payload, written whole or not
 * at all; guest RAM as a sparse image whose populated ranges are listed,
 * each with its checksum, in a file of its own. See docs/ARCHITECTURE.md,
 * "Snapshots". */
#ifndef BH_CONTROLLER_SNAPFILE_H
#define BH_CONTROLLER_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define BH_SNAP_VERSION 1

/* What a file holds, in its header (four ASCII bytes, little-endian). */
#define BH_SNAP_KIND(a, b, c, d)                                    \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | \
	 (uint32_t)(d) << 24)
#define BH_SNAP_CONFIG BH_SNAP_KIND('C', 'O', 'N', 'F')
#define BH_SNAP_STATE  BH_SNAP_KIND('S', 'T', 'A', 'T')
#define BH_SNAP_MEMMAP BH_SNAP_KIND('M', 'M', 'A', 'P')

#define BH_SNAP_HEADER_SIZE 32

/*
 * Writes name in the directory dirfd: the header, then len bytes of data.
 * Through name.tmp (created, never an existing file followed), synced, then
 * renamed over name, so that name is whole or absent. 0, or -errno with a
 * message naming the file in err.
 */
int bh_snapfile_write(int dirfd, const char *name, uint32_t kind,
		      const void *data, size_t len, char *err, size_t errlen);

/*
 * Reads name back: its header must say kind, BH_SNAP_VERSION, a payload of
 * at most max bytes that is all there (no more, no less) and matches its
 * checksum. 0 with *data (malloc'd, the caller frees) and *len, or -errno
 * with a message naming the file and the problem in err: -ENOENT missing,
 * -EPROTO another kind or version, -EBADMSG truncated, too long or
 * corrupted.
 */
int bh_snapfile_read(int dirfd, const char *name, uint32_t kind, size_t max,
		     void **data, size_t *len, char *err, size_t errlen);

/* One populated range of guest RAM in the memory image. */
struct bh_snapmem_range {
	uint64_t offset, length;
	uint64_t hash; /* XXH3-64 of its bytes */
};

/* Called now and then during a long copy with what is done of the total. */
typedef void (*bh_snapmem_progress_fn)(void *arg, uint64_t done,
				       uint64_t total);

/*
 * Copies the size bytes of memfd (guest RAM) into name in dirfd as a sparse
 * file of that size: only the ranges the memfd has pages in take space (its
 * holes stay holes), and of those, whole 2 MiB blocks of zeroes are left
 * out too. *ranges (malloc'd) and *nranges list what was written, sorted.
 * Through name.tmp as bh_snapfile_write. 0 or -errno with err.
 */
int bh_snapmem_save(int memfd, uint64_t size, int dirfd, const char *name,
		    struct bh_snapmem_range **ranges, size_t *nranges,
		    bh_snapmem_progress_fn progress, void *arg, char *err,
		    size_t errlen);

/*
 * The other way: checks that name is a file of exactly size bytes and that
 * ranges are sorted, disjoint and inside it, then copies each range into
 * memfd (which holds size bytes of zeroes), checking its hash. 0 or -errno
 * with a message naming the file and the problem: -EBADMSG for a range that
 * does not match its hash or a file of another size, -EINVAL for a range
 * list that does not fit.
 */
int bh_snapmem_load(int dirfd, const char *name, uint64_t size,
		    const struct bh_snapmem_range *ranges, size_t nranges,
		    int memfd, bh_snapmem_progress_fn progress, void *arg,
		    char *err, size_t errlen);

#endif
