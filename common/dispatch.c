/* Dispatch: checks a frame against the receiver's table before any handler. */
#include <assert.h>
#include <errno.h>

#include "bulkhead/dispatch.h"

static const struct bh_handler *find_handler(const struct bh_handler *table,
					     size_t n, uint16_t type)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (table[i].type == type)
			return &table[i];
	}
	return NULL;
}

static int unpack_body(const struct bh_handler *h, const struct bh_frame *f,
		       ProtobufCMessage **msg)
{
	*msg = NULL;
	/* A handler without a body type takes empty frames only. */
	if (!h->desc)
		return f->len == 0 ? 0 : -EBADMSG;
	*msg = protobuf_c_message_unpack(h->desc, NULL, f->len, f->body);
	return *msg ? 0 : -EBADMSG;
}

int bh_dispatch(const struct bh_handler *table, size_t n, unsigned int state,
		struct bh_frame *frame, void *ctx, const char **name_out)
{
	const struct bh_handler *h;
	ProtobufCMessage *msg = NULL;
	int ret;

	if (name_out)
		*name_out = NULL;
	h = find_handler(table, n, frame->type);
	if (!h) {
		ret = -ENOMSG;
		goto out;
	}
	if (name_out)
		*name_out = h->name;
	assert(h->fn);
	/* A state beyond the mask's width is never allowed (and the shift
	 * would be undefined). */
	if (state >= 32 || !(h->states & BH_STATE(state))) {
		ret = -EPERM;
		goto out;
	}
	if (h->nfds != BH_NFDS_VARIABLE && frame->nfds != h->nfds) {
		ret = -EPROTO;
		goto out;
	}
	ret = unpack_body(h, frame, &msg);
	if (ret < 0)
		goto out;

	ret = h->fn(ctx, msg, frame);
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
out:
	bh_frame_release(frame);
	return ret;
}
