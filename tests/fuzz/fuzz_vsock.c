/*
 * Fuzz target for the vsock connection state machine (vsock_conn.c): guest
 * packets with arbitrary headers and payload lengths, interleaved with host
 * events (connections, CONNECT line bytes, the controller's answers, host
 * reads and writes, EOF, resets, deadlines), as the worker drives it; after
 * every step the machine's own bookkeeping must hold.
 *
 * Input: a sequence of steps, each an opcode byte and its operands.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vsock_conn.h"

#define GUEST_CID 3

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static uint32_t u16(struct in *in)
{
	return u8(in) | (uint32_t)u8(in) << 8;
}

static uint32_t u32(struct in *in)
{
	return u16(in) | u16(in) << 16;
}

static uint8_t payload[VSK_MAX_PKT];
static int next_fd = 100;
static uint32_t last_token;

static struct vsk_conn *pick(struct vsk *v, struct in *in)
{
	return &v->conns[u16(in) % v->max_conns];
}

static void check(const struct vsk *v)
{
	uint32_t used = 0, pending = 0;

	if (v->nconns > v->max_conns || v->rst_len > VSK_RST_RING ||
	    v->npending_connect > VSK_MAX_PENDING_CONNECT)
		abort();
	for (unsigned int i = 0; i < VSK_MAX_CONNS; i++) {
		const struct vsk_conn *c = &v->conns[i];

		if (c->state == VSK_FREE) {
			if (c->fd != -1 || c->buf)
				abort();
			continue;
		}
		if (i >= v->max_conns)
			abort();
		used++;
		pending += c->state == VSK_GUEST_CONNECT;
		if (c->buf_len > VSK_BUF_ALLOC)
			abort();
		/* What the guest sent and was not forwarded is buffered. */
		if (c->state == VSK_ESTABLISHED &&
		    c->tx_cnt - c->fwd_cnt != c->buf_len)
			abort();
		if (vsk_conn_credit(c) > VSK_MAX_PKT ||
		    vsk_conn_credit(c) > c->peer_buf_alloc)
			abort();
		if (c->state == VSK_RST_PENDING && c->fd != -1)
			abort();
		if ((c->state == VSK_HOST_LINE ||
		     c->state == VSK_HOST_REQUEST) &&
		    c->fd < 0)
			abort();
	}
	if (used != v->nconns || pending != v->npending_connect)
		abort();
}

/* What vsock.c does with vsk_tx's action. */
static void tx_step(struct vsk *v, struct in *in, uint8_t op)
{
	uint8_t b[VSK_HDR_LEN];
	struct vsk_conn *c;
	struct vsk_hdr h;
	uint64_t plen;
	int d;

	for (unsigned int i = 0; i < VSK_HDR_LEN; i++)
		b[i] = u8(in);
	vsk_hdr_decode(b, &h);
	if (op & 0x80) {
		/* Mostly well-formed, to get past the first checks. */
		h.src_cid = GUEST_CID;
		h.dst_cid = VSK_HOST_CID;
		h.type = VSK_TYPE_STREAM;
		h.op = 1 + h.op % 8;
		h.len %= VSK_MAX_PKT + 2;
		h.dst_port %= 4;
		h.dst_port += VSK_HOST_PORT_FIRST - 1;
		h.src_port = h.src_port % 4 + 10;
	}
	plen = op & 0x40 ? h.len : u16(in);
	if (!vsk_tx_room(v))
		return;
	switch (vsk_tx(v, &h, plen, &c)) {
	case VSK_ACT_DATA:
		if (c->buf_len == 0) {
			uint32_t n = u16(in) % (h.len + 1);

			vsk_conn_written(c, n);
			vsk_conn_buffer(c, payload, h.len - n);
		} else {
			vsk_conn_buffer(c, payload, h.len);
		}
		break;
	case VSK_ACT_CONNECT:
		last_token = c->token;
		break;
	case VSK_ACT_CLOSE:
		c->fd = -1;
		vsk_conn_free(v, c);
		break;
	case VSK_ACT_RESET:
		c->fd = -1;
		vsk_conn_reset(v, c);
		break;
	case VSK_ACT_SHUT:
		if (c->buf_len)
			break;
		d = vsk_conn_drained(c);
		if (d == VSK_DRAIN_CLOSE)
			vsk_conn_reset(v, c);
		break;
	default:
		break;
	}
}

