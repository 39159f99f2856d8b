/* The controller's side of the virtio devices: the device list (one per PCI
 * slot, each of a type from devtype.h), the relay of the rare control
 * messages between the vCPU runner's transport and the workers (which
 * supervise.c runs), counters, and the in-flight records. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/frame.h>
#include <bulkhead/inflight.h>
#include <bulkhead/limits.h>
#include <bulkhead/log.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "dev.h"
#include "devices.h"
#include "dirty.h"

/* ---- what a device type may ask of its device --------------------------- */

const char *bh_dev_id(const struct bh_dev *v)
{
	return v->id;
}

void *bh_dev_priv(const struct bh_dev *v)
{
	return v->priv;
}

int bh_dev_add_backend(struct bh_dev *v, int fd)
{
	if (v->nbackend == BH_DEV_MAX_BACKEND) {
		close(fd);
		return -EMFILE;
	}
	v->backend[v->nbackend++] = fd;
	return 0;
}

struct bh_config *bh_dev_own_config(struct bh_dev *v)
{
	return v->own_cfg;
}

const struct bh_config *bh_dev_vm_config(const struct bh_dev *v)
{
	return v->devs->cfg;
}

unsigned int bh_dev_other_regions(const struct bh_dev *v, uint64_t *gpa,
				  uint64_t *size, unsigned int max)
{
	const struct bh_devices *d = v->devs;
	unsigned int n = 0;

	for (unsigned int i = 0; i < BH_MAX_DEVICES && n < max; i++) {
		const struct bh_dev *o = d->slot[i];
		Bh__SharedRegion r = BH__SHARED_REGION__INIT;

		if (!o || o == v || !o->type->shm || o->type->shm(o, &r) < 0)
			continue;
		gpa[n] = r.guest_phys;
		size[n++] = r.size;
	}
	return n;
}

bool bh_dev_worker_ready(const struct bh_dev *v)
{
	return v->ws == WK_READY && v->sock >= 0;
}

int bh_dev_worker_send(struct bh_dev *v, uint16_t type,
		       const ProtobufCMessage *m, const int *fds,
		       unsigned int nfds)
{
	int r;

	if (!bh_dev_worker_ready(v))
		return -ENOTCONN;
	r = bh_frame_send_timeout(v->sock, type, m, fds, nfds,
				  WORKER_SEND_TIMEOUT);
	if (r < 0)
		bh_sup_send_failed(v, r);
	return r;
}

/* ---- the device list, opened before anything starts --------------------- */

static int find_binary(const struct bh_devices *d, struct bh_dev *v)
{
	char name[64];

#ifdef BULKHEAD_TESTING
	/* Test builds only, never the installed bulkhead: with
	 * BULKHEAD_TEST_WORKER=ID:PATH the device ID runs PATH as its worker.
	 */
	const char *t = getenv("BULKHEAD_TEST_WORKER");
	size_t n = strlen(v->id);

	if (t && strncmp(t, v->id, n) == 0 && t[n] == ':') {
		snprintf(v->binary, sizeof(v->binary), "%s", t + n + 1);
		return access(v->binary, X_OK) == 0 ? 0 : -ENOENT;
	}
#endif
	snprintf(name, sizeof(name), "bulkhead-dev-%s", v->type->name);
	return bh_find_child(name, d->child_dir, v->binary, sizeof(v->binary));
}

int bh_devices_check_binaries(const char *dir, char *err, size_t errlen)
{
	for (size_t i = 0; i < bh_dev_ntypes; i++) {
		char name[64], path[4096];

		snprintf(name, sizeof(name), "bulkhead-dev-%s",
			 bh_dev_types[i]->name);
		if (bh_find_child(name, dir, path, sizeof(path)) < 0)
			return bh_errf(err, errlen, "no %s in %s", name, dir);
	}
	return 0;
}

/* A device with nothing open, in the first free slot (*out), or -EINVAL
 * with the message in err when every slot is taken. */
static int dev_new(struct bh_devices *d, const struct bh_dev_type *t,
		   const char *id, struct bh_dev **out, char *err,
		   size_t errlen)
{
	struct bh_dev *v;
	unsigned int s = 0;

	while (s < BH_MAX_DEVICES && d->slot[s])
		s++;
	if (s == BH_MAX_DEVICES)
		return bh_errf(err, errlen, "more than %u devices",
			       BH_MAX_DEVICES);
	v = calloc(1, sizeof(*v));
	if (!v)
		abort();
	if (t->priv_size) {
		v->priv = calloc(1, t->priv_size);
		if (!v->priv)
			abort();
	}
	v->devs = d;
	v->type = t;
	v->index = s;
	snprintf(v->id, sizeof(v->id), "%s", id);
	for (unsigned int b = 0; b < BH_DEV_MAX_BACKEND; b++)
		v->backend[b] = -1;
	v->pid = -1;
	v->sock = -1;
	v->inflight = -1;
	for (unsigned int q = 0; q < BH_MAX_QUEUES; q++)
		v->kick[q] = v->call[q] = -1;
	d->slot[s] = v;
	d->n++;
	*out = v;
	return 0;
}

