/* vsock/vsock: the virtio-vsock device worker: guest stream connections to
 * and from host unix sockets that the controller accepts and connects for
 * it (Firecracker's hybrid model); this process makes no socket itself. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <bulkhead/le.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "vsock_conn.h"
#include "worker.h"

#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2
/* struct virtio_vsock_event's id (virtio 1.2, 5.10.6.7). */
#define VSOCK_EVENT_TRANSPORT_RESET 0
#define VSOCK_EVQ		    2
#define VSOCK_QUEUE_SIZE	    256
/* Packets read from one host socket per wake-up, so that one busy
 * connection does not starve the others or the control socket. */
#define VSOCK_READ_BURST 16

struct vsock {
	struct vsk v;
	bool rx_held;	 /* rx_req is popped and not yet used */
	bool rx_starved; /* the guest has no rx buffer for us */
	bool tx_stalled; /* RSTs owed fill the ring: tx waits for rx */
	/* A replacement worker knows none of the guest's connections: the
	 * guest is told to drop them all (TRANSPORT_RESET), so that none of
	 * them waits for ever for data that will not come. */
	bool reset_owed;
	struct bh_vq_req rx_req;
	struct bh_vq_req tx_req;
	struct bh_vq_req ev_req;
	struct iovec iov[BH_VQ_MAX_IOV]; /* a slice of a request */
};

/* shutdown(SHUT_WR) passes the guest's SHUTDOWN on to the host peer as EOF;
 * it acts only on a socket already held. No socket is made or connected
 * here: the controller does that. */
static const char *const vsock_syscalls[] = { "shutdown", NULL };

/* ---- requests' buffers --------------------------------------------------- */

/* iov[0..n) limited to bytes [off, off + len): fills out, returns its
 * count. */
static unsigned int iov_slice(const struct iovec *iov, unsigned int n,
			      uint64_t off, uint64_t len, struct iovec *out)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = (size_t)(l - off < len ? l - off : len);
		len -= out[k].iov_len;
		off = 0;
		k++;
	}
	return k;
}

/* Copies len bytes from iov at off into dst (the caller checked the
 * total). */
static void iov_read(const struct iovec *iov, unsigned int n, uint64_t off,
		     void *dst, size_t len)
{
	uint8_t *d = dst;

	for (unsigned int i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len, c;

		if (off >= l) {
			off -= l;
			continue;
		}
		c = l - off < len ? l - off : len;
		memcpy(d, (uint8_t *)iov[i].iov_base + off, c);
		d += c;
		len -= c;
		off = 0;
	}
}

/* ---- host sockets -------------------------------------------------------- */

/* Host sockets are used with MSG_DONTWAIT whatever their flags: the worker
 * must never block on a peer, and may not call fcntl. */