static void step(struct vsk *v, struct in *in)
{
	uint8_t op = u8(in);
	struct vsk_conn *c;
	struct vsk_hdr h;
	const uint8_t *data;
	uint32_t n;
	int r;

	switch (op & 0x0f) {
	case 0:
	case 1:
		tx_step(v, in, op);
		break;
	case 2:
		if (vsk_host_conn(v, next_fd, 0, &c) == 0)
			next_fd++;
		break;
	case 3:
		c = pick(v, in);
		if (c->state != VSK_HOST_LINE)
			break;
		r = vsk_line_byte(v, c,
				  op & 0x80 ? u8(in)
					    : "CONNECT 12\n"[c->line_len % 11]);
		if (r < 0) {
			c->fd = -1;
			vsk_conn_free(v, c);
		}
		break;
	case 4: {
		uint32_t token = op & 0x80 ? u32(in) : last_token;
		int error = op & 0x40 ? u8(in) : 0;

		c = vsk_connected(v, token, error, error ? -1 : next_fd);
		if (c && !error)
			next_fd++;
		break;
	}
	case 5:
		if (vsk_rx_next(v, &h, &c) == 1)
			vsk_rx_done(v, &h, c);
		break;
	case 6:
		c = pick(v, in);
		if (!vsk_conn_wants_read(c))
			break;
		vsk_rx_data(v, c, &h);
		n = u16(in);
		h.len = n % (vsk_conn_credit(c) + 1);
		if (h.len == 0) {
			vsk_conn_host_eof(c);
			break;
		}
		vsk_rx_done(v, &h, c);
		break;
	case 7:
		c = pick(v, in);
		if (c->state != VSK_ESTABLISHED)
			break;
		n = vsk_conn_pending(c, &data);
		if (n) {
			vsk_conn_flushed(c, u16(in) % (n + 1));
			if (c->buf_len)
				break;
		}
		if (vsk_conn_drained(c) == VSK_DRAIN_CLOSE) {
			c->fd = -1;
			vsk_conn_reset(v, c);
		}
		break;
	case 8:
		c = pick(v, in);
		if (c->state == VSK_ESTABLISHED && c->fd >= 0) {
			if (op & 0x80) {
				c->fd = -1;
				vsk_conn_reset(v, c);
			} else {
				vsk_conn_host_eof(c);
			}
		}
		break;
	case 9:
		vsk_reset(v, NULL, NULL);
		break;
	case 10:
		/* Deadlines passed: the line-readers go. */
		for (unsigned int i = 0; i < v->max_conns; i++) {
			c = &v->conns[i];
			if (c->state == VSK_HOST_LINE &&
			    c->deadline_ns <= vsk_next_deadline(v)) {
				c->fd = -1;
				vsk_conn_free(v, c);
			}
		}
		break;
	default: {
		uint32_t port;
		char line[VSK_LINE_MAX + 8];
		size_t len = u8(in) % sizeof(line);

		for (size_t i = 0; i < len; i++)
			line[i] = (char)u8(in);
		r = vsk_parse_connect(line, len, &port);
		if (r < -EINVAL || r > 1 || (r == 1 && len > VSK_LINE_MAX))
			abort();
		break;
	}
	}
	check(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vsk v;
	struct in in = { data, size };

	if (size < 1)
		return 0;
	vsk_init(&v, GUEST_CID, 1 + data[0] % 8);
	in.p++;
	in.n--;
	next_fd = 100;
	last_token = 0;
	while (in.n)
		step(&v, &in);
	vsk_reset(&v, NULL, NULL);
	return 0;
}