/* Closes what the device holds and empties its slot; its worker must be
 * stopped. */
static void dev_free(struct bh_dev *v)
{
	struct bh_devices *d = v->devs;

	if (v->type->close)
		v->type->close(v);
	for (unsigned int b = 0; b < v->nbackend; b++)
		bh_closep(&v->backend[b]);
	if (v->own_cfg) {
		bh_config_free(v->own_cfg);
		free(v->own_cfg);
	}
	free(v->restore_records);
	d->slot[v->index] = NULL;
	d->n--;
	free(v->priv);
	free(v);
}

int bh_devices_open(const struct bh_config *cfg, const char *child_dir,
		    struct bh_devices **out, char *err, size_t errlen)
{
	struct bh_devices *d;
	struct bh_dev *v = NULL;
	int r = 0;

	d = calloc(1, sizeof(*d));
	if (!d)
		abort();
	d->cfg = cfg;
	d->child_dir = child_dir;
	/* PCI slot order: the types' order (disks as given, then rng,
	 * console, the net devices as given and vsock). */
	for (size_t t = 0; t < bh_dev_ntypes && r == 0; t++) {
		const struct bh_dev_type *ty = bh_dev_types[t];
		unsigned int n = ty->count(cfg);

		for (unsigned int i = 0; i < n && r == 0; i++) {
			r = dev_new(d, ty, ty->id(cfg, i), &v, err, errlen);
			if (r == 0)
				r = ty->open(v, cfg, i, err, errlen);
		}
	}
	for (unsigned int i = 0; i < BH_MAX_DEVICES && r == 0; i++) {
		v = d->slot[i];
		if (!v)
			continue;
		r = find_binary(d, v);
		if (r < 0)
			snprintf(err, errlen,
				 "cannot find bulkhead-dev-%s in %s",
				 v->type->name, child_dir);
	}
	if (r < 0) {
		bh_devices_close(d);
		return r;
	}
	*out = d;
	return 0;
}

void bh_devices_set_kmsg(struct bh_devices *d, struct bh_kmsg *k)
{
	if (d)
		d->kmsg = k;
}

void bh_devices_set_launcher(struct bh_devices *d, struct bh_launcher *l)
{
	if (d)
		d->launcher = l;
}

unsigned int bh_devices_count(const struct bh_devices *d)
{
	return d ? d->n : 0;
}

int bh_devices_describe(const struct bh_devices *d, unsigned int i,
			const char **id, const char **type, unsigned int *slot)
{
	if (!d || i >= BH_MAX_DEVICES || !d->slot[i])
		return -ENOENT;
	*id = d->slot[i]->id;
	*type = d->slot[i]->type->api_type;
	*slot = i + 1;
	return 0;
}

void bh_devices_close(struct bh_devices *d)
{
	if (!d)
		return;
	bh_devices_stop(d);
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i])
			dev_free(d->slot[i]);
	bh_dirty_free(d);
	free(d);
}

/* The device the runner names, or NULL: a bad index is the runner's
 * fault. */
static struct bh_dev *dev_at(struct bh_devices *d, uint32_t index)
{
	return index < BH_MAX_DEVICES ? d->slot[index] : NULL;
}

/* ---- talking to the runner --------------------------------------------- */

static void runner_send(struct bh_devices *d, Bh__MsgType type,
			const ProtobufCMessage *m)
{
	/* A runner that went away is noticed on its own socket, and one that
	 * stopped reading by vm.c's queue. */
	if (d->send && d->send(d->send_arg, (uint16_t)type, m, NULL, 0) < 0)
		bh_debug("cannot relay a device message to the vCPU runner");
}

void bh_dev_needs_reset(struct bh_dev *v, const char *reason)
{
	Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

	ref.index = v->index;
	ref.reason = (char *)reason;
	runner_send(v->devs, BH__MSG_TYPE__MSG_VIRTIO_NEEDS_RESET, &ref.base);
}

void bh_dev_reset_done(struct bh_dev *v)
{
	Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

	ref.index = v->index;
	v->reset_pending = false;
	runner_send(v->devs, BH__MSG_TYPE__MSG_VIRTIO_RESET_DONE, &ref.base);
}

/* ---- what a worker may send --------------------------------------------- */

