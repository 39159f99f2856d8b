/* Framing: fixed header + protobuf-c body, fds as SCM_RIGHTS on the header. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bulkhead/frame.h"
#include "bulkhead/util.h"

#define FDS_CMSG_SPACE CMSG_SPACE(sizeof(int) * BH_FRAME_MAX_FDS)

struct frame_hdr {
	uint32_t len;
	uint16_t type;
	uint8_t nfds;
	uint8_t flags;
};

_Static_assert(sizeof(struct frame_hdr) == BH_FRAME_HDR_SIZE,
	       "wire header layout");

static void frame_clear(struct bh_frame *f)
{
	unsigned int i;

	f->type = 0;
	f->len = 0;
	f->body = NULL;
	f->nfds = 0;
	for (i = 0; i < BH_FRAME_MAX_FDS; i++)
		f->fds[i] = -1;
}

void bh_frame_release(struct bh_frame *f)
{
	unsigned int i;

	if (!f)
		return;
	free(f->body);
	/* Only slots below nfds can hold fds: a zeroed frame must not make
	 * us close fd 0. */
	for (i = 0; i < f->nfds && i < BH_FRAME_MAX_FDS; i++)
		bh_closep(&f->fds[i]);
	frame_clear(f);
}

int bh_frame_take_fd(struct bh_frame *f, unsigned int idx)
{
	int fd;

	if (idx >= f->nfds || idx >= BH_FRAME_MAX_FDS || f->fds[idx] < 0)
		return -EBADF;
	fd = f->fds[idx];
	f->fds[idx] = -1;
	return fd;
}

void bh_frame_reader_init(struct bh_frame_reader *r, uint32_t max_body)
{
	memset(r, 0, sizeof(*r));
	r->max_body = max_body;
	frame_clear(&r->cur);
}

void bh_frame_reader_reset(struct bh_frame_reader *r)
{
	bh_frame_release(&r->cur);
	memset(r->hdr, 0, sizeof(r->hdr));
	r->hdr_got = 0;
	r->body_got = 0;
	r->fd_overflow = 0;
}

/*
 * Moves the fds of every SCM_RIGHTS message into the frame being assembled.
 * Fds beyond BH_FRAME_MAX_FDS are closed at once and remembered as an
 * overflow. Returns the number of fds that arrived.
 */
static unsigned int collect_fds(struct bh_frame_reader *r, struct msghdr *msg)
{
	unsigned int arrived = 0;
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t i, n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			arrived++;
			if (r->cur.nfds < BH_FRAME_MAX_FDS) {
				r->cur.fds[r->cur.nfds++] = fd;
			} else {
				close(fd);
				r->fd_overflow = 1;
			}
		}
	}
	return arrived;
}

/*
 * One recvmsg of at most len bytes into buf. Returns the byte count (> 0),
 * 0 for end of file, -EAGAIN, or another -errno. *fds_arrived says whether
 * any fd came with these bytes.
 */
static ssize_t recv_some(int sock, struct bh_frame_reader *r, void *buf,
			 size_t len, unsigned int *fds_arrived)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;

	*fds_arrived = 0;
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;

	*fds_arrived = collect_fds(r, &msg);
	/* The kernel drops fds that did not fit; the frame is unusable. */
	if (msg.msg_flags & MSG_CTRUNC)
		return -EPROTO;
	return n;
}

/* Checks the complete header; fills r->cur.type and r->cur.len. */
static int check_header(struct bh_frame_reader *r)
{
	struct frame_hdr h;

	memcpy(&h, r->hdr, sizeof(h));
	if (h.len > r->max_body)
		return -EMSGSIZE;
	if (h.type == 0 || h.flags != 0 || h.nfds > BH_FRAME_MAX_FDS)
		return -EBADMSG;
	/* All fds travel on the header's bytes, so they are all here now. */
	if (r->fd_overflow || r->cur.nfds != h.nfds)
		return -EPROTO;
	r->cur.type = h.type;
	r->cur.len = h.len;
	return 0;
}

