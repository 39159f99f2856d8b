/* vsock/vsock_conn: virtio-vsock connections as a state machine over
 * guest-controlled headers and host events; no system calls here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/le.h>

#include "vsock_conn.h"

void vsk_hdr_decode(const uint8_t b[VSK_HDR_LEN], struct vsk_hdr *h)
{
	h->src_cid = bh_get_le64(b + 0);
	h->dst_cid = bh_get_le64(b + 8);
	h->src_port = bh_get_le32(b + 16);
	h->dst_port = bh_get_le32(b + 20);
	h->len = bh_get_le32(b + 24);
	h->type = bh_get_le16(b + 28);
	h->op = bh_get_le16(b + 30);
	h->flags = bh_get_le32(b + 32);
	h->buf_alloc = bh_get_le32(b + 36);
	h->fwd_cnt = bh_get_le32(b + 40);
}

void vsk_hdr_encode(const struct vsk_hdr *h, uint8_t b[VSK_HDR_LEN])
{
	bh_put_le64(b + 0, h->src_cid);
	bh_put_le64(b + 8, h->dst_cid);
	bh_put_le32(b + 16, h->src_port);
	bh_put_le32(b + 20, h->dst_port);
	bh_put_le32(b + 24, h->len);
	bh_put_le16(b + 28, h->type);
	bh_put_le16(b + 30, h->op);
	bh_put_le32(b + 32, h->flags);
	bh_put_le32(b + 36, h->buf_alloc);
	bh_put_le32(b + 40, h->fwd_cnt);
}

void vsk_init(struct vsk *v, uint64_t guest_cid, uint32_t max_conns)
{
	memset(v, 0, sizeof(*v));
	v->guest_cid = guest_cid;
	if (max_conns == 0)
		max_conns = VSK_DEFAULT_CONNS;
	v->max_conns = max_conns > VSK_MAX_CONNS ? VSK_MAX_CONNS : max_conns;
	v->next_token = 1;
	v->next_host_port = VSK_HOST_PORT_FIRST;
	for (unsigned int i = 0; i < VSK_MAX_CONNS; i++)
		v->conns[i].fd = -1;
}

void vsk_conn_free(struct vsk *v, struct vsk_conn *c)
{
	if (c->state == VSK_FREE)
		return;
	if (c->state == VSK_GUEST_CONNECT)
		v->npending_connect--;
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	v->nconns--;
}

void vsk_reset(struct vsk *v, void (*close_fd)(void *arg, int fd), void *arg)
{
	for (unsigned int i = 0; i < VSK_MAX_CONNS; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->fd >= 0 && close_fd)
			close_fd(arg, c->fd);
		c->fd = -1;
		vsk_conn_free(v, c);
	}
	v->rst_head = v->rst_len = 0;
	v->npending_connect = 0;
	v->rr = 0;
	/* Tokens keep counting: an answer to a connect asked for before the
	 * reset must not match a connection made after it. */
}

int vsk_parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char prefix[] = "CONNECT ";
	const size_t plen = sizeof(prefix) - 1;
	uint64_t val = 0;
	size_t i;

	if (len > VSK_LINE_MAX)
		return -EINVAL;
	if (memcmp(line, prefix, len < plen ? len : plen) != 0)
		return -EINVAL;
	if (len <= plen)
		return len == VSK_LINE_MAX ? -EINVAL : 0;
	for (i = plen; i < len; i++) {
		char ch = line[i];

		if (ch == '\n')
			break;
		if (ch < '0' || ch > '9')
			return -EINVAL;
		/* No leading zeros: one spelling per port. */
		if (i > plen && line[plen] == '0')
			return -EINVAL;
		val = val * 10 + (uint64_t)(ch - '0');
		if (val > UINT32_MAX)
			return -EINVAL;
	}
	if (i == len)
		return len == VSK_LINE_MAX ? -EINVAL : 0;
	/* The newline must end the line and follow at least one digit. */
	if (i == plen || i + 1 != len)
		return -EINVAL;
	*port = (uint32_t)val;
	return 1;
}