static int h_w_ready(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__WorkerReady *r = (const Bh__WorkerReady *)m;
	const Bh__VirtioDevice *dev = r->device;
	struct bh_dev *v = ctx;
	unsigned int nq = v->type->num_queues ? v->type->num_queues(v) : 0;

	/* Everything here reaches the runner's transport: bound it all. */
	if (!dev || dev->device_type != v->type->virtio_id ||
	    dev->num_queues < 1 || dev->num_queues > BH_MAX_QUEUES ||
	    (nq && dev->num_queues != nq) || dev->max_queue_size < 2 ||
	    dev->max_queue_size > BH_MAX_QUEUE_SIZE ||
	    (dev->max_queue_size & (dev->max_queue_size - 1)) ||
	    dev->config.len > BH_VIRTIO_CONFIG_MAX)
		return -EINVAL;
	v->features = dev->device_features;
	v->nq = dev->num_queues;
	v->qsize = dev->max_queue_size;
	v->config_len = dev->config.len;
	if (dev->config.len)
		memcpy(v->config, dev->config.data, dev->config.len);
	v->ws = WK_READY;
	return 0;
}

static int h_w_reset_done(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	struct bh_dev *v = ctx;

	/* Only an answer to our request; anything else would confuse the
	 * runner's view of the device. */
	if (!v->reset_pending)
		return -EPROTO;
	bh_dev_reset_done(v);
	return 0;
}

static int h_w_config_update(void *ctx, const ProtobufCMessage *m,
			     struct bh_frame *f)
{
	const Bh__VirtioConfigUpdate *u = (const Bh__VirtioConfigUpdate *)m;
	Bh__VirtioConfigUpdate out = BH__VIRTIO_CONFIG_UPDATE__INIT;
	struct bh_dev *v = ctx;

	if (u->config.len > BH_VIRTIO_CONFIG_MAX)
		return -EMSGSIZE;
	memcpy(v->config, u->config.data, u->config.len);
	v->config_len = u->config.len;
	out.index = v->index;
	out.config = u->config;
	out.notify = u->notify;
	runner_send(v->devs, BH__MSG_TYPE__MSG_VIRTIO_CONFIG_UPDATE, &out.base);
	return 0;
}

static int h_w_needs_reset(void *ctx, const ProtobufCMessage *m,
			   struct bh_frame *f)
{
	const Bh__VirtioDeviceRef *ref = (const Bh__VirtioDeviceRef *)m;
	struct bh_dev *v = ctx;
	char reason[160];

	/* The reason is the worker's text, maybe the guest's doing: cut it
	 * short and keep it printable before it reaches the log. */
	snprintf(reason, sizeof(reason), "%s",
		 ref->reason && ref->reason[0] ? ref->reason : "no reason");
	for (char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	bh_log_ratelimited(BH_LOG_WARN, "device %s: needs reset: %s", v->id,
			   reason);
	bh_dev_needs_reset(v, reason);
	return 0;
}
/* Ends the collection under way: every waiter gets what has arrived. */
static void counters_finish(struct bh_devices *d)
{
	struct bh_device_counters got[BH_MAX_DEVICES];
	unsigned int n = 0, nw = d->nwaiters;
	struct {
		bh_devices_counters_fn fn;
		void *arg;
	} w[COUNTERS_MAX_WAITERS];

	if (nw == 0)
		return;
	if (d->counters_timer)
		event_del(d->counters_timer);
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];

		if (!v)
			continue;
		if (!v->counters_pending && v->counters.id)
			got[n++] = v->counters;
		v->counters_pending = false;
		v->counters.id = NULL;
	}
	/* A waiter may start the next collection from its callback. */
	memcpy(w, d->waiters, nw * sizeof(w[0]));
	d->nwaiters = 0;
	for (unsigned int i = 0; i < nw; i++)
		w[i].fn(w[i].arg, got, n);
}

void bh_dev_counters_check(struct bh_devices *d)
{
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i] && d->slot[i]->counters_pending)
			return;
	counters_finish(d);
}

static void on_counters_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct bh_devices *d = arg;

	bh_warn("devices' counters: not every worker answered in time");
	counters_finish(d);
}

int bh_devices_counters(struct bh_devices *d, int timeout_ms,
			bh_devices_counters_fn done, void *arg)
{
	Bh__Empty req = BH__EMPTY__INIT;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	unsigned int asked = 0;
	int r;

	if (d->nwaiters == COUNTERS_MAX_WAITERS)
		return -EBUSY;
	if (d->nwaiters > 0) {
		d->waiters[d->nwaiters].fn = done;
		d->waiters[d->nwaiters++].arg = arg;
		return 0;
	}
	if (!d->base)
		return -ENOTCONN;
	if (!d->counters_timer) {
		d->counters_timer =
		    evtimer_new(d->base, on_counters_timeout, d);
		if (!d->counters_timer)
			return -ENOMEM;
	}
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];

		if (!v)
			continue;
		v->counters.id = NULL;
		v->counters_pending = false;
		if (v->ws != WK_READY || v->sock < 0)
			continue;
		r = bh_frame_send_timeout(
		    v->sock, BH__MSG_TYPE__MSG_COUNTERS_REQUEST, &req.base,
		    NULL, 0, WORKER_SEND_TIMEOUT);
		if (r < 0) {
			bh_sup_send_failed(v, r);
			continue;
		}
		v->counters_pending = true;
		if (v->counters_asked++ == 0)
			v->counters_sent = bh_dev_now_ms();
		bh_sup_watchdog_arm(v);
		asked++;
	}
	if (asked == 0)
		return -ENOTCONN;
	d->waiters[0].fn = done;
	d->waiters[0].arg = arg;
	d->nwaiters = 1;
	evtimer_add(d->counters_timer, &tv);
	return 0;
}

