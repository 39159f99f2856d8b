/* Split virtqueues (virtio 1.x, section 2.7) from the device side, with
 * INDIRECT_DESC and EVENT_IDX. Every value read from the rings is
 * guest-controlled: bounded by the queue size and checked against guest RAM;
 * a violation marks the queue broken and is reported once. */
#ifndef BH_WORKER_VIRTQUEUE_H
#define BH_WORKER_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <bulkhead/inflight.h>
#include <bulkhead/limits.h>
#include <bulkhead/virtio.h>

#include "gmem.h"

/* Buffers per request: a chain longer than this is a violation. */
#define BH_VQ_MAX_IOV 1024

/* Ring layouts (virtio 1.x, 2.7.5-2.7.8), little-endian in guest RAM. */
#define VRING_DESC_F_NEXT	   1
#define VRING_DESC_F_WRITE	   2
#define VRING_DESC_F_INDIRECT	   4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	   1

struct bh_vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct bh_vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* size entries, then used_event */
};

struct bh_vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct bh_vring_used {
	uint16_t flags;
	uint16_t idx;
	struct bh_vring_used_elem ring[]; /* size entries, then avail_event */
};

/* Bytes and alignment of each ring for a queue of size entries. */
#define BH_VRING_DESC_BYTES(size)  (16ULL * (size))
#define BH_VRING_AVAIL_BYTES(size) (6ULL + 2ULL * (size))
#define BH_VRING_USED_BYTES(size)  (6ULL + 8ULL * (size))
#define BH_VRING_DESC_ALIGN	   16
#define BH_VRING_AVAIL_ALIGN	   2
#define BH_VRING_USED_ALIGN	   4

/*
 * EVENT_IDX: true if the driver asked to be told once the device's index
 * passes event_idx, given that it moved from old_idx to new_idx since the
 * last signal. All arithmetic is modulo 2^16.
 */
static inline bool bh_vring_need_event(uint16_t event_idx, uint16_t new_idx,
				       uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) <
	       (uint16_t)(new_idx - old_idx);
}

struct bh_vq {
	const struct bh_gmem *mem;
	uint16_t size;	/* power of two, <= BH_MAX_QUEUE_SIZE */
	bool event_idx; /* BH_VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	/* BH_VIRTIO_F_INDIRECT_DESC negotiated */
	bool broken;
	bool ready;   /* set up by a successful bh_vq_init */
	char why[96]; /* first violation, for the report */

	/* Host views of the rings, translated once at set-up. */
	struct bh_vring_desc *desc;
	struct bh_vring_avail *avail;
	struct bh_vring_used *used;

	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* our copy of used->idx */
	uint16_t signalled_used;
	bool signalled_valid;

	int kick_fd; /* borrowed from the owner */
	int call_fd;

	struct bh_inflight *inf; /* NULL: nothing recorded */
	uint16_t *replay;	 /* heads taken up from a dead worker */
	unsigned int nreplay;
	unsigned int replay_pos;
};

/* One request: the chain's readable buffers first, then the writable ones. */
struct bh_vq_req {
	uint16_t head;
	unsigned int n_out; /* iov[0 .. n_out): device reads */
	unsigned int n_in;  /* iov[n_out .. n_out + n_in): device writes */
	uint64_t out_len;   /* total bytes of each kind */
	uint64_t in_len;
	struct iovec iov[BH_VQ_MAX_IOV];
};

/*
 * Sets the queue up from the addresses the driver wrote: size a power of two
 * <= BH_MAX_QUEUE_SIZE, rings aligned as the spec requires and wholly inside
 * guest RAM. features are the negotiated ones. 0 or -EINVAL (the reason in
 * vq->why).
 */
int bh_vq_init(struct bh_vq *vq, const struct bh_gmem *mem, uint16_t size,
	       uint64_t desc, uint64_t avail, uint64_t used, uint64_t features,
	       int kick_fd, int call_fd);

/*
 * Records the queue's in-flight requests in region, BH_INFLIGHT_BYTES of
 * the queue's size or more, shared. Without resume the records start empty.
 * With resume they are a dead worker's: the ring positions are taken from
 * them, and the chains that worker had taken and not returned come out of
 * bh_vq_pop again first, oldest first. Call right after bh_vq_init. 0, or
 * -EIO when the records do not fit the queue (the queue is then broken).
 */
int bh_vq_inflight_attach(struct bh_vq *vq, void *region, bool resume);

/* Frees what bh_vq_inflight_attach allocated; the queue is then unusable
 * until bh_vq_init. */
void bh_vq_release(struct bh_vq *vq);

/*
 * Takes the next available chain into req. Returns 1 with a request, 0 when
 * the ring is empty, -EIO when the queue is (or just became) broken: an
 * avail index more than size ahead, a head or next out of range, a loop or a
 * chain longer than the queue (or BH_VQ_MAX_IOV), a buffer outside guest RAM
 * (or straddling a region end), a readable buffer after a writable one, an
 * indirect table with a bad length or nested indirection, a length overflow.
 * Zero-length buffers are skipped.
 */
int bh_vq_pop(struct bh_vq *vq, struct bh_vq_req *req);

/* Returns a request to the driver with the bytes written into its writable
 * buffers. With the dirty log on (bh_gmem_logging), logs the used-ring
 * entry and index and every writable buffer of the chain: a device that
 * writes only into chains it then pushes has nothing else to log. */
void bh_vq_push(struct bh_vq *vq, uint16_t head, uint32_t written);

/* Logs n buffers of a request (from bh_vq_pop) that the device wrote into
 * and does not push right away: a receive chain that keeps a dropped frame,
 * one of several a frame fills, so that no write waits for a push that may
 * never come (reset, a worker that dies). A no-op with logging off. */
void bh_vq_log_iov(const struct bh_vq *vq, const struct iovec *iov,
		   unsigned int n);

/* True if the driver wants an interrupt for what was pushed since the last
 * call that returned true; records that it is being sent. bh_vq_notify is
 * this plus the eventfd write. */
bool bh_vq_need_notify(struct bh_vq *vq);

/* Signals call_fd if the driver wants an interrupt for what was pushed since
 * the last signal (EVENT_IDX or the NO_INTERRUPT flag). */
void bh_vq_notify(struct bh_vq *vq);

/* Reads (drains) kick_fd; returns 0 or -errno (-EAGAIN if none). */
int bh_vq_drain_kick(struct bh_vq *vq);

/* Marks the queue broken with a reason (kept from the first call). */
void bh_vq_set_broken(struct bh_vq *vq, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copies up to len bytes of buf into the iovecs in order, as much as they
 * hold; returns the bytes copied. */
size_t bh_iov_write(const struct iovec *iov, unsigned int n, const void *buf,
		    size_t len);

#endif
