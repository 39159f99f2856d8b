/* Guest console output towards a host fd, written so that the writer never
 * blocks: a bounded buffer in front of a non-blocking fd, and a size limit
 * when the fd is a regular file. Used by the controller (serial port) and
 * the console worker (virtio-console). */
#ifndef BULKHEAD_OUTBUF_H
#define BULKHEAD_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What becomes of a file output that reached its max_size. */
enum bh_out_full {
	BH_OUT_FULL_TRUNCATE = 0, /* empty the file and go on writing */
	BH_OUT_FULL_STOP,	  /* keep what is there, drop the rest */
};

/* The output file limit when none is given: big enough for any boot log,
 * small enough that a guest printing in a loop cannot fill a host disk. */
#define BH_OUT_DEFAULT_MAX_SIZE (64ULL * 1024 * 1024)
#define BH_OUT_MIN_MAX_SIZE	(4ULL * 1024)
#define BH_OUT_MAX_MAX_SIZE	(1024ULL * 1024 * 1024 * 1024) /* 1 TiB */
/* Bytes held while the reader (a terminal, a pipe) does not keep up; what
 * does not fit is dropped and counted. */
#define BH_OUT_BUF_SIZE (64 * 1024)

struct bh_outbuf {
	const char *name; /* for log messages ("serial", "console") */
	int fd;		  /* borrowed; -1 when nothing is written */
	bool limited;	  /* fd is a regular file: max_size applies */
	bool broken;	  /* a write failed: output is discarded */
	bool stopped;	  /* on_full=stop and the file is full */
	enum bh_out_full on_full;
	uint64_t max_size;
	uint64_t file_size; /* bytes in the file, written or queued */
	uint8_t *buf;	    /* ring of bytes the fd did not take yet */
	size_t head, len;
	uint64_t written;     /* bytes the fd took */
	uint64_t dropped;     /* bytes discarded: no room, full, or broken */
	uint64_t truncations; /* times on_full=truncate emptied the file */
};

/*
 * Prepares o for fd (borrowed; -1 discards everything). Makes fd's open file
 * description non-blocking, and for a regular file append-only (so that
 * emptying it needs only ftruncate), so the caller passes a description no
 * other process relies on. max_size 0 means no limit (for an output the
 * user redirected, such as a tty-mode stdout). Needs fstat and fcntl, hence
 * is called before a seccomp filter that lacks them. 0 or -errno.
 */
int bh_outbuf_init(struct bh_outbuf *o, const char *name, int fd,
		   uint64_t max_size, enum bh_out_full on_full);
void bh_outbuf_free(struct bh_outbuf *o);

/* Queues len guest bytes: writes what the fd takes now, keeps what fits in
 * the buffer, drops and counts the rest. Never blocks. Returns the bytes
 * dropped by this call. */
size_t bh_outbuf_write(struct bh_outbuf *o, const void *data, size_t len);
/* Writes queued bytes as far as the fd takes them (call when it is
 * writable). Never blocks. */
void bh_outbuf_flush(struct bh_outbuf *o);
/* Queued bytes wait for the fd to become writable. */
bool bh_outbuf_pending(const struct bh_outbuf *o);

/* "truncate" or "stop"; and back: 0 or -EINVAL. */
const char *bh_out_full_name(enum bh_out_full f);
int bh_out_full_parse(const char *s, enum bh_out_full *out);

#endif