static int h_w_counters(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__Counters *c = (const Bh__Counters *)m;
	struct bh_dev *v = ctx;
	unsigned int n = 0;

	/* Never more answers than requests; a late one is dropped. */
	if (v->counters_asked == 0)
		return -EPROTO;
	/* Still owing older ones: it answers, so its time starts again. */
	if (--v->counters_asked)
		v->counters_sent = bh_dev_now_ms();
	if (!v->counters_pending)
		return 0;
	for (size_t i = 0; i < c->n_counters && n < BH_DEVICES_MAX_COUNTERS;
	     i++) {
		if (!c->counters[i]->name || !c->counters[i]->name[0] ||
		    strlen(c->counters[i]->name) > BH_DEVICES_COUNTER_NAME_MAX)
			continue;
		snprintf(v->counters.c[n].name, sizeof(v->counters.c[n].name),
			 "%s", c->counters[i]->name);
		v->counters.c[n++].value = c->counters[i]->value;
	}
	v->counters.n = n;
	v->counters.id = v->id;
	v->counters_pending = false;
	bh_dev_counters_check(v->devs);
	return 0;
}

static int h_w_paused(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	return bh_dev_paused(ctx);
}

static int h_w_error(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Error *e = (const Bh__Error *)m;
	struct bh_dev *v = ctx;

	bh_log_ratelimited(BH_LOG_WARN, "device %s: worker reported: %.160s",
			   v->id, e->message);
	/* Only a dirty log request is answered with an error. */
	if (bh_dirty_worker_owes(v))
		return bh_dirty_worker_answer(v, e->code > 0 ? -e->code : -EIO,
					      e->message);
	return 0;
}

static int h_w_dirty_done(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	return bh_dirty_worker_answer(ctx, 0, NULL);
}

static const struct bh_handler worker_msgs[] = {
	{ BH__MSG_TYPE__MSG_WORKER_READY, BH_STATE(WK_SETUP), 0,
	  &bh__worker_ready__descriptor, h_w_ready, "worker-ready" },
	{ BH__MSG_TYPE__MSG_DEVICE_RESET_DONE, BH_STATE(WK_READY), 0,
	  &bh__virtio_device_ref__descriptor, h_w_reset_done,
	  "device-reset-done" },
	{ BH__MSG_TYPE__MSG_DEVICE_CONFIG_UPDATE, BH_STATE(WK_READY), 0,
	  &bh__virtio_config_update__descriptor, h_w_config_update,
	  "device-config-update" },
	{ BH__MSG_TYPE__MSG_DEVICE_NEEDS_RESET, BH_STATE(WK_READY), 0,
	  &bh__virtio_device_ref__descriptor, h_w_needs_reset,
	  "device-needs-reset" },
	{ BH__MSG_TYPE__MSG_COUNTERS, BH_STATE(WK_READY), 0,
	  &bh__counters__descriptor, h_w_counters, "counters" },
	{ BH__MSG_TYPE__MSG_DEVICE_PAUSED, BH_STATE(WK_READY), 0,
	  &bh__empty__descriptor, h_w_paused, "device-paused" },
	{ BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG_DONE, BH_STATE(WK_READY), 0,
	  &bh__empty__descriptor, h_w_dirty_done, "device-dirty-log-done" },
	{ BH__MSG_TYPE__MSG_ERROR, BH_STATE(WK_SETUP) | BH_STATE(WK_READY), 0,
	  &bh__error__descriptor, h_w_error, "error" },
};

int bh_dev_dispatch(struct bh_dev *v, struct bh_frame *f, char *why,
		    size_t whylen)
{
	const struct bh_handler *table = worker_msgs;
	size_t n = BH_ARRAY_SIZE(worker_msgs);
	const char *name = NULL;
	uint16_t type = f->type;
	int r;

	/* The type's own messages, for its worker alone. */
	for (size_t i = 0; i < v->type->nmsgs; i++) {
		if (v->type->msgs[i].type == type) {
			table = v->type->msgs;
			n = v->type->nmsgs;
			break;
		}
	}
	r = bh_dispatch(table, n, v->ws, f, v, &name);
	if (r < 0)
		snprintf(why, whylen, "sent a bad message (%s, type %u): %s",
			 name ? name : "unknown", type, strerror(-r));
	return r;
}

