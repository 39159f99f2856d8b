/*
 * Fuzz target: the migration stream as a receiving (or sending) bulkhead
 * reads it (controller/migwire.c): the input goes into a socketpair in
 * chunks, the reader assembles frames, and each is decoded as its type
 * says: START, RESPONSE, COMPLETE, ABANDON, CONFIG, STATE through their
 * protobuf decoders, MEMORY through its range check against 64 MiB of RAM.
 *
 * Input: byte 0 = chunk size - 1; then the byte stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migwire.h"
#include "proto/api.pb-c.h"
#include "proto/migration.pb-c.h"
#include "proto/state.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(const struct bh_mig_reader *r)
{
	const uint8_t *d;
	uint64_t off;
	size_t len;
	char err[256];
	ProtobufCMessage *m = NULL;

	switch (r->h.type) {
	case BH_MIG_START:
		m = (ProtobufCMessage *)bh__mig_start__unpack(NULL, r->h.length,
							      r->body);
		break;
	case BH_MIG_RESPONSE:
		m = (ProtobufCMessage *)bh__mig_response__unpack(
		    NULL, r->h.length, r->body);
		break;
	case BH_MIG_COMPLETE:
		m = (ProtobufCMessage *)bh__mig_complete__unpack(
		    NULL, r->h.length, r->body);
		break;
	case BH_MIG_ABANDON:
		m = (ProtobufCMessage *)bh__mig_abandon__unpack(
		    NULL, r->h.length, r->body);
		break;
	case BH_MIG_CONFIG:
		m = (ProtobufCMessage *)bulkhead__api__v1__vm_config__unpack(
		    NULL, r->h.length, r->body);
		break;
	case BH_MIG_STATE:
		m = (ProtobufCMessage *)bh__snapshot_state__unpack(
		    NULL, r->h.length, r->body);
		break;
	case BH_MIG_MEMORY:
		if (bh_mig_memory_check(r->body, r->h.length, 64u << 20, &off,
					&d, &len, err, sizeof(err)) == 0) {
			volatile uint8_t x = d[0] ^ d[len - 1];
			(void)x;
		}
		break;
	default:
		break;
	}
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bh_mig_reader r;
	char err[256];
	size_t chunk, off = 1;
	int sv[2];

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	bh_mig_reader_init(&r);
	for (;;) {
		int rr;

		if (off < size) {
			size_t n = size - off < chunk ? size - off : chunk;
			ssize_t w = write(sv[0], data + off, n);

			if (w > 0)
				off += (size_t)w;
		} else if (sv[0] >= 0) {
			close(sv[0]);
			sv[0] = -1;
		}
		rr = bh_mig_read(&r, sv[1], err, sizeof(err));
		if (rr < 0)
			break;
		if (rr == 1) {
			decode(&r);
			bh_mig_reader_next(&r);
		}
		if (rr == 0 && sv[0] < 0)
			break;
	}
	bh_mig_reader_reset(&r);
	if (sv[0] >= 0)
		close(sv[0]);
	close(sv[1]);
	return 0;
}
