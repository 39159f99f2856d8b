/* The layout of the in-flight records that device workers keep in a memfd
 * the controller holds across worker processes (DeviceActivate in
 * proto/internal.proto). The controller only sizes and passes the memfd. */
#ifndef BH_INFLIGHT_H
#define BH_INFLIGHT_H

#include <stdint.h>

/*
 * In-flight records, in a memfd the controller keeps across worker
 * processes (DeviceActivate.inflight_size): per queue a header and one entry
 * per descriptor head, set when a chain is taken from the avail ring and
 * cleared once it is in the used ring. A worker started after one died reads
 * them to finish what the dead one had taken (the same technique as
 * vhost-user's in-flight I/O tracking). Only workers write them; a worker
 * that reads them treats them like guest input, since the previous writer
 * may have been compromised.
 */
#define BH_INFLIGHT_MAGIC 0x46494842u /* "BHIF" */
#define BH_INFLIGHT_HDR	  64
/* Bytes of one queue's records, for a queue of at most max_size entries. */
#define BH_INFLIGHT_BYTES(max_size) (BH_INFLIGHT_HDR + 16ULL * (max_size))
/*
 * After the queues' records: the device's own state that must outlive a
 * worker (virtio-net's active queue pairs, set through its control queue),
 * in a layout of each device type's choosing. Zeroed for every new
 * activation; a replacement worker reads it like guest input.
 */
#define BH_INFLIGHT_DEV_STATE 4096
/* The whole memfd for nq queues of at most max_size entries. */
#define BH_INFLIGHT_TOTAL(nq, max_size) \
	((uint64_t)(nq) * BH_INFLIGHT_BYTES(max_size) + BH_INFLIGHT_DEV_STATE)

struct bh_inflight_desc {
	uint8_t inflight;
	uint8_t pad[7];
	uint64_t counter; /* when it was taken: replays keep the order */
};

struct bh_inflight {
	uint32_t magic;
	uint16_t size;	    /* the queue's size when the records began */
	uint16_t used_idx;  /* used->idx as published and settled */
	uint16_t last_head; /* the head the last push returned */
	uint16_t pad0[3];
	uint64_t counter;
	uint8_t pad1[BH_INFLIGHT_HDR - 24];
	struct bh_inflight_desc desc[];
};

#endif