static ssize_t sock_send(int fd, struct iovec *iov, unsigned int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };
	ssize_t r;

	if (n > IOV_MAX)
		m.msg_iovlen = IOV_MAX;
	do {
		r = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static ssize_t sock_recv(int fd, struct iovec *iov, unsigned int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };
	ssize_t r;

	if (n > IOV_MAX)
		m.msg_iovlen = IOV_MAX;
	do {
		r = recvmsg(fd, &m, MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static struct vsk_conn *conn_by_fd(struct vsock *s, int fd)
{
	for (unsigned int i = 0; i < s->v.max_conns; i++)
		if (s->v.conns[i].fd == fd && s->v.conns[i].state != VSK_FREE)
			return &s->v.conns[i];
	return NULL;
}

/* The host side is gone or misbehaved: close it, RST to the guest. */
static void conn_reset(struct vsock *s, struct vsk_conn *c)
{
	bh_closep(&c->fd);
	vsk_conn_reset(&s->v, c);
}

static void conn_close(struct vsock *s, struct vsk_conn *c)
{
	bh_closep(&c->fd);
	vsk_conn_free(&s->v, c);
}

/* After the guest's SHUTDOWN, once its bytes are all out. */
static void conn_after_drain(struct vsock *s, struct vsk_conn *c)
{
	switch (vsk_conn_drained(c)) {
	case VSK_DRAIN_SHUT_WR:
		if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN)
			conn_reset(s, c);
		break;
	case VSK_DRAIN_CLOSE:
		conn_reset(s, c);
		break;
	default:
		break;
	}
}

/* Writes what the host socket did not take before. */
static void conn_flush(struct vsock *s, struct vsk_conn *c)
{
	while (c->buf_len) {
		struct iovec iov;
		const uint8_t *data;
		ssize_t n;

		iov.iov_len = vsk_conn_pending(c, &data);
		iov.iov_base = (void *)data;
		n = sock_send(c->fd, &iov, 1);
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			conn_reset(s, c);
			return;
		}
		vsk_conn_flushed(c, (uint32_t)n);
	}
	conn_after_drain(s, c);
}

/* The payload of a guest packet, bytes [off, off + len) of req's readable
 * part, to c's host socket: written at once where it takes them, the rest
 * buffered (within the credit the guest was given). */
static void conn_deliver(struct bh_worker *w, struct vsock *s,
			 struct vsk_conn *c, const struct bh_vq_req *req,
			 uint64_t off, uint32_t len)
{
	unsigned int k;
	ssize_t n = 0;

	bh_worker_count(w, "tx_bytes", len);
	if (c->buf_len == 0) {
		k = iov_slice(req->iov, req->n_out, off, len, s->iov);
		n = sock_send(c->fd, s->iov, k);
		if (n == -EAGAIN)
			n = 0;
		if (n < 0) {
			conn_reset(s, c);
			return;
		}
		vsk_conn_written(c, (uint32_t)n);
	}
	k = iov_slice(req->iov, req->n_out, off + (uint64_t)n,
		      len - (uint64_t)n, s->iov);
	for (unsigned int i = 0; i < k; i++)
		vsk_conn_buffer(c, s->iov[i].iov_base,
				(uint32_t)s->iov[i].iov_len);
}

/* ---- the guest's queues -------------------------------------------------- */

/* An rx buffer for the next packet: 1, or 0 if the guest has none. */
static int rx_buffer(struct bh_worker *w, struct vsock *s)
{
	struct bh_vq *vq = &w->vq[VSOCK_RXQ];
	int r;

	while (!s->rx_held) {
		if (!vq->ready || w->needs_reset)
			return 0;
		r = bh_vq_pop(vq, &s->rx_req);
		if (r == 0) {
			s->rx_starved = true;
			return 0;
		}
		if (r < 0) {
			bh_worker_needs_reset(w, "rx queue: %s", vq->why);
			return 0;
		}
		/* Guest-controlled: a buffer without room for a header
		 * goes back unused. */
		if (s->rx_req.in_len < VSK_HDR_LEN) {
			bh_vq_push(vq, s->rx_req.head, 0);
			bh_worker_count(w, "drops", 1);
			continue;
		}
		s->rx_held = true;
	}
	return 1;
}

/* Puts header h (and n payload bytes already there) in the held rx buffer
 * and returns it to the guest. */
static void rx_put(struct bh_worker *w, struct vsock *s,
		   const struct vsk_hdr *h)
{
	struct bh_vq_req *r = &s->rx_req;
	uint8_t b[VSK_HDR_LEN];

	vsk_hdr_encode(h, b);
	bh_iov_write(&r->iov[r->n_out], r->n_in, b, sizeof(b));
	bh_vq_push(&w->vq[VSOCK_RXQ], r->head, VSK_HDR_LEN + h->len);
	s->rx_held = false;
}

/* Sends the control packets owed, while the guest has buffers. */
static bool rx_control(struct bh_worker *w, struct vsock *s)
{
	struct vsk_conn *c;
	struct vsk_hdr h;
	bool pushed = false;

	while (vsk_rx_next(&s->v, &h, &c) == 1 && rx_buffer(w, s)) {
		rx_put(w, s, &h);
		vsk_rx_done(&s->v, &h, c);
		pushed = true;
	}
	return pushed;
}

/* Reads c's host socket into rx buffers while the guest has credit and
 * buffers. */
static bool rx_data(struct bh_worker *w, struct vsock *s, struct vsk_conn *c)
{
	bool pushed = false;

	for (unsigned int i = 0; i < VSOCK_READ_BURST; i++) {
		struct bh_vq_req *r = &s->rx_req;
		uint32_t credit = vsk_conn_credit(c);
		uint64_t room;
		struct vsk_hdr h;
		unsigned int k;
		ssize_t n;

		if (!vsk_conn_wants_read(c) || !credit || !rx_buffer(w, s))
			break;
		room = r->in_len - VSK_HDR_LEN;
		if (room > credit)
			room = credit;
		/* Guest-controlled: a buffer with room for a header alone
		 * cannot carry data; without this it would be held for
		 * ever. */
		if (room == 0) {
			bh_vq_push(&w->vq[VSOCK_RXQ], r->head, 0);
			s->rx_held = false;
			bh_worker_count(w, "drops", 1);
			pushed = true;
			continue;
		}
		k = iov_slice(&r->iov[r->n_out], r->n_in, VSK_HDR_LEN, room,
			      s->iov);
		n = sock_recv(c->fd, s->iov, k);
		if (n == -EAGAIN)
			break;
		if (n == 0) {
			vsk_conn_host_eof(c);
			break;
		}
		if (n < 0) {
			conn_reset(s, c);
			break;
		}
		vsk_rx_data(&s->v, c, &h);
		h.len = (uint32_t)n;
		rx_put(w, s, &h);
		vsk_rx_done(&s->v, &h, c);
		bh_worker_count(w, "rx_bytes", (uint64_t)n);
		pushed = true;
	}
	return pushed;
}

/* "OK <port>\n" to a host whose connection the guest accepted. A fresh
 * socket has room for it; one that does not take it all is dropped. */
static void host_ok(struct vsock *s, struct vsk_conn *c)
{
	char line[24];
	struct iovec iov;
	int len;

	len = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	iov.iov_base = line;
	iov.iov_len = (size_t)len;
	if (sock_send(c->fd, &iov, 1) != len)
		conn_reset(s, c);
}

static void ask_connect(struct bh_worker *w, struct vsock *s,
			struct vsk_conn *c)
{
	Bh__VsockConnect m = BH__VSOCK_CONNECT__INIT;

	m.token = c->token;
	m.port = c->local_port;
	if (bh_worker_send(w, BH__MSG_TYPE__MSG_VSOCK_CONNECT, &m.base) < 0)
		conn_reset(s, c);
}

/* One packet from the transmit queue. */
static void tx_one(struct bh_worker *w, struct vsock *s, struct bh_vq_req *r)
{
	uint8_t b[VSK_HDR_LEN];
	struct vsk_conn *c;
	struct vsk_hdr h;

	/* Guest-controlled chain: a writable part in a transmit chain, or
	 * fewer bytes than a header, is not a packet. */
	if (r->n_in || r->out_len < VSK_HDR_LEN) {
		bh_worker_count(w, "drops", 1);
		return;
	}
	iov_read(r->iov, r->n_out, 0, b, sizeof(b));
	vsk_hdr_decode(b, &h);
	switch (vsk_tx(&s->v, &h, r->out_len - VSK_HDR_LEN, &c)) {
	case VSK_ACT_DATA:
		conn_deliver(w, s, c, r, VSK_HDR_LEN, h.len);
		break;
	case VSK_ACT_CONNECT:
		ask_connect(w, s, c);
		break;
	case VSK_ACT_ESTABLISHED:
		host_ok(s, c);
		break;
	case VSK_ACT_CLOSE:
		conn_close(s, c);
		break;
	case VSK_ACT_RESET:
		conn_reset(s, c);
		break;
	case VSK_ACT_SHUT:
		if (c->buf_len == 0)
			conn_after_drain(s, c);
		break;
	default:
		break;
	}
}

static void tx_queue(struct bh_worker *w, struct vsock *s)
{
	struct bh_vq *vq = &w->vq[VSOCK_TXQ];
	bool pushed = false;

	while (vq->ready && !w->needs_reset) {
		int r;

		/* A packet may need an RST; with none of those free, the
		 * guest's packets wait in its ring until rx drains them. */
		if (!vsk_tx_room(&s->v)) {
			s->tx_stalled = true;
			break;
		}
		r = bh_vq_pop(vq, &s->tx_req);
		if (r == 0)
			break;
		if (r < 0) {
			bh_worker_needs_reset(w, "tx queue: %s", vq->why);
			break;
		}
		tx_one(w, s, &s->tx_req);
		bh_vq_push(vq, s->tx_req.head, 0);
		pushed = true;
	}
	if (pushed)
		bh_vq_notify(vq);
}

static void sync_counters(struct bh_worker *w, struct vsock *s)
{
	bh_worker_set_counter(w, "connections", s->v.n_connections);
	bh_worker_set_counter(w, "host_connections", s->v.n_host);
	bh_worker_set_counter(w, "guest_connections", s->v.n_guest);
	bh_worker_set_counter(w, "resets", s->v.n_resets);
	bh_worker_set_counter(w, "open_connections", s->v.nconns);
	/* The state machine's drops plus the chains counted here. */
	bh_worker_count(w, "drops", s->v.n_drops);
	s->v.n_drops = 0;
}

/* TRANSPORT_RESET on the event queue, once the driver has a buffer there
 * (guest-controlled: at least the event's 4 bytes, writable). */
static void send_reset_event(struct bh_worker *w, struct vsock *s)
{
	struct bh_vq *vq = &w->vq[VSOCK_EVQ];
	uint8_t ev[4] = { VSOCK_EVENT_TRANSPORT_RESET, 0, 0, 0 };
	size_t off = 0;
	int r;

	if (w->nq <= VSOCK_EVQ || !vq->ready)
		return;
	r = bh_vq_pop(vq, &s->ev_req);
	if (r <= 0)
		return; /* none yet (or a broken queue, reported by the loop) */
	s->reset_owed = false;
	off = bh_iov_write(&s->ev_req.iov[s->ev_req.n_out], s->ev_req.n_in, ev,
			   sizeof(ev));
	bh_vq_push(vq, s->ev_req.head, (uint32_t)off);
	bh_vq_notify(vq);
	bh_info("told the guest to drop its connections (transport reset)");
}

/* Moves whatever can move: packets owed to the guest, then the transmit
 * queue if it waited for them. */
static void pump(struct bh_worker *w, struct vsock *s)
{
	bool pushed;

	/* Paused: what is owed to the guest waits for resume. */
	if (!w->active || w->needs_reset || w->paused || w->nq < 2)
		return;
	if (s->reset_owed)
		send_reset_event(w, s);
	pushed = rx_control(w, s);
	if (s->tx_stalled && vsk_tx_room(&s->v)) {
		s->tx_stalled = false;
		tx_queue(w, s);
		pushed |= rx_control(w, s);
	}
	if (pushed)
		bh_vq_notify(&w->vq[VSOCK_RXQ]);
	sync_counters(w, s);
}

static void vsock_queue_notify(struct bh_worker *w, unsigned int q)
{
	struct vsock *s = w->dev;

	if (q == VSOCK_TXQ) {
		tx_queue(w, s);
	} else if (q == VSOCK_RXQ) {
		/* New buffers: host sockets may be read again. */
		s->rx_starved = false;
	}
	/* The event queue holds buffers for the one event ever sent: the
	 * transport reset of a replacement worker (pump sends it). */
	pump(w, s);
}

/* ---- host sockets' readiness --------------------------------------------- */

/* Bytes of a CONNECT line, one at a time so that none of the stream after
 * it is taken early. */
static void host_line(struct bh_worker *w, struct vsock *s, struct vsk_conn *c)
{
	for (unsigned int i = 0; i < VSK_LINE_MAX; i++) {
		uint8_t byte;
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		ssize_t n = sock_recv(c->fd, &iov, 1);
		int r;

		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			conn_close(s, c);
			return;
		}
		r = vsk_line_byte(&s->v, c, byte);
		if (r < 0) {
			bh_log_ratelimited(BH_LOG_INFO,
					   "host connection: not a CONNECT "
					   "line: closed");
			bh_worker_count(w, "drops", 1);
			conn_close(s, c);
			return;
		}
		if (r == 1)
			return;
	}
}

