/* The VM's virtio devices as the controller keeps them: backend fds, one
 * sandboxed worker process per device, and the relay between the vCPU
 * runner's transport and each worker. */
#ifndef BH_CONTROLLER_DEVICES_H
#define BH_CONTROLLER_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "guestmem.h"
#include "proto/internal.pb-c.h"
#include "proto/state.pb-c.h"

struct bh_devices;

/* Whether every worker program is in dir; a message naming the first
 * missing one in err. 0 or -ENOENT. */
int bh_devices_check_binaries(const char *dir, char *err, size_t errlen);
/*
 * Opens every device backend the configuration names (disk images in the
 * asked mode, the entropy source, the console file) and finds the worker
 * binaries, before any process starts. On failure returns -errno with a
 * message naming the option and path in err. Borrows cfg and child_dir
 * (the directory of the workers, resolved at start-up).
 */
int bh_devices_open(const struct bh_config *cfg, const char *child_dir,
		    struct bh_devices **out, char *err, size_t errlen);
/* Stops the workers and closes every fd. NULL is fine. */
void bh_devices_close(struct bh_devices *d);
/* Where the reports of workers killed by their seccomp filter look
 * (borrowed, may be NULL); d may be NULL. */
struct bh_kmsg;
void bh_devices_set_kmsg(struct bh_devices *d, struct bh_kmsg *k);
/* What starts the workers (borrowed); d may be NULL. */
struct bh_launcher;
void bh_devices_set_launcher(struct bh_devices *d, struct bh_launcher *l);
unsigned int bh_devices_count(const struct bh_devices *d);

/* The device in slot index i (0 <= i < BH_MAX_DEVICES) as the API shows
 * it: its id, its type ("virtio-blk", "virtio-rng", ...: bh_dev_type's
 * api_type) and its PCI slot on bus 0 (i + 1). 0, or -ENOENT for an empty
 * slot. */
int bh_devices_describe(const struct bh_devices *d, unsigned int i,
			const char **id, const char **type, unsigned int *slot);

/* The counters of one device from its last report. */
#define BH_DEVICES_MAX_COUNTERS	    48
#define BH_DEVICES_COUNTER_NAME_MAX 32
struct bh_device_counters {
	const char *id;
	unsigned int n;
	struct {
		char name[BH_DEVICES_COUNTER_NAME_MAX + 1];
		uint64_t value;
	} c[BH_DEVICES_MAX_COUNTERS];
};

/* Called once per bh_devices_counters() request with every device that
 * answered (n of them; the array is the callee's until it returns). */
typedef void (*bh_devices_counters_fn)(void *arg,
				       const struct bh_device_counters *devs,
				       unsigned int n);

/*
 * Asks every running worker for its counters and calls done (from the event
 * loop) once all have answered, after timeout_ms, or when the workers stop,
 * whichever comes first. Requests made while one collection is under way
 * share its answers. 0, -EBUSY (too many waiting), or -ENOTCONN (no
 * workers running: done is not called).
 */
int bh_devices_counters(struct bh_devices *d, int timeout_ms,
			bh_devices_counters_fn done, void *arg);

/*
 * Pause (see docs/ARCHITECTURE.md): asks every worker to finish what is in
 * flight and go quiet (no chain taken, no backend input read, no guest RAM
 * written), after the runner has stopped the vCPUs. 1 when no worker had
 * to be asked (done is not called), 0 when done will be called from the
 * event loop once every worker has confirmed or died (a worker that does
 * not answer within WORKER_ANSWER_TIMEOUT is killed; the replacement of a
 * worker that dies while paused waits for the resume), -EALREADY when
 * paused already. Workers that get ready while paused are paused too.
 */
typedef void (*bh_devices_paused_fn)(void *arg);
int bh_devices_pause(struct bh_devices *d, bh_devices_paused_fn done,
		     void *arg);
/* Wakes every worker (and starts the replacements that waited), before the
 * runner runs the vCPUs again. A pause still collecting confirmations is
 * abandoned: its done is not called. */
void bh_devices_resume(struct bh_devices *d);
bool bh_devices_paused(const struct bh_devices *d);

/*
 * Snapshots (devsnap.c). bh_devices_save describes every device of a paused
 * VM (*out malloc'd, free with bh_devices_save_free), or refuses with a
 * message what a snapshot cannot hold (a removal under way, a pmem added
 * while running or with discard_writes=on). bh_devices_restore, before
 * the workers start, puts each device of a restored VM in the slot the
 * state names and keeps its records for its first activation; -EINVAL with
 * a message when the state does not fit the configuration (another device
 * set, another type, a backend of another size).
 */
int bh_devices_save(struct bh_devices *d, Bh__DeviceSnapshot ***out, size_t *n,
		    char *err, size_t errlen);
