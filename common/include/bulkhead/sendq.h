/*
 * A bounded queue of outgoing frames, for a peer that may stop reading: what
 * its socket does not take at once waits here and goes out as the socket
 * has room, so that the sender's event loop never waits for the peer. The
 * owner watches the socket for room (bh_sendq_flush) and decides, from
 * bh_sendq_stalled_ms, when the peer counts as stuck.
 */
#ifndef BULKHEAD_SENDQ_H
#define BULKHEAD_SENDQ_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

struct bh_sendq_item;

struct bh_sendq {
	int sock;	  /* borrowed */
	size_t max_bytes; /* bound on what may wait in the queue */
	size_t bytes;	  /* queued bytes the socket has not taken */
	struct bh_sendq_item *head, *tail;
	uint64_t progress_ns; /* the socket last took bytes, or the queue
				 began to fill (CLOCK_MONOTONIC) */
};

/* An empty queue for sock (borrowed; blocking or not: every send is
 * MSG_DONTWAIT). max_bytes must hold the largest frame (BH_FRAME_HDR_SIZE +
 * BH_FRAME_MAX_BODY). */
void bh_sendq_init(struct bh_sendq *q, int sock, size_t max_bytes);

/*
 * Encodes a frame and sends what the socket takes now, behind anything
 * already queued; the rest waits in the queue. fds are borrowed: the queue
 * keeps duplicates of them for as long as they wait. 0 (sent or queued),
 * -ENOBUFS if the frame does not fit within max_bytes (nothing of it is
 * queued), or -errno from encoding or the socket (-EPIPE: the peer is gone;
 * the queue is then of no more use).
 */
int bh_sendq_push(struct bh_sendq *q, uint16_t type,
		  const ProtobufCMessage *msg, const int *fds,
		  unsigned int nfds);

/* Sends what the socket takes now. 0 when the queue is empty, -EAGAIN when
 * bytes still wait, or another -errno from the socket. */
int bh_sendq_flush(struct bh_sendq *q);

/* bh_sendq_flush, waiting in poll for room, until the queue is empty or
 * timeout_ms have passed. 0, -ETIMEDOUT or -errno. */
int bh_sendq_wait(struct bh_sendq *q, int timeout_ms);

/* Bytes waiting. */
size_t bh_sendq_pending(const struct bh_sendq *q);

/* How long bytes have waited without the socket taking any: ms since the
 * last progress, 0 when the queue is empty. */
uint64_t bh_sendq_stalled_ms(const struct bh_sendq *q);

/* Drops every queued frame and closes the fds kept for them. */
void bh_sendq_clear(struct bh_sendq *q);

#endif