int bh_dev_send_setup(struct bh_dev *v, const struct bh_guest_mem *mem)
{
	const struct bh_mem_layout *l = &mem->layout;
	Bh__WorkerSetup s = BH__WORKER_SETUP__INIT;
	Bh__MemRegion regs[BH_MAX_RAM_REGIONS];
	Bh__MemRegion *ptrs[BH_MAX_RAM_REGIONS];
	int fds[1 + BH_DEV_MAX_BACKEND];

	for (unsigned int i = 0; i < l->nregions; i++) {
		bh__mem_region__init(&regs[i]);
		regs[i].guest_phys = l->regions[i].guest_phys;
		regs[i].size = l->regions[i].size;
		regs[i].memfd_offset = l->regions[i].memfd_offset;
		ptrs[i] = &regs[i];
	}
	s.id = v->id;
	s.n_regions = l->nregions;
	s.regions = ptrs;
	s.memfd_size = l->ram_size;
	s.backend_case = v->type->backend;
	s.strict_sandbox = v->devs->cfg->strict_sandbox;
	v->type->setup(v, v->devs->cfg, &s);
	fds[0] = mem->memfd;
	for (unsigned int b = 0; b < v->nbackend; b++)
		fds[1 + b] = v->backend[b];
	return bh_frame_send(v->sock, BH__MSG_TYPE__MSG_WORKER_SETUP, &s.base,
			     fds, 1 + v->nbackend);
}

int bh_dev_send_activate(struct bh_dev *v, bool resume)
{
	Bh__DeviceActivate act = BH__DEVICE_ACTIVATE__INIT;
	Bh__VirtQueue *qs[BH_MAX_QUEUES];
	int fds[2 * BH_MAX_QUEUES + 1];
	size_t n = 0;

	for (unsigned int i = 0; i < v->nqueues; i++) {
		Bh__VirtQueue *q = &v->queues[i];

		if (!q->enabled)
			continue;
		qs[n] = q;
		fds[2 * n] = v->kick[q->index];
		fds[2 * n + 1] = v->call[q->index];
		n++;
	}
	fds[2 * n] = v->inflight;
	act.driver_features = v->driver_features;
	act.n_queues = n;
	act.queues = qs;
	act.inflight_size = v->inflight_size;
	act.resume = resume;
	act.failed = v->failed;
	return bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_DEVICE_ACTIVATE,
				     &act.base, fds, (unsigned int)(2 * n + 1),
				     WORKER_SEND_TIMEOUT);
}

/* ---- one boot ----------------------------------------------------------- */

/* Takes one device's worker to READY and gives it its eventfds. */
static int dev_start(struct bh_dev *v, struct event_base *base)
{
	int r;

	v->failed = false;
	v->active = false;
	v->nrestarts = 0;
	r = bh_sup_start(v, v->devs->mem);
	if (r < 0)
		return r;
	for (unsigned int q = 0; q < v->nq; q++) {
		v->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		v->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->kick[q] < 0 || v->call[q] < 0) {
			r = -errno;
			bh_err("device %s: cannot create eventfds: %s", v->id,
			       strerror(-r));
			return r;
		}
	}
	r = bh_sup_watch(v);
	if (r == 0 && v->type->start)
		r = v->type->start(v, base);
	return r;
}

int bh_devices_start(struct bh_devices *d, const struct bh_guest_mem *mem,
		     struct event_base *base)
{
	int r = 0;

	d->mem = mem;
	d->base = base;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		if (!d->slot[i])
			continue;
		r = dev_start(d->slot[i], base);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	bh_devices_stop(d);
	return r;
}

/* RUNNER_ADD_DEVICE for one device whose worker is ready. */
static int dev_send_add(struct bh_dev *v, bh_devices_send_fn send, void *arg)
{
	Bh__RunnerAddDevice add = BH__RUNNER_ADD_DEVICE__INIT;
	Bh__VirtioDevice dev = BH__VIRTIO_DEVICE__INIT;
	Bh__SharedRegion shm = BH__SHARED_REGION__INIT;
	int fds[2 * BH_MAX_QUEUES + 1];
	unsigned int nfds;
	int shm_fd;

	dev.index = v->index;
	dev.device_type = v->type->virtio_id;
	dev.pci_slot = v->index + 1;
	dev.device_features = v->features;
	dev.num_queues = v->nq;
	dev.max_queue_size = v->qsize;
	dev.config.data = v->config;
	dev.config.len = v->config_len;
	dev.id = v->id;
	add.device = &dev;
	for (unsigned int q = 0; q < v->nq; q++) {
		fds[q] = v->kick[q];
		fds[v->nq + q] = v->call[q];
	}
	nfds = 2 * v->nq;
	/* A device that brings memory (pmem): the runner maps this fd. */
	shm_fd = v->type->shm ? v->type->shm(v, &shm) : -1;
	if (shm_fd >= 0) {
		dev.shm = &shm;
		fds[nfds++] = shm_fd;
	}
	return send(arg, BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE, &add.base, fds,
		    nfds);
}