/* bh_devices_save's refusals alone, nothing copied: 0 or -EINVAL with err. */
int bh_devices_check_savable(const struct bh_devices *d, char *err,
			     size_t errlen);
void bh_devices_save_free(Bh__DeviceSnapshot **devs, size_t n);
int bh_devices_restore(struct bh_devices *d, Bh__DeviceSnapshot *const *devs,
		       size_t n, char *err, size_t errlen);

/*
 * For one boot: starts each worker, hands it guest RAM (mem is borrowed)
 * and its backend, waits for WORKER_READY, creates the queues' eventfds and
 * watches the worker's socket in base. 0 or -errno (logged); on failure the
 * workers already started are stopped.
 */
int bh_devices_start(struct bh_devices *d, const struct bh_guest_mem *mem,
		     struct event_base *base);
/* How the devices reach the runner: sends one frame (fds borrowed) without
 * waiting for the runner to read it. 0 or -errno. */
typedef int (*bh_devices_send_fn)(void *arg, uint16_t type,
				  const ProtobufCMessage *m, const int *fds,
				  unsigned int nfds);
/* Sends RUNNER_ADD_DEVICE for each device through send, which is kept for
 * relaying until bh_devices_stop. 0 or -errno. */
int bh_devices_attach(struct bh_devices *d, bh_devices_send_fn send, void *arg);
/* Sends QUIT to every worker and reaps it (SIGKILL after a grace period),
 * closes the eventfds and forgets the runner's socket. */
void bh_devices_stop(struct bh_devices *d);

/* Relays from the runner. A bad device or queue index is the runner's
 * fault: -EINVAL, and the caller ends the runner. */
int bh_devices_activate(struct bh_devices *d, const Bh__VirtioActivate *a);
int bh_devices_reset(struct bh_devices *d, const Bh__VirtioDeviceRef *ref);
int bh_devices_config_write(struct bh_devices *d,
			    const Bh__VirtioConfigWrite *w);

/*
 * Devices added and removed while the VM runs (PCI hotplug; see
 * docs/ARCHITECTURE.md). Between bh_devices_attach and bh_devices_stop
 * only.
 */
/* The slot index of the device named id, or -ENOENT. */
int bh_devices_find(const struct bh_devices *d, const char *id);
/*
 * Adds the one disk, net, pmem or vsock device that one describes (a heap
 * configuration with that device alone, taken in every case: it becomes
 * the device's own and stays for the VM's life, reboots included). An
 * empty id becomes the first free of "disk0", "disk1", ... Opens the
 * backend as at start-up, starts the worker and waits for its READY (the
 * loop stands still meanwhile, as for a replacement worker), then sends
 * RUNNER_ADD_DEVICE. A pmem region is placed at the lowest free place
 * among the regions of the devices there now (bh_layout_devmem_fit), and
 * keeps it. 0 with *index its slot index, or -errno with a message in err:
 * -ENOTCONN (no boot runs), -EEXIST (the id is taken, or a second vsock),
 * -ENOSPC (BH_MAX_DEVICES devices already, or no room for a pmem region
 * below BH_LAYOUT_DEVMEM_LIMIT), -EINVAL, or the backend's or the worker's
 * error; nothing is left of the device then.
 */
int bh_devices_add(struct bh_devices *d, struct bh_config *one,
		   unsigned int *index, char *err, size_t errlen);
/* The runner refused the device at index that bh_devices_add sent it: its
 * worker stops and the device goes. */
void bh_devices_add_failed(struct bh_devices *d, unsigned int index);
/*
 * Asks the runner to have the guest eject the device named id (again, if
 * asked before). 0, or -ENOENT (no such device), -ENOTCONN (no boot runs)
 * or the send's error, with a message in err. The device goes at
 * bh_devices_removed, or at bh_devices_stop when the boot ends first.
 */
int bh_devices_remove(struct bh_devices *d, const char *id, char *err,
		      size_t errlen);
/*
 * RUNNER_DEVICE_REMOVED: stops the device's worker and frees the device
 * and every fd held for it; its id is copied to id. -EINVAL for a device
 * whose removal was not asked for (the runner's fault).
 */
int bh_devices_removed(struct bh_devices *d, const Bh__RunnerDeviceRemoved *m,
		       char *id, size_t idlen);

/*
 * The VM's configuration as its devices stand: cfg with its disks, nets,
 * pmems, vsock, rng and console replaced by those in the device list, the ones
 * added while the VM ran included and the removed ones left out, in PCI
 * slot order. A shallow copy: out borrows from cfg and d, read it only
 * while both stay unchanged, and never free it. d NULL: cfg as it is.
 */
void bh_devices_config(const struct bh_devices *d, const struct bh_config *cfg,
		       struct bh_config *out);

#endif
