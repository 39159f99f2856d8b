/* The migration stream's framing (docs/ARCHITECTURE.md, "Live migration").
 * Every message is a 16-byte header and a payload:
 *   uint32 magic    "BHMG" (little-endian)
 *   uint16 version  BH_MIG_VERSION; a peer of another version is refused
 *   uint16 type     enum bh_mig_type
 *   uint64 length   bytes of payload that follow, at most the type's limit
 * all little-endian. START, RESPONSE, COMPLETE and ABANDON carry the
 * messages of proto/migration.proto, CONFIG the API's VmConfig, STATE a
 * SnapshotState (proto/state.proto); MEMORY carries a uint64 offset into
 * guest RAM and the bytes from there (page-aligned, whole pages); MEMFD
 * carries nothing but the guest-RAM memfd in SCM_RIGHTS (unix sockets, for
 * a migration on one host). Both ends check every header and payload as
 * input from outside. */
#ifndef BH_CONTROLLER_MIGWIRE_H
#define BH_CONTROLLER_MIGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BH_MIG_MAGIC	   0x474d4842u /* "BHMG" */
#define BH_MIG_VERSION	   1
#define BH_MIG_HEADER_SIZE 16
#define BH_MIG_PAGE_SIZE   4096u
/* Guest memory per MEMORY frame, at most. */
#define BH_MIG_MEMORY_MAX (4u << 20)

enum bh_mig_type {
	BH_MIG_START = 1,
	BH_MIG_CONFIG = 2,
	BH_MIG_MEMORY = 3,
	BH_MIG_MEMFD = 4,
	BH_MIG_STATE = 5,
	BH_MIG_COMPLETE = 6,
	BH_MIG_ABANDON = 7,
	BH_MIG_RESPONSE = 8,
	BH_MIG_TYPE_END,
};

struct bh_mig_header {
	uint16_t version;
	uint16_t type;
	uint64_t length;
};

/* The type's name ("START", ...), "unknown" for another number. */
const char *bh_mig_type_name(unsigned int type);
/* The most payload a frame of this type may carry (0 for an unknown one). */
uint64_t bh_mig_max_length(unsigned int type);

void bh_mig_header_encode(uint8_t out[BH_MIG_HEADER_SIZE], unsigned int type,
			  uint64_t length);
/*
 * Decodes and checks a header: magic, version, a known type, a length
 * within the type's limit (MEMORY: the offset and at least one whole page,
 * whole pages only; MEMFD: none). 0, or -EPROTO (not a migration stream,
 * another version) / -EBADMSG with a message naming the problem in err.
 */
int bh_mig_header_decode(const uint8_t in[BH_MIG_HEADER_SIZE],
			 struct bh_mig_header *h, char *err, size_t errlen);

/*
 * Checks a MEMORY payload against guest RAM of ram_size bytes: its offset
 * page-aligned and offset + data inside RAM, overflow-safe. 0 with *offset
 * and *data and *len (into payload), or -EBADMSG with err.
 */
int bh_mig_memory_check(const uint8_t *payload, uint64_t length,
			uint64_t ram_size, uint64_t *offset,
			const uint8_t **data, size_t *len, char *err,
			size_t errlen);

/* ---- reading frames from a non-blocking socket ------------------------- */

struct bh_mig_reader {
	uint8_t hdr[BH_MIG_HEADER_SIZE];
	size_t hdr_got;
	struct bh_mig_header h;
	uint8_t *body; /* malloc'd as the header says */
	uint64_t got;
	int fd;		/* one fd that came with the header (MEMFD), or -1 */
	uint64_t bytes; /* everything read, for progress */
};

void bh_mig_reader_init(struct bh_mig_reader *r);
/* Frees what a partly read frame holds, closes its fd. */
void bh_mig_reader_reset(struct bh_mig_reader *r);
/*
 * Reads what the socket has until one frame is complete: 1 when it is (in
 * r->h, r->body, r->fd: the caller takes them and calls
 * bh_mig_reader_next), 0 when the socket has no more for now, or -errno
 * with err: -EPIPE the peer closed between frames, -ECONNRESET in the
 * middle of one, -EPROTO/-EBADMSG a bad header, an fd with any frame but
 * MEMFD or more than one; another -errno from the socket.
 */
int bh_mig_read(struct bh_mig_reader *r, int sock, char *err, size_t errlen);
/* After a complete frame: frees its body, closes its fd if not taken. */
void bh_mig_reader_next(struct bh_mig_reader *r);

/* ---- writing ------------------------------------------------------------ */

/* One frame on its way out: header and payload in one buffer. */
struct bh_mig_out {
	uint8_t *buf; /* malloc'd, grown as needed */
	size_t cap;
	size_t len, off;
	int fd;		/* sent with the first byte (MEMFD), borrowed; -1 */
	uint64_t bytes; /* everything sent, for progress */
};

void bh_mig_out_init(struct bh_mig_out *o);
void bh_mig_out_free(struct bh_mig_out *o);
bool bh_mig_out_busy(const struct bh_mig_out *o);
/* Builds a frame of type with a payload of len bytes and returns where the
 * payload goes (NULL: out of memory). Only when not busy. */
uint8_t *bh_mig_out_frame(struct bh_mig_out *o, unsigned int type, size_t len);
/* Sends what the socket takes: 1 when the frame is all out, 0 when the
 * socket is full, -errno when it failed. */
int bh_mig_out_send(struct bh_mig_out *o, int sock);

#endif