int bh_devices_attach(struct bh_devices *d, bh_devices_send_fn send, void *arg)
{
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];
		int r;

		if (!v)
			continue;
		r = dev_send_add(v, send, arg);
		if (r < 0) {
			bh_err("device %s: cannot add it to the VM: %s", v->id,
			       strerror(-r));
			return r;
		}
	}
	d->send = send;
	d->send_arg = arg;
	return 0;
}

void bh_devices_stop(struct bh_devices *d)
{
	if (!d)
		return;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i])
			d->slot[i]->counters_pending = false;
	counters_finish(d);
	if (d->counters_timer) {
		event_free(d->counters_timer);
		d->counters_timer = NULL;
	}
	/* Dirty logging belongs to one boot: the next has fresh RAM. */
	bh_dirty_boot_end(d);
	d->send = NULL;
	d->send_arg = NULL;
	d->mem = NULL;
	d->base = NULL;
	/* A pause belongs to one boot; the vCPU side answers its caller. */
	d->paused = false;
	d->pause_done = NULL;
	bh_sup_stop(d);
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];

		if (!v)
			continue;
		if (v->type->stop)
			v->type->stop(v);
		for (unsigned int q = 0; q < BH_MAX_QUEUES; q++) {
			bh_closep(&v->kick[q]);
			bh_closep(&v->call[q]);
		}
		bh_closep(&v->inflight);
		v->active = false;
		v->pause_sent = 0;
		v->pause_owed = 0;
		v->replace_on_resume = false;
		v->ws = WK_NONE;
		v->reset_pending = false;
		/* The guest was asked to let it go: the next boot comes
		 * without it, as if it had ejected it. */
		if (v->removing) {
			bh_info("device %s: removed with the end of the boot",
				v->id);
			dev_free(v);
		}
	}
}

/* ---- relays from the runner --------------------------------------------- */
/* A fresh memfd for the workers' in-flight records, sealed at its size so
 * that no worker can shrink it under another's mapping. */
static int inflight_create(struct bh_dev *v)
{
	uint64_t size = BH_INFLIGHT_TOTAL(v->nq, v->qsize);
	int fd;

	bh_closep(&v->inflight);
	fd = memfd_create("bulkhead-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
		0) {
		int r = -errno;

		close(fd);
		return r;
	}
	v->inflight = fd;
	v->inflight_size = size;
	return 0;
}

int bh_devices_activate(struct bh_devices *d, const Bh__VirtioActivate *a)
{
	uint32_t seen = 0;
	struct bh_dev *v;
	int r, resume;

	v = dev_at(d, a->index);
	if (!v)
		return -EINVAL;
	if (a->n_queues > v->nq)
		return -EINVAL;
	for (size_t i = 0; i < a->n_queues; i++) {
		const Bh__VirtQueue *q = a->queues[i];

		if (q->index >= v->nq || (seen & (1u << q->index)))
			return -EINVAL;
		seen |= 1u << q->index;
	}
	/* Kept for a replacement worker: what the driver set up. */
	v->driver_features = a->driver_features;
	v->nqueues = (unsigned int)a->n_queues;
	for (size_t i = 0; i < a->n_queues; i++) {
		bh__virt_queue__init(&v->queues[i]);
		v->queues[i].index = a->queues[i]->index;
		v->queues[i].size = a->queues[i]->size;
		v->queues[i].desc = a->queues[i]->desc;
		v->queues[i].avail = a->queues[i]->avail;
		v->queues[i].used = a->queues[i]->used;
		v->queues[i].enabled = a->queues[i]->enabled;
	}
	r = inflight_create(v);
	if (r < 0) {
		bh_err("device %s: cannot create its in-flight memfd: %s",
		       v->id, strerror(-r));
		return r;
	}
	/* A restored device takes up its rings where the snapshot left
	 * them, as a worker replacing a dead one does. */
	resume = bh_dev_restore_records(v);
	if (resume < 0) {
		v->active = false;
		bh_dev_needs_reset(v, "the snapshot's records do not fit");
		return 0;
	}
	v->active = true;
	if (v->ws != WK_READY) {
		bh_dev_needs_reset(v, "device worker failed");
		return 0;
	}
	r = bh_dev_send_activate(v, resume == 1);
	if (r < 0)
		bh_sup_send_failed(v, r);
	else
		bh_debug("device %s: activated, %u queues, features 0x%llx",
			 v->id, v->nqueues,
			 (unsigned long long)a->driver_features);
	return 0;
}

int bh_devices_reset(struct bh_devices *d, const Bh__VirtioDeviceRef *ref)
{
	Bh__VirtioDeviceRef msg = BH__VIRTIO_DEVICE_REF__INIT;
	struct bh_dev *v;
	int r;

	v = dev_at(d, ref->index);
	if (!v)
		return -EINVAL;
	v->reset_pending = true;
	v->active = false;
	if (v->ws != WK_READY) {
		bh_dev_reset_done(v);
		return 0;
	}
	msg.index = v->index;
	r = bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_DEVICE_RESET,
				  &msg.base, NULL, 0, WORKER_SEND_TIMEOUT);
	if (r < 0) {
		bh_sup_send_failed(v, r);
		return 0;
	}
	v->reset_sent = bh_dev_now_ms();
	bh_sup_watchdog_arm(v);
	return 0;
}