static void vsock_fd_ready(struct bh_worker *w, int fd)
{
	struct vsock *s = w->dev;
	struct vsk_conn *c = conn_by_fd(s, fd);
	bool pushed = false;

	/* A connection closed earlier in this wake-up. */
	if (!c)
		return;
	if (c->state == VSK_HOST_LINE) {
		host_line(w, s, c);
	} else if (c->state == VSK_ESTABLISHED) {
		if (c->buf_len)
			conn_flush(s, c);
		if (c->state == VSK_ESTABLISHED && !s->rx_starved)
			pushed = rx_data(w, s, c);
	}
	if (pushed)
		bh_vq_notify(&w->vq[VSOCK_RXQ]);
	pump(w, s);
}

static unsigned int vsock_poll_fds(struct bh_worker *w, int *fds,
				   unsigned int max)
{
	struct vsock *s = w->dev;
	unsigned int n = 0;

	if (!w->active || w->needs_reset)
		return 0;
	for (unsigned int i = 0; i < s->v.max_conns && n < max; i++) {
		const struct vsk_conn *c = &s->v.conns[i];

		/* Host bytes stay in the socket until the guest has credit
		 * and a buffer for them. */
		if (c->state == VSK_HOST_LINE ||
		    (!s->rx_starved && vsk_conn_wants_read(c)))
			fds[n++] = c->fd;
	}
	return n;
}

