/*
 * A virtio driver without KVM: plays the guest's and the controller's part
 * against a real device worker process, for tests and benchmarks. Guest RAM
 * is a sealed memfd mapped here and in the worker; queues, descriptors and
 * rings are written here as a guest would, and the worker's control messages
 * are read and answered as the controller would.
 *
 * Every function returns 0 (or a count) or -errno; every wait has a timeout
 * in milliseconds so that a broken worker fails a test instead of hanging
 * it. The per-request path (add, kick, wait, get_used) never allocates.
 */
#ifndef BH_TESTS_VDRIVER_H
#define BH_TESTS_VDRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bulkhead/frame.h>
#include <bulkhead/limits.h>

#include "proto/internal.pb-c.h"

#define BH_VDRIVER_MAX_COUNTERS 64
/* Indirect table entries per head that bh_vdriver_add can build. */
#define BH_VDRIVER_MAX_INDIRECT 64
/* Guest RAM below this is the test's own; the allocator starts here. */
#define BH_VDRIVER_ALLOC_BASE 0x100000ULL
/* Where high RAM starts when cfg->high_ram_size is set. */
#define BH_VDRIVER_HIGH_BASE 0x100000000ULL
/* Device-specific frames kept until bh_vdriver_recv_ctl takes them. */
#define BH_VDRIVER_MAX_CTL 64
/* A reasonable default for waits in tests. */
#define BH_VDRIVER_TIMEOUT_MS 5000

/* Split-ring descriptor flags (virtio 1.x, 2.7.5). */
#define BH_VRING_DESC_F_NEXT	 1
#define BH_VRING_DESC_F_WRITE	 2
#define BH_VRING_DESC_F_INDIRECT 4

struct bh_vdriver;

struct bh_vdriver_cfg {
	const char *binary; /* path of bulkhead-dev-<type> */
	Bh__WorkerSetup__BackendCase type;
	/* Bh__BlkSetup, Bh__ConsoleSetup, Bh__NetSetup, Bh__RngSetup or
	 * Bh__VsockSetup or Bh__PmemSetup as type says; NULL sends the
	 * defaults (vsock: cid 3; pmem: 2 MiB at 4 GiB). Borrowed. */
	const void *backend;
	/* Sent after the memfd in WORKER_SETUP; borrowed. */
	const int *backend_fds;
	unsigned int n_backend_fds;
	uint64_t ram_size;	   /* guest RAM at 0, page multiple */
	uint64_t high_ram_size;	   /* 0, or more RAM at BH_VDRIVER_HIGH_BASE */
	const char *id;		   /* NULL: "vdrv0" */
	const char *log_level;	   /* NULL: "warn" */
	const char *selftest_open; /* --selftest-open PATH, or NULL */
	/* Activations carry an in-flight records memfd, as the controller's
	 * do; needed by bh_vdriver_respawn, which sends WORKER_SETUP again:
	 * backend and backend_fds must then stay valid until the end. */
	bool inflight;
	/* WorkerSetup.strict_sandbox: a refused sandbox step ends the worker.
	 * Workers start in a PID namespace of their own, as the controller's
	 * do (bh_spawn_ns); with strict_sandbox, one the host refuses keeps
	 * the worker from starting. */
	bool strict_sandbox;
};

/* What WORKER_READY said about the device. */
struct bh_vdriver_info {
	uint32_t device_type;
	uint64_t device_features;
	uint32_t num_queues;
	uint32_t max_queue_size;
	uint8_t config[BH_VIRTIO_CONFIG_MAX];
	size_t config_len;
};

/* One buffer of a chain, in guest RAM. */
struct bh_vdriver_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

/* A used-ring entry. */
struct bh_vdriver_used {
	uint32_t id;
	uint32_t len;
};

/* One queue as DeviceActivate describes it (for bh_vdriver_activate_raw). */
struct bh_vdriver_vq_addr {
	uint32_t index;
	uint32_t size;
	uint64_t desc;
	uint64_t avail;
	uint64_t used;
	bool enabled;
};

/* ---- life cycle ---------------------------------------------------------- */

/*
 * Creates guest RAM (sealed memfd), the socketpair and the worker process,
 * and does the handshake. *out is freed by bh_vdriver_stop, also on a later
 * failure. cfg->backend and cfg->backend_fds must stay valid until
 * bh_vdriver_setup.
 */
