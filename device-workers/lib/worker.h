/* The device-worker framework: one process per virtual device. It owns the
 * control socket (fd 3), guest RAM, the queues and the sandbox; a device
 * type supplies a table of callbacks. */
#ifndef BH_WORKER_H
#define BH_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bulkhead/frame.h>
#include <bulkhead/limits.h>

#include "gmem.h"
#include "virtqueue.h"
#include "proto/internal.pb-c.h"

/* Six per queue pair for virtio-net's seven pairs, and the library's own. */
#define BH_WORKER_MAX_COUNTERS 48

struct bh_worker;

struct bh_device_ops {
	const char *name;     /* "blk": log prefix dev-blk/<id> */
	uint32_t device_type; /* virtio device id */
	/* WorkerSetup.backend must be this case. */
	Bh__WorkerSetup__BackendCase backend;
	/*
	 * Before the sandbox: take the backend fds from setup_fds (index 0 is
	 * the memfd, already consumed; take others with bh_frame_take_fd) and
	 * fill w->device_features, w->num_queues, w->max_queue_size, w->config
	 * and w->config_len. 0 or -errno (the worker exits).
	 */
	int (*setup)(struct bh_worker *w, const Bh__WorkerSetup *s,
		     struct bh_frame *setup_frame);
	/* The driver finished negotiating: queues are in w->vq[0..nq). */
	int (*activate)(struct bh_worker *w);
	/* Queue q was kicked (kick already drained). Process what is there. */
	void (*queue_notify)(struct bh_worker *w, unsigned int q);
	/* Stop using the queues; called before they are torn down. */
	void (*reset)(struct bh_worker *w);
	/* The VM pauses: finish every request in flight (complete it to the
	 * driver) before returning; from then on the library delivers no
	 * kick, polls none of the device's fds and calls no timer until the
	 * VM resumes, and the device must write no guest RAM from its
	 * control-message hook either (w->paused tells). May be NULL:
	 * nothing outlives a call. */
	void (*quiesce)(struct bh_worker *w);
	/* Driver wrote config space; may be NULL (writes ignored). */
	void (*config_write)(struct bh_worker *w, uint32_t off,
			     const uint8_t *data, size_t len);
	/* Extra fds to poll (e.g. console input): fill up to max, return n. */
	unsigned int (*poll_fds)(struct bh_worker *w, int *fds,
				 unsigned int max);
	/* Extra fds to poll for writing (output waiting to go out); may be
	 * NULL. fd_ready is called for these too. */
	unsigned int (*poll_out_fds)(struct bh_worker *w, int *fds,
				     unsigned int max);
	void (*fd_ready)(struct bh_worker *w, int fd);
	/* The device has failed for good (DeviceActivate.failed): write the
	 * device's error status into req's writable buffers and return the
	 * bytes written. The backend must not be touched. NULL: 0 bytes. */
	uint32_t (*fail_request)(struct bh_worker *w, unsigned int q,
				 struct bh_vq_req *req);
	/* The device has failed: true leaves queue q's chains with the
	 * driver instead (a receive queue, which nothing will fill). May be
	 * NULL: every queue's chains are failed. */
	bool (*fail_keep)(struct bh_worker *w, unsigned int q);
	/* Called before each wait of the loop once set up: handles what has
	 * expired and returns the milliseconds until it wants to be called
	 * again, or -1 for never. May be NULL. */
	int (*timer)(struct bh_worker *w);
	/* A control frame of a type the library does not know, received in
	 * the serving state (after WORKER_READY). The hook checks the body
	 * itself (unpack with its descriptor, check f->nfds) and takes the
	 * fds it keeps with bh_frame_take_fd; the library releases the rest.
	 * 0, or -errno: the controller sent something wrong and the worker
	 * ends. NULL: such a frame ends the worker. */
	int (*ctl_message)(struct bh_worker *w, struct bh_frame *f);
	/* Extra seccomp syscalls the device needs, NULL-terminated, or NULL. */
	const char *const *extra_syscalls;
	/* ioctl requests the device may make, 0-terminated, or NULL: ioctl is
	 * then allowed only with these (its second argument), and
	 * ioctl_names (NULL-terminated, same order) names them for
	 * --print-policy. */
	const unsigned long *ioctls;
	const char *const *ioctl_names;
};

struct bh_worker {
	const struct bh_device_ops *ops;
	int ctl;
	char id[64];
	struct bh_gmem mem;

	uint64_t device_features;
	uint64_t driver_features;
	unsigned int num_queues;
	unsigned int max_queue_size;
	uint8_t config[BH_VIRTIO_CONFIG_MAX];
	size_t config_len;

	bool active;
	bool needs_reset;
	bool failed; /* completing every request with an error */
	/* This activation took up the rings of a worker that died: the
	 * device's own state (connections, ...) was lost with it. */
	bool resumed;
	bool strict_sandbox; /* a refused sandbox step is fatal */
	/* The VM is paused (MSG_DEVICE_PAUSE): the device is quiet until
	 * MSG_DEVICE_RESUME, when the library looks at every queue again. */
	bool paused;
	unsigned int nq; /* queues set up by activate */
	struct bh_vq vq[BH_MAX_QUEUES];
	int kick_fd[BH_MAX_QUEUES];
	int call_fd[BH_MAX_QUEUES];
	struct bh_vq_req *fail_req; /* scratch for failing requests */
	void *inflight; /* the in-flight memfd, mapped; NULL without */
	size_t inflight_size;
	/* Inside it, BH_INFLIGHT_DEV_STATE bytes of the device's own state
	 * that outlive this process (zeroed unless resumed: a dead
	 * worker's, to be checked as guest input); NULL without. */
	uint8_t *dev_state;

	struct {
		const char *name; /* static string */
		uint64_t value;
	} counters[BH_WORKER_MAX_COUNTERS];
	unsigned int ncounters;

	/* Descriptors the device may hold at once beyond its set-up fds
	 * (host connections, ...): setup sets it, the sandbox's
	 * RLIMIT_NOFILE makes room for them. */
	unsigned int more_fds;

	void *dev; /* the device type's state */
};

/* Runs a worker: handshake, setup, sandbox, serve. Returns the exit status. */
int bh_worker_main(int argc, char **argv, const struct bh_device_ops *ops);

/*
 * Reports a device failure once (guest-triggered: rate-limited log) and
 * tells the controller, which makes the runner set DEVICE_NEEDS_RESET. The
 * worker keeps running and ignores the queues until reset.
 */
void bh_worker_needs_reset(struct bh_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends the whole config space (w->config) to the controller after the
 * device changed it; notify raises a config-change interrupt. 0 or -errno. */
int bh_worker_config_update(struct bh_worker *w, bool notify);

/* Adds to a named counter reported by MSG_COUNTERS ("read_bytes", ...);
 * name must be a static string. */
void bh_worker_count(struct bh_worker *w, const char *name, uint64_t n);

/* Sets a named counter to value (a level such as open connections rather
 * than a total); name must be a static string. */
void bh_worker_set_counter(struct bh_worker *w, const char *name,
			   uint64_t value);

/* Sends a device-specific message (no fds) to the controller. 0 or -errno
 * (-EPIPE: the controller is gone, the loop ends on its own). */
int bh_worker_send(struct bh_worker *w, uint16_t type,
		   const ProtobufCMessage *m);

#endif