static unsigned int vsock_poll_out_fds(struct bh_worker *w, int *fds,
				       unsigned int max)
{
	struct vsock *s = w->dev;
	unsigned int n = 0;

	if (!w->active || w->needs_reset)
		return 0;
	for (unsigned int i = 0; i < s->v.max_conns && n < max; i++) {
		const struct vsk_conn *c = &s->v.conns[i];

		if (c->state == VSK_ESTABLISHED && c->buf_len)
			fds[n++] = c->fd;
	}
	return n;
}

/* Host connections that did not send their CONNECT line in time. */
static int vsock_timer(struct bh_worker *w)
{
	struct vsock *s = w->dev;
	uint64_t now = bh_now_ns(), next;

	for (unsigned int i = 0; i < s->v.max_conns; i++) {
		struct vsk_conn *c = &s->v.conns[i];

		if (c->state == VSK_HOST_LINE && c->deadline_ns <= now) {
			bh_log_ratelimited(BH_LOG_INFO,
					   "host connection: no CONNECT line "
					   "in time: closed");
			conn_close(s, c);
		}
	}
	sync_counters(w, s);
	next = vsk_next_deadline(&s->v);
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now + 999999) / 1000000);
}

/* ---- the controller's messages ------------------------------------------- */

static int host_conn(struct bh_worker *w, struct vsock *s, struct bh_frame *f)
{
	Bh__VsockHostConn *m;
	struct vsk_conn *c;
	int fd;

	if (f->nfds != 1)
		return -EPROTO;
	m = bh__vsock_host_conn__unpack(NULL, f->len, f->body);
	if (!m)
		return -EBADMSG;
	bh__vsock_host_conn__free_unpacked(m, NULL);
	fd = bh_frame_take_fd(f, 0);
	/* No driver, or too many connections: the host peer sees EOF. */
	if (!w->active || w->needs_reset ||
	    vsk_host_conn(&s->v, fd, bh_now_ns(), &c) < 0) {
		bh_log_ratelimited(BH_LOG_INFO, "host connection refused: %s",
				   w->active ? "connection limit"
					     : "device not active");
		bh_closep(&fd);
		return 0;
	}
	/* The line may be there already. */
	host_line(w, s, c);
	return 0;
}