int bh_vdriver_spawn(const struct bh_vdriver_cfg *cfg, struct bh_vdriver **out);
/* Sends WORKER_SETUP and reads WORKER_READY into the device info. */
int bh_vdriver_setup(struct bh_vdriver *d, int timeout_ms);
/* spawn + setup; on failure nothing is left (the worker is killed). */
int bh_vdriver_start(const struct bh_vdriver_cfg *cfg, struct bh_vdriver **out);

/*
 * Sends QUIT, waits for the worker to exit (kills it after timeout_ms) and
 * frees everything. *status (may be NULL) gets the wait status. 0 if the
 * worker exited with status 0, -ETIMEDOUT if it had to be killed, -ECHILD
 * for any other end (see the status). d may be NULL.
 */
int bh_vdriver_stop(struct bh_vdriver *d, int timeout_ms, int *status);

/*
 * Plays the controller after a worker died: kills the worker if it still
 * runs, starts a new one on the same guest RAM (handshake, setup) and hands
 * it the last activation with the same eventfds and the in-flight records,
 * resume set (and failed as given). Needs cfg.inflight and an activation.
 */
int bh_vdriver_respawn(struct bh_vdriver *d, bool failed, int timeout_ms);
/* Queue q's in-flight records (struct bh_inflight), or NULL. */
void *bh_vdriver_inflight(struct bh_vdriver *d, unsigned int q);
/* The whole records memfd as mapped here, what a snapshot saves of a
 * device: each queue's records (BH_INFLIGHT_BYTES of the largest queue
 * apiece), then BH_INFLIGHT_DEV_STATE bytes of the device's own state.
 * *size gets its length; NULL (and 0) before an activation with
 * cfg.inflight. */
void *bh_vdriver_inflight_region(struct bh_vdriver *d, size_t *size);
/*
 * Plays the controller in a restore: kills the worker if it still runs,
 * starts a new one on the same guest RAM, pauses it as soon as it is ready
 * (a restored VM starts paused), puts records (len bytes, a copy of what
 * bh_vdriver_inflight_region gave) into a new records memfd and hands it
 * the last activation with the same eventfds, resume set. The worker takes
 * nothing from the rings until bh_vdriver_resume. -EINVAL if len is not
 * the region's size; needs cfg.inflight and an activation.
 */
int bh_vdriver_restore(struct bh_vdriver *d, const void *records, size_t len,
		       int timeout_ms);

/* Waits for the worker to exit by itself. 0 with *status, or -ETIMEDOUT. */
int bh_vdriver_wait_exit(struct bh_vdriver *d, int timeout_ms, int *status);
/* True while the worker process has not exited. */
bool bh_vdriver_alive(struct bh_vdriver *d);
/* Describes the worker's exit ("killed by signal 31 (Bad system call)"),
 * or "running". */
const char *bh_vdriver_describe_exit(struct bh_vdriver *d, char *buf,
				     size_t len);
pid_t bh_vdriver_pid(const struct bh_vdriver *d);

const struct bh_vdriver_info *bh_vdriver_info(const struct bh_vdriver *d);

/* ---- guest RAM ----------------------------------------------------------- */

/* Host pointer for [gpa, gpa + len) if it lies in one region, else NULL. */
void *bh_vdriver_gpa(struct bh_vdriver *d, uint64_t gpa, uint64_t len);
/* Bump allocator in low RAM from BH_VDRIVER_ALLOC_BASE; memory is zeroed.
 * align is a power of two. 0 or -ENOMEM. */
int bh_vdriver_alloc(struct bh_vdriver *d, uint64_t size, uint64_t align,
		     uint64_t *gpa);

/* ---- queues and activation ----------------------------------------------- */

/*
 * Sets up queue q of size entries (power of two) with its rings at the given
 * guest addresses (zeroed here), and reserves indirect tables for it.
 * -EFAULT if a ring is not in guest RAM.
 */
int bh_vdriver_queue_setup(struct bh_vdriver *d, unsigned int q, uint16_t size,
			   uint64_t desc, uint64_t avail, uint64_t used);
/* Same with the rings placed by the allocator. */
int bh_vdriver_queue_alloc(struct bh_vdriver *d, unsigned int q, uint16_t size);

