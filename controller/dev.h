/* One device as the controller keeps it, and the device list, shared by
 * the generic device code: devices.c (the list, the relays between the
 * runner and the workers, counters, in-flight records) and supervise.c
 * (the worker processes). Device types see struct bh_dev only through
 * devtype.h. */
#ifndef BH_CONTROLLER_DEV_H
#define BH_CONTROLLER_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include <bulkhead/frame.h>
#include <bulkhead/limits.h>
#include <bulkhead/util.h>

#include "config.h"
#include "devices.h"
#include "devtype.h"
#include "guestmem.h"

/* The tests build these files with shorter timeouts. */
#ifndef WORKER_SETUP_TIMEOUT
#define WORKER_SETUP_TIMEOUT 10000 /* ms, handshake, set-up and sandbox */
#endif
#define WORKER_EXIT_TIMEOUT 2000 /* ms, after QUIT before SIGKILL */
/* ms a worker has to answer a reset or a counters request, or to finish a
 * frame it began: then it counts as stuck and is replaced. */
#ifndef WORKER_ANSWER_TIMEOUT
#define WORKER_ANSWER_TIMEOUT 10000
#endif
/* ms a worker's socket may stay full before the worker counts as stuck: a
 * worker that stops reading must not block the controller's loop. */
#ifndef WORKER_SEND_TIMEOUT
#define WORKER_SEND_TIMEOUT 1000
#endif

/* Backend fds of one device at most: a TAP queue per net queue pair. */
#define BH_DEV_MAX_BACKEND BH_CONFIG_MAX_NET_PAIRS

struct bh_dev {
	struct bh_devices *devs;
	const struct bh_dev_type *type;
	/* Its place in the device list, and the runner's number for it: PCI
	 * slot index + 1 on bus 0. */
	unsigned int index;
	char id[BH_CONFIG_ID_MAX + 1];
	void *priv; /* the type's state, type->priv_size bytes (owned) */
	/* A device added while the VM ran: its own configuration, with the
	 * one device (owned); NULL for the VM's own devices. */
	struct bh_config *own_cfg;
	/* The runner was asked to remove it (RUNNER_REMOVE_DEVICE); it goes
	 * when the guest has ejected it, or at the end of the boot. */
	bool removing;
	/* owned, opened at create, kept across boots */
	int backend[BH_DEV_MAX_BACKEND];
	unsigned int nbackend;
	char binary[4096];

	/* Per boot. */
	enum bh_worker_state ws;
	pid_t pid;
	int sock;
	struct bh_frame_reader rd;
	struct event *ev;
	bool reset_pending;
	int kick[BH_MAX_QUEUES];
	int call[BH_MAX_QUEUES];

	/* The driver's last activation, kept to hand to a replacement
	 * worker, with the in-flight records the workers keep. */
	bool active;
	uint64_t driver_features;
	Bh__VirtQueue queues[BH_MAX_QUEUES];
	unsigned int nqueues;
	int inflight;
	uint64_t inflight_size;
	/* Replaced by a worker that fails every request: for good. */
	bool failed;
	uint64_t restarts[BH_CONFIG_MAX_RESTARTS]; /* ms, a ring */
	unsigned int nrestarts;

	/* From WORKER_READY. */
	uint64_t features;
	unsigned int nq;
	unsigned int qsize;
	uint8_t config[BH_VIRTIO_CONFIG_MAX];
	size_t config_len;

	/* Pause: when DEVICE_PAUSE went to this worker (ms; 0: it owes no
	 * confirmation), and a worker that died while the VM was paused,
	 * whose replacement waits for the resume (it would take up the rings
	 * at once). */
	uint64_t pause_sent;
	unsigned int pause_owed; /* DEVICE_PAUSED still to come */
	bool replace_on_resume;

	/* A restored device: the in-flight records its first activation
	 * takes up (owned), and whether it was failing its requests. */
	uint8_t *restore_records;
	size_t restore_len;
	bool restore_failed;

	/* Dirty logging (dirty.c): DEVICE_DIRTY_LOG answers this worker
	 * owes, since when (ms), and which of them the start under way waits
	 * for (the start_in-th from now; 0: none). */
	unsigned int dirty_owed;
	unsigned int dirty_start_in;
	uint64_t dirty_sent;

	/* The counters collection under way. */
	bool counters_pending;
	unsigned int counters_asked; /* requests this worker has not answered */

