/* bulkhead-dev-net: virtio-net (virtio 1.x, 5.1) over one TAP fd per queue
 * pair that the controller opened: frames go out from guest memory with no
 * copy, come in with a bounded budget per queue, and the control queue sets
 * queue pairs, MAC address and guest offloads. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include <bulkhead/le.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "net_ctrl.h"
#include "worker.h"

#define NET_QUEUE_SIZE_DEFAULT 256
/* Frames moved per queue per wake-up: the poll loop visits every queue and
 * the control socket between two bursts, so one busy TAP queue cannot
 * starve the others. */
#define NET_RX_BUDGET 64
#define NET_TX_BUDGET 256
/* A receive chain this large takes any frame the TAP can hold (the driver
 * posts these when it negotiates GUEST_TSO without MRG_RXBUF). */
#define NET_RX_BIG (NET_HDR_LEN + NET_MAX_FRAME)
/* One byte more than a frame can be: a read that fills it was truncated. */
#define NET_SCRATCH (NET_RX_BIG + 1)
/* The longest control command read: class, command and a MAC table of
 * about 2700 entries, far more than a driver sends. */
#define NET_CTRL_MAX 16384u
#define NET_NO_QUEUE UINT_MAX

#define NET_FEATURES                                               \
	(NET_BIT(NET_F_CSUM) | NET_BIT(NET_F_GUEST_CSUM) |         \
	 NET_BIT(NET_F_CTRL_GUEST_OFFLOADS) | NET_BIT(NET_F_MAC) | \
	 NET_BIT(NET_F_GUEST_TSO4) | NET_BIT(NET_F_GUEST_TSO6) |   \
	 NET_BIT(NET_F_GUEST_ECN) | NET_BIT(NET_F_HOST_TSO4) |     \
	 NET_BIT(NET_F_HOST_TSO6) | NET_BIT(NET_F_HOST_ECN) |      \
	 NET_BIT(NET_F_MRG_RXBUF) | NET_BIT(NET_F_STATUS) |        \
	 NET_BIT(NET_F_CTRL_VQ) | NET_BIT(NET_F_CTRL_RX) |         \
	 NET_BIT(NET_F_CTRL_MAC_ADDR))

/* struct virtio_net_config up to mtu, little-endian. */
#define NET_CFG_MAC    0
#define NET_CFG_STATUS 6
#define NET_CFG_PAIRS  8
#define NET_CFG_MTU    10
#define NET_CFG_LEN    12

enum {
	C_RX_PACKETS,
	C_RX_BYTES,
	C_RX_DROPS,
	C_TX_PACKETS,
	C_TX_BYTES,
	C_TX_DROPS,
	C_PER_PAIR,
};

#define NET_PAIR_COUNTERS(n)                                               \
	{                                                                  \
		"rx" #n "_packets", "rx" #n "_bytes", "rx" #n "_drops",    \
		    "tx" #n "_packets", "tx" #n "_bytes", "tx" #n "_drops" \
	}

/* Counter names must be static strings (bh_worker_count). */
static const char *const net_counters[NET_MAX_PAIRS][C_PER_PAIR] = {
	NET_PAIR_COUNTERS(0), NET_PAIR_COUNTERS(1), NET_PAIR_COUNTERS(2),
	NET_PAIR_COUNTERS(3), NET_PAIR_COUNTERS(4), NET_PAIR_COUNTERS(5),
	NET_PAIR_COUNTERS(6),
};

/* A receive chain filled and waiting for the rest of its frame. */
struct net_used {
	uint16_t head;
	uint32_t len;
};

struct net_pair {
	int tap;       /* owned */
	bool tap_dead; /* end of file or an error: no longer polled */
	/* Of receive queue 2 * (this pair's index): a chain popped and
	 * nothing written to it yet, for whichever TAP queue reads next. */
	bool rx_held;
	bool rx_starved; /* the receive queue had no buffer: TAP not read */
	/* The receive queue this TAP queue's frames go to (rx_target). */
	unsigned int rx_q;
	bool tx_held; /* tx_req popped, the TAP refused it for now */
	bool tx_wait; /* more to send once the TAP is writable */
	struct bh_vq_req *rx_req;
	struct bh_vq_req *tx_req;
	/* A frame read into scratch, and the chains it was copied to so far
	 * (MRG_RXBUF): pushed together once the frame is all in. */
	uint8_t *scratch;
	uint32_t pend_len, pend_off;
	struct net_used *used;
	unsigned int nused;
	uint8_t *num_buffers[2]; /* the first chain's le16 num_buffers */
};