/*
 * Sends DEVICE_ACTIVATE with driver_features and every queue set up, in
 * index order, each with a fresh kick and call eventfd. There is no reply:
 * use bh_vdriver_sync to see whether the worker objected.
 */
int bh_vdriver_activate(struct bh_vdriver *d, uint64_t driver_features);
/* Sends DEVICE_ACTIVATE with exactly these queue entries; entry i gets
 * fresh eventfds that the driver's queue i uses from then on. */
int bh_vdriver_activate_raw(struct bh_vdriver *d, uint64_t driver_features,
			    const struct bh_vdriver_vq_addr *qs,
			    unsigned int n);

/* ---- requests ------------------------------------------------------------ */

#define BH_VDRIVER_INDIRECT 1u /* one descriptor pointing at a table */

/*
 * Writes a chain of n buffers (direct, or indirect with BH_VDRIVER_INDIRECT)
 * and publishes its head in the avail ring with a release barrier. No kick.
 * -ENOSPC if the queue has too few free descriptors, -EINVAL for a bad
 * argument. *head (may be NULL) gets the chain's head.
 */
int bh_vdriver_add(struct bh_vdriver *d, unsigned int q,
		   const struct bh_vdriver_buf *bufs, unsigned int n,
		   unsigned int flags, uint16_t *head);
/* Signals the kick eventfd. */
int bh_vdriver_kick(struct bh_vdriver *d, unsigned int q);
/* Kicks only if the device asked for it (EVENT_IDX or NO_NOTIFY). Returns
 * 1 if it kicked, 0 if not. */
int bh_vdriver_kick_if_needed(struct bh_vdriver *d, unsigned int q);
/* add + kick. */
int bh_vdriver_submit(struct bh_vdriver *d, unsigned int q,
		      const struct bh_vdriver_buf *bufs, unsigned int n,
		      unsigned int flags, uint16_t *head);

/* Takes the next used entry without waiting: 1, 0 if none, -EPROTO if the
 * device returned an id that is not an outstanding head (unless raw heads
 * were published since the last reset: then 1). */
int bh_vdriver_get_used(struct bh_vdriver *d, unsigned int q,
			struct bh_vdriver_used *out);
/*
 * Waits for the next used entry (call eventfd and control socket polled).
 * 1 with the entry, -ETIMEDOUT, -EIO if the worker sent NEEDS_RESET (see
 * bh_vdriver_needs_reset), -EPIPE if the worker is gone.
 */
int bh_vdriver_wait_used(struct bh_vdriver *d, unsigned int q, int timeout_ms,
			 struct bh_vdriver_used *out);
/* Drains the call eventfd; returns the number of calls seen since the last
 * bh_vdriver_calls (including those drained while waiting). */
uint64_t bh_vdriver_calls(struct bh_vdriver *d, unsigned int q);
/* Descriptors still free in queue q. */
unsigned int bh_vdriver_num_free(const struct bh_vdriver *d, unsigned int q);

/* ---- corrupting rings on purpose ----------------------------------------- */

int bh_vdriver_write_desc(struct bh_vdriver *d, unsigned int q, uint16_t idx,
			  uint64_t addr, uint32_t len, uint16_t flags,
			  uint16_t next);
/* A descriptor anywhere in guest RAM (an indirect table of one's own). */
int bh_vdriver_write_desc_at(struct bh_vdriver *d, uint64_t gpa, uint64_t addr,
			     uint32_t len, uint16_t flags, uint16_t next);
/* Puts head in the next avail slot and advances avail->idx (no checks). */
int bh_vdriver_publish_raw(struct bh_vdriver *d, unsigned int q, uint16_t head);
/* Sets avail->idx to any value. */
int bh_vdriver_set_avail_idx(struct bh_vdriver *d, unsigned int q,
			     uint16_t idx);

/* ---- control messages ---------------------------------------------------- */

/* Sends DEVICE_CONFIG_WRITE {offset, data}. */
int bh_vdriver_config_write(struct bh_vdriver *d, uint32_t offset,
			    const void *data, size_t len);
/* Sends DEVICE_RESET, waits for DEVICE_RESET_DONE, and clears the driver's
 * queues (rings zeroed, eventfds closed, NEEDS_RESET forgotten). */
