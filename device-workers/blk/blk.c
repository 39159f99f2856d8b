/* blk/blk: the virtio-blk device worker, serving guest block requests from
 * one disk image fd through io_uring, or synchronously where that is
 * refused. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>

#include <liburing.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "worker.h"

#define BLK_SECTOR_SHIFT 9
#define BLK_SECTOR_SIZE	 (1u << BLK_SECTOR_SHIFT)
#define BLK_HDR_SIZE	 16u
/* Per-request limits offered to the driver: a discard only punches holes,
 * but a write-zeroes may fall back to writing, so it is kept shorter. */
#define BLK_MAX_DISCARD_SECTORS	   (1u << 22)
#define BLK_MAX_WRITE_ZERO_SECTORS (1u << 16)
#define BLK_MAX_SEGS		   1u
/* Aligned buffers for the write-zeroes fallback and for O_DIRECT requests
 * whose guest buffers the host refuses. */
#define BLK_ZERO_SIZE	(64u * 1024)
#define BLK_BOUNCE_SIZE (256u * 1024)
#define BLK_BUF_ALIGN	4096u

/* Requests in flight with io_uring; each holds a chain's iovecs. */
#define BLK_URING_DEPTH 64

/* The part of struct virtio_blk_config up to write_zeroes_may_unmap. */
#define BLK_CONFIG_LEN                                 \
	(offsetof(struct virtio_blk_config, unused1) + \
	 sizeof(((struct virtio_blk_config *)0)->unused1))

enum blk_op { BLK_OP_READ, BLK_OP_WRITE, BLK_OP_FLUSH };

/* A request between pop and push. */
struct blk_slot {
	struct bh_vq_req req;
	struct iovec data[BH_VQ_MAX_IOV];
	unsigned int q;
	uint8_t *status; /* the guest's status byte */
	enum blk_op op;
	struct iovec *iov; /* what is left to transfer */
	unsigned int niov;
	uint64_t off, len;     /* what is left */
	uint64_t start, total; /* the whole request */
	bool started;	       /* bytes moved: no retry through the bounce */
	struct blk_slot *next_free;
};

struct blk {
	int fd;
	bool readonly;
	bool direct;
	uint32_t blk_size;
	uint64_t capacity; /* in 512-byte sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	uint8_t *zero;
	uint8_t *bounce; /* NULL unless direct */

	struct blk_slot *slots;
	unsigned int nslots;
	struct blk_slot *free;
	uint32_t pending; /* queues left with requests for want of a slot */
	uint32_t touched; /* queues pushed to since their last notify */

	bool uring; /* else synchronous I/O, one request at a time */
	struct io_uring ring;
	int ring_efd;
	unsigned int inflight;
};

/* io_uring_enter and the eventfd read only with io_uring; the ring itself
 * is restricted to readv, writev and fsync on the disk (see
 * blk_uring_init), so it does not reopen what seccomp closes. */
static const char *const blk_syscalls[] = {
	"preadv",    "pwritev", "pread64",	  "pwrite64", "fdatasync",
	"fallocate", "read",	"io_uring_enter", NULL,
};

/* Copies len bytes at offset skip of the iovecs into buf; 0 or -EINVAL if
 * they hold fewer. */
static int iov_read(const struct iovec *iov, unsigned int n, size_t skip,
		    void *buf, size_t len)
{
	uint8_t *p = buf;

	for (unsigned int i = 0; i < n && len > 0; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		memcpy(p, (uint8_t *)iov[i].iov_base + skip, l);
		p += l;
		len -= l;
		skip = 0;
	}
	return len ? -EINVAL : 0;
}

/* Fills dst with the iovecs of src after the first skip bytes; returns the
 * count. */
static unsigned int iov_tail(const struct iovec *src, unsigned int n,
			     size_t skip, struct iovec *dst)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[k].iov_len = src[i].iov_len - skip;
		skip = 0;
		k++;
	}
	return k;
}