struct net {
	unsigned int pairs;  /* offered */
	unsigned int active; /* served: 1 until VQ_PAIRS_SET */
	unsigned int ctrlq;  /* control queue index, or NET_NO_QUEUE */
	bool offload_warned;
	uint8_t *ctrl_buf;
	struct bh_vq_req *ctrl_req;
	struct net_pair pair[NET_MAX_PAIRS];
};

static const unsigned long net_ioctls[] = { TUNSETOFFLOAD, 0 };
static const char *const net_ioctl_names[] = { "TUNSETOFFLOAD", NULL };

static void count(struct bh_worker *w, unsigned int pi, int which, uint64_t v)
{
	bh_worker_count(w, net_counters[pi][which], v);
}

static void net_set_offloads(struct bh_worker *w, struct net *n,
			     unsigned int flags)
{
	for (unsigned int p = 0; p < n->pairs; p++) {
		if (ioctl(n->pair[p].tap, TUNSETOFFLOAD,
			  (unsigned long)flags) == 0 ||
		    n->offload_warned)
			continue;
		/* Not a TAP (a test's socket), or an old kernel: the TAP then
		 * hands over only complete, checksummed frames. */
		bh_warn("TUNSETOFFLOAD 0x%x: %s: offloads left as they are",
			flags, strerror(errno));
		n->offload_warned = true;
	}
}

/* The byte at offset off of the iovecs (which hold more than off). */
static uint8_t *iov_byte(const struct iovec *iov, unsigned int cnt, size_t off)
{
	for (unsigned int i = 0; i < cnt; i++) {
		if (off < iov[i].iov_len)
			return (uint8_t *)iov[i].iov_base + off;
		off -= iov[i].iov_len;
	}
	return NULL;
}

/* Points p->num_buffers at the header field of the chain in p->rx_req. */
/* t: the TAP queue's frame; h: the receive queue's holder of the chain. */
static void rx_mark_header(struct net_pair *t, const struct net_pair *h)
{
	const struct bh_vq_req *r = h->rx_req;
	struct net_pair *p = t;

	/* in_len >= NET_HDR_LEN (rx_take): both bytes exist. */
	p->num_buffers[0] =
	    iov_byte(&r->iov[r->n_out], r->n_in, NET_HDR_NUM_BUFFERS);
	p->num_buffers[1] =
	    iov_byte(&r->iov[r->n_out], r->n_in, NET_HDR_NUM_BUFFERS + 1);
}

static void rx_set_num_buffers(struct net_pair *p, uint16_t nbuf)
{
	/* The TAP leaves these two bytes as they were. */
	*p->num_buffers[0] = (uint8_t)nbuf;
	*p->num_buffers[1] = (uint8_t)(nbuf >> 8);
}

/* The next receive chain unless one is held: 1, 0 when the queue is empty,
 * -EIO when the queue or the chain is broken. */
static int rx_take(struct bh_worker *w, struct net_pair *t, struct net_pair *p,
		   unsigned int pi, struct bh_vq *vq)
{
	const struct bh_vq_req *r = p->rx_req;
	int ret;

	if (p->rx_held)
		return 1;
	ret = bh_vq_pop(vq, p->rx_req);
	if (ret == 0) {
		t->rx_starved = true;
		return 0;
	}
	if (ret < 0)
		return -EIO; /* reported by the worker loop */
	/* Guest-controlled: receive buffers are device-writable and each
	 * holds at least a header (5.1.6.3.1). */
	if (r->n_out != 0 || r->in_len < NET_HDR_LEN) {
		bh_worker_needs_reset(w,
				      "rx%u: chain with %llu readable and "
				      "%llu writable bytes",
				      pi, (unsigned long long)r->out_len,
				      (unsigned long long)r->in_len);
		return -EIO;
	}
	p->rx_held = true;
	return 1;
}