int bh_devices_config_write(struct bh_devices *d,
			    const Bh__VirtioConfigWrite *w)
{
	struct bh_dev *v;
	int r;

	v = dev_at(d, w->index);
	if (!v)
		return -EINVAL;
	if (v->ws != WK_READY)
		return 0;
	r = bh_frame_send_timeout(v->sock,
				  BH__MSG_TYPE__MSG_DEVICE_CONFIG_WRITE,
				  &w->base, NULL, 0, WORKER_SEND_TIMEOUT);
	if (r < 0)
		bh_sup_send_failed(v, r);
	return 0;
}

/* ---- devices that come and go while the VM runs ------------------------- */

static struct bh_dev *dev_by_id(const struct bh_devices *d, const char *id)
{
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i] && strcmp(d->slot[i]->id, id) == 0)
			return d->slot[i];
	return NULL;
}

int bh_devices_find(const struct bh_devices *d, const char *id)
{
	const struct bh_dev *v = d ? dev_by_id(d, id) : NULL;

	return v ? (int)v->index : -ENOENT;
}

/* The one device one describes, and where its id is kept. */
static const struct bh_dev_type *one_type(struct bh_config *one, char ***id,
					  const char **prefix)
{
	unsigned int n =
	    one->ndisks + one->nnets + one->npmems + (one->vsock ? 1 : 0);

	if (n != 1)
		return NULL;
	if (one->ndisks) {
		*id = &one->disks[0].id;
		*prefix = "disk";
		return &bh_dev_blk;
	}
	if (one->nnets) {
		*id = &one->nets[0].id;
		*prefix = "net";
		return &bh_dev_net;
	}
	if (one->npmems) {
		*id = &one->pmems[0].id;
		*prefix = "pmem";
		return &bh_dev_pmem;
	}
	*id = &one->vsock->id;
	*prefix = "vsock";
	return &bh_dev_vsock;
}

/* "disk0", "disk1", ...: the first such id no device has. */
static void default_id(const struct bh_devices *d, const char *prefix,
		       char *out, size_t outlen)
{
	for (unsigned int n = 0;; n++) {
		snprintf(out, outlen, "%s%u", prefix, n);
		if (!dev_by_id(d, out))
			return;
	}
}

/* Frees a device that never reached the runner, or that the runner has let
 * go: its worker stops first. */
static void dev_drop(struct bh_dev *v)
{
	struct bh_devices *d = v->devs;
	/* bh_devices_stop has stopped it already at the end of a boot. */
	bool started = v->ws != WK_NONE;

	bh_sup_stop_one(v);
	if (started && v->type->stop)
		v->type->stop(v);
	for (unsigned int q = 0; q < BH_MAX_QUEUES; q++) {
		bh_closep(&v->kick[q]);
		bh_closep(&v->call[q]);
	}
	bh_closep(&v->inflight);
	/* A dirty log start may wait for it; its bitmap stays (dirty.c). */
	bh_dirty_worker_gone(v);
	dev_free(v);
	/* A counters collection or a pause may have waited for this one
	 * alone. */
	bh_dev_counters_check(d);
	bh_dev_pause_check(d);
}

