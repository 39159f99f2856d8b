/* Split virtqueues from the device side. The driver owns the descriptor and
 * available rings and may rewrite them at any moment, so each value is read
 * once into a local copy, checked, and only then used. */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/util.h>

#include "virtqueue.h"

_Static_assert(sizeof(struct bh_vring_desc) == 16, "descriptor layout");
_Static_assert(sizeof(struct bh_vring_used_elem) == 8, "used element layout");
_Static_assert(sizeof(struct bh_vring_avail) == 4, "avail header layout");
_Static_assert(sizeof(struct bh_vring_used) == 4, "used header layout");
_Static_assert(offsetof(struct bh_inflight, desc) == BH_INFLIGHT_HDR,
	       "in-flight header layout");
_Static_assert(sizeof(struct bh_inflight_desc) == 16, "in-flight entry layout");

void bh_vq_set_broken(struct bh_vq *vq, const char *fmt, ...)
{
	va_list ap;

	/* The first violation explains the others: keep it. */
	if (vq->broken)
		return;
	vq->broken = true;
	va_start(ap, fmt);
	vsnprintf(vq->why, sizeof(vq->why), fmt, ap);
	va_end(ap);
}

static int broken(struct bh_vq *vq, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int broken(struct bh_vq *vq, const char *fmt, ...)
{
	char buf[sizeof(vq->why)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	bh_vq_set_broken(vq, "%s", buf);
	return -EIO;
}

static bool is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

int bh_vq_init(struct bh_vq *vq, const struct bh_gmem *mem, uint16_t size,
	       uint64_t desc, uint64_t avail, uint64_t used, uint64_t features,
	       int kick_fd, int call_fd)
{
	/* size and the three addresses are guest-controlled. */
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->kick_fd = kick_fd;
	vq->call_fd = call_fd;
	vq->event_idx = features & (1ULL << BH_VIRTIO_F_EVENT_IDX);
	vq->indirect = features & (1ULL << BH_VIRTIO_F_INDIRECT_DESC);

	if (!is_pow2(size) || size > BH_MAX_QUEUE_SIZE) {
		bh_vq_set_broken(vq, "queue size %u is not a power of two",
				 size);
		return -EINVAL;
	}
	vq->size = size;
	if (desc % BH_VRING_DESC_ALIGN || avail % BH_VRING_AVAIL_ALIGN ||
	    used % BH_VRING_USED_ALIGN) {
		bh_vq_set_broken(vq,
				 "misaligned ring: desc 0x%llx avail 0x%llx "
				 "used 0x%llx",
				 (unsigned long long)desc,
				 (unsigned long long)avail,
				 (unsigned long long)used);
		return -EINVAL;
	}
	vq->desc = bh_gmem_ptr(mem, desc, BH_VRING_DESC_BYTES(size));
	vq->avail = bh_gmem_ptr(mem, avail, BH_VRING_AVAIL_BYTES(size));
	vq->used = bh_gmem_ptr(mem, used, BH_VRING_USED_BYTES(size));
	if (!vq->desc || !vq->avail || !vq->used) {
		bh_vq_set_broken(vq,
				 "ring outside guest RAM: desc 0x%llx avail "
				 "0x%llx used 0x%llx, size %u",
				 (unsigned long long)desc,
				 (unsigned long long)avail,
				 (unsigned long long)used, size);
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return -EINVAL;
	}
	vq->ready = true;
	return 0;
}

static uint16_t *used_event(const struct bh_vq *vq)
{
	return &vq->avail->ring[vq->size];
}

static uint16_t *avail_event(const struct bh_vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

static uint16_t load_avail_idx(const struct bh_vq *vq)
{
	/* Acquire: the ring entries and descriptors the driver wrote before
	 * publishing this index are read after it. */
	return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
}

/* Copies one descriptor out of guest RAM. The compiler barrier keeps the
 * copy a snapshot: nothing below may read the guest's memory again and see
 * a value the checks did not. */
static void read_desc(struct bh_vring_desc *d, const struct bh_vring_desc *g)
{
	memcpy(d, g, sizeof(*d));
	__asm__ volatile("" ::: "memory");
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

static int add_buffer(struct bh_vq *vq, struct bh_vq_req *req,
		      const struct bh_vring_desc *d, bool *seen_write)
{
	unsigned int n = req->n_out + req->n_in;
	bool writable = d->flags & VRING_DESC_F_WRITE;
	void *p;

	if (writable)
		*seen_write = true;
	else if (*seen_write)
		return broken(vq,
			      "head %u: readable buffer after a writable "
			      "one",
			      req->head);
	if (n >= BH_VQ_MAX_IOV)
		return broken(vq, "head %u: more than %u buffers", req->head,
			      BH_VQ_MAX_IOV);
	p = bh_gmem_ptr(vq->mem, d->addr, d->len);
	if (!p)
		return broken(vq, "head %u: buffer 0x%llx+%u outside guest RAM",
			      req->head, (unsigned long long)d->addr, d->len);
	req->iov[n].iov_base = p;
	req->iov[n].iov_len = d->len;
	if (writable) {
		req->n_in++;
		if (__builtin_add_overflow(req->in_len, d->len, &req->in_len))
			return broken(vq, "head %u: length overflow",
				      req->head);
	} else {
		req->n_out++;
		if (__builtin_add_overflow(req->out_len, d->len, &req->out_len))
			return broken(vq, "head %u: length overflow",
				      req->head);
	}
	return 0;
}

/* Switches the walk to the indirect table d points at. in_indirect says
 * whether the walk is in one already: the table's address cannot tell, since
 * a guest may point an indirect descriptor at the ring itself. */
static int enter_indirect(struct bh_vq *vq, const struct bh_vring_desc *d,
			  unsigned int steps, bool *in_indirect,
			  const struct bh_vring_desc **table, uint32_t *count)
{
	if (!vq->indirect)
		return broken(vq, "indirect descriptor, but INDIRECT_DESC "
				  "was not negotiated");
	if (*in_indirect)
		return broken(vq, "indirect descriptor inside an indirect "
				  "table");
	if (steps != 1)
		return broken(vq, "indirect descriptor inside a chain");
	if (d->flags & VRING_DESC_F_NEXT)
		return broken(vq, "indirect descriptor with NEXT set");
	if (d->len == 0 || d->len % sizeof(struct bh_vring_desc))
		return broken(vq, "indirect table of %u bytes", d->len);
	if (d->len / sizeof(struct bh_vring_desc) > BH_VQ_MAX_IOV)
		return broken(vq, "indirect table of %u entries (limit %u)",
			      d->len / (uint32_t)sizeof(struct bh_vring_desc),
			      BH_VQ_MAX_IOV);
	*table = bh_gmem_ptr(vq->mem, d->addr, d->len);
	if (!*table)
		return broken(vq, "indirect table 0x%llx+%u outside guest RAM",
			      (unsigned long long)d->addr, d->len);
	*count = d->len / (uint32_t)sizeof(struct bh_vring_desc);
	*in_indirect = true;
	return 0;
}

/* Follows the chain starting at head (guest-controlled, already < size). */
static int walk_chain(struct bh_vq *vq, struct bh_vq_req *req, uint16_t head)
{
	const struct bh_vring_desc *table = vq->desc;
	uint32_t count = vq->size, i = head;
	unsigned int steps = 0;
	bool seen_write = false, in_indirect = false;
	struct bh_vring_desc d;
	int r;

	req->head = head;
	req->n_out = req->n_in = 0;
	req->out_len = req->in_len = 0;
	for (;;) {
		/* A chain visits each descriptor of its table at most once:
		 * one step more is a loop, however the guest built it. */
		if (++steps > count)
			return broken(
			    vq, "head %u: chain longer than %s (%u)", head,
			    in_indirect ? "its indirect table" : "the queue",
			    count);
		read_desc(&d, &table[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			r = enter_indirect(vq, &d, steps, &in_indirect, &table,
					   &count);
			if (r < 0)
				return r;
			i = 0;
			steps = 0;
			continue;
		}
		/* Zero-length buffers carry nothing; the driver may still
		 * link through them. */
		if (d.len != 0) {
			r = add_buffer(vq, req, &d, &seen_write);
			if (r < 0)
				return r;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= count)
			return broken(vq, "head %u: next %u out of range (%u)",
				      head, d.next, count);
		i = d.next;
	}
}

static void publish_avail_event(struct bh_vq *vq)
{
	__atomic_store_n(avail_event(vq), htole16(vq->last_avail),
			 __ATOMIC_RELAXED);
	bh_gmem_log_host(vq->mem, avail_event(vq), sizeof(uint16_t));
}

/* The guest's avail index may move by at most a queue's worth. */
static int check_avail_idx(struct bh_vq *vq, uint16_t avail_idx)
{
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return broken(vq, "avail index %u is more than %u ahead of %u",
			      avail_idx, vq->size, vq->last_avail);
	return 0;
}

static int cmp_counter(const void *a, const void *b, void *arg)
{
	const struct bh_inflight *inf = arg;
	uint64_t ca = inf->desc[*(const uint16_t *)a].counter;
	uint64_t cb = inf->desc[*(const uint16_t *)b].counter;

	return ca < cb ? -1 : ca > cb;
}

int bh_vq_inflight_attach(struct bh_vq *vq, void *region, bool resume)
{
	struct bh_inflight *inf = region;
	uint16_t guest_used, n = 0;

	if (!vq->ready || vq->broken)
		return -EIO;
	/* Never set up: the worker that died had not begun on this queue. */
	if (resume && inf->magic == 0)
		resume = false;
	if (!resume) {
		memset(inf, 0, BH_INFLIGHT_BYTES(vq->size));
		inf->size = vq->size;
		inf->magic = BH_INFLIGHT_MAGIC;
		vq->inf = inf;
		return 0;
	}
	/* Everything below was written by the worker that died. */
	if (inf->magic != BH_INFLIGHT_MAGIC || inf->size != vq->size)
		return broken(vq,
			      "in-flight records (size %u) do not fit the "
			      "queue (size %u)",
			      inf->size, vq->size);
	guest_used = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	if (guest_used == (uint16_t)(inf->used_idx + 1)) {
		/* It died between publishing used->idx and settling the
		 * record of the head it returned. */
		if (inf->last_head < vq->size)
			inf->desc[inf->last_head].inflight = 0;
		inf->used_idx = guest_used;
	}
	/* Any other difference is the guest's writing to the used ring: our
	 * records stand. */
	vq->replay = malloc(sizeof(*vq->replay) * vq->size);
	if (!vq->replay)
		return broken(vq, "no memory for %u in-flight records",
			      vq->size);
	for (unsigned int i = 0; i < vq->size; i++) {
		if (inf->desc[i].inflight) {
			inf->desc[i].inflight = 1;
			vq->replay[n++] = (uint16_t)i;
		}
	}
	bh_sort_r(vq->replay, n, sizeof(*vq->replay), cmp_counter, inf);
	vq->nreplay = n;
	vq->replay_pos = 0;
	vq->used_idx = inf->used_idx;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = false;
	/* Every chain taken was either returned or is in flight. */
	vq->last_avail = (uint16_t)(inf->used_idx + n);
	vq->inf = inf;
	if (vq->event_idx)
		publish_avail_event(vq);
	return 0;
}

void bh_vq_release(struct bh_vq *vq)
{
	free(vq->replay);
	vq->replay = NULL;
	vq->nreplay = vq->replay_pos = 0;
	vq->inf = NULL;
	vq->ready = false;
}

/* Marks head as taken, before the ring position moves past it: a worker
 * that dies in between leaves a record the next one can settle. */
static void inflight_take(struct bh_vq *vq, uint16_t head)
{
	struct bh_inflight *inf = vq->inf;

	inf->desc[head].counter = ++inf->counter;
	__atomic_store_n(&inf->desc[head].inflight, 1, __ATOMIC_RELEASE);
}

int bh_vq_pop(struct bh_vq *vq, struct bh_vq_req *req)
{
	uint16_t avail_idx, head;
	int r;

	if (vq->broken || !vq->ready)
		return -EIO;
	if (vq->replay_pos < vq->nreplay) {
		/* Taken by a worker that died: hand it out once more. The
		 * driver still owns none of it, so the chain is intact. */
		head = vq->replay[vq->replay_pos++];
		r = walk_chain(vq, req, head);
		return r < 0 ? r : 1;
	}
	avail_idx = load_avail_idx(vq);
	if (check_avail_idx(vq, avail_idx) < 0)
		return -EIO;
	if (avail_idx == vq->last_avail) {
		if (!vq->event_idx)
			return 0;
		/* Tell the driver where we stopped, then look once more: a
		 * buffer added in between would otherwise wait for a kick
		 * that the driver, reading the old avail_event, never
		 * sends. */
		publish_avail_event(vq);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load_avail_idx(vq);
		if (check_avail_idx(vq, avail_idx) < 0)
			return -EIO;
		if (avail_idx == vq->last_avail)
			return 0;
	}

	head = le16toh(
	    __atomic_load_n(&vq->avail->ring[vq->last_avail & (vq->size - 1)],
			    __ATOMIC_RELAXED));
	if (head >= vq->size)
		return broken(vq, "head %u out of range (%u)", head, vq->size);
	r = walk_chain(vq, req, head);
	if (r < 0)
		return r;
	if (vq->inf)
		inflight_take(vq, head);
	vq->last_avail++;
	if (vq->event_idx)
		publish_avail_event(vq);
	return 1;
}

/*
 * Logs every writable buffer of head's chain (dirty logging on). Which
 * bytes a device wrote is not what `written` says: blk's status byte sits
 * at the end of the last writable buffer whatever the data part holds, a
 * net receive chain may have held a dropped frame before the one it
 * returns, a chain may go back with 0 after a write. All writable buffers
 * of the chain, then: a page logged in vain costs one copy in the next
 * pass, a page missed is a guest corrupted silently.
 *
 * The chain is walked again from the rings, which the driver must leave
 * alone until the chain is used (2.7.13); a guest that rewrites them
 * meanwhile can only spoil its own migration. The walk has the bounds of
 * walk_chain but breaks nothing: the chain was checked when it was taken,
 * and what fails now is left unlogged.
 */
static void log_chain(struct bh_vq *vq, uint16_t head)
{
	const struct bh_vring_desc *table = vq->desc;
	uint32_t count = vq->size, i = head;
	unsigned int steps = 0;
	bool in_indirect = false;
	struct bh_vring_desc d;

	if (head >= vq->size)
		return;
	for (;;) {
		if (++steps > count)
			return;
		read_desc(&d, &table[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect || in_indirect || steps != 1 ||
			    d.len == 0 ||
			    d.len % sizeof(struct bh_vring_desc) ||
			    d.len / sizeof(struct bh_vring_desc) >
				BH_VQ_MAX_IOV)
				return;
			table = bh_gmem_ptr(vq->mem, d.addr, d.len);
			if (!table)
				return;
			count = d.len / (uint32_t)sizeof(struct bh_vring_desc);
			in_indirect = true;
			i = 0;
			steps = 0;
			continue;
		}
		if ((d.flags & VRING_DESC_F_WRITE) && d.len != 0)
			bh_gmem_log_gpa_range(vq->mem, d.addr, d.len);
		if (!(d.flags & VRING_DESC_F_NEXT) || d.next >= count)
			return;
		i = d.next;
	}
}

void bh_vq_log_iov(const struct bh_vq *vq, const struct iovec *iov,
		   unsigned int n)
{
	if (!bh_gmem_logging(vq->mem))
		return;
	for (unsigned int i = 0; i < n; i++)
		bh_gmem_log_host(vq->mem, iov[i].iov_base, iov[i].iov_len);
}

void bh_vq_push(struct bh_vq *vq, uint16_t head, uint32_t written)
{
	struct bh_vring_used_elem *e;

	/* A broken queue is about to be reset: leave the guest's rings
	 * alone. */
	if (!vq->ready || vq->broken)
		return;
	if (vq->inf && head < vq->size)
		__atomic_store_n(&vq->inf->last_head, head, __ATOMIC_RELAXED);
	e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(written), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the element is visible before the index that covers
	 * it. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx),
			 __ATOMIC_RELEASE);
	/* After the writes they cover: the chain's buffers were written
	 * before the push, the used ring just now. */
	if (bh_gmem_logging(vq->mem)) {
		log_chain(vq, head);
		bh_gmem_log_host(vq->mem, e, sizeof(*e));
		bh_gmem_log_host(vq->mem, &vq->used->idx,
				 sizeof(vq->used->idx));
	}
	if (vq->inf && head < vq->size) {
		__atomic_store_n(&vq->inf->desc[head].inflight, 0,
				 __ATOMIC_RELEASE);
		__atomic_store_n(&vq->inf->used_idx, vq->used_idx,
				 __ATOMIC_RELEASE);
	}
}

bool bh_vq_need_notify(struct bh_vq *vq)
{
	uint16_t old = vq->signalled_used, cur = vq->used_idx;
	bool valid = vq->signalled_valid;

	if (!vq->ready || vq->broken)
		return false;
	/* Our used->idx store must be visible before we read the driver's
	 * suppression hint, or each side could wait for the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* Nothing pushed since the last signal (or ever: both start at 0). */
	if (old == cur)
		return false;
	vq->signalled_used = cur;
	vq->signalled_valid = true;
	if (vq->event_idx) {
		/* used_event is guest-controlled; any value is safe here. */
		uint16_t ev =
		    le16toh(__atomic_load_n(used_event(vq), __ATOMIC_RELAXED));

		return !valid || bh_vring_need_event(ev, cur, old);
	}
	return !(le16toh(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED)) &
		 VRING_AVAIL_F_NO_INTERRUPT);
}

void bh_vq_notify(struct bh_vq *vq)
{
	uint64_t one = 1;

	if (!bh_vq_need_notify(vq) || vq->call_fd < 0)
		return;
	/* EAGAIN means the counter is saturated: the guest has an interrupt
	 * pending anyway. */
	if (write(vq->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		bh_vq_set_broken(vq, "call eventfd: %s", strerror(errno));
}

int bh_vq_drain_kick(struct bh_vq *vq)
{
	struct pollfd p = { .fd = vq->kick_fd, .events = POLLIN };
	uint64_t v;
	ssize_t n;
	int r;

	if (vq->kick_fd < 0)
		return -EBADF;
	/* The eventfd may be blocking (it is the controller's): only read
	 * what is there. */
	r = poll(&p, 1, 0);
	if (r < 0)
		return -errno;
	if (r == 0 || !(p.revents & POLLIN))
		return -EAGAIN;
	n = read(vq->kick_fd, &v, sizeof(v));
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(v))
		return -EIO;
	return 0;
}

size_t bh_iov_write(const struct iovec *iov, unsigned int n, const void *buf,
		    size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (l > len - done)
			l = len - done;
		memcpy(iov[i].iov_base, p + done, l);
		done += l;
	}
	return done;
}