/* A read from the TAP failed or ended: 0 to stop this burst. */
static int rx_read_failed(struct net_pair *p, unsigned int pi, ssize_t n)
{
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	bh_log_ratelimited(BH_LOG_WARN, "TAP queue %u: %s: no longer read", pi,
			   n == 0 ? "end of file" : strerror(errno));
	p->tap_dead = true;
	return 0;
}

/* Copies the pending frame into chains until it is all in, then returns
 * them. 1 when the frame is done (delivered or dropped), 0 when it waits
 * for buffers, -EIO. */
static int rx_fill(struct bh_worker *w, struct net_pair *p, struct net_pair *h,
		   unsigned int pi, struct bh_vq *vq, bool mrg)
{
	while (p->pend_off < p->pend_len) {
		const struct bh_vq_req *r = h->rx_req;
		size_t done;
		int ret;

		/* A guest can publish a head again while it is in use: the
		 * frame then never completes within the queue. */
		if (p->nused == vq->size) {
			for (unsigned int i = 0; i < p->nused; i++)
				bh_vq_push(vq, p->used[i].head, 0);
			p->nused = 0;
			p->pend_len = 0;
			count(w, pi, C_RX_DROPS, 1);
			return 1;
		}
		ret = rx_take(w, p, h, pi, vq);
		if (ret <= 0)
			return ret;
		if (!mrg && r->in_len < p->pend_len) {
			/* Without MRG_RXBUF a frame takes one chain, which
			 * stays held for the next frame. */
			p->pend_len = 0;
			count(w, pi, C_RX_DROPS, 1);
			return 1;
		}
		done = bh_iov_write(&r->iov[r->n_out], r->n_in,
				    p->scratch + p->pend_off,
				    p->pend_len - p->pend_off);
		/* The chain goes back only with the frame's last one. */
		bh_vq_log_iov(vq, &r->iov[r->n_out], r->n_in);
		if (p->nused == 0)
			rx_mark_header(p, h);
		p->used[p->nused].head = r->head;
		p->used[p->nused].len = (uint32_t)done;
		p->nused++;
		h->rx_held = false;
		p->pend_off += (uint32_t)done;
	}
	rx_set_num_buffers(p, (uint16_t)p->nused);
	for (unsigned int i = 0; i < p->nused; i++)
		bh_vq_push(vq, p->used[i].head, p->used[i].len);
	count(w, pi, C_RX_PACKETS, 1);
	count(w, pi, C_RX_BYTES, p->pend_len - NET_HDR_LEN);
	p->nused = 0;
	p->pend_len = 0;
	return 1;
}

/* Reads one frame, straight into a chain large enough for any frame, else
 * through the scratch buffer. 1 when a frame was handled, 0 to stop. */
static int rx_read(struct bh_worker *w, struct net_pair *p, struct net_pair *h,
		   unsigned int pi, struct bh_vq *vq, bool mrg)
{
	const struct bh_vq_req *r = h->rx_req;
	ssize_t n;
	int ret;

	/* No byte is read without a place to put it. */
	ret = rx_take(w, p, h, pi, vq);
	if (ret <= 0)
		return ret;
	if (r->in_len >= NET_RX_BIG) {
		n = readv(p->tap, &r->iov[r->n_out],
			  r->n_in > IOV_MAX ? IOV_MAX : (int)r->n_in);
		if (n <= 0)
			return rx_read_failed(p, pi, n);
		/* A TAP reports a frame's whole length even when the
		 * buffers held less. */
		if ((size_t)n < NET_HDR_LEN || (uint64_t)n > r->in_len) {
			/* The chain stays held with what the TAP wrote. */
			bh_vq_log_iov(vq, &r->iov[r->n_out], r->n_in);
			count(w, pi, C_RX_DROPS, 1);
			return 1;
		}
		rx_mark_header(p, h);
		rx_set_num_buffers(p, 1);
		bh_vq_push(vq, r->head, (uint32_t)n);
		h->rx_held = false;
		count(w, pi, C_RX_PACKETS, 1);
		count(w, pi, C_RX_BYTES, (uint64_t)n - NET_HDR_LEN);
		return 1;
	}
	n = read(p->tap, p->scratch, NET_SCRATCH);
	if (n <= 0)
		return rx_read_failed(p, pi, n);
	if ((size_t)n < NET_HDR_LEN || (size_t)n > NET_RX_BIG) {
		count(w, pi, C_RX_DROPS, 1);
		return 1;
	}
	p->pend_len = (uint32_t)n;
	p->pend_off = 0;
	p->nused = 0;
	return rx_fill(w, p, h, pi, vq, mrg);
}