int bh_frame_read(int sock, struct bh_frame_reader *r, struct bh_frame *out)
{
	unsigned int arrived;
	ssize_t n;
	int ret;

	while (r->hdr_got < BH_FRAME_HDR_SIZE) {
		/* Never ask for more than the header: the body must not be
		 * read before its length is checked. */
		n = recv_some(sock, r, r->hdr + r->hdr_got,
			      BH_FRAME_HDR_SIZE - r->hdr_got, &arrived);
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			ret = (int)n;
			goto err;
		}
		if (n == 0) {
			ret = r->hdr_got == 0 ? -EPIPE : -ECONNRESET;
			goto err;
		}
		r->hdr_got += (size_t)n;
		if (r->hdr_got == BH_FRAME_HDR_SIZE) {
			ret = check_header(r);
			if (ret < 0)
				goto err;
			if (r->cur.len > 0) {
				r->cur.body = malloc(r->cur.len);
				if (!r->cur.body) {
					ret = -ENOMEM;
					goto err;
				}
			}
		}
	}

	while (r->body_got < r->cur.len) {
		n = recv_some(sock, r, r->cur.body + r->body_got,
			      r->cur.len - r->body_got, &arrived);
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			ret = (int)n;
			goto err;
		}
		if (arrived) {
			ret = -EPROTO;
			goto err;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			goto err;
		}
		r->body_got += (size_t)n;
	}

	*out = r->cur;
	frame_clear(&r->cur);
	bh_frame_reader_reset(r);
	return 1;

err:
	bh_frame_reader_reset(r);
	return ret;
}

int bh_frame_encode(uint16_t type, const ProtobufCMessage *msg,
		    unsigned int nfds, uint8_t **buf, size_t *len)
{
	struct frame_hdr h;
	size_t body_len;
	uint8_t *wire;

	if (type == 0 || nfds > BH_FRAME_MAX_FDS)
		return -EINVAL;
	body_len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	/* A body the default reader would refuse is a bug on our side;
	 * report it here rather than have the peer drop the connection. */
	if (body_len > UINT32_MAX || body_len > BH_FRAME_MAX_BODY)
		return -EMSGSIZE;

	wire = malloc(BH_FRAME_HDR_SIZE + body_len);
	if (!wire)
		return -ENOMEM;
	h.len = (uint32_t)body_len;
	h.type = type;
	h.nfds = (uint8_t)nfds;
	h.flags = 0;
	memcpy(wire, &h, sizeof(h));
	if (body_len > 0) {
		size_t packed = protobuf_c_message_pack(msg, wire + sizeof(h));

		if (packed != body_len) {
			free(wire);
			return -EINVAL;
		}
	}
	*buf = wire;
	*len = BH_FRAME_HDR_SIZE + body_len;
	return 0;
}

void bh_frame_attach_fds(struct msghdr *m, void *ctl, size_t ctl_len,
			 const int *fds, unsigned int nfds)
{
	struct cmsghdr *c;

	if (nfds == 0 || nfds > BH_FRAME_MAX_FDS ||
	    ctl_len < CMSG_SPACE(sizeof(int) * nfds))
		return;
	memset(ctl, 0, ctl_len);
	m->msg_control = ctl;
	m->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	c = CMSG_FIRSTHDR(m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
}

int bh_frame_send(int sock, uint16_t type, const ProtobufCMessage *msg,
		  const int *fds, unsigned int nfds)
{
	return bh_frame_send_timeout(sock, type, msg, fds, nfds, -1);
}

int bh_frame_send_timeout(int sock, uint16_t type, const ProtobufCMessage *msg,
			  const int *fds, unsigned int nfds, int timeout_ms)
{
	uint64_t deadline =
	    bh_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	struct msghdr m = { 0 };
	struct iovec iov;
	uint8_t *buf = NULL;
	size_t len, off = 0;
	int ret;

	if (nfds > 0 && !fds)
		return -EINVAL;
	ret = bh_frame_encode(type, msg, nfds, &buf, &len);
	if (ret < 0)
		return ret;

	bh_frame_attach_fds(&m, ctl.buf, sizeof(ctl.buf), fds, nfds);

	while (off < len) {
		ssize_t n;

		iov.iov_base = buf + off;
		iov.iov_len = len - off;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* Half a frame on the wire would desynchronise the
			 * peer, so a non-blocking socket waits here. */
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { .fd = sock,
						    .events = POLLOUT };
				uint64_t now = bh_now_ns();
				int wait = -1;

				if (timeout_ms >= 0) {
					if (now >= deadline) {
						ret = -ETIMEDOUT;
						goto out;
					}
					wait =
					    (int)((deadline - now) / 1000000) +
					    1;
				}
				if (poll(&p, 1, wait) < 0 && errno != EINTR) {
					ret = -errno;
					goto out;
				}
				continue;
			}
			ret = -errno;
			goto out;
		}
		/* The fds went with the first bytes; never send them twice. */
		m.msg_control = NULL;
		m.msg_controllen = 0;
		off += (size_t)n;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

int bh_frame_read_timeout(int sock, struct bh_frame_reader *r,
			  struct bh_frame *out, int timeout_ms)
{
	uint64_t deadline = bh_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		uint64_t now = bh_now_ns();
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = bh_frame_read(sock, r, out);
		if (n != 0)
			return n < 0 ? n : 0;
	}
}
