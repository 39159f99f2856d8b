/* The table of device types: what the controller's generic device code
 * (devices.c, supervise.c) asks of each type, and the little it offers a
 * type in return. One file per type fills one entry (dev_blk.c, ...). */
#ifndef BH_CONTROLLER_DEVTYPE_H
#define BH_CONTROLLER_DEVTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bulkhead/dispatch.h>

#include "config.h"
#include "launcher.h"
#include "proto/internal.pb-c.h"

struct event_base;
/* One device: opaque to its type, which keeps its own state in the private
 * block (bh_dev_priv) of priv_size bytes. */
struct bh_dev;

/* Where a device's worker is; its handlers in bh_dev_type.msgs name these
 * states. */
enum bh_worker_state {
	WK_NONE = 0, /* no worker (not started, or stopped) */
	WK_SETUP,    /* waiting for WORKER_READY */
	WK_READY,    /* serving */
	WK_DEAD,     /* died or misbehaved during this boot */
};

struct bh_dev_type {
	/* bulkhead-dev-<name> is the worker, dev-<name> its handshake role,
	 * and the name in the logs. */
	const char *name;
	const char *api_type; /* "virtio-blk": the type info shows */
	uint32_t virtio_id;   /* what WORKER_READY must say */
	Bh__WorkerSetup__BackendCase backend;
	enum bh_launch_kind launch;
	size_t priv_size; /* the type's state per device, zeroed */

	/* Devices of this type the configuration asks for at start-up, and
	 * the id of the i-th. */
	unsigned int (*count)(const struct bh_config *cfg);
	const char *(*id)(const struct bh_config *cfg, unsigned int i);
	/* Opens and checks the backend of the i-th device of cfg, before any
	 * process starts (bh_dev_add_backend for each fd the worker gets).
	 * 0, or -errno with a message naming the option and path in err; what
	 * it opened goes in close. */
	int (*open)(struct bh_dev *v, const struct bh_config *cfg,
		    unsigned int i, char *err, size_t errlen);
	/* The queues WORKER_READY must offer, or 0 for any count up to
	 * BH_MAX_QUEUES. May be NULL. */
	unsigned int (*num_queues)(const struct bh_dev *v);
	/* Fills the type's backend message of WORKER_SETUP (s->backend_case
	 * is set already); the message lives in the private block so that it
	 * outlasts the call. */
	void (*setup)(struct bh_dev *v, const struct bh_config *cfg,
		      Bh__WorkerSetup *s);
	/* Guest-physical memory the device brings (virtio-pmem's region):
	 * fills r and returns the fd the runner maps it from (borrowed), or
	 * -1 for none. May be NULL: none. */
	int (*shm)(const struct bh_dev *v, Bh__SharedRegion *r);
	/* Per boot, after the worker is ready and watched, and after it is
	 * gone. 0 or -errno (logged). May be NULL. */
	int (*start)(struct bh_dev *v, struct event_base *base);
	void (*stop)(struct bh_dev *v);
	/* Gives back what open took, except the backend fds, which the
	 * generic code closes right after. May be NULL. */
	void (*close)(struct bh_dev *v);
	/* Messages only this type's worker may send, with the device as
	 * ctx; any other message goes to the generic table. */
	const struct bh_handler *msgs;
	size_t nmsgs;
};

/* Every type, in the order their devices take PCI slots at start-up. */
extern const struct bh_dev_type *const bh_dev_types[];
extern const size_t bh_dev_ntypes;

extern const struct bh_dev_type bh_dev_blk;
extern const struct bh_dev_type bh_dev_rng;
extern const struct bh_dev_type bh_dev_console;
extern const struct bh_dev_type bh_dev_net;
extern const struct bh_dev_type bh_dev_vsock;
extern const struct bh_dev_type bh_dev_pmem;

/* What a type may ask of its device. */
const char *bh_dev_id(const struct bh_dev *v);
void *bh_dev_priv(const struct bh_dev *v);
/* Hands the worker fd as its next backend fd (takes fd; closed with the
 * device). 0, or -EMFILE past BH_DEV_MAX_BACKEND (fd closed). */
int bh_dev_add_backend(struct bh_dev *v, int fd);
/* The configuration of a device added while the VM ran: the one device,
 * owned by the device for its life, which its type may complete at open
 * (a size read from the backend); NULL for a device of the VM's own
 * configuration. */
struct bh_config *bh_dev_own_config(struct bh_dev *v);
/* The VM's configuration (borrowed), whichever configuration the device
 * came from: what a device added later must fit in with (its RAM). */
const struct bh_config *bh_dev_vm_config(const struct bh_dev *v);
/* The guest-physical regions that the VM's other devices bring now (their
 * type's shm), those whose removal is under way included, for placing v's
 * own: at most max of them in gpa[] and size[]; returns how many. */
unsigned int bh_dev_other_regions(const struct bh_dev *v, uint64_t *gpa,
				  uint64_t *size, unsigned int max);
/* Whether the device's worker serves now. */
bool bh_dev_worker_ready(const struct bh_dev *v);
/* Sends one frame to the worker (fds borrowed) without waiting long for
 * room: a worker that leaves its socket full or gone is replaced. 0 or
 * -errno. */
int bh_dev_worker_send(struct bh_dev *v, uint16_t type,
		       const ProtobufCMessage *m, const int *fds,
		       unsigned int nfds);

#endif