/* Where the active pair count outlives the worker (bulkhead/inflight.h). */
#define NET_STATE_ACTIVE 0

static void net_save_active(struct bh_worker *w, struct net *n)
{
	if (w->dev_state)
		bh_put_le32(w->dev_state + NET_STATE_ACTIVE, n->active);
}

/*
 * The receive queue for TAP queue pi's frames. The TAP spreads flows over
 * all its queues whatever the driver chose, so a TAP queue above the pairs
 * the driver uses (VQ_PAIRS_SET, or a resumed worker) is folded onto an
 * active one rather than left unread, which would cut its flows off. A
 * TAP queue keeps its target while part of a frame is in that queue's
 * chains. Chains popped and not yet written are the receive queue's, for
 * whichever TAP queue reads next.
 */
static unsigned int rx_target(struct net *n, unsigned int pi)
{
	struct net_pair *p = &n->pair[pi];

	if (!p->nused && !p->pend_len)
		p->rx_q = 2 * (pi % n->active);
	return p->rx_q;
}

static void net_rx(struct bh_worker *w, struct net *n, unsigned int tq)
{
	struct net_pair *p = &n->pair[tq];
	unsigned int qi = rx_target(n, tq), pi = qi / 2;
	struct net_pair *h = &n->pair[pi];
	struct bh_vq *vq = &w->vq[qi];
	bool mrg = w->driver_features & NET_BIT(NET_F_MRG_RXBUF);
	uint16_t before = vq->used_idx;

	if (!vq->ready || vq->broken || p->tap_dead)
		return;
	for (unsigned int i = 0; i < NET_RX_BUDGET && !w->needs_reset; i++) {
		int ret = p->pend_len ? rx_fill(w, p, h, pi, vq, mrg)
				      : rx_read(w, p, h, pi, vq, mrg);

		if (ret <= 0)
			break;
	}
	if (vq->used_idx != before)
		bh_vq_notify(vq);
}

/* Sends what the transmit queue holds, at most a budget of chains; the
 * rest when the TAP is writable again. Chains go back at once. */
static void net_tx(struct bh_worker *w, struct net *n, unsigned int pi)
{
	struct net_pair *p = &n->pair[pi];
	struct bh_vq *vq = &w->vq[2 * pi + 1];
	const struct bh_vq_req *r = p->tx_req;
	unsigned int taken = 0;

	if (!vq->ready || vq->broken)
		return;
	p->tx_wait = false;
	while (!w->needs_reset) {
		uint8_t hdr[NET_HDR_LEN];
		ssize_t nw;
		int ret;

		if (!p->tx_held) {
			if (taken == NET_TX_BUDGET) {
				p->tx_wait = true;
				break;
			}
			ret = bh_vq_pop(vq, p->tx_req);
			if (ret <= 0)
				break; /* a broken queue: the loop reports */
			taken++;
			memset(hdr, 0, sizeof(hdr));
			net_iov_peek(r->iov, r->n_out, hdr, sizeof(hdr));
			if (net_tx_check(hdr, r->out_len, r->n_in,
					 w->driver_features) < 0) {
				bh_log_ratelimited(
				    BH_LOG_WARN,
				    "tx%u: chain of %llu readable, %u writable "
				    "buffers, gso %u: dropped",
				    pi, (unsigned long long)r->out_len, r->n_in,
				    hdr[1]);
				count(w, pi, C_TX_DROPS, 1);
				bh_vq_push(vq, r->head, 0);
				continue;
			}
			p->tx_held = true;
		}
		/* The TAP takes the header with the frame. */
		nw = writev(p->tap, r->iov,
			    r->n_out > IOV_MAX ? IOV_MAX : (int)r->n_out);
		if (nw < 0 && errno == EINTR)
			continue;
		if (nw < 0 && errno == EAGAIN) {
			p->tx_wait = true;
			break;
		}
		p->tx_held = false;
		if (nw < 0) {
			bh_log_ratelimited(BH_LOG_WARN, "TAP queue %u: %s", pi,
					   strerror(errno));
			count(w, pi, C_TX_DROPS, 1);
		} else {
			count(w, pi, C_TX_PACKETS, 1);
			count(w, pi, C_TX_BYTES, r->out_len - NET_HDR_LEN);
		}
		bh_vq_push(vq, r->head, 0);
	}
	bh_vq_notify(vq);
}

