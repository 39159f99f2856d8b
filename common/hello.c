/* Handshake: the first frame each way carries the protocol version and role. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "bulkhead/hello.h"
#include "bulkhead/log.h"
#include "proto/internal.pb-c.h"

/* A hello is a few dozen bytes; a peer that announces more is not one. */
#define HELLO_MAX_BODY 1024

int bh_hello_send(int sock, const char *role)
{
	Bh__Hello h = BH__HELLO__INIT;

	h.version = BH_PROTO_VERSION;
	h.role = (char *)(role ? role : "");
	return bh_frame_send(sock, BH__MSG_TYPE__MSG_HELLO, &h.base, NULL, 0);
}

int bh_hello_check(const struct bh_frame *f, const char *expect_role)
{
	Bh__Hello *h;
	int ret = 0;

	if (f->type != BH__MSG_TYPE__MSG_HELLO || f->nfds != 0)
		return -EPROTO;
	h = bh__hello__unpack(NULL, f->len, f->body);
	if (!h)
		return -EBADMSG;
	/* The version decides what the rest of the message means, so it is
	 * checked before the role. */
	if (h->version != BH_PROTO_VERSION)
		ret = -EPROTONOSUPPORT;
	else if (expect_role && strcmp(h->role, expect_role) != 0)
		ret = -EPROTO;
	bh__hello__free_unpacked(h, NULL);
	return ret;
}

int bh_hello_exchange(int sock, const char *role, const char *expect_role)
{
	struct bh_frame_reader r;
	struct bh_frame f;
	int ret;

	ret = bh_hello_send(sock, role);
	if (ret < 0) {
		bh_warn("handshake: sending hello: %s", strerror(-ret));
		return ret;
	}

	/* The reader never reads past this frame, so what follows stays in
	 * the socket for the caller's own reader. */
	bh_frame_reader_init(&r, HELLO_MAX_BODY);
	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };

		ret = bh_frame_read(sock, &r, &f);
		if (ret != 0)
			break;
		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			ret = -errno;
			bh_frame_reader_reset(&r);
			break;
		}
	}
	if (ret < 0) {
		bh_warn("handshake: reading hello: %s", strerror(-ret));
		return ret;
	}

	ret = bh_hello_check(&f, expect_role);
	if (ret < 0)
		bh_warn("handshake: bad hello from peer (expected role %s): %s",
			expect_role ? expect_role : "any", strerror(-ret));
	bh_frame_release(&f);
	return ret;
}
