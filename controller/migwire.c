/* The migration stream's frames: header checks, a reader and a writer for
 * non-blocking sockets. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migwire.h"

static const struct {
	const char *name;
	uint64_t max;
} types[BH_MIG_TYPE_END] = {
	[BH_MIG_START] = { "START", 4096 },
	[BH_MIG_CONFIG] = { "CONFIG", 1u << 20 },
	[BH_MIG_MEMORY] = { "MEMORY", 8 + BH_MIG_MEMORY_MAX },
	[BH_MIG_MEMFD] = { "MEMFD", 0 },
	/* As a snapshot's state file may be. */
	[BH_MIG_STATE] = { "STATE", 64u << 20 },
	[BH_MIG_COMPLETE] = { "COMPLETE", 64 },
	[BH_MIG_ABANDON] = { "ABANDON", 4096 },
	[BH_MIG_RESPONSE] = { "RESPONSE", 4096 },
};

const char *bh_mig_type_name(unsigned int type)
{
	return type < BH_MIG_TYPE_END && types[type].name ? types[type].name
							  : "unknown";
}

uint64_t bh_mig_max_length(unsigned int type)
{
	return type < BH_MIG_TYPE_END ? types[type].max : 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void bh_mig_header_encode(uint8_t out[BH_MIG_HEADER_SIZE], unsigned int type,
			  uint64_t length)
{
	put32(out, BH_MIG_MAGIC);
	put16(out + 4, BH_MIG_VERSION);
	put16(out + 6, (uint16_t)type);
	put64(out + 8, length);
}

int bh_mig_header_decode(const uint8_t in[BH_MIG_HEADER_SIZE],
			 struct bh_mig_header *h, char *err, size_t errlen)
{
	uint32_t magic = (uint32_t)get(in, 4);

	h->version = (uint16_t)get(in + 4, 2);
	h->type = (uint16_t)get(in + 6, 2);
	h->length = get(in + 8, 8);
	if (magic != BH_MIG_MAGIC) {
		snprintf(err, errlen,
			 "not a bulkhead migration stream (magic 0x%08x)",
			 magic);
		return -EPROTO;
	}
	if (h->version != BH_MIG_VERSION) {
		snprintf(err, errlen,
			 "migration stream version %u; this bulkhead speaks "
			 "version %u",
			 h->version, BH_MIG_VERSION);
		return -EPROTO;
	}
	if (h->type == 0 || h->type >= BH_MIG_TYPE_END) {
		snprintf(err, errlen, "unknown message type %u", h->type);
		return -EBADMSG;
	}
	if (h->length > types[h->type].max) {
		snprintf(err, errlen, "%s message of %llu bytes (at most %llu)",
			 types[h->type].name, (unsigned long long)h->length,
			 (unsigned long long)types[h->type].max);
		return -EBADMSG;
	}
	if (h->type == BH_MIG_MEMORY && (h->length < 8 + BH_MIG_PAGE_SIZE ||
					 (h->length - 8) % BH_MIG_PAGE_SIZE)) {
		snprintf(err, errlen,
			 "MEMORY message of %llu bytes: not an offset and "
			 "whole pages",
			 (unsigned long long)h->length);
		return -EBADMSG;
	}
	return 0;
}

int bh_mig_memory_check(const uint8_t *payload, uint64_t length,
			uint64_t ram_size, uint64_t *offset,
			const uint8_t **data, size_t *len, char *err,
			size_t errlen)
{
	uint64_t off, n;

	if (length < 8 + BH_MIG_PAGE_SIZE) {
		snprintf(err, errlen, "MEMORY message without a page");
		return -EBADMSG;
	}
	off = get(payload, 8);
	n = length - 8;
	if (off % BH_MIG_PAGE_SIZE || n % BH_MIG_PAGE_SIZE || off > ram_size ||
	    n > ram_size - off) {
		snprintf(
		    err, errlen,
		    "MEMORY message for [0x%llx, +0x%llx): not whole pages "
		    "inside the %llu bytes of guest RAM",
		    (unsigned long long)off, (unsigned long long)n,
		    (unsigned long long)ram_size);
		return -EBADMSG;
	}
	*offset = off;
	*data = payload + 8;
	*len = (size_t)n;
	return 0;
}

void bh_mig_reader_init(struct bh_mig_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

void bh_mig_reader_next(struct bh_mig_reader *r)
{
	uint64_t bytes = r->bytes;

	free(r->body);
	if (r->fd >= 0)
		close(r->fd);
	bh_mig_reader_init(r);
	r->bytes = bytes;
}

void bh_mig_reader_reset(struct bh_mig_reader *r)
{
	bh_mig_reader_next(r);
}

/* The header's bytes, with any fd that comes with them. */
static ssize_t read_header(struct bh_mig_reader *r, int sock, int *bad_fds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	struct iovec iov = { r->hdr + r->hdr_got,
			     BH_MIG_HEADER_SIZE - r->hdr_got };
	struct msghdr msg = { 0 };
	ssize_t n;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
	     c = CMSG_NXTHDR(&msg, c)) {
		size_t nfd;
		int fds[4];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (nfd > 4)
			nfd = 4;
		memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
		for (size_t i = 0; i < nfd; i++) {
			if (r->fd < 0 && !*bad_fds) {
				r->fd = fds[i];
			} else {
				close(fds[i]);
				*bad_fds = 1;
			}
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		*bad_fds = 1;
	return n;
}

int bh_mig_read(struct bh_mig_reader *r, int sock, char *err, size_t errlen)
{
	int bad_fds = 0, rr;
	ssize_t n;

	while (r->hdr_got < BH_MIG_HEADER_SIZE) {
		n = read_header(r, sock, &bad_fds);
		if (bad_fds) {
			snprintf(err, errlen,
				 "more than one fd with a message");
			return -EBADMSG;
		}
		if (n < 0) {
			if (n == -EINTR)
				continue;
			if (n == -EAGAIN || n == -EWOULDBLOCK)
				return 0;
			snprintf(err, errlen, "%s", strerror((int)-n));
			return (int)n;
		}
		if (n == 0) {
			snprintf(err, errlen, "%s",
				 r->hdr_got ? "the connection closed in the "
					      "middle of a message"
					    : "the connection closed");
			return r->hdr_got ? -ECONNRESET : -EPIPE;
		}
		r->hdr_got += (size_t)n;
		r->bytes += (uint64_t)n;
		if (r->hdr_got < BH_MIG_HEADER_SIZE)
			continue;
		rr = bh_mig_header_decode(r->hdr, &r->h, err, errlen);
		if (rr < 0)
			return rr;
		if (r->fd >= 0 && r->h.type != BH_MIG_MEMFD) {
			snprintf(err, errlen, "an fd with a %s message",
				 bh_mig_type_name(r->h.type));
			return -EBADMSG;
		}
		if (r->h.length) {
			r->body = malloc(r->h.length);
			if (!r->body) {
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
		}
	}
	while (r->got < r->h.length) {
		/* read, not recv: the controller's filter has no recvfrom,
		 * and the socket is non-blocking anyway. */
		n = read(sock, r->body + r->got, r->h.length - r->got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			rr = -errno;
			snprintf(err, errlen, "%s", strerror(-rr));
			return rr;
		}
		if (n == 0) {
			snprintf(err, errlen,
				 "the connection closed in the "
				 "middle of a message");
			return -ECONNRESET;
		}
		r->got += (uint64_t)n;
		r->bytes += (uint64_t)n;
	}
	if (r->h.type == BH_MIG_MEMFD && r->fd < 0) {
		snprintf(err, errlen, "a MEMFD message without its fd");
		return -EBADMSG;
	}
	return 1;
}

void bh_mig_out_init(struct bh_mig_out *o)
{
	memset(o, 0, sizeof(*o));
	o->fd = -1;
}

void bh_mig_out_free(struct bh_mig_out *o)
{
	free(o->buf);
	bh_mig_out_init(o);
}

bool bh_mig_out_busy(const struct bh_mig_out *o)
{
	return o->off < o->len;
}

uint8_t *bh_mig_out_frame(struct bh_mig_out *o, unsigned int type, size_t len)
{
	size_t need = BH_MIG_HEADER_SIZE + len;

	if (bh_mig_out_busy(o))
		return NULL;
	if (need > o->cap) {
		uint8_t *b = realloc(o->buf, need);

		if (!b)
			return NULL;
		o->buf = b;
		o->cap = need;
	}
	bh_mig_header_encode(o->buf, type, len);
	o->len = need;
	o->off = 0;
	o->fd = -1;
	return o->buf + BH_MIG_HEADER_SIZE;
}

int bh_mig_out_send(struct bh_mig_out *o, int sock)
{
	while (o->off < o->len) {
		ssize_t n;

		if (o->fd >= 0 && o->off == 0) {
			union {
				struct cmsghdr h;
				char buf[CMSG_SPACE(sizeof(int))];
			} u;
			struct iovec iov = { o->buf, o->len };
			struct msghdr msg = { 0 };
			struct cmsghdr *c;

			memset(&u, 0, sizeof(u));
			msg.msg_iov = &iov;
			msg.msg_iovlen = 1;
			msg.msg_control = u.buf;
			msg.msg_controllen = sizeof(u.buf);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &o->fd, sizeof(int));
			n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			n = send(sock, o->buf + o->off, o->len - o->off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		o->off += (size_t)n;
		o->bytes += (uint64_t)n;
	}
	return 1;
}