static void net_ctrl_apply(struct bh_worker *w, struct net *n,
			   const struct net_ctrl_cmd *c)
{
	switch (c->action) {
	case NET_CTRL_SET_PAIRS:
		/* Queues above the new count are left alone from now on;
		 * the ones that join are looked at afresh. */
		n->active = c->pairs;
		net_save_active(w, n);
		for (unsigned int p = 0; p < n->pairs; p++) {
			n->pair[p].rx_starved = false;
			net_rx(w, n, p);
		}
		for (unsigned int p = 0; p < n->active; p++)
			net_tx(w, n, p);
		break;
	case NET_CTRL_SET_MAC:
		memcpy(w->config + NET_CFG_MAC, c->mac, 6);
		bh_worker_config_update(w, false);
		break;
	case NET_CTRL_SET_OFFLOADS:
		net_set_offloads(w, n, net_tun_offloads(c->offloads));
		break;
	case NET_CTRL_NONE:
		break;
	}
}

static void net_ctrl(struct bh_worker *w, struct net *n)
{
	struct bh_vq *vq = &w->vq[n->ctrlq];
	const struct bh_vq_req *r = n->ctrl_req;

	while (!w->needs_reset && bh_vq_pop(vq, n->ctrl_req) == 1) {
		const struct iovec *last;
		struct net_ctrl_cmd cmd;

		/* Guest-controlled: the ack is the chain's last writable
		 * byte (zero-length buffers are skipped by the pop). */
		if (r->n_in == 0) {
			bh_vq_set_broken(vq, "control command without a "
					     "writable ack byte");
			break;
		}
		if (r->out_len > NET_CTRL_MAX) {
			net_ctrl_parse(NULL, 0, 0, 0, &cmd);
		} else {
			size_t len = net_iov_peek(r->iov, r->n_out, n->ctrl_buf,
						  NET_CTRL_MAX);

			net_ctrl_parse(n->ctrl_buf, len, w->driver_features,
				       n->pairs, &cmd);
		}
		if (cmd.ack == VIRTIO_NET_OK)
			net_ctrl_apply(w, n, &cmd);
		last = &r->iov[r->n_out + r->n_in - 1];
		((uint8_t *)last->iov_base)[last->iov_len - 1] = cmd.ack;
		bh_vq_push(vq, r->head, 1);
	}
	bh_vq_notify(vq);
}

static void net_queue_notify(struct bh_worker *w, unsigned int q)
{
	struct net *n = w->dev;
	unsigned int pi = q / 2;

	if (q == n->ctrlq) {
		net_ctrl(w, n);
		return;
	}
	/* Only active pairs are served (MQ steering). */
	if (pi >= n->active)
		return;
	if (q % 2 == 0) {
		/* New buffers: the TAP queues that fill this queue may be
		 * read again. */
		for (unsigned int tq = 0; tq < n->pairs; tq++) {
			if (rx_target(n, tq) != q)
				continue;
			n->pair[tq].rx_starved = false;
			net_rx(w, n, tq);
		}
	} else {
		net_tx(w, n, pi);
	}
}

