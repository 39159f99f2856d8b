/* lib/worker: the life of a device worker: handshake, set-up from the
 * controller, the sandbox, then a poll loop over the control socket and the
 * queues' kick eventfds. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/hello.h>
#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "worker.h"

/* Extra fds a device may have polled (console input, a TAP fd per queue
 * pair, host connections, ...), both directions together. */
#define WORKER_MAX_POLL_FDS 2080

enum worker_state {
	WS_SETUP,  /* waiting for WORKER_SETUP */
	WS_READY,  /* sandboxed, device not activated */
	WS_ACTIVE, /* driver activated the device (queues may be broken) */
};

/* The framework's view: the device's struct bh_worker plus what only the
 * loop needs. */
struct worker_ctx {
	struct bh_worker w;
	enum worker_state state;
	bool quit;
	const char *selftest_open;
	/* The loop's poll set: too big for the stack with many device fds. */
	struct pollfd pfd[1 + BH_MAX_QUEUES + WORKER_MAX_POLL_FDS];
	int extra[WORKER_MAX_POLL_FDS];
};

/* What every device needs inside the sandbox: the control socket, its
 * eventfds, memory for protobuf messages, logging and time. */
static const char *const worker_syscalls[] = {
	/* eventfds, backends (pread/pwrite for disks), logging */
	"read",
	"write",
	"readv",
	"writev",
	"pread64",
	"pwrite64",
	"preadv",
	"pwritev",
	/* control socket */
	"recvmsg",
	"sendmsg",
	"poll",
	"ppoll",
	"close",
	/* memory (mmap/mprotect below, without exec) */
	"munmap",
	"brk",
	"madvise",
	"futex",
	/* process */
	"exit",
	"exit_group",
	"rt_sigreturn",
	"rt_sigprocmask",
	"getpid",
	"gettid",
	"restart_syscall",
	/* time: rate limits, back-off */
	"clock_gettime",
	"clock_nanosleep",
	"nanosleep",
	NULL,
};

static int worker_send(struct bh_worker *w, uint16_t type,
		       const ProtobufCMessage *msg)
{
	int r = bh_frame_send(w->ctl, type, msg, NULL, 0);

	if (r < 0 && r != -EPIPE)
		bh_err("sending message type %u: %s", type, strerror(-r));
	return r;
}

int bh_worker_send(struct bh_worker *w, uint16_t type,
		   const ProtobufCMessage *m)
{
	return worker_send(w, type, m);
}

/* ---- counters and reports ------------------------------------------------ */

/* The counter called name, made on first use; NULL when the table is full. */
static uint64_t *counter_slot(struct bh_worker *w, const char *name)
{
	unsigned int i;

	for (i = 0; i < w->ncounters; i++) {
		if (w->counters[i].name == name ||
		    strcmp(w->counters[i].name, name) == 0)
			return &w->counters[i].value;
	}
	if (w->ncounters == BH_WORKER_MAX_COUNTERS) {
		bh_log_ratelimited(BH_LOG_ERR, "counter table full: %s dropped",
				   name);
		return NULL;
	}
	w->counters[w->ncounters].name = name;
	w->counters[w->ncounters].value = 0;
	return &w->counters[w->ncounters++].value;
}

void bh_worker_count(struct bh_worker *w, const char *name, uint64_t n)
{
	uint64_t *v = counter_slot(w, name);

	if (v)
		*v += n;
}

void bh_worker_set_counter(struct bh_worker *w, const char *name,
			   uint64_t value)
{
	uint64_t *v = counter_slot(w, name);

	if (v)
		*v = value;
}

void bh_worker_needs_reset(struct bh_worker *w, const char *fmt, ...)
{
	Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;
	char reason[160];
	va_list ap;

	/* One report per reset cycle: the guest can trigger this at will. */
	if (w->needs_reset)
		return;
	w->needs_reset = true;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	bh_log_ratelimited(BH_LOG_WARN, "device needs reset: %s", reason);
	ref.reason = reason;
	worker_send(w, BH__MSG_TYPE__MSG_DEVICE_NEEDS_RESET, &ref.base);
}

int bh_worker_config_update(struct bh_worker *w, bool notify)
{
	Bh__VirtioConfigUpdate up = BH__VIRTIO_CONFIG_UPDATE__INIT;

	up.config.data = w->config;
	up.config.len = w->config_len;
	up.notify = notify;
	return worker_send(w, BH__MSG_TYPE__MSG_DEVICE_CONFIG_UPDATE, &up.base);
}

/* A queue the device found broken (through bh_vq_pop or bh_vq_notify)
 * puts the whole device in NEEDS_RESET. */
static void check_broken(struct bh_worker *w)
{
	for (unsigned int q = 0; q < w->nq; q++) {
		if (w->vq[q].ready && w->vq[q].broken) {
			bh_worker_needs_reset(w, "queue %u: %s", q,
					      w->vq[q].why);
			return;
		}
	}
}

/* ---- queues -------------------------------------------------------------- */