/* Drops the first done bytes of *iov / *n after a partial transfer. */
static void iov_advance(struct iovec **iov, unsigned int *n, size_t done)
{
	while (*n > 0 && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

static void iov_zero(struct iovec *iov, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

/*
 * O_DIRECT refuses guest buffers that are not aligned as the host device
 * wants; such requests go through an aligned buffer. The file range itself
 * must still be aligned to the block size offered to the driver.
 */
static int blk_bounce(struct blk *b, bool write, struct iovec *iov,
		      unsigned int n, uint64_t off, uint64_t len)
{
	if (off % b->blk_size || len % b->blk_size)
		return -EINVAL;
	while (len > 0) {
		size_t chunk = len < BLK_BOUNCE_SIZE ? len : BLK_BOUNCE_SIZE;
		size_t got = 0;

		if (write) {
			/* iov holds len >= chunk bytes */
			size_t c = 0;

			for (unsigned int i = 0; i < n && c < chunk; i++) {
				size_t l = iov[i].iov_len;

				if (l > chunk - c)
					l = chunk - c;
				memcpy(b->bounce + c, iov[i].iov_base, l);
				c += l;
			}
		}
		while (got < chunk) {
			ssize_t r = write ? pwrite(b->fd, b->bounce + got,
						   chunk - got, off + got)
					  : pread(b->fd, b->bounce + got,
						  chunk - got, off + got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0) {
				if (write)
					return -EIO;
				memset(b->bounce + got, 0, chunk - got);
				break;
			}
			got += (size_t)r;
		}
		if (!write)
			bh_iov_write(iov, n, b->bounce, chunk);
		iov_advance(&iov, &n, chunk);
		off += chunk;
		len -= chunk;
	}
	return 0;
}

/* Transfers len bytes at off between the disk and iov (consumed). A read past
 * the end of a file that shrank reads zeroes. 0 or -errno. */
static int blk_rw(struct blk *b, bool write, struct iovec *iov, unsigned int n,
		  uint64_t off, uint64_t len)
{
	bool first = true;

	while (len > 0) {
		int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
		ssize_t r = write ? pwritev(b->fd, iov, cnt, (off_t)off)
				  : preadv(b->fd, iov, cnt, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EINVAL && b->direct && first)
			return blk_bounce(b, write, iov, n, off, len);
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (write)
				return -EIO;
			iov_zero(iov, n);
			return 0;
		}
		first = false;
		iov_advance(&iov, &n, (size_t)r);
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

static int blk_write_zero_bytes(struct blk *b, uint64_t off, uint64_t len)
{
	while (len > 0) {
		size_t chunk = len < BLK_ZERO_SIZE ? len : BLK_ZERO_SIZE;
		ssize_t r = pwrite(b->fd, b->zero, chunk, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/*
 * Checks the guest-controlled range [sector * 512, + len) against the
 * capacity without overflow; returns the byte offset in *off.
 */
static bool blk_range_ok(const struct blk *b, uint64_t sector, uint64_t len,
			 uint64_t *off)
{
	if (sector > b->capacity)
		return false;
	*off = sector << BLK_SECTOR_SHIFT;
	return len <= (b->capacity << BLK_SECTOR_SHIFT) - *off;
}

/* One discard or write-zeroes segment: the guest-controlled segment list
 * must hold exactly what was offered (BLK_MAX_SEGS). */
static uint8_t blk_discard_wz(struct blk *b, bool wz, const struct bh_vq_req *r,
			      uint64_t data_len)
{
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t sector, off, len;
	uint32_t nsec, flags, max;
	int mode, ret;

	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (data_len == 0 || data_len % sizeof(seg) ||
	    data_len / sizeof(seg) > BLK_MAX_SEGS)
		return VIRTIO_BLK_S_IOERR;
	if (iov_read(r->iov, r->n_out, BLK_HDR_SIZE, &seg, sizeof(seg)) < 0)
		return VIRTIO_BLK_S_IOERR;
	sector = le64toh(seg.sector);
	nsec = le32toh(seg.num_sectors);
	flags = le32toh(seg.flags);
	if (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	if (!wz && flags)
		return VIRTIO_BLK_S_UNSUPP;
	max = wz ? BLK_MAX_WRITE_ZERO_SECTORS : BLK_MAX_DISCARD_SECTORS;
	if (nsec > max)
		return VIRTIO_BLK_S_IOERR;
	len = (uint64_t)nsec << BLK_SECTOR_SHIFT;
	if (!blk_range_ok(b, sector, len, &off))
		return VIRTIO_BLK_S_IOERR;
	if (len == 0)
		return VIRTIO_BLK_S_OK;

	if (!wz || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	else
		mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	ret = fallocate(b->fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
	if (ret == 0)
		return VIRTIO_BLK_S_OK;
	if (ret == -EOPNOTSUPP || ret == -EINVAL || ret == -ENODEV) {
		/* A discard is only a hint: nothing done is a valid answer. */
		if (!wz)
			return VIRTIO_BLK_S_OK;
		ret = blk_write_zero_bytes(b, off, len);
		if (ret == 0)
			return VIRTIO_BLK_S_OK;
	}
	bh_log_ratelimited(
	    BH_LOG_WARN, "%s at %llu+%llu: %s", wz ? "write-zeroes" : "discard",
	    (unsigned long long)off, (unsigned long long)len, strerror(-ret));
	return VIRTIO_BLK_S_IOERR;
}

static void blk_slot_put(struct blk *b, struct blk_slot *s)
{
	s->next_free = b->free;
	b->free = s;
}

/* Answers the request in s and frees the slot. The used entry's length is
 * what was written to the guest: data (on success) and the status byte. */
static void blk_finish(struct bh_worker *w, struct blk *b, struct blk_slot *s,
		       uint8_t st, uint32_t written)
{
	if (st != VIRTIO_BLK_S_OK) {
		bh_worker_count(w, "errors", 1);
		written = 1;
	}
	*s->status = st;
	bh_vq_push(&w->vq[s->q], s->req.head, written);
	b->touched |= 1u << s->q;
	blk_slot_put(b, s);
}

/* Ends a read, write or flush with its host result (0 or -errno). */
static void blk_io_done(struct bh_worker *w, struct blk *b, struct blk_slot *s,
			int err)
{
	static const char *const what[] = { "read", "write", "flush" };
	uint32_t written = 1;

	if (err < 0) {
		bh_log_ratelimited(BH_LOG_WARN, "%s at %llu+%llu: %s",
				   what[s->op], (unsigned long long)s->start,
				   (unsigned long long)s->total,
				   strerror(-err));
		blk_finish(w, b, s, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	if (s->op == BLK_OP_READ) {
		bh_worker_count(w, "read_bytes", s->total);
		/* total < UINT32_MAX, checked when the request was taken */
		written = (uint32_t)s->total + 1;
	} else if (s->op == BLK_OP_WRITE) {
		bh_worker_count(w, "write_bytes", s->total);
	}
	blk_finish(w, b, s, VIRTIO_BLK_S_OK, written);
}

static void blk_io_sync(struct bh_worker *w, struct blk *b, struct blk_slot *s)
{
	int ret;

	if (s->op == BLK_OP_FLUSH)
		ret = fdatasync(b->fd) < 0 ? -errno : 0;
	else
		ret = blk_rw(b, s->op == BLK_OP_WRITE, s->iov, s->niov, s->off,
			     s->len);
	blk_io_done(w, b, s, ret);
}

/* Queues what is left of s on the ring; -EBUSY if the ring is full. */
static int blk_uring_queue(struct blk *b, struct blk_slot *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
	unsigned int cnt = s->niov > IOV_MAX ? IOV_MAX : s->niov;

	if (!sqe) {
		io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
		if (!sqe)
			return -EBUSY;
	}
	/* Index 0 of the registered files: the ring only takes those. */
	if (s->op == BLK_OP_READ)
		io_uring_prep_readv(sqe, 0, s->iov, cnt, s->off);
	else if (s->op == BLK_OP_WRITE)
		io_uring_prep_writev(sqe, 0, s->iov, cnt, s->off);
	else
		io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, s);
	b->inflight++;
	return 0;
}

static void blk_io_start(struct bh_worker *w, struct blk *b, struct blk_slot *s)
{
	s->started = false;
	s->start = s->off;
	s->total = s->len;
	if (!b->uring || blk_uring_queue(b, s) < 0)
		blk_io_sync(w, b, s);
}

/* One completion: a short transfer continues where it stopped. */
static void blk_uring_complete(struct bh_worker *w, struct blk *b,
			       struct blk_slot *s, int res)
{
	if (s->op == BLK_OP_FLUSH ||
	    (res < 0 && res != -EINVAL && res != -EAGAIN && res != -EINTR)) {
		blk_io_done(w, b, s, res < 0 ? res : 0);
		return;
	}
	if (res == -EINVAL) {
		if (b->direct && !s->started)
			res = blk_bounce(b, s->op == BLK_OP_WRITE, s->iov,
					 s->niov, s->off, s->len);
		blk_io_done(w, b, s, res);
		return;
	}
	if (res == 0) {
		if (s->op == BLK_OP_WRITE) {
			blk_io_done(w, b, s, -EIO);
			return;
		}
		/* A file that shrank reads zeroes past its end. */
		iov_zero(s->iov, s->niov);
		blk_io_done(w, b, s, 0);
		return;
	}
	if (res > 0) {
		/* res <= s->len: the kernel moves no more than asked */
		s->started = true;
		iov_advance(&s->iov, &s->niov, (size_t)res);
		s->off += (uint64_t)res;
		s->len -= (uint64_t)res;
		if (s->len == 0) {
			blk_io_done(w, b, s, 0);
			return;
		}
	}
	if (blk_uring_queue(b, s) < 0)
		blk_io_sync(w, b, s);
}

static unsigned int blk_uring_reap(struct bh_worker *w, struct blk *b)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;

	while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
		struct blk_slot *s = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&b->ring, cqe);
		b->inflight--;
		blk_uring_complete(w, b, s, res);
		n++;
	}
	return n;
}

/*
 * Serves one request. The chain's layout is guest-controlled: the header is
 * the first 16 readable bytes, the status the last writable byte. Returns
 * -EIO when the request cannot even be answered (no status byte).
 */
static int blk_request(struct bh_worker *w, struct blk *b, struct blk_slot *s)
{
	struct bh_vq_req *r = &s->req;
	struct virtio_blk_outhdr hdr;
	struct iovec *in, *last;
	unsigned int n_in;
	uint64_t in_data, out_data, off;
	uint32_t written = 1;
	uint8_t st = VIRTIO_BLK_S_OK;
	const char *what = NULL;

	if (r->n_in == 0) {
		blk_slot_put(b, s);
		bh_worker_needs_reset(w, "blk request without a status byte");
		return -EIO;
	}
	/* Zero-length buffers were skipped, so the last one holds >= 1 byte. */
	in = &r->iov[r->n_out];
	last = &in[r->n_in - 1];
	s->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	last->iov_len--;
	n_in = last->iov_len ? r->n_in : r->n_in - 1;
	in_data = r->in_len - 1;

	if (r->out_len < BLK_HDR_SIZE ||
	    iov_read(r->iov, r->n_out, 0, &hdr, sizeof(hdr)) < 0) {
		what = "header too short";
		st = VIRTIO_BLK_S_IOERR;
		goto out;
	}
	out_data = r->out_len - BLK_HDR_SIZE;

	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:
		bh_worker_count(w, "read_requests", 1);
		if (out_data) {
			what = "read with readable data";
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		/* written must fit the used ring's 32 bits */
		if (in_data % BLK_SECTOR_SIZE || in_data >= UINT32_MAX ||
		    !blk_range_ok(b, le64toh(hdr.sector), in_data, &off)) {
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		s->op = BLK_OP_READ;
		s->iov = in;
		s->niov = n_in;
		s->off = off;
		s->len = in_data;
		blk_io_start(w, b, s);
		return 0;
	case VIRTIO_BLK_T_OUT:
		bh_worker_count(w, "write_requests", 1);
		if (in_data) {
			what = "write with writable data";
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (b->readonly || out_data % BLK_SECTOR_SIZE ||
		    !blk_range_ok(b, le64toh(hdr.sector), out_data, &off)) {
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		s->op = BLK_OP_WRITE;
		s->iov = s->data;
		s->niov = iov_tail(r->iov, r->n_out, BLK_HDR_SIZE, s->data);
		s->off = off;
		s->len = out_data;
		blk_io_start(w, b, s);
		return 0;
	case VIRTIO_BLK_T_FLUSH:
		bh_worker_count(w, "flush_requests", 1);
		s->op = BLK_OP_FLUSH;
		s->niov = 0;
		s->off = 0;
		s->len = 0;
		blk_io_start(w, b, s);
		return 0;
	case VIRTIO_BLK_T_GET_ID:
		if (out_data) {
			what = "get-id with readable data";
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		written = (uint32_t)bh_iov_write(in, n_in, b->serial,
						 sizeof(b->serial)) +
			  1;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool wz = le32toh(hdr.type) == VIRTIO_BLK_T_WRITE_ZEROES;

		bh_worker_count(
		    w, wz ? "write_zeroes_requests" : "discard_requests", 1);
		if (in_data) {
			what = "discard with writable data";
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		/* Rare, and short by max_*_sectors: done in place. */
		st = blk_discard_wz(b, wz, r, out_data);
		break;
	}
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
out:
	if (what)
		bh_log_ratelimited(BH_LOG_WARN, "malformed request: %s", what);
	blk_finish(w, b, s, st, written);
	return 0;
}

static void blk_notify_touched(struct bh_worker *w, struct blk *b)
{
	for (unsigned int q = 0; q < w->nq; q++)
		if (b->touched & (1u << q))
			bh_vq_notify(&w->vq[q]);
	b->touched = 0;
}

/* Takes requests from queue q while there are slots; a queue left with
 * requests is resumed when slots free up. */
static void blk_drain(struct bh_worker *w, struct blk *b, unsigned int q)
{
	struct bh_vq *vq = &w->vq[q];
	unsigned int done = 0;

	b->pending &= ~(1u << q);
	while (!w->needs_reset) {
		struct blk_slot *s = b->free;
		int ret;

		if (!s) {
			b->pending |= 1u << q;
			break;
		}
		b->free = s->next_free;
		ret = bh_vq_pop(vq, &s->req);
		if (ret <= 0) {
			blk_slot_put(b, s);
			if (ret < 0)
				bh_worker_needs_reset(w, "queue %u: %s", q,
						      vq->why);
			break;
		}
		s->q = q;
		if (blk_request(w, b, s) < 0)
			break;
		/* A driver that keeps the ring full still sees completions. */
		if (++done % vq->size == 0)
			blk_notify_touched(w, b);
	}
	if (b->uring && io_uring_sq_ready(&b->ring))
		io_uring_submit(&b->ring);
}

static void blk_queue_notify(struct bh_worker *w, unsigned int q)
{
	struct blk *b = w->dev;

	blk_drain(w, b, q);
	blk_notify_touched(w, b);
}

static unsigned int blk_poll_fds(struct bh_worker *w, int *fds,
				 unsigned int max)
{
	struct blk *b = w->dev;

	if (!b->uring || max < 1)
		return 0;
	fds[0] = b->ring_efd;
	return 1;
}

static void blk_fd_ready(struct bh_worker *w, int fd)
{
	struct blk *b = w->dev;
	uint64_t v;

	if (!b->uring || fd != b->ring_efd)
		return;
	/* The eventfd only wakes us; the ring says what completed. */
	if (read(b->ring_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		bh_warn("io_uring eventfd: %s", strerror(errno));
	if (blk_uring_reap(w, b) == 0)
		return;
	for (unsigned int q = 0; q < w->nq && b->free; q++)
		if (b->pending & (1u << q))
			blk_drain(w, b, q);
	if (io_uring_sq_ready(&b->ring))
		io_uring_submit(&b->ring);
	blk_notify_touched(w, b);
}

static int blk_activate(struct bh_worker *w)
{
	struct blk *b = w->dev;

	b->pending = 0;
	b->touched = 0;
	return 0;
}

static void blk_reset(struct bh_worker *w)
{
	struct blk *b = w->dev;

	/* Reads in flight write into guest RAM: wait for every one before
	 * the queues go, and answer none of them. */
	if (b->uring && io_uring_sq_ready(&b->ring))
		io_uring_submit(&b->ring);
	while (b->uring && b->inflight > 0) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(&b->ring, &cqe);

		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			bh_err("io_uring wait: %s", strerror(-ret));
			abort();
		}
		io_uring_cqe_seen(&b->ring, cqe);
		b->inflight--;
	}
	b->free = NULL;
	for (unsigned int i = 0; i < b->nslots; i++)
		blk_slot_put(b, &b->slots[i]);
	b->pending = 0;
	b->touched = 0;
}

/* The VM pauses: every request in flight completes to the driver now (a
 * short read or write resubmitted goes on until it is whole). What waits
 * for a free slot stays in the ring until resume. */
static void blk_quiesce(struct bh_worker *w)
{
	struct blk *b = w->dev;

	if (b->uring && io_uring_sq_ready(&b->ring))
		io_uring_submit(&b->ring);
	while (b->uring && b->inflight > 0) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(&b->ring, &cqe);

		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			bh_err("io_uring wait: %s", strerror(-ret));
			abort();
		}
		blk_uring_reap(w, b);
		if (io_uring_sq_ready(&b->ring))
			io_uring_submit(&b->ring);
	}
	blk_notify_touched(w, b);
}

/* The logical block size O_DIRECT needs, 512 when buffered. */
static uint32_t blk_probe_block_size(int fd)
{
	struct stat st;
	uint32_t bs = BLK_SECTOR_SIZE;

	if (fstat(fd, &st) < 0)
		return bs;
	if (S_ISBLK(st.st_mode)) {
		int ssz = 0;

		if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
			bs = (uint32_t)ssz;
	}
#ifdef STATX_DIOALIGN
	else {
		struct statx stx;

		if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
		    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align)
			bs = stx.stx_dio_offset_align;
	}
#endif
	/* Linux drivers take a power of two between 512 and the page size. */
	if (bs < BLK_SECTOR_SIZE || bs > 4096 || (bs & (bs - 1)))
		bs = bs > 4096 ? 4096 : BLK_SECTOR_SIZE;
	return bs;
}

static void blk_fill_config(struct bh_worker *w, const struct blk *b,
			    unsigned int num_queues, unsigned int queue_size)
{
	struct virtio_blk_config c;
	/* Chains longer than BH_VQ_MAX_IOV break the queue. */
	uint32_t seg_max = queue_size - 2;

	if (seg_max > BH_VQ_MAX_IOV - 2)
		seg_max = BH_VQ_MAX_IOV - 2;
	if (seg_max == 0)
		seg_max = 1;
	memset(&c, 0, sizeof(c));
	c.capacity = htole64(b->capacity);
	c.size_max = 0;
	c.seg_max = htole32(seg_max);
	c.blk_size = htole32(b->blk_size);
	c.num_queues = htole16((uint16_t)num_queues);
	if (!b->readonly) {
		c.max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
		c.max_discard_seg = htole32(BLK_MAX_SEGS);
		c.discard_sector_alignment =
		    htole32(b->blk_size >> BLK_SECTOR_SHIFT);
		c.max_write_zeroes_sectors =
		    htole32(BLK_MAX_WRITE_ZERO_SECTORS);
		c.max_write_zeroes_seg = htole32(BLK_MAX_SEGS);
		c.write_zeroes_may_unmap = 1;
	}
	_Static_assert(BLK_CONFIG_LEN <= BH_VIRTIO_CONFIG_MAX,
		       "config space too large");
	memcpy(w->config, &c, BLK_CONFIG_LEN);
	w->config_len = BLK_CONFIG_LEN;

	w->device_features = 1ULL << VIRTIO_BLK_F_SEG_MAX |
			     1ULL << VIRTIO_BLK_F_BLK_SIZE |
			     1ULL << VIRTIO_BLK_F_FLUSH;
	if (num_queues > 1)
		w->device_features |= 1ULL << VIRTIO_BLK_F_MQ;
	if (b->readonly)
		w->device_features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		w->device_features |= 1ULL << VIRTIO_BLK_F_DISCARD |
				      1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
}

/*
 * Sets up a ring that can do nothing but readv, writev and fsync on the
 * disk: io_uring operations pass by seccomp, so the ring is created
 * disabled, given the disk as its only (fixed) file, restricted, and only
 * then enabled. 0 or -errno (the caller falls back to synchronous I/O).
 */
static int blk_uring_init(struct blk *b)
{
	struct io_uring_restriction res[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP,
		  .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP,
		  .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP,
		  .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED,
		  .sqe_flags = IOSQE_FIXED_FILE },
	};
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_R_DISABLED;
	ret = io_uring_queue_init_params(BLK_URING_DEPTH, &b->ring, &p);
	if (ret < 0)
		return ret;
	ret = io_uring_register_files(&b->ring, &b->fd, 1);
	if (ret < 0)
		goto err_exit;
	b->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ring_efd < 0) {
		ret = -errno;
		goto err_exit;
	}
	ret = io_uring_register_eventfd(&b->ring, b->ring_efd);
	if (ret < 0)
		goto err_efd;
	/* The raw call: Debian's liburing 2.3 declares, but does not export,
	 * io_uring_register_restrictions and io_uring_enable_rings. */
	ret = io_uring_register(b->ring.ring_fd, IORING_REGISTER_RESTRICTIONS,
				res, BH_ARRAY_SIZE(res));
	if (ret < 0)
		goto err_efd;
	ret = io_uring_register(b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
				NULL, 0);
	if (ret < 0)
		goto err_efd;
	return 0;

err_efd:
	bh_closep(&b->ring_efd);
err_exit:
	io_uring_queue_exit(&b->ring);
	return ret;
}

static int blk_setup(struct bh_worker *w, const Bh__WorkerSetup *s,
		     struct bh_frame *f)
{
	static const char *const counters[] = {
		"read_requests",	 "read_bytes",	   "write_requests",
		"write_bytes",		 "flush_requests", "discard_requests",
		"write_zeroes_requests", "errors",
	};
	const Bh__BlkSetup *bs = s->blk;
	struct blk *b;
	size_t serial_len;
	int flags, acc, ret;

	if (!bs || f->nfds != 2) {
		bh_err("blk setup needs [memfd, disk] fds, got %u", f->nfds);
		return -EINVAL;
	}
	if (bs->num_queues < 1 || bs->num_queues > BH_MAX_QUEUES ||
	    bs->queue_size < 2 || bs->queue_size > BH_MAX_QUEUE_SIZE ||
	    (bs->queue_size & (bs->queue_size - 1))) {
		bh_err("blk setup: %u queues of %u", bs->num_queues,
		       bs->queue_size);
		return -EINVAL;
	}
	serial_len = bs->serial ? strlen(bs->serial) : 0;
	if (serial_len > VIRTIO_BLK_ID_BYTES) {
		bh_err("blk serial longer than %d bytes", VIRTIO_BLK_ID_BYTES);
		return -EINVAL;
	}

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = -1;
	b->ring_efd = -1;
	b->readonly = bs->readonly;
	memcpy(b->serial, bs->serial ? bs->serial : "", serial_len);
	b->capacity = bs->size >> BLK_SECTOR_SHIFT;

	b->fd = bh_frame_take_fd(f, 1);
	if (b->fd < 0) {
		ret = b->fd;
		goto err_free;
	}
	flags = fcntl(b->fd, F_GETFL);
	if (flags < 0) {
		ret = -errno;
		goto err_close;
	}
	acc = flags & O_ACCMODE;
	b->direct = flags & O_DIRECT;
	/* The controller opened the image; a mode other than asked for is its
	 * bug, and guessing would either lose writes or allow them. */
	if ((b->readonly ? acc != O_RDONLY : acc != O_RDWR) ||
	    b->direct != (bool)bs->direct) {
		bh_err("disk fd mode 0%o does not match readonly=%d direct=%d",
		       flags, bs->readonly, bs->direct);
		ret = -EBADF;
		goto err_close;
	}
	b->blk_size = b->direct ? blk_probe_block_size(b->fd) : BLK_SECTOR_SIZE;

	if (posix_memalign((void **)&b->zero, BLK_BUF_ALIGN, BLK_ZERO_SIZE)) {
		ret = -ENOMEM;
		goto err_close;
	}
	memset(b->zero, 0, BLK_ZERO_SIZE);
	if (b->direct && posix_memalign((void **)&b->bounce, BLK_BUF_ALIGN,
					BLK_BOUNCE_SIZE)) {
		ret = -ENOMEM;
		goto err_zero;
	}

	ret = blk_uring_init(b);
	if (ret == 0) {
		b->uring = true;
		b->nslots = BLK_URING_DEPTH;
	} else {
		bh_info("io_uring refused (%s): synchronous I/O",
			strerror(-ret));
		b->nslots = 1;
	}
	b->slots = calloc(b->nslots, sizeof(*b->slots));
	if (!b->slots) {
		ret = -ENOMEM;
		goto err_uring;
	}
	for (unsigned int i = 0; i < b->nslots; i++)
		blk_slot_put(b, &b->slots[i]);

	blk_fill_config(w, b, bs->num_queues, bs->queue_size);
	w->num_queues = bs->num_queues;
	w->max_queue_size = bs->queue_size;
	w->dev = b;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		bh_worker_count(w, counters[i], 0);
	bh_info("disk: %llu sectors, block size %u, %s%s, %u queues of %u, "
		"%s",
		(unsigned long long)b->capacity, b->blk_size,
		b->readonly ? "read-only" : "read-write",
		b->direct ? ", direct" : "", bs->num_queues, bs->queue_size,
		b->uring ? "io_uring" : "synchronous I/O");
	return 0;

err_uring:
	if (b->uring) {
		io_uring_queue_exit(&b->ring);
		bh_closep(&b->ring_efd);
	}
	free(b->bounce);

err_zero:
	free(b->zero);
err_close:
	close(b->fd);
err_free:
	free(b);
	return ret;
}

/* The device has failed for good: every request ends with IOERR in its
 * status byte (the last writable byte), as a disk that broke would. */
static uint32_t blk_fail_request(struct bh_worker *w, unsigned int q,
				 struct bh_vq_req *req)
{
	const struct iovec *last;

	if (req->n_in == 0)
		return 0;
	last = &req->iov[req->n_out + req->n_in - 1];
	if (last->iov_len == 0)
		return 0;
	((uint8_t *)last->iov_base)[last->iov_len - 1] = VIRTIO_BLK_S_IOERR;
	bh_worker_count(w, "errors", 1);
	return 1;
}

static const struct bh_device_ops blk_ops = {
	.name = "blk",
	.device_type = BH_VIRTIO_ID_BLK,
	.backend = BH__WORKER_SETUP__BACKEND_BLK,
	.setup = blk_setup,
	.activate = blk_activate,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.quiesce = blk_quiesce,
	.poll_fds = blk_poll_fds,
	.fd_ready = blk_fd_ready,
	.fail_request = blk_fail_request,
	.extra_syscalls = blk_syscalls,
};

int main(int argc, char **argv)
{
	return bh_worker_main(argc, argv, &blk_ops);
}