static bool net_rx_polled(struct bh_worker *w, struct net *n, unsigned int tq)
{
	const struct net_pair *p = &n->pair[tq];
	const struct bh_vq *vq = &w->vq[rx_target(n, tq)];

	/* A guest that posts no buffers costs nothing: its frames wait in
	 * the TAP's own bounded queue. */
	return vq->ready && !vq->broken && !p->rx_starved && !p->tap_dead;
}

static unsigned int net_poll_fds(struct bh_worker *w, int *fds,
				 unsigned int max)
{
	struct net *n = w->dev;
	unsigned int k = 0;

	if (!w->active || w->needs_reset)
		return 0;
	for (unsigned int p = 0; p < n->pairs && k < max; p++)
		if (net_rx_polled(w, n, p))
			fds[k++] = n->pair[p].tap;
	return k;
}

static unsigned int net_poll_out_fds(struct bh_worker *w, int *fds,
				     unsigned int max)
{
	struct net *n = w->dev;
	unsigned int k = 0;

	if (!w->active || w->needs_reset)
		return 0;
	for (unsigned int p = 0; p < n->active && k < max; p++)
		if (n->pair[p].tx_wait && w->vq[2 * p + 1].ready)
			fds[k++] = n->pair[p].tap;
	return k;
}

static void net_fd_ready(struct bh_worker *w, int fd)
{
	struct net *n = w->dev;

	if (!w->active || w->needs_reset)
		return;
	for (unsigned int p = 0; p < n->pairs; p++) {
		if (n->pair[p].tap != fd)
			continue;
		if (n->pair[p].tx_wait && p < n->active)
			net_tx(w, n, p);
		if (net_rx_polled(w, n, p))
			net_rx(w, n, p);
	}
}

static void net_clear(struct net *n)
{
	for (unsigned int p = 0; p < n->pairs; p++) {
		struct net_pair *pp = &n->pair[p];

		/* Held chains belong to the old queues: forget them. */
		pp->rx_held = pp->rx_starved = false;
		pp->tx_held = pp->tx_wait = false;
		pp->pend_len = pp->pend_off = 0;
		pp->nused = 0;
	}
	n->active = 1;
	n->ctrlq = NET_NO_QUEUE;
}

static int net_activate(struct bh_worker *w)
{
	struct net *n = w->dev;
	uint64_t f = w->driver_features;

	net_clear(n);
	/* The control queue follows the pairs the driver can use (5.1.2). */
	if (f & NET_BIT(NET_F_CTRL_VQ))
		n->ctrlq = 2 * ((f & NET_BIT(NET_F_MQ)) ? n->pairs : 1);
	/* A dead worker's VQ_PAIRS_SET holds, as a value from a process
	 * that may have been compromised: only a count the device offers. */
	if (w->resumed && w->dev_state && (f & NET_BIT(NET_F_MQ))) {
		uint32_t a = bh_get_le32(w->dev_state + NET_STATE_ACTIVE);

		if (a >= 1 && a <= n->pairs)
			n->active = a;
	}
	net_save_active(w, n);
	net_set_offloads(w, n, net_tun_offloads(f));
	return 0;
}

static void net_reset(struct bh_worker *w)
{
	struct net *n = w->dev;

	net_clear(n);
	net_set_offloads(w, n, 0);
}

/* A failed device: transmit chains come back empty (the 0 the loop
 * pushes); receive chains stay with the driver (net_fail_keep). */
static uint32_t net_fail_request(struct bh_worker *w, unsigned int q,
				 struct bh_vq_req *req)
{
	return 0;
}

static bool net_fail_keep(struct bh_worker *w, unsigned int q)
{
	struct net *n = w->dev;

	return q < 2 * n->pairs && q % 2 == 0;
}