static void queues_teardown(struct bh_worker *w)
{
	for (unsigned int q = 0; q < BH_MAX_QUEUES; q++) {
		bh_closep(&w->kick_fd[q]);
		bh_closep(&w->call_fd[q]);
		bh_vq_release(&w->vq[q]);
		memset(&w->vq[q], 0, sizeof(w->vq[q]));
		w->vq[q].kick_fd = -1;
		w->vq[q].call_fd = -1;
	}
	if (w->inflight)
		munmap(w->inflight, w->inflight_size);
	w->inflight = NULL;
	w->dev_state = NULL;
	w->inflight_size = 0;
	w->nq = 0;
	w->active = false;
	w->needs_reset = false;
	w->failed = false;
	w->driver_features = 0;
}

static bool is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/*
 * Checks what the driver asked for; every value here was written by the
 * guest (through the runner's transport). Returns false with the reason in
 * why.
 */
static bool activation_valid(const struct bh_worker *w,
			     const Bh__DeviceActivate *a, char *why, size_t len)
{
	uint32_t seen = 0;

	if (a->driver_features & ~w->device_features) {
		snprintf(why, len, "driver features 0x%llx not offered",
			 (unsigned long long)(a->driver_features &
					      ~w->device_features));
		return false;
	}
	if (a->n_queues > w->num_queues) {
		snprintf(why, len, "%zu queues activated, the device has %u",
			 a->n_queues, w->num_queues);
		return false;
	}
	for (size_t i = 0; i < a->n_queues; i++) {
		const Bh__VirtQueue *vq = a->queues[i];

		if (vq->index >= w->num_queues || (seen & (1u << vq->index))) {
			snprintf(why, len, "queue index %u invalid or repeated",
				 vq->index);
			return false;
		}
		seen |= 1u << vq->index;
		if (vq->enabled &&
		    (!is_pow2(vq->size) || vq->size > w->max_queue_size)) {
			snprintf(why, len, "queue %u: size %u", vq->index,
				 vq->size);
			return false;
		}
	}
	return true;
}

/* Maps the in-flight memfd (taken): one record block per queue the device
 * has, each sized for the largest queue. */
static int inflight_map(struct bh_worker *w, uint64_t size, int fd)
{
	uint64_t need =
	    (uint64_t)w->num_queues * BH_INFLIGHT_BYTES(w->max_queue_size);
	void *p;

	if (fd < 0 || size < need || size > SIZE_MAX) {
		bh_err("activate: in-flight memfd of %llu bytes, %llu needed",
		       (unsigned long long)size, (unsigned long long)need);
		bh_closep(&fd);
		return -EPROTO;
	}
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	bh_closep(&fd);
	if (p == MAP_FAILED) {
		bh_err("activate: cannot map the in-flight memfd: %s",
		       strerror(errno));
		return -errno;
	}
	w->inflight = p;
	w->inflight_size = (size_t)size;
	w->dev_state = NULL;
	if (size >= need + BH_INFLIGHT_DEV_STATE)
		w->dev_state = (uint8_t *)p + need;
	return 0;
}