int bh_devices_add(struct bh_devices *d, struct bh_config *one,
		   unsigned int *index, char *err, size_t errlen)
{
	const struct bh_dev_type *ty;
	const char *prefix;
	struct bh_dev *v = NULL;
	char idbuf[BH_CONFIG_ID_MAX + 1];
	char **id;
	int r;

	ty = one_type(one, &id, &prefix);
	if (!ty) {
		r = bh_errf(err, errlen, "one disk, net, pmem or vsock device");
		goto fail_cfg;
	}
	if (!d || !d->send || !d->base || !d->mem) {
		r = -ENOTCONN;
		snprintf(err, errlen, "the VM is not running");
		goto fail_cfg;
	}
	if (!*id || !(*id)[0]) {
		default_id(d, prefix, idbuf, sizeof(idbuf));
		free(*id);
		*id = bh_xstrdup(idbuf);
	}
	if (dev_by_id(d, *id)) {
		r = -EEXIST;
		snprintf(err, errlen, "id '%s': a device has it already", *id);
		goto fail_cfg;
	}
	/* The vsock broker is one per VM, as --vsock is. */
	for (unsigned int i = 0; ty == &bh_dev_vsock && i < BH_MAX_DEVICES;
	     i++) {
		if (d->slot[i] && d->slot[i]->type == ty) {
			r = -EEXIST;
			snprintf(err, errlen,
				 "the VM has a vsock device already (%s): "
				 "one at most",
				 d->slot[i]->id);
			goto fail_cfg;
		}
	}
	if (d->n >= BH_MAX_DEVICES) {
		r = -ENOSPC;
		snprintf(err, errlen,
			 "the VM has %u devices: %u devices at most", d->n,
			 BH_MAX_DEVICES);
		goto fail_cfg;
	}
	r = dev_new(d, ty, *id, &v, err, errlen);
	if (r < 0)
		goto fail_cfg;
	v->own_cfg = one;
	r = ty->open(v, one, 0, err, errlen);
	if (r < 0)
		goto fail_dev;
	r = find_binary(d, v);
	if (r < 0) {
		snprintf(err, errlen, "cannot find bulkhead-dev-%s in %s",
			 ty->name, d->child_dir);
		goto fail_dev;
	}
	/* Up to READY: the loop waits for the worker's set-up, as it does
	 * for a replacement, at most WORKER_SETUP_TIMEOUT per step. */
	r = dev_start(v, d->base);
	if (r < 0) {
		snprintf(err, errlen,
			 "device %s: its worker did not start (see bulkhead's "
			 "log)",
			 v->id);
		goto fail_dev;
	}
	r = dev_send_add(v, d->send, d->send_arg);
	if (r < 0) {
		snprintf(err, errlen, "device %s: cannot reach the vCPU runner",
			 v->id);
		goto fail_dev;
	}
	/* Added to a paused VM: quiet until it resumes, as the others. */
	bh_dev_pause_new(v);
	bh_info("device %s: hot-added on PCI slot %u", v->id, v->index + 1);
	*index = v->index;
	return 0;
fail_dev:
	dev_drop(v); /* frees one with it */
	return r;
fail_cfg:
	bh_config_free(one);
	free(one);
	return r;
}

void bh_devices_add_failed(struct bh_devices *d, unsigned int index)
{
	if (d && index < BH_MAX_DEVICES && d->slot[index])
		dev_drop(d->slot[index]);
}

int bh_devices_remove(struct bh_devices *d, const char *id, char *err,
		      size_t errlen)
{
	Bh__RunnerRemoveDevice rm = BH__RUNNER_REMOVE_DEVICE__INIT;
	struct bh_dev *v = d ? dev_by_id(d, id) : NULL;
	int r;

	if (!v) {
		snprintf(err, errlen, "no device has the id '%s'", id);
		return -ENOENT;
	}
	if (!d->send) {
		snprintf(err, errlen, "the VM is not running");
		return -ENOTCONN;
	}
	rm.index = v->index;
	r = d->send(d->send_arg, BH__MSG_TYPE__MSG_RUNNER_REMOVE_DEVICE,
		    &rm.base, NULL, 0);
	if (r < 0) {
		snprintf(err, errlen, "cannot reach the vCPU runner: %s",
			 strerror(-r));
		return r;
	}
	if (!v->removing)
		bh_info("device %s: removal asked of the guest", v->id);
	v->removing = true;
	return 0;
}

int bh_devices_removed(struct bh_devices *d, const Bh__RunnerDeviceRemoved *m,
		       char *id, size_t idlen)
{
	struct bh_dev *v = dev_at(d, m->index);

	/* Only what was asked: anything else is the runner's fault. */
	if (!v || !v->removing || m->pci_slot != v->index + 1)
		return -EINVAL;
	snprintf(id, idlen, "%s", v->id);
	bh_info("device %s: the guest ejected it; removed", v->id);
	dev_drop(v);
	return 0;
}

void bh_devices_config(const struct bh_devices *d, const struct bh_config *cfg,
		       struct bh_config *out)
{
	bool rng = false, console = false;

	*out = *cfg;
	if (!d)
		return;
	out->ndisks = out->nnets = out->npmems = 0;
	out->vsock = NULL;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		const struct bh_dev *v = d->slot[i];
		const struct bh_config *c;

		if (!v)
			continue;
		c = v->own_cfg ? v->own_cfg : cfg;
		if (v->type == &bh_dev_rng)
			rng = true;
		else if (v->type == &bh_dev_console)
			console = true;
		else if (v->type == &bh_dev_vsock)
			out->vsock = c->vsock;
		for (unsigned int k = 0;
		     v->type == &bh_dev_blk && k < c->ndisks; k++)
			if (strcmp(c->disks[k].id, v->id) == 0)
				out->disks[out->ndisks++] = c->disks[k];
		for (unsigned int k = 0; v->type == &bh_dev_net && k < c->nnets;
		     k++)
			if (strcmp(c->nets[k].id, v->id) == 0)
				out->nets[out->nnets++] = c->nets[k];
		for (unsigned int k = 0;
		     v->type == &bh_dev_pmem && k < c->npmems; k++)
			if (strcmp(c->pmems[k].id, v->id) == 0)
				out->pmems[out->npmems++] = c->pmems[k];
	}
	/* Removed while the VM ran: gone from the configuration too. */
	if (!rng)
		out->rng_source = NULL;
	if (!console)
		out->console = BH_CONSOLE_OFF;
}