static void net_free(struct net *n)
{
	for (unsigned int p = 0; p < NET_MAX_PAIRS; p++) {
		struct net_pair *pp = &n->pair[p];

		bh_closep(&pp->tap);
		free(pp->rx_req);
		free(pp->tx_req);
		free(pp->scratch);
		free(pp->used);
	}
	free(n->ctrl_buf);
	free(n->ctrl_req);
	free(n);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static int net_setup_pair(struct net_pair *p, struct bh_frame *f,
			  unsigned int idx, unsigned int qsize)
{
	int fl;

	p->tap = bh_frame_take_fd(f, idx);
	if (p->tap < 0) {
		bh_err("TAP fd %u missing", idx);
		return -EINVAL;
	}
	/* Never block the loop on a TAP, whatever the controller did. */
	fl = fcntl(p->tap, F_GETFL);
	if (fl < 0 || fcntl(p->tap, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	p->rx_req = malloc(sizeof(*p->rx_req));
	p->tx_req = malloc(sizeof(*p->tx_req));
	p->scratch = malloc(NET_SCRATCH);
	p->used = calloc(qsize, sizeof(*p->used));
	if (!p->rx_req || !p->tx_req || !p->scratch || !p->used)
		return -ENOMEM;
	return 0;
}

static int net_setup(struct bh_worker *w, const Bh__WorkerSetup *s,
		     struct bh_frame *f)
{
	const Bh__NetSetup *ns = s->net;
	unsigned int qsize;
	struct net *n;
	int ret;

	if (!ns || ns->mac.len != 6 || ns->queue_pairs < 1 ||
	    ns->queue_pairs > NET_MAX_PAIRS || f->nfds != 1 + ns->queue_pairs) {
		bh_err("net setup: %u fds, %u queue pairs, MAC of %zu bytes",
		       f->nfds, ns ? ns->queue_pairs : 0, ns ? ns->mac.len : 0);
		return -EINVAL;
	}
	qsize = ns->queue_size ? ns->queue_size : NET_QUEUE_SIZE_DEFAULT;
	if ((qsize & (qsize - 1)) != 0 || qsize > BH_MAX_QUEUE_SIZE ||
	    (ns->mtu != 0 && (ns->mtu < 68 || ns->mtu > 65535))) {
		bh_err("net setup: queue size %u, MTU %u", qsize, ns->mtu);
		return -EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (unsigned int p = 0; p < NET_MAX_PAIRS; p++)
		n->pair[p].tap = -1;
	n->pairs = ns->queue_pairs;
	n->ctrl_buf = malloc(NET_CTRL_MAX);
	n->ctrl_req = malloc(sizeof(*n->ctrl_req));
	if (!n->ctrl_buf || !n->ctrl_req) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned int p = 0; p < n->pairs; p++) {
		ret = net_setup_pair(&n->pair[p], f, 1 + p, qsize);
		if (ret < 0)
			goto err;
	}
	net_clear(n);

	w->device_features = NET_FEATURES;
	if (n->pairs > 1)
		w->device_features |= NET_BIT(NET_F_MQ);
	if (ns->mtu)
		w->device_features |= NET_BIT(NET_F_MTU);
	memset(w->config, 0, NET_CFG_LEN);
	memcpy(w->config + NET_CFG_MAC, ns->mac.data, 6);
	put_le16(w->config + NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP);
	put_le16(w->config + NET_CFG_PAIRS, (uint16_t)n->pairs);
	put_le16(w->config + NET_CFG_MTU, (uint16_t)ns->mtu);
	w->config_len = NET_CFG_LEN;
	w->num_queues = 2 * n->pairs + 1;
	w->max_queue_size = qsize;
	w->dev = n;
	for (unsigned int p = 0; p < n->pairs; p++)
		for (int c = 0; c < C_PER_PAIR; c++)
			count(w, p, c, 0);
	return 0;

err:
	net_free(n);
	return ret;
}

static const struct bh_device_ops net_ops = {
	.name = "net",
	.device_type = BH_VIRTIO_ID_NET,
	.backend = BH__WORKER_SETUP__BACKEND_NET,
	.setup = net_setup,
	.activate = net_activate,
	.queue_notify = net_queue_notify,
	.reset = net_reset,
	.poll_fds = net_poll_fds,
	.poll_out_fds = net_poll_out_fds,
	.fd_ready = net_fd_ready,
	.fail_request = net_fail_request,
	.fail_keep = net_fail_keep,
	/* Everything else it needs is in the common list. */
	.extra_syscalls = NULL,
	.ioctls = net_ioctls,
	.ioctl_names = net_ioctl_names,
};

int main(int argc, char **argv)
{
	return bh_worker_main(argc, argv, &net_ops);
}