static void signal_call(struct bh_vq *vq)
{
	uint64_t one = 1;

	if (vq->call_fd >= 0 && write(vq->call_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		bh_vq_set_broken(vq, "call eventfd: %s", strerror(errno));
}

/* A failed device completes everything with the device's error and never
 * reaches its backend, so that no driver waits forever. */
static void fail_queue(struct bh_worker *w, unsigned int q)
{
	struct bh_vq *vq = &w->vq[q];
	unsigned int n = 0;

	if (w->ops->fail_keep && w->ops->fail_keep(w, q))
		return;
	if (!w->fail_req) {
		w->fail_req = malloc(sizeof(*w->fail_req));
		if (!w->fail_req)
			abort();
	}
	while (bh_vq_pop(vq, w->fail_req) == 1) {
		uint32_t written = w->ops->fail_request
				       ? w->ops->fail_request(w, q, w->fail_req)
				       : 0;

		bh_vq_push(vq, w->fail_req->head, written);
		n++;
	}
	if (n) {
		bh_worker_count(w, "failed_requests", n);
		bh_vq_notify(vq);
	}
	check_broken(w);
}

/* ---- message handlers ---------------------------------------------------- */

static int enter_sandbox(struct bh_worker *w);

static int h_setup(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__WorkerSetup *s = (const Bh__WorkerSetup *)m;
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;
	Bh__WorkerReady ready = BH__WORKER_READY__INIT;
	Bh__VirtioDevice dev = BH__VIRTIO_DEVICE__INIT;
	uint64_t regions[BH_GMEM_MAX_REGIONS][3];
	int memfd = -1, r;

	if (f->nfds < 1) {
		bh_err("setup: no guest-RAM memfd");
		return -EPROTO;
	}
	if (s->backend_case != w->ops->backend) {
		bh_err("setup: backend %d is not this device's (%d)",
		       (int)s->backend_case, (int)w->ops->backend);
		return -EPROTO;
	}
	if (s->n_regions < 1 || s->n_regions > BH_GMEM_MAX_REGIONS) {
		bh_err("setup: %zu memory regions", s->n_regions);
		return -EPROTO;
	}
	for (size_t i = 0; i < s->n_regions; i++) {
		regions[i][0] = s->regions[i]->guest_phys;
		regions[i][1] = s->regions[i]->size;
		regions[i][2] = s->regions[i]->memfd_offset;
	}
	memfd = bh_frame_take_fd(f, 0);
	r = bh_gmem_map(&w->mem, memfd, s->memfd_size,
			(const uint64_t(*)[3])regions,
			(unsigned int)s->n_regions);
	/* The mapping keeps guest RAM; the fd itself is not needed again. */
	bh_closep(&memfd);
	if (r < 0) {
		bh_err("setup: cannot map guest RAM: %s", strerror(-r));
		return r;
	}

	r = w->ops->setup(w, s, f);
	if (r < 0) {
		bh_err("setup: %s", strerror(-r));
		return r;
	}
	/* The device's own answers; a mistake here is a bug, not input. */
	if (w->num_queues < 1 || w->num_queues > BH_MAX_QUEUES ||
	    !is_pow2(w->max_queue_size) ||
	    w->max_queue_size > BH_MAX_QUEUE_SIZE ||
	    w->config_len > BH_VIRTIO_CONFIG_MAX) {
		bh_err("setup: device reports %u queues of %u, config %zu",
		       w->num_queues, w->max_queue_size, w->config_len);
		return -EINVAL;
	}
	w->device_features |= 1ULL << BH_VIRTIO_F_VERSION_1 |
			      1ULL << BH_VIRTIO_F_INDIRECT_DESC |
			      1ULL << BH_VIRTIO_F_EVENT_IDX;

	w->strict_sandbox = s->strict_sandbox;
	r = enter_sandbox(w);
	if (r < 0)
		return r;
	if (c->selftest_open) {
		/* Only for tests: the sandbox must kill us right here. */
		int fd = open(c->selftest_open, O_RDONLY | O_CLOEXEC);

		bh_err("self-test: open(%s) returned %d: the sandbox is "
		       "not in force",
		       c->selftest_open, fd);
		bh_closep(&fd);
		return -EPERM;
	}

	dev.device_type = w->ops->device_type;
	dev.device_features = w->device_features;
	dev.num_queues = w->num_queues;
	dev.max_queue_size = w->max_queue_size;
	dev.config.data = w->config;
	dev.config.len = w->config_len;
	dev.id = w->id;
	ready.device = &dev;
	r = worker_send(w, BH__MSG_TYPE__MSG_WORKER_READY, &ready.base);
	if (r == 0)
		c->state = WS_READY;
	return r;
}

/* Processes what the driver has put in every live queue, as if each had
 * been kicked. */
static void look_at_queues(struct bh_worker *w)
{
	for (unsigned int q = 0; q < w->nq && !w->needs_reset; q++) {
		if (!w->vq[q].ready || w->vq[q].broken)
			continue;
		if (w->failed)
			fail_queue(w, q);
		else
			w->ops->queue_notify(w, q);
		check_broken(w);
	}
}

static int h_activate(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__DeviceActivate *a = (const Bh__DeviceActivate *)m;
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;
	char why[128];
	int r;

	/* The fd count and the in-flight memfd are the controller's doing: a
	 * mismatch is not a guest mistake. */
	if (a->n_queues > (BH_FRAME_MAX_FDS - 1) / 2 ||
	    f->nfds != 2 * a->n_queues + (a->inflight_size ? 1 : 0)) {
		bh_err("activate: %u fds for %zu queues", f->nfds, a->n_queues);
		return -EPROTO;
	}
	if (a->inflight_size) {
		r = inflight_map(
		    w, a->inflight_size,
		    bh_frame_take_fd(f, (unsigned int)(2 * a->n_queues)));
		if (r < 0)
			return r;
	} else if (a->resume) {
		bh_err("activate: resume without in-flight records");
		return -EPROTO;
	}
	c->state = WS_ACTIVE;
	w->active = true;
	w->failed = a->failed;
	w->resumed = a->resume;
	if (w->dev_state && !a->resume)
		memset(w->dev_state, 0, BH_INFLIGHT_DEV_STATE);
	w->nq = w->num_queues;
	if (!activation_valid(w, a, why, sizeof(why))) {
		bh_worker_needs_reset(w, "activation refused: %s", why);
		return 0;
	}
	w->driver_features = a->driver_features;
	for (size_t i = 0; i < a->n_queues; i++) {
		const Bh__VirtQueue *q = a->queues[i];
		unsigned int qi = q->index;

		/* A queue the driver left disabled is not served; its fds go
		 * with the frame. */
		if (!q->enabled)
			continue;
		w->kick_fd[qi] = bh_frame_take_fd(f, (unsigned int)(2 * i));
		w->call_fd[qi] = bh_frame_take_fd(f, (unsigned int)(2 * i + 1));
		r = bh_vq_init(&w->vq[qi], &w->mem, (uint16_t)q->size, q->desc,
			       q->avail, q->used, a->driver_features,
			       w->kick_fd[qi], w->call_fd[qi]);
		if (r == 0 && w->inflight)
			r = bh_vq_inflight_attach(
			    &w->vq[qi],
			    (uint8_t *)w->inflight +
				qi * BH_INFLIGHT_BYTES(w->max_queue_size),
			    a->resume);
		if (r < 0) {
			bh_worker_needs_reset(w, "queue %u: %s", qi,
					      w->vq[qi].why);
			return 0;
		}
		if (a->resume)
			bh_info("queue %u: taking up %u requests in flight", qi,
				w->vq[qi].nreplay);
	}
	bh_debug("activated: features 0x%llx, %zu queues%s%s",
		 (unsigned long long)w->driver_features, a->n_queues,
		 a->resume ? ", resumed" : "",
		 w->failed ? ", failing every request" : "");
	if (a->resume) {
		/* The dead worker may have returned buffers without the
		 * interrupt: one spurious interrupt is harmless, a lost one
		 * is a hang. */
		for (unsigned int q = 0; q < w->nq; q++)
			if (w->vq[q].ready)
				signal_call(&w->vq[q]);
	}
	if (w->failed) {
		for (unsigned int q = 0; q < w->nq; q++)
			if (w->vq[q].ready)
				fail_queue(w, q);
		return 0;
	}
	if (w->ops->activate) {
		r = w->ops->activate(w);
		if (r < 0) {
			bh_worker_needs_reset(w, "activation failed: %s",
					      strerror(-r));
			return 0;
		}
	}
	/* Buffers the driver added before the device was live were kicked
	 * into the eventfd already, but look once anyway: a kick is only a
	 * hint. A paused device looks when it resumes. */
	if (!w->paused)
		look_at_queues(w);
	return 0;
}

static int h_reset(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	Bh__VirtioDeviceRef done = BH__VIRTIO_DEVICE_REF__INIT;
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;

	if (c->state == WS_ACTIVE && !w->failed && w->ops->reset)
		w->ops->reset(w);
	queues_teardown(w);
	c->state = WS_READY;
	return worker_send(w, BH__MSG_TYPE__MSG_DEVICE_RESET_DONE, &done.base);
}

static int h_config_write(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	const Bh__VirtioConfigWrite *cw = (const Bh__VirtioConfigWrite *)m;
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;

	/* Offset and length come from the guest's MMIO write. */
	if (cw->offset > w->config_len ||
	    cw->data.len > w->config_len - cw->offset) {
		bh_log_ratelimited(BH_LOG_WARN,
				   "config write of %zu bytes at %u outside "
				   "the %zu-byte config space: ignored",
				   cw->data.len, cw->offset, w->config_len);
		return 0;
	}
	if (w->ops->config_write && cw->data.len > 0)
		w->ops->config_write(w, cw->offset, cw->data.data,
				     cw->data.len);
	return 0;
}

static int h_counters(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;
	Bh__Counters msg = BH__COUNTERS__INIT;
	Bh__Counter cs[BH_WORKER_MAX_COUNTERS];
	Bh__Counter *ptrs[BH_WORKER_MAX_COUNTERS];

	for (unsigned int i = 0; i < w->ncounters; i++) {
		bh__counter__init(&cs[i]);
		cs[i].name = (char *)w->counters[i].name;
		cs[i].value = w->counters[i].value;
		ptrs[i] = &cs[i];
	}
	msg.n_counters = w->ncounters;
	msg.counters = ptrs;
	return worker_send(w, BH__MSG_TYPE__MSG_COUNTERS, &msg.base);
}

/*
 * The VM pauses: what is in flight completes now (the device's quiesce),
 * then nothing is taken or written until resume. A device not activated,
 * or failed, or waiting for its reset, has nothing in flight. Confirmed
 * every time, so that the controller can count on one answer per request.
 */
static int h_pause(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	Bh__Empty paused = BH__EMPTY__INIT;
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;

	if (!w->paused) {
		w->paused = true;
		if (c->state == WS_ACTIVE && !w->failed && !w->needs_reset &&
		    w->ops->quiesce)
			w->ops->quiesce(w);
		bh_debug("paused");
	}
	return worker_send(w, BH__MSG_TYPE__MSG_DEVICE_PAUSED, &paused.base);
}

/* Kicks that came meanwhile wait in their eventfds; look at every queue
 * anyway, as after an activation, for what the device held back. */
static int h_resume(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;

	if (!w->paused)
		return 0;
	w->paused = false;
	bh_debug("resumed");
	if (c->state == WS_ACTIVE)
		look_at_queues(w);
	return 0;
}

/*
 * Starts or stops logging the worker's writes into guest RAM for a
 * migration pass (gmem.h). A log memfd that cannot hold the bitmap is the
 * controller's mistake, but a migration's, not the device's: it is refused
 * with MSG_ERROR and the worker serves on as it did.
 */
static int h_dirty_log(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__DirtyLog *dl = (const Bh__DirtyLog *)m;
	struct worker_ctx *c = ctx;
	struct bh_worker *w = &c->w;
	Bh__Empty done = BH__EMPTY__INIT;
	Bh__Error e = BH__ERROR__INIT;
	char msg[160];
	int r;

	if (!dl->enable) {
		if (f->nfds != 0) {
			bh_err("dirty log: %u fds with enable=false", f->nfds);
			return -EPROTO;
		}
		if (w->mem.log)
			bh_debug("dirty log off");
		bh_gmem_log_stop(&w->mem);
		return worker_send(w, BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG_DONE,
				   &done.base);
	}
	if (f->nfds != 1) {
		bh_err("dirty log: %u fds, the log memfd expected", f->nfds);
		return -EPROTO;
	}
	/* The frame keeps the fd and closes it; the mapping outlives it. */
	r = bh_gmem_log_start(&w->mem, f->fds[0]);
	if (r < 0) {
		snprintf(msg, sizeof(msg),
			 "dirty log refused: %s (the bitmap needs %llu bytes "
			 "for %llu bytes of guest RAM)",
			 r == -EINVAL ? "log memfd too small" : strerror(-r),
			 (unsigned long long)bh_gmem_log_bytes(w->mem.size),
			 (unsigned long long)w->mem.size);
		bh_err("%s", msg);
		e.code = -r;
		e.message = msg;
		return worker_send(w, BH__MSG_TYPE__MSG_ERROR, &e.base);
	}
	bh_debug("dirty log on: %llu bytes of bitmap",
		 (unsigned long long)w->mem.log_size);
	return worker_send(w, BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG_DONE,
			   &done.base);
}

static int h_quit(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct worker_ctx *c = ctx;

	c->quit = true;
	return 0;
}

#define SERVING (BH_STATE(WS_READY) | BH_STATE(WS_ACTIVE))

static const struct bh_handler worker_handlers[] = {
	{ BH__MSG_TYPE__MSG_WORKER_SETUP, BH_STATE(WS_SETUP), BH_NFDS_VARIABLE,
	  &bh__worker_setup__descriptor, h_setup, "worker-setup" },
	{ BH__MSG_TYPE__MSG_DEVICE_ACTIVATE, BH_STATE(WS_READY),
	  BH_NFDS_VARIABLE, &bh__device_activate__descriptor, h_activate,
	  "device-activate" },
	{ BH__MSG_TYPE__MSG_DEVICE_RESET, SERVING, 0,
	  &bh__virtio_device_ref__descriptor, h_reset, "device-reset" },
	{ BH__MSG_TYPE__MSG_DEVICE_CONFIG_WRITE, SERVING, 0,
	  &bh__virtio_config_write__descriptor, h_config_write,
	  "device-config-write" },
	{ BH__MSG_TYPE__MSG_COUNTERS_REQUEST, SERVING, 0,
	  &bh__virtio_device_ref__descriptor, h_counters, "counters-request" },
	{ BH__MSG_TYPE__MSG_DEVICE_PAUSE, SERVING, 0, &bh__empty__descriptor,
	  h_pause, "device-pause" },
	{ BH__MSG_TYPE__MSG_DEVICE_RESUME, SERVING, 0, &bh__empty__descriptor,
	  h_resume, "device-resume" },
	{ BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG, SERVING, BH_NFDS_VARIABLE,
	  &bh__dirty_log__descriptor, h_dirty_log, "device-dirty-log" },
	{ BH__MSG_TYPE__MSG_QUIT, SERVING | BH_STATE(WS_SETUP), 0,
	  &bh__quit__descriptor, h_quit, "quit" },
};

/* ---- sandbox ------------------------------------------------------------- */

/* Empties the capability sets again: the new user namespace handed us a
 * full set in it, which nothing after the mounts needs. libcap-ng reads
 * /proc, which the empty root no longer has, so this uses the syscalls. */
static int drop_ns_caps(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[2];

	for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

/* Makes an empty, read-only tmpfs our root so that no host path can be
 * named, even by a syscall the filter would allow. */
static int empty_root(const char **step)
{
	static const char *const mount_points[] = { "/tmp", "/proc", "/" };
	const char *dir = NULL;

	*step = "making mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	*step = "mounting a tmpfs";
	for (size_t i = 0; i < BH_ARRAY_SIZE(mount_points) && !dir; i++) {
		if (mount("bulkhead", mount_points[i], "tmpfs",
			  MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
			  "size=4k,nr_inodes=1,mode=0555") == 0)
			dir = mount_points[i];
	}
	if (!dir)
		return -errno;
	*step = "entering the tmpfs";
	if (chdir(dir) < 0)
		return -errno;
	/* pivot_root(".", ".") stacks the old root on the new one, and the
	 * detach then drops it: no directory for the old root is needed.
	 * Where pivot_root is refused (an initramfs root), chroot still
	 * hides the host's paths. */
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		*step = "detaching the old root";
		if (umount2(".", MNT_DETACH) < 0)
			return -errno;
	} else {
		*step = "chroot";
		if (chroot(".") < 0)
			return -errno;
	}
	*step = "chdir";
	if (chdir("/") < 0)
		return -errno;
	return 0;
}

/*
 * Namespaces where the host allows them. A new user namespace needs no
 * privilege and gives us the right to make the others; container runtimes
 * often refuse it, and then the worker goes on with the seccomp filter alone.
 * The PID namespace is not made here (it would take a fork, and the
 * controller watches this pid): the controller cloned us into one, as its
 * PID 1, inside a user namespace of that clone's, in which this one nests.
 * Returns how many of the sandbox's namespace steps the host refused.
 */
static int enter_namespaces(void)
{
	static const struct {
		int flag;
		const char *name;
	} ns[] = {
		{ CLONE_NEWNS, "mount" },
		{ CLONE_NEWNET, "network" },
		{ CLONE_NEWIPC, "IPC" },
		{ CLONE_NEWUTS, "UTS" },
	};
	char refused[64] = "";
	bool have_mnt = false;
	const char *step;
	int r;

	int nrefused = 0;

	if (unshare(CLONE_NEWUSER) < 0) {
		bh_warn("sandbox: user namespace refused (%s): no mount, "
			"network, IPC or UTS namespace, no empty root",
			strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(ns); i++) {
		if (unshare(ns[i].flag) == 0) {
			have_mnt |= ns[i].flag == CLONE_NEWNS;
			continue;
		}
		snprintf(refused + strlen(refused),
			 sizeof(refused) - strlen(refused), "%s%s",
			 refused[0] ? ", " : "", ns[i].name);
		nrefused++;
	}
	if (refused[0])
		bh_warn("sandbox: namespaces refused: %s", refused);
	if (have_mnt) {
		r = empty_root(&step);
		if (r < 0) {
			bh_warn("sandbox: no empty root (%s: %s)", step,
				strerror(-r));
			nrefused++;
		}
	}
	r = drop_ns_caps();
	if (r < 0) {
		bh_warn("sandbox: capabilities in the user namespace remain: "
			"%s",
			strerror(-r));
		nrefused++;
	}
	bh_debug("sandbox: in new user, %s namespaces%s",
		 refused[0] ? "some" : "mount, network, IPC and UTS",
		 have_mnt ? " with an empty root" : "");
	return nrefused;
}

static unsigned int count_names(const char *const *names)
{
	unsigned int n = 0;

	while (names && names[n])
		n++;
	return n;
}

static unsigned int count_ioctls(const unsigned long *reqs)
{
	unsigned int n = 0;

	while (reqs && reqs[n])
		n++;
	return n;
}

/* ioctl only with the device's requests: the kernel reads the request as
 * an unsigned int, so the comparison looks at those 32 bits. */
static int seccomp_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs)
{
	for (unsigned int i = 0; reqs && reqs[i]; i++) {
		int r = bh_seccomp_allow_masked(ctx, SCMP_SYS(ioctl), 1,
						0xffffffffULL, reqs[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

static int seccomp_install(const struct bh_device_ops *ops)
{
	scmp_filter_ctx ctx;
	unsigned int n;
	int r;

	r = bh_seccomp_new(&ctx);
	if (r < 0) {
		bh_err("cannot build the seccomp filter: %s", strerror(-r));
		return r;
	}
	r = bh_seccomp_allow_list(ctx, worker_syscalls);
	if (r < 0)
		goto out;
	if (ops->extra_syscalls) {
		r = bh_seccomp_allow_list(ctx, ops->extra_syscalls);
		if (r < 0)
			goto out;
	}
	r = seccomp_ioctls(ctx, ops->ioctls);
	if (r < 0)
		goto out;
	/* Counted before loading: nothing may log after a failed load. */
	n = count_names(worker_syscalls) + count_names(ops->extra_syscalls) +
	    2 + (count_ioctls(ops->ioctls) ? 1 : 0);
	r = seccomp_load(ctx);
	if (r == 0)
		bh_debug("seccomp: %u system calls allowed (%u of them for "
			 "this device), mmap and mprotect without PROT_EXEC",
			 n, count_names(ops->extra_syscalls));
out:
	if (r < 0)
		bh_err("cannot install the seccomp filter: %s", strerror(-r));
	seccomp_release(ctx);
	return r;
}

/* Descriptors a worker may receive after the sandbox: an activation's
 * eventfds and in-flight memfd, with room for one frame more. */
#define WORKER_MORE_FDS (2 * BH_MAX_QUEUES + 1 + BH_FRAME_MAX_FDS)

/* In the order DESIGN.md gives: capabilities, no_new_privs, limits,
 * namespaces, Landlock, seccomp. */
static int enter_sandbox(struct bh_worker *w)
{
	int r, refused;

	r = bh_sandbox_drop_caps();
	if (r == 0)
		r = bh_sandbox_no_new_privs();
	if (r == 0)
		r = bh_sandbox_limits(WORKER_MORE_FDS + w->more_fds);
	if (r < 0) {
		bh_err("cannot enter the sandbox: %s", strerror(-r));
		return r;
	}
	refused = enter_namespaces();
	r = bh_sandbox_landlock();
	if (r == -EOPNOTSUPP)
		bh_warn("sandbox: no Landlock in this kernel: seccomp alone "
			"keeps files closed");
	else if (r < 0)
		bh_warn("sandbox: Landlock refused: %s", strerror(-r));
	else
		bh_debug("sandbox: Landlock ABI %d, no file access", r);
	if (r < 0)
		refused++;
	if (refused && w->strict_sandbox) {
		bh_err("sandbox: --sandbox strict and the host refused %d of "
		       "its steps (see above): not starting",
		       refused);
		return -EPERM;
	}
	return seccomp_install(w->ops);
}

/* ---- main loop ----------------------------------------------------------- */

static void on_kick(struct bh_worker *w, unsigned int q)
{
	int r = bh_vq_drain_kick(&w->vq[q]);

	if (r < 0 && r != -EAGAIN) {
		bh_worker_needs_reset(w, "queue %u: kick eventfd: %s", q,
				      strerror(-r));
		return;
	}
	if (w->needs_reset || w->vq[q].broken)
		return;
	if (w->failed) {
		fail_queue(w, q);
		return;
	}
	w->ops->queue_notify(w, q);
	check_broken(w);
}

/* True if the library has a handler for frames of this type. */
static bool lib_knows(uint16_t type)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(worker_handlers); i++)
		if (worker_handlers[i].type == type)
			return true;
	return false;
}

/*
 * A frame for the device type's own hook. Only once the device is set up
 * and serving; anything else is the controller's mistake and ends the
 * worker, as an unknown type always did. Releases the frame.
 */
static int device_message(struct worker_ctx *c, struct bh_frame *f)
{
	struct bh_worker *w = &c->w;
	int r;

	if (!w->ops->ctl_message)
		r = -ENOMSG;
	else if (!(SERVING & BH_STATE(c->state)))
		r = -EPERM;
	else
		r = w->ops->ctl_message(w, f);
	if (r < 0)
		bh_err("message type %u failed: %s", f->type, strerror(-r));
	bh_frame_release(f);
	return r;
}

static int serve(struct worker_ctx *c)
{
	struct bh_worker *w = &c->w;
	struct pollfd *pfd = c->pfd;
	unsigned int pq[BH_MAX_QUEUES];
	struct bh_frame_reader reader;
	struct bh_frame frame;
	int r = 0;

	bh_frame_reader_init(&reader, BH_FRAME_MAX_BODY);
	while (!c->quit) {
		unsigned int n = 1, nkick = 0, nextra = 0;
		int *extra = c->extra;
		const char *name = NULL;
		int timeout = -1;
		uint16_t type;

		/* A paused device waits for the controller alone. */
		bool live = c->state != WS_SETUP && !w->paused;

		if (live && !w->failed && w->ops->timer)
			timeout = w->ops->timer(w);
		pfd[0] = (struct pollfd){ .fd = w->ctl, .events = POLLIN };
		/* A device in NEEDS_RESET is left alone until the reset. */
		if (live && c->state == WS_ACTIVE && !w->needs_reset) {
			for (unsigned int q = 0; q < w->nq; q++) {
				if (!w->vq[q].ready || w->vq[q].broken)
					continue;
				pq[nkick++] = q;
				pfd[n++] = (struct pollfd){ .fd = w->kick_fd[q],
							    .events = POLLIN };
			}
		}
		if (live && !w->failed && w->ops->poll_fds) {
			nextra =
			    w->ops->poll_fds(w, extra, WORKER_MAX_POLL_FDS);
			if (nextra > WORKER_MAX_POLL_FDS)
				nextra = WORKER_MAX_POLL_FDS;
			for (unsigned int i = 0; i < nextra; i++)
				pfd[n++] = (struct pollfd){ .fd = extra[i],
							    .events = POLLIN };
		}
		if (live && !w->failed && w->ops->poll_out_fds) {
			unsigned int nout = w->ops->poll_out_fds(
			    w, extra + nextra, WORKER_MAX_POLL_FDS - nextra);

			if (nout > WORKER_MAX_POLL_FDS - nextra)
				nout = WORKER_MAX_POLL_FDS - nextra;
			for (unsigned int i = 0; i < nout; i++)
				pfd[n++] =
				    (struct pollfd){ .fd = extra[nextra + i],
						     .events = POLLOUT };
			nextra += nout;
		}

		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			bh_err("poll: %s", strerror(-r));
			break;
		}
		for (unsigned int i = 0; i < nkick; i++) {
			if (pfd[1 + i].revents && c->state == WS_ACTIVE)
				on_kick(w, pq[i]);
		}
		for (unsigned int i = 0; i < nextra; i++) {
			if (pfd[1 + nkick + i].revents && w->ops->fd_ready) {
				w->ops->fd_ready(w, extra[i]);
				check_broken(w);
			}
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = bh_frame_read(w->ctl, &reader, &frame);
		if (r == 0)
			continue;
		if (r < 0) {
			if (r != -EPIPE)
				bh_err("control socket: %s", strerror(-r));
			break;
		}
		type = frame.type;
		if (!lib_knows(type)) {
			r = device_message(c, &frame);
			if (r < 0)
				break;
			check_broken(w);
			continue;
		}
		r = bh_dispatch(worker_handlers, BH_ARRAY_SIZE(worker_handlers),
				c->state, &frame, c, &name);
		if (r < 0) {
			bh_err("message %s (type %u) failed: %s",
			       name ? name : "?", type, strerror(-r));
			break;
		}
	}
	bh_frame_reader_reset(&reader);
	return r;
}

/* ---- start-up ------------------------------------------------------------ */

static void usage(const struct bh_device_ops *ops)
{
	fprintf(stderr,
		"usage: bulkhead-dev-%s --id ID [--log-level LEVEL] "
		"[--selftest-open PATH]\n"
		"       bulkhead-dev-%s --print-policy\n"
		"Started by bulkhead with its control socket on fd 3; not "
		"meant to be run by hand.\n"
		"--print-policy prints the seccomp allow-list and exits.\n"
		"--selftest-open PATH is a self-test of the sandbox: once "
		"sandboxed, open PATH,\n"
		"which must get the worker killed by its seccomp filter.\n",
		ops->name, ops->name);
}

static int parse_args(struct worker_ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "selftest-open", required_argument, NULL, 's' },
		{ "print-policy", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct bh_device_ops *ops = c->w.ops;
	char prefix[128]; /* the logger keeps 63 bytes of it */
	enum bh_log_level level;
	int opt;

	snprintf(prefix, sizeof(prefix), "dev-%s", ops->name);
	bh_log_init(prefix);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			snprintf(c->w.id, sizeof(c->w.id), "%s", optarg);
			snprintf(prefix, sizeof(prefix), "dev-%s/%s", ops->name,
				 c->w.id);
			bh_log_init(prefix);
			break;
		case 'l':
			if (bh_log_parse_level(optarg, &level) < 0) {
				usage(ops);
				return -EINVAL;
			}
			bh_log_set_level(level);
			break;
		case 's':
			c->selftest_open = optarg;
			break;
		case 'p': {
			const char *const *lists[] = { worker_syscalls,
						       ops->extra_syscalls };

			char ioctl_line[256] = "";
			const char *extra[] = { ioctl_line, NULL };

			for (const char *const *p = ops->ioctl_names; p && *p;
			     p++)
				snprintf(
				    ioctl_line + strlen(ioctl_line),
				    sizeof(ioctl_line) - strlen(ioctl_line),
				    "%s%s",
				    ioctl_line[0] ? ", " : "ioctl, only ", *p);
			printf("bulkhead-dev-%s: seccomp allow-list\n",
			       ops->name);
			bh_policy_print(stdout, lists, 2,
					ioctl_line[0] ? extra : NULL);
			exit(0);
		}
		default:
			usage(ops);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage(ops);
		return -EINVAL;
	}
	return 0;
}

int bh_worker_main(int argc, char **argv, const struct bh_device_ops *ops)
{
	struct worker_ctx *c;
	struct stat st;
	int r, status;

	/* The context holds a request's worth of iovecs per queue: too big
	 * for the stack. */
	c = calloc(1, sizeof(*c));
	if (!c)
		return 1;
	c->w.ops = ops;
	c->w.ctl = BH_CHILD_FD_CONTROL;
	c->state = WS_SETUP;
	for (unsigned int q = 0; q < BH_MAX_QUEUES; q++) {
		c->w.kick_fd[q] = c->w.call_fd[q] = -1;
		c->w.vq[q].kick_fd = c->w.vq[q].call_fd = -1;
	}
	/* A backend pipe whose reader left must not kill us; writes see
	 * EPIPE. */
	signal(SIGPIPE, SIG_IGN);

	if (parse_args(c, argc, argv) < 0) {
		status = 2;
		goto out;
	}
	if (fstat(c->w.ctl, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		bh_err("fd %d is not the control socket", c->w.ctl);
		status = 2;
		goto out;
	}
	{
		char role[32];

		snprintf(role, sizeof(role), "dev-%s", ops->name);
		r = bh_hello_exchange(c->w.ctl, role, "controller");
	}
	if (r < 0) {
		bh_err("handshake with the controller failed: %s",
		       strerror(-r));
		status = 1;
		goto out;
	}
	r = serve(c);
	/* EOF from the controller or QUIT: a clean end. */
	status = (r < 0 && r != -EPIPE) ? 1 : 0;
	if (c->state == WS_ACTIVE && ops->reset)
		ops->reset(&c->w);
	queues_teardown(&c->w);
	bh_gmem_unmap(&c->w.mem);
out:
	free(c);
	return status;
}