static int connected(struct bh_worker *w, struct vsock *s, struct bh_frame *f)
{
	Bh__VsockConnected *m;
	struct vsk_conn *c;
	int fd = -1, error;
	uint32_t token;

	m = bh__vsock_connected__unpack(NULL, f->len, f->body);
	if (!m)
		return -EBADMSG;
	token = m->token;
	error = m->error;
	bh__vsock_connected__free_unpacked(m, NULL);
	if (error < 0 || f->nfds != (error == 0 ? 1u : 0u))
		return -EPROTO;
	if (error == 0)
		fd = bh_frame_take_fd(f, 0);
	c = vsk_connected(&s->v, token, error, fd);
	/* An answer for a connection that is gone (the guest reset it, or
	 * the device was reset): nobody wants the socket. */
	if (!c || error)
		bh_closep(&fd);
	return 0;
}

static int vsock_ctl_message(struct bh_worker *w, struct bh_frame *f)
{
	struct vsock *s = w->dev;
	int r;

	switch (f->type) {
	case BH__MSG_TYPE__MSG_VSOCK_HOST_CONN:
		r = host_conn(w, s, f);
		break;
	case BH__MSG_TYPE__MSG_VSOCK_CONNECTED:
		r = connected(w, s, f);
		break;
	default:
		return -ENOMSG;
	}
	if (r == 0)
		pump(w, s);
	return r;
}

