/* A bounded queue of outgoing frames: the sender never waits for a peer
 * that stops reading; the owner decides when such a peer is stuck. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bulkhead/frame.h"
#include "bulkhead/sendq.h"
#include "bulkhead/util.h"

struct bh_sendq_item {
	struct bh_sendq_item *next;
	uint8_t *buf; /* header and body, as bh_frame_encode made them */
	size_t len;
	size_t off;		   /* bytes the socket has taken */
	int fds[BH_FRAME_MAX_FDS]; /* owned duplicates, sent with byte 0 */
	unsigned int nfds;
};

void bh_sendq_init(struct bh_sendq *q, int sock, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	q->sock = sock;
	q->max_bytes = max_bytes;
}

static void item_close_fds(struct bh_sendq_item *it)
{
	for (unsigned int i = 0; i < it->nfds; i++)
		bh_closep(&it->fds[i]);
	it->nfds = 0;
}

static void item_free(struct bh_sendq_item *it)
{
	item_close_fds(it);
	free(it->buf);
	free(it);
}

/*
 * One sendmsg that never waits, with fds on it when given (they must go
 * with a frame's first byte, and only once). Bytes taken, or -EAGAIN, or
 * another -errno.
 */
static ssize_t send_some(int sock, const uint8_t *buf, size_t len,
			 const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * BH_FRAME_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	bh_frame_attach_fds(&m, ctl.buf, sizeof(ctl.buf), fds, nfds);
	do {
		n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

int bh_sendq_flush(struct bh_sendq *q)
{
	while (q->head) {
		struct bh_sendq_item *it = q->head;
		ssize_t n;

		n = send_some(q->sock, it->buf + it->off, it->len - it->off,
			      it->off ? NULL : it->fds, it->off ? 0 : it->nfds);
		if (n < 0)
			return (int)n;
		/* The kernel holds the fds now; ours are of no more use. */
		item_close_fds(it);
		it->off += (size_t)n;
		q->bytes -= (size_t)n;
		q->progress_ns = bh_now_ns();
		if (it->off < it->len)
			continue;
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		item_free(it);
	}
	return 0;
}

int bh_sendq_push(struct bh_sendq *q, uint16_t type,
		  const ProtobufCMessage *msg, const int *fds,
		  unsigned int nfds)
{
	struct bh_sendq_item *it;
	uint8_t *buf = NULL;
	size_t len, off = 0;
	int r;

	if (nfds > BH_FRAME_MAX_FDS || (nfds > 0 && !fds))
		return -EINVAL;
	r = bh_frame_encode(type, msg, nfds, &buf, &len);
	if (r < 0)
		return r;
	if (len > q->max_bytes - q->bytes || q->bytes > q->max_bytes) {
		free(buf);
		return -ENOBUFS;
	}
	/* Nothing ahead of it: the socket may take it at once, fds and all,
	 * without duplicating them. */
	if (!q->head) {
		ssize_t n = send_some(q->sock, buf, len, fds, nfds);

		if (n < 0 && n != -EAGAIN) {
			free(buf);
			return (int)n;
		}
		if (n == (ssize_t)len) {
			free(buf);
			return 0;
		}
		if (n > 0) {
			off = (size_t)n;
			nfds = 0; /* they went with the first bytes */
		}
		q->progress_ns = bh_now_ns();
	}
	it = calloc(1, sizeof(*it));
	if (!it) {
		/* Part of the frame may be on the wire: the stream is broken
		 * either way. */
		free(buf);
		return -ENOMEM;
	}
	it->buf = buf;
	it->len = len;
	it->off = off;
	for (unsigned int i = 0; i < nfds; i++) {
		it->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (it->fds[i] < 0) {
			r = -errno;
			it->nfds = i;
			item_free(it);
			return r;
		}
		it->nfds = i + 1;
	}
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->bytes += len - off;
	return 0;
}

int bh_sendq_wait(struct bh_sendq *q, int timeout_ms)
{
	uint64_t deadline = bh_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		struct pollfd p = { .fd = q->sock, .events = POLLOUT };
		uint64_t now;
		int r = bh_sendq_flush(q);

		if (r != -EAGAIN)
			return r;
		now = bh_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)((deadline - now) / 1000000) + 1) < 0 &&
		    errno != EINTR)
			return -errno;
	}
}

size_t bh_sendq_pending(const struct bh_sendq *q)
{
	return q->bytes;
}

uint64_t bh_sendq_stalled_ms(const struct bh_sendq *q)
{
	uint64_t now = bh_now_ns();

	if (!q->head || now < q->progress_ns)
		return 0;
	return (now - q->progress_ns) / 1000000;
}

void bh_sendq_clear(struct bh_sendq *q)
{
	while (q->head) {
		struct bh_sendq_item *it = q->head;

		q->head = it->next;
		item_free(it);
	}
	q->tail = NULL;
	q->bytes = 0;
}
