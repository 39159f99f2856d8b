/*
 * Framing for every Bulkhead socket: a fixed header, then a protobuf-c body,
 * with file descriptors carried as SCM_RIGHTS on the header's bytes.
 */
#ifndef BULKHEAD_FRAME_H
#define BULKHEAD_FRAME_H

#include <stdint.h>
#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

/*
 * Wire header, host byte order (both ends are on the same host):
 *   uint32 len     body length in bytes, <= the reader's maximum
 *   uint16 type    message type (bh.MsgType or the API's), never 0
 *   uint8  nfds    fds attached to this frame, <= BH_FRAME_MAX_FDS
 *   uint8  flags   must be 0
 */
#define BH_FRAME_HDR_SIZE 8
#define BH_FRAME_MAX_FDS  32
/* Default body limit for internal sockets. */
#define BH_FRAME_MAX_BODY (256u * 1024u)

struct bh_frame {
	uint16_t type;
	uint32_t len;
	uint8_t *body; /* malloc'd, owned by the frame; NULL when len == 0 */
	int fds[BH_FRAME_MAX_FDS]; /* received fds, owned by the frame */
	unsigned int nfds;
};

/* Frees the body and closes every fd still held (slots that are not -1). */
void bh_frame_release(struct bh_frame *f);

/* Takes ownership of fd number idx out of the frame: returns it and leaves -1
 * in its slot so that bh_frame_release does not close it. -EBADF if idx is out
 * of range or already taken. */
int bh_frame_take_fd(struct bh_frame *f, unsigned int idx);

/*
 * Incremental reader for one socket, usable on blocking and non-blocking
 * sockets. It never reads past the end of the frame being assembled, so fds
 * are always attributed to the right frame. Received fds are close-on-exec
 * (MSG_CMSG_CLOEXEC).
 */
struct bh_frame_reader {
	uint32_t max_body;
	uint8_t hdr[BH_FRAME_HDR_SIZE];
	size_t hdr_got;
	size_t body_got;
	struct bh_frame cur;
	int fd_overflow; /* more fds arrived than BH_FRAME_MAX_FDS */
};

void bh_frame_reader_init(struct bh_frame_reader *r, uint32_t max_body);
/* Drops a partly read frame (frees its body, closes its fds). */
void bh_frame_reader_reset(struct bh_frame_reader *r);

/*
 * Reads from sock until one frame is complete.
 * Returns 1 with *out filled (caller owns it; bh_frame_release it),
 *         0 if a non-blocking socket has no more data yet (EAGAIN),
 *   -EPIPE        the peer closed the connection between frames,
 *   -ECONNRESET   the peer closed it in the middle of a frame,
 *   -EMSGSIZE     header length above max_body (nothing of the body is read),
 *   -EBADMSG      bad header: type 0, flags != 0, nfds > BH_FRAME_MAX_FDS,
 *   -EPROTO       the fds that arrived do not match the header's nfds, or
 *                 fds arrived with body bytes instead of the header,
 *   other -errno from recvmsg.
 * After any negative return the connection is not usable any more: the
 * caller drops the peer. The reader has closed all fds of the bad frame.
 */
int bh_frame_read(int sock, struct bh_frame_reader *r, struct bh_frame *out);

/*
 * bh_frame_read until a whole frame arrived or timeout_ms passed: for the
 * set-up exchanges, where a peer that says nothing must not hang the caller.
 * 0 with *out filled (the caller releases it), -ETIMEDOUT, or
 * bh_frame_read's errors.
 */
int bh_frame_read_timeout(int sock, struct bh_frame_reader *r,
			  struct bh_frame *out, int timeout_ms);

/*
 * Packs msg (may be NULL for an empty body) into a malloc'd wire buffer of
 * header + body. 0 or -ENOMEM / -EMSGSIZE (body > UINT32_MAX or > max).
 */
int bh_frame_encode(uint16_t type, const ProtobufCMessage *msg,
		    unsigned int nfds, uint8_t **buf, size_t *len);

/*
 * Sends one frame on a blocking socket with nfds fds (borrowed; the caller
 * still owns and closes them). Loops over partial writes and EINTR; uses
 * MSG_NOSIGNAL. 0, or -errno (-EPIPE if the peer is gone). Not thread-safe:
 * callers that share a socket between threads hold their own lock.
 */
int bh_frame_send(int sock, uint16_t type, const ProtobufCMessage *msg,
		  const int *fds, unsigned int nfds);

/*
 * Attaches nfds fds (at most BH_FRAME_MAX_FDS) to m as one SCM_RIGHTS
 * message in ctl, a buffer of ctl_len bytes aligned for a cmsghdr; nothing
 * for nfds 0. The send paths (this file's and common/sendq.c) share it.
 */
struct msghdr;
void bh_frame_attach_fds(struct msghdr *m, void *ctl, size_t ctl_len,
			 const int *fds, unsigned int nfds);

/*
 * bh_frame_send for a peer that may stop reading: on a non-blocking socket
 * it waits at most timeout_ms (0: not at all; < 0: for ever) for room, then
 * returns -ETIMEDOUT. Part of the frame may have gone by then, so the
 * connection is not usable any more: the caller drops the peer.
 */
int bh_frame_send_timeout(int sock, uint16_t type, const ProtobufCMessage *msg,
			  const int *fds, unsigned int nfds, int timeout_ms);

#endif