int bh_vdriver_reset(struct bh_vdriver *d, int timeout_ms);
/* Sends DEVICE_PAUSE and waits for DEVICE_PAUSED: the worker has finished
 * what was in flight (its used entries are in the rings) and is quiet. */
int bh_vdriver_pause(struct bh_vdriver *d, int timeout_ms);
/* The same in two halves. */
int bh_vdriver_pause_send(struct bh_vdriver *d);
int bh_vdriver_pause_wait(struct bh_vdriver *d, int timeout_ms);
/* Sends DEVICE_RESUME (no answer). */
int bh_vdriver_resume(struct bh_vdriver *d);
/* Sends COUNTERS_REQUEST and waits for COUNTERS. Since the worker answers in
 * order, anything it sent about earlier messages (NEEDS_RESET, ERROR) has
 * been seen when this returns. */
int bh_vdriver_sync(struct bh_vdriver *d, int timeout_ms);
/* A counter from the last COUNTERS: 0 or -ENOENT. */
int bh_vdriver_counter(const struct bh_vdriver *d, const char *name,
		       uint64_t *value);
/* Reads and handles control frames for up to timeout_ms (0: only what is
 * there). 0, or -EPIPE if the worker is gone. */
int bh_vdriver_poll(struct bh_vdriver *d, int timeout_ms);

/* Sends a device-specific control frame (MSG_VSOCK_HOST_CONN, ...) with
 * nfds fds (borrowed: the caller still closes them). */
int bh_vdriver_send_ctl(struct bh_vdriver *d, uint16_t type,
			const ProtobufCMessage *msg, const int *fds,
			unsigned int nfds);
/*
 * Takes the oldest device-specific frame the worker sent (a type the
 * library's protocol does not have, e.g. MSG_VSOCK_CONNECT), waiting up to
 * timeout_ms. Frames of that kind that arrive while other calls wait are
 * kept for it (up to BH_VDRIVER_MAX_CTL). 1 with *out (the caller
 * bh_frame_release()s it), -ETIMEDOUT, or -EPIPE.
 */
int bh_vdriver_recv_ctl(struct bh_vdriver *d, struct bh_frame *out,
			int timeout_ms);

/* The reason of the last NEEDS_RESET since start or reset, or NULL. */
const char *bh_vdriver_needs_reset(const struct bh_vdriver *d);
/* Number of MSG_ERROR frames seen, and the last one's message (or NULL). */
unsigned int bh_vdriver_errors(const struct bh_vdriver *d,
			       const char **last_message);

/* ---- dirty log ----------------------------------------------------------- */

/* The whole guest-RAM memfd as mapped here, indexed by memfd offset (low RAM
 * from 0, high RAM after it); *size gets its length. */
uint8_t *bh_vdriver_ram(struct bh_vdriver *d, uint64_t *size);
/* Bytes of dirty bitmap the guest RAM needs (internal.proto, DirtyLog). */
uint64_t bh_vdriver_dirty_log_bytes(const struct bh_vdriver *d);
/*
 * Plays the controller of a migration. enable: creates a log memfd of
 * bh_vdriver_dirty_log_bytes, sends DEVICE_DIRTY_LOG with it and waits for
 * DEVICE_DIRTY_LOG_DONE; *bitmap (may be NULL) gets the bitmap as mapped
 * here. !enable: sends DEVICE_DIRTY_LOG off and waits for DONE; the bitmap
 * stays mapped here (so that a test can see nothing more is set) until the
 * next enable or the end. -code of the worker's MSG_ERROR if it refused
 * (the earlier log then stands, here too), -ETIMEDOUT, -EPIPE.
 */
int bh_vdriver_dirty_log(struct bh_vdriver *d, bool enable, int timeout_ms,
			 uint8_t **bitmap);
/* Enables with a log memfd of exactly size bytes (a wrong size on
 * purpose). */
int bh_vdriver_dirty_log_sized(struct bh_vdriver *d, uint64_t size,
			       int timeout_ms, uint8_t **bitmap);
/* Clears the whole bitmap, as the controller does between passes. */
void bh_vdriver_dirty_clear(struct bh_vdriver *d);
/* Whether the bit of memfd page page (memfd offset / 4096) is set; false
 * without a bitmap. */
bool bh_vdriver_dirty_page(const struct bh_vdriver *d, uint64_t page);

#endif