static struct vsk_conn *conn_alloc(struct vsk *v)
{
	if (v->nconns >= v->max_conns)
		return NULL;
	for (unsigned int i = 0; i < v->max_conns; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->state != VSK_FREE)
			continue;
		c->fd = -1;
		v->nconns++;
		v->n_connections++;
		return c;
	}
	return NULL;
}

int vsk_host_conn(struct vsk *v, int fd, uint64_t now_ns, struct vsk_conn **out)
{
	struct vsk_conn *c = conn_alloc(v);

	if (!c)
		return -EBUSY;
	c->state = VSK_HOST_LINE;
	c->fd = fd;
	c->deadline_ns = now_ns + VSK_LINE_TIMEOUT_NS;
	v->n_host++;
	*out = c;
	return 0;
}

/* A connection the guest can name: ports match, past the CONNECT line. */
static struct vsk_conn *conn_find(struct vsk *v, uint32_t local, uint32_t peer)
{
	for (unsigned int i = 0; i < v->max_conns; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->state != VSK_FREE && c->state != VSK_HOST_LINE &&
		    c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

static bool local_port_used(const struct vsk *v, uint32_t port)
{
	for (unsigned int i = 0; i < v->max_conns; i++)
		if (v->conns[i].state != VSK_FREE &&
		    v->conns[i].state != VSK_HOST_LINE &&
		    v->conns[i].local_port == port)
			return true;
	return false;
}

int vsk_line_byte(struct vsk *v, struct vsk_conn *c, uint8_t byte)
{
	uint32_t port;
	int r;

	if (c->state != VSK_HOST_LINE || c->line_len >= VSK_LINE_MAX)
		return -EINVAL;
	c->line[c->line_len++] = (char)byte;
	r = vsk_parse_connect(c->line, c->line_len, &port);
	if (r <= 0)
		return r;
	/* A host port unique among open connections; at most max_conns are
	 * in use, so the search ends within max_conns + 1 steps. */
	while (local_port_used(v, v->next_host_port) ||
	       v->next_host_port < VSK_HOST_PORT_FIRST)
		v->next_host_port++;
	c->local_port = v->next_host_port++;
	c->peer_port = port;
	c->state = VSK_HOST_REQUEST;
	c->pend |= VSK_PEND_REQUEST;
	return 1;
}

bool vsk_tx_room(const struct vsk *v)
{
	return v->rst_len < VSK_RST_RING;
}

static void rst_unknown(struct vsk *v, const struct vsk_hdr *h)
{
	/* Never answer an RST with one: two devices would ping-pong. */
	if (h->op == VSK_OP_RST || v->rst_len >= VSK_RST_RING)
		return;
	v->rst[(v->rst_head + v->rst_len) % VSK_RST_RING][0] = h->src_port;
	v->rst[(v->rst_head + v->rst_len) % VSK_RST_RING][1] = h->dst_port;
	v->rst_len++;
}

void vsk_conn_reset(struct vsk *v, struct vsk_conn *c)
{
	if (c->state == VSK_GUEST_CONNECT)
		v->npending_connect--;
	c->state = VSK_RST_PENDING;
	c->fd = -1;
	c->pend = VSK_PEND_RST;
	c->buf_len = 0;
}

/* A guest REQUEST to the host: ask the controller to connect. */
static enum vsk_action guest_request(struct vsk *v, const struct vsk_hdr *h,
				     struct vsk_conn **cp)
{
	struct vsk_conn *c;

	if (v->npending_connect >= VSK_MAX_PENDING_CONNECT ||
	    !(c = conn_alloc(v))) {
		rst_unknown(v, h);
		return VSK_ACT_NONE;
	}
	c->state = VSK_GUEST_CONNECT;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->token = v->next_token++;
	if (v->next_token == 0)
		v->next_token = 1;
	v->npending_connect++;
	v->n_guest++;
	*cp = c;
	return VSK_ACT_CONNECT;
}

/* What the guest sent on an established connection. */
static enum vsk_action established(struct vsk *v, struct vsk_conn *c,
				   const struct vsk_hdr *h)
{
	switch (h->op) {
	case VSK_OP_RW:
		/* Guest-controlled len, checked against the chain already;
		 * the guest may not send past the credit we gave it (what we
		 * hold is what it sent and we did not forward). */
		if (c->guest_shut & VSK_SHUTDOWN_SEND) {
			v->n_drops++;
			return VSK_ACT_DROP;
		}
		if (h->len > VSK_BUF_ALLOC - c->buf_len) {
			v->n_drops++;
			return VSK_ACT_RESET;
		}
		c->tx_cnt += h->len;
		return h->len ? VSK_ACT_DATA : VSK_ACT_NONE;
	case VSK_OP_SHUTDOWN:
		c->guest_shut |=
		    h->flags & (VSK_SHUTDOWN_RCV | VSK_SHUTDOWN_SEND);
		return VSK_ACT_SHUT;
	case VSK_OP_CREDIT_UPDATE:
		return VSK_ACT_NONE;
	case VSK_OP_CREDIT_REQUEST:
		c->pend |= VSK_PEND_CREDIT;
		return VSK_ACT_NONE;
	default:
		/* REQUEST or RESPONSE on a live connection, or an unknown
		 * op: the guest's state is not ours any more. */
		return VSK_ACT_RESET;
	}
}

enum vsk_action vsk_tx(struct vsk *v, const struct vsk_hdr *h,
		       uint64_t payload_len, struct vsk_conn **cp)
{
	struct vsk_conn *c;

	*cp = NULL;
	/* Guest-controlled header: only stream packets from the guest's own
	 * cid to the host are served; anything else is refused. */
	if (h->src_cid != v->guest_cid || h->dst_cid != VSK_HOST_CID ||
	    h->type != VSK_TYPE_STREAM) {
		v->n_drops++;
		rst_unknown(v, h);
		return VSK_ACT_DROP;
	}
	c = conn_find(v, h->dst_port, h->src_port);
	if (h->len > payload_len || h->len > VSK_MAX_PKT ||
	    (h->len && h->op != VSK_OP_RW)) {
		v->n_drops++;
		if (!c || c->state == VSK_RST_PENDING) {
			rst_unknown(v, h);
			return VSK_ACT_DROP;
		}
		*cp = c;
		return VSK_ACT_RESET;
	}
	if (!c) {
		if (h->op == VSK_OP_REQUEST)
			return guest_request(v, h, cp);
		rst_unknown(v, h);
		return VSK_ACT_NONE;
	}
	*cp = c;
	if (h->op == VSK_OP_RST) {
		/* Nothing more to tell the guest, whatever was owed. */
		if (c->state != VSK_RST_PENDING)
			return VSK_ACT_CLOSE;
		vsk_conn_free(v, c);
		*cp = NULL;
		return VSK_ACT_NONE;
	}
	if (c->state == VSK_RST_PENDING) {
		*cp = NULL;
		return VSK_ACT_NONE;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (c->state) {
	case VSK_HOST_REQUEST:
		if (h->op == VSK_OP_RESPONSE && !(c->pend & VSK_PEND_REQUEST)) {
			c->state = VSK_ESTABLISHED;
			return VSK_ACT_ESTABLISHED;
		}
		return VSK_ACT_RESET;
	case VSK_GUEST_CONNECT:
		/* The guest waits for our RESPONSE; anything else but its
		 * RST (above) is out of order. */
		return VSK_ACT_RESET;
	case VSK_ESTABLISHED:
		return established(v, c, h);
	default:
		return VSK_ACT_RESET;
	}
}

struct vsk_conn *vsk_connected(struct vsk *v, uint32_t token, int error, int fd)
{
	for (unsigned int i = 0; i < v->max_conns; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->state != VSK_GUEST_CONNECT || c->token != token)
			continue;
		v->npending_connect--;
		if (error) {
			c->state = VSK_RST_PENDING;
			c->pend = VSK_PEND_RST;
			return c;
		}
		c->state = VSK_ESTABLISHED;
		c->fd = fd;
		c->pend |= VSK_PEND_RESPONSE;
		return c;
	}
	return NULL;
}

/* Acknowledges forwarded bytes in large enough steps that the guest never
 * waits on a stale fwd_cnt: it always knows of all but less than one
 * packet's worth. */
static void maybe_credit(struct vsk_conn *c)
{
	if (c->fwd_cnt - c->fwd_sent >= VSK_MAX_PKT)
		c->pend |= VSK_PEND_CREDIT;
}

void vsk_conn_written(struct vsk_conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	maybe_credit(c);
}

void vsk_conn_buffer(struct vsk_conn *c, const uint8_t *data, uint32_t n)
{
	uint32_t tail, first;

	if (n > VSK_BUF_ALLOC - c->buf_len)
		abort(); /* vsk_tx checked the credit */
	/* Only a host that stops reading makes a connection buffer. */
	if (!c->buf) {
		c->buf = malloc(VSK_BUF_ALLOC);
		if (!c->buf)
			abort();
	}
	tail = (c->buf_head + c->buf_len) % VSK_BUF_ALLOC;
	first = VSK_BUF_ALLOC - tail < n ? VSK_BUF_ALLOC - tail : n;
	memcpy(c->buf + tail, data, first);
	memcpy(c->buf, data + first, n - first);
	c->buf_len += n;
}

uint32_t vsk_conn_pending(const struct vsk_conn *c, const uint8_t **data)
{
	uint32_t to_end = VSK_BUF_ALLOC - c->buf_head;

	if (!c->buf) {
		*data = NULL;
		return 0;
	}
	*data = c->buf + c->buf_head;
	return c->buf_len < to_end ? c->buf_len : to_end;
}

void vsk_conn_flushed(struct vsk_conn *c, uint32_t n)
{
	c->buf_head = (c->buf_head + n) % VSK_BUF_ALLOC;
	c->buf_len -= n;
	c->fwd_cnt += n;
	/* Emptied after the host made us wait: the guest may be waiting in
	 * turn, so it hears of all of it at once. */
	if (c->buf_len == 0 && c->fwd_cnt != c->fwd_sent)
		c->pend |= VSK_PEND_CREDIT;
	maybe_credit(c);
}

int vsk_conn_drained(struct vsk_conn *c)
{
	if (c->state != VSK_ESTABLISHED || c->buf_len)
		return 0;
	if ((c->guest_shut & (VSK_SHUTDOWN_RCV | VSK_SHUTDOWN_SEND)) ==
	    (VSK_SHUTDOWN_RCV | VSK_SHUTDOWN_SEND))
		return VSK_DRAIN_CLOSE;
	if ((c->guest_shut & VSK_SHUTDOWN_SEND) && !c->host_wr_shut) {
		c->host_wr_shut = true;
		return VSK_DRAIN_SHUT_WR;
	}
	return 0;
}

void vsk_conn_host_eof(struct vsk_conn *c)
{
	if (c->host_eof)
		return;
	c->host_eof = true;
	c->pend |= VSK_PEND_SHUTDOWN;
}

uint32_t vsk_conn_credit(const struct vsk_conn *c)
{
	/* Guest-controlled: a fwd_cnt that runs ahead of what we sent or
	 * a buf_alloc that shrank below what is in flight gives no credit,
	 * never a wrapped-around large one. */
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;
	uint32_t credit;

	if (in_flight > c->peer_buf_alloc)
		return 0;
	credit = c->peer_buf_alloc - in_flight;
	return credit > VSK_MAX_PKT ? VSK_MAX_PKT : credit;
}

bool vsk_conn_wants_read(const struct vsk_conn *c)
{
	return c->state == VSK_ESTABLISHED && c->fd >= 0 && !c->host_eof &&
	       !(c->guest_shut & VSK_SHUTDOWN_RCV) &&
	       !(c->pend & (VSK_PEND_REQUEST | VSK_PEND_RESPONSE)) &&
	       vsk_conn_credit(c) > 0;
}

static void hdr_for(const struct vsk *v, const struct vsk_conn *c,
		    struct vsk_hdr *h, uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSK_HOST_CID;
	h->dst_cid = v->guest_cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->type = VSK_TYPE_STREAM;
	h->op = op;
	h->buf_alloc = VSK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
}

int vsk_rx_next(struct vsk *v, struct vsk_hdr *h, struct vsk_conn **cp)
{
	*cp = NULL;
	if (v->rst_len) {
		memset(h, 0, sizeof(*h));
		h->src_cid = VSK_HOST_CID;
		h->dst_cid = v->guest_cid;
		/* The guest's packet, answered: ports swapped. */
		h->src_port = v->rst[v->rst_head][1];
		h->dst_port = v->rst[v->rst_head][0];
		h->type = VSK_TYPE_STREAM;
		h->op = VSK_OP_RST;
		return 1;
	}
	for (unsigned int i = 0; i < v->max_conns; i++) {
		unsigned int idx = (v->rr + i) % v->max_conns;
		struct vsk_conn *c = &v->conns[idx];
		uint16_t op;

		if (c->state == VSK_FREE || !c->pend)
			continue;
		if (c->pend & VSK_PEND_RST)
			op = VSK_OP_RST;
		else if (c->pend & VSK_PEND_REQUEST)
			op = VSK_OP_REQUEST;
		else if (c->pend & VSK_PEND_RESPONSE)
			op = VSK_OP_RESPONSE;
		else if (c->pend & VSK_PEND_CREDIT)
			op = VSK_OP_CREDIT_UPDATE;
		else
			op = VSK_OP_SHUTDOWN;
		hdr_for(v, c, h, op);
		if (op == VSK_OP_SHUTDOWN)
			h->flags = VSK_SHUTDOWN_SEND;
		v->rr = (idx + 1) % v->max_conns;
		*cp = c;
		return 1;
	}
	return 0;
}

void vsk_rx_data(const struct vsk *v, struct vsk_conn *c, struct vsk_hdr *h)
{
	hdr_for(v, c, h, VSK_OP_RW);
}

void vsk_rx_done(struct vsk *v, const struct vsk_hdr *h, struct vsk_conn *c)
{
	if (!c) {
		/* The head of the RST ring went out. */
		if (v->rst_len) {
			v->rst_head = (v->rst_head + 1) % VSK_RST_RING;
			v->rst_len--;
		}
		v->n_resets++;
		return;
	}
	c->fwd_sent = h->fwd_cnt;
	switch (h->op) {
	case VSK_OP_RST:
		v->n_resets++;
		vsk_conn_free(v, c);
		return;
	case VSK_OP_REQUEST:
		c->pend &= ~VSK_PEND_REQUEST;
		break;
	case VSK_OP_RESPONSE:
		c->pend &= ~VSK_PEND_RESPONSE;
		break;
	case VSK_OP_SHUTDOWN:
		c->pend &= ~VSK_PEND_SHUTDOWN;
		break;
	case VSK_OP_RW:
		c->rx_cnt += h->len;
		break;
	default:
		break;
	}
	/* Every header carries fwd_cnt: whatever went out was an update. */
	c->pend &= ~VSK_PEND_CREDIT;
}

uint64_t vsk_next_deadline(const struct vsk *v)
{
	uint64_t d = UINT64_MAX;

	for (unsigned int i = 0; i < v->max_conns; i++)
		if (v->conns[i].state == VSK_HOST_LINE &&
		    v->conns[i].deadline_ns < d)
			d = v->conns[i].deadline_ns;
	return d;
}
