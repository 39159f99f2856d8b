/*
 * Table-driven message dispatch: each receiver declares, per message type,
 * the states in which it is allowed, the fds it carries, the protobuf type of
 * its body, and its handler. One function checks all of that before any
 * handler runs.
 */
#ifndef BULKHEAD_DISPATCH_H
#define BULKHEAD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "frame.h"

#define BH_STATE(s) (1u << (s))
/* In bh_handler.nfds: the count depends on the body (e.g. two eventfds per
 * queue); the handler checks frame->nfds itself. */
#define BH_NFDS_VARIABLE 0xff

/*
 * msg is the unpacked body (freed by bh_dispatch after the handler returns);
 * the frame's fds stay in frame->fds, and a handler that keeps one takes it
 * with bh_frame_take_fd(). Returns 0 or -errno.
 */
typedef int (*bh_handler_fn)(void *ctx, const ProtobufCMessage *msg,
			     struct bh_frame *frame);

struct bh_handler {
	uint16_t type;
	uint32_t states; /* bitmask of BH_STATE(state) in which it is allowed */
	uint8_t nfds;	 /* exact number of fds, or BH_NFDS_VARIABLE */
	const ProtobufCMessageDescriptor *desc; /* body type */
	bh_handler_fn fn;
	const char *name; /* for logs */
};

/*
 * Looks up frame->type in table[0..n), checks state, fd count and the body,
 * unpacks it and runs the handler. Always releases the frame (body and every
 * fd the handler did not take).
 * Returns the handler's result, or without running it:
 *   -ENOMSG   no handler for this type
 *   -EPERM    not allowed in this state
 *   -EPROTO   wrong number of fds
 *   -EBADMSG  the body does not unpack as the declared type
 * If name_out is not NULL it receives the handler's name, or NULL.
 */
int bh_dispatch(const struct bh_handler *table, size_t n, unsigned int state,
		struct bh_frame *frame, void *ctx, const char **name_out);

#endif