	/* What the worker owes, since when (ms, 0: nothing), and the timer
	 * that checks it (kept across workers, freed at stop). */
	uint64_t reset_sent;
	uint64_t counters_sent;
	uint64_t frame_since;
	struct event *watchdog;
	struct bh_device_counters counters;
};

#define COUNTERS_MAX_WAITERS 16

struct bh_devices {
	const struct bh_config *cfg;
	const char *child_dir; /* borrowed: where the workers are */
	/* By PCI slot index: NULL for an empty slot, so that a device can
	 * come and go without moving the others. */
	struct bh_dev *slot[BH_MAX_DEVICES];
	unsigned int n; /* devices in slot[] */
	/* To the runner; NULL when no runner listens. */
	bh_devices_send_fn send;
	void *send_arg;
	/* Borrowed for one boot, for replacement workers. */
	const struct bh_guest_mem *mem;
	struct event_base *base;

	/* A counters collection: who waits for it, and its deadline. */
	struct {
		bh_devices_counters_fn fn;
		void *arg;
	} waiters[COUNTERS_MAX_WAITERS];
	unsigned int nwaiters;
	struct event *counters_timer;
	/* The VM is paused, or pausing: workers are asked to be quiet, and
	 * pause_done is called once every one has confirmed. */
	bool paused;
	bh_devices_paused_fn pause_done;
	void *pause_arg;
	struct bh_kmsg *kmsg; /* borrowed, may be NULL */
	/* Dirty logging for live migration (dirty.c), NULL until first
	 * used. */
	struct bh_dirty *dirty;
	/* Starts the workers (borrowed). NULL only in the tests that build
	 * this file in: then the worker is spawned from here. */
	struct bh_launcher *launcher;
};

static inline uint64_t bh_dev_now_ms(void)
{
	return bh_now_ns() / 1000000;
}

/* devices.c, for supervise.c. */
/* One frame from a worker; <0 (reason in why) means the worker
 * misbehaved. */
int bh_dev_dispatch(struct bh_dev *v, struct bh_frame *f, char *why,
		    size_t whylen);
/* WORKER_SETUP for a new worker: guest RAM (mem borrowed) and the backend. */
int bh_dev_send_setup(struct bh_dev *v, const struct bh_guest_mem *mem);
/* The driver's activation, with the in-flight memfd; resume when a
 * previous worker served these rings. */
int bh_dev_send_activate(struct bh_dev *v, bool resume);
/* Tell the runner. */
void bh_dev_needs_reset(struct bh_dev *v, const char *reason);
void bh_dev_reset_done(struct bh_dev *v);
/* A worker stopped owing counters: the collection may be complete. */
void bh_dev_counters_check(struct bh_devices *d);

/* quiesce.c, for devices.c and supervise.c. */
/* DEVICE_PAUSED from v: -EPROTO when it owed none. */
int bh_dev_paused(struct bh_dev *v);
/* A worker stopped owing a confirmation: the pause may be complete. */
void bh_dev_pause_check(struct bh_devices *d);
/* A worker that got ready while the VM is paused is paused too. */
void bh_dev_pause_new(struct bh_dev *v);

/* devsnap.c, for devices.c: writes a restored device's records into its
 * fresh in-flight memfd. 1 (resume from them), 0 (none: a new activation)
 * or -errno (they do not fit: logged). */
int bh_dev_restore_records(struct bh_dev *v);

/* supervise.c, for devices.c. */
/* Starts one worker and takes it to READY. 0 or -errno (logged). */
int bh_sup_start(struct bh_dev *v, const struct bh_guest_mem *mem);
/* From READY on, the worker's socket is watched in the event loop. */
int bh_sup_watch(struct bh_dev *v);
/* The worker died or broke the protocol: it goes (killed with kill_it), is
 * logged with why (NULL: how it ended), and another takes its place. */
void bh_sup_fail(struct bh_dev *v, const char *why, bool kill_it);
/* A send to the worker failed with r: it is stuck or gone. */
void bh_sup_send_failed(struct bh_dev *v, int r);
/* Something is owed from now on: the watchdog runs if it did not. */
void bh_sup_watchdog_arm(struct bh_dev *v);
/* Sends QUIT to every worker of d and reaps them all (SIGKILL after one
 * grace period), then forgets their sockets and watchdogs. */
void bh_sup_stop(struct bh_devices *d);
/* The same for one worker (a device that leaves while the VM runs). */
void bh_sup_stop_one(struct bh_dev *v);
/* Starts the replacement of a worker that died while the VM was paused. */
void bh_sup_replace(struct bh_dev *v);

#endif