/* ---- life cycle ---------------------------------------------------------- */

static void close_fd(void *arg, int fd)
{
	(void)arg;
	bh_closep(&fd);
}

static int vsock_activate(struct bh_worker *w)
{
	struct vsock *s = w->dev;

	if (w->nq < 2 || !w->vq[VSOCK_RXQ].ready || !w->vq[VSOCK_TXQ].ready) {
		bh_err("vsock needs its rx and tx queues");
		return -EINVAL;
	}
	s->rx_held = s->rx_starved = s->tx_stalled = false;
	s->reset_owed = w->resumed;
	/* A paused worker (a restored VM's) takes no chain: the reset waits
	 * for the resume, whose look at the queues sends it (pump). */
	if (s->reset_owed && !w->paused)
		send_reset_event(w, s);
	return 0;
}

/* Every host socket is closed (its peer sees EOF): a driver reset, or the
 * worker's end, forgets all connections. */
static void vsock_reset(struct bh_worker *w)
{
	struct vsock *s = w->dev;

	vsk_reset(&s->v, close_fd, NULL);
	s->rx_held = s->rx_starved = s->tx_stalled = false;
	s->reset_owed = false;
	sync_counters(w, s);
}

static int vsock_setup(struct bh_worker *w, const Bh__WorkerSetup *ws,
		       struct bh_frame *f)
{
	const Bh__VsockSetup *vs = ws->vsock;
	struct vsock *s;

	if (!vs || f->nfds != 1) {
		bh_err("vsock setup: %u fds, %s", f->nfds,
		       vs ? "setup" : "no setup");
		return -EINVAL;
	}
	/* 0-2 are reserved, and U32_MAX is VMADDR_CID_ANY for Linux. */
	if (vs->cid < 3 || vs->cid >= UINT32_MAX) {
		bh_err("vsock setup: cid %llu", (unsigned long long)vs->cid);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	vsk_init(&s->v, vs->cid, vs->max_connections);
	bh_put_le64(w->config, vs->cid);
	w->config_len = 8;
	w->device_features = 0;
	w->num_queues = 3;
	w->max_queue_size = VSOCK_QUEUE_SIZE;
	/* Host sockets, and those on their way in answers. */
	w->more_fds = s->v.max_conns + VSK_MAX_PENDING_CONNECT;
	w->dev = s;
	bh_worker_count(w, "rx_bytes", 0);
	bh_worker_count(w, "tx_bytes", 0);
	bh_worker_count(w, "drops", 0);
	sync_counters(w, s);
	return 0;
}

static const struct bh_device_ops vsock_ops = {
	.name = "vsock",
	.device_type = BH_VIRTIO_ID_VSOCK,
	.backend = BH__WORKER_SETUP__BACKEND_VSOCK,
	.setup = vsock_setup,
	.activate = vsock_activate,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_reset,
	.poll_fds = vsock_poll_fds,
	.poll_out_fds = vsock_poll_out_fds,
	.fd_ready = vsock_fd_ready,
	.timer = vsock_timer,
	.ctl_message = vsock_ctl_message,
	.extra_syscalls = vsock_syscalls,
};

int main(int argc, char **argv)
{
	return bh_worker_main(argc, argv, &vsock_ops);
}
