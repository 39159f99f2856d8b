/* Dirty tracking of the whole VM for live migration: one bitmap memfd per
 * writer (the runner for the vCPUs' writes, each device worker for its
 * own), logging turned on and off in every writer, the runner's syncs of
 * KVM's log, and the take that merges the bitmaps each pass. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/log.h>

#include "dev.h"
#include "devices.h"
#include "dirty.h"
#include "dirtymap.h"
#include "vm.h"

/* Requests the runner may owe answers to at once. */
#define RUNNER_REQS_MAX 16

enum runner_req {
	REQ_LOG,       /* RUNNER_DIRTY_LOG nobody waits for (off) */
	REQ_LOG_START, /* RUNNER_DIRTY_LOG of the start under way */
	REQ_SYNC,      /* RUNNER_DIRTY_SYNC */
};

struct bh_dirty {
	bool active;
	uint64_t ram_size;
	uint64_t nwords;
	struct bh_dirtymap runner;
	struct bh_dirtymap dev[BH_MAX_DEVICES]; /* by slot index */

	/* The runner answers in order: what it owes, oldest first. */
	enum runner_req rq[RUNNER_REQS_MAX];
	unsigned int rq_head, rq_len;

	/* The start under way: answers still to come (the runner's and the
	 * workers'), and the first error. */
	bh_vm_dirty_done_fn start_done;
	void *start_arg;
	unsigned int start_owed;
	bool starting; /* inside bh_vm_dirty_start: nothing completes yet */
	int start_err;
	char start_why[512];

	bh_vm_dirty_done_fn sync_done;
	void *sync_arg;
	/* A writer's log was refused since the start: its writes may be
	 * missing, and the next sync says so. */
	int lost;
	char lost_why[512];
};

static struct bh_dirty *dirty_of(struct bh_devices *d)
{
	if (!d->dirty) {
		d->dirty = calloc(1, sizeof(*d->dirty));
		if (!d->dirty)
			abort();
		bh_dirtymap_init(&d->dirty->runner);
		for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
			bh_dirtymap_init(&d->dirty->dev[i]);
	}
	return d->dirty;
}

static void maps_destroy(struct bh_dirty *y)
{
	bh_dirtymap_destroy(&y->runner);
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		bh_dirtymap_destroy(&y->dev[i]);
}

/* ---- the start ---------------------------------------------------------- */

static void start_note_error(struct bh_dirty *y, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void start_note_error(struct bh_dirty *y, int err, const char *fmt, ...)
{
	va_list ap;

	if (y->start_err)
		return;
	y->start_err = err;
	va_start(ap, fmt);
	vsnprintf(y->start_why, sizeof(y->start_why), fmt, ap);
	va_end(ap);
}

/* One answer the start waited for came (or its writer died). */
static void start_answered(struct bh_dirty *y)
{
	bh_vm_dirty_done_fn fn = y->start_done;

	if (!y->start_owed || --y->start_owed || y->starting || !fn)
		return;
	y->start_done = NULL;
	if (y->start_err) {
		bh_err("dirty logging: %s", y->start_why);
		fn(y->start_arg, y->start_err, y->start_why);
		return;
	}
	bh_info("dirty logging on in the runner and every worker");
	fn(y->start_arg, 0, NULL);
}

static int runner_push(struct bh_dirty *y, enum runner_req k)
{
	if (y->rq_len == RUNNER_REQS_MAX)
		return -EBUSY;
	y->rq[(y->rq_head + y->rq_len++) % RUNNER_REQS_MAX] = k;
	return 0;
}

/* The runner's oldest request, now answered; -1 when it owes none. */
static int runner_pop(struct bh_dirty *y)
{
	enum runner_req k;

	if (!y || !y->rq_len)
		return -1;
	k = y->rq[y->rq_head];
	y->rq_head = (y->rq_head + 1) % RUNNER_REQS_MAX;
	y->rq_len--;
	return (int)k;
}

static int send_worker_log(struct bh_dev *v, bool enable, int fd)
{
	Bh__DirtyLog dl = BH__DIRTY_LOG__INIT;

	dl.enable = enable;
	return bh_frame_send_timeout(
	    v->sock, BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG, &dl.base,
	    enable ? &fd : NULL, enable ? 1 : 0, WORKER_SEND_TIMEOUT);
}

/* v's worker owes one more answer; the start waits for it if under way. */
static void worker_owes(struct bh_dirty *y, struct bh_dev *v)
{
	if (!v->dirty_owed)
		v->dirty_sent = bh_dev_now_ms();
	v->dirty_owed++;
	if (y->start_done) {
		v->dirty_start_in = v->dirty_owed;
		y->start_owed++;
	}
	bh_sup_watchdog_arm(v);
}

int bh_vm_dirty_start(struct bh_vm *vm, bh_vm_dirty_done_fn done, void *arg)
{
	struct bh_devices *d = bh_vm_devices(vm);
	Bh__DirtyLog dl = BH__DIRTY_LOG__INIT;
	struct bh_dirty *y;
	int r;

	if (!d || !d->send || !d->mem) {
		bh_warn("dirty logging: the VM is not running");
		return -ENOTCONN;
	}
	y = dirty_of(d);
	if (y->active) {
		bh_warn("dirty logging: on already");
		return -EALREADY;
	}
	if (y->rq_len > RUNNER_REQS_MAX / 2) {
		bh_warn("dirty logging: the vCPU runner has not answered %u "
			"earlier requests",
			y->rq_len);
		return -EBUSY;
	}
	y->ram_size = d->mem->layout.ram_size;
	y->nwords = bh_dirtymap_words(y->ram_size);
	r = bh_dirtymap_create(&y->runner, y->ram_size);
	for (unsigned int i = 0; r == 0 && i < BH_MAX_DEVICES; i++)
		if (d->slot[i])
			r = bh_dirtymap_create(&y->dev[i], y->ram_size);
	if (r < 0) {
		bh_err("dirty logging: cannot create a bitmap memfd: %s",
		       strerror(-r));
		maps_destroy(y);
		return r;
	}
	dl.enable = true;
	r = d->send(d->send_arg, BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG, &dl.base,
		    &y->runner.fd, 1);
	if (r == 0)
		r = runner_push(y, REQ_LOG_START);
	if (r < 0) {
		bh_err("dirty logging: cannot reach the vCPU runner: %s",
		       strerror(-r));
		maps_destroy(y);
		return r;
	}
	y->active = true;
	y->lost = 0;
	y->start_err = 0;
	y->start_why[0] = '\0';
	y->start_done = done;
	y->start_arg = arg;
	y->start_owed = 1; /* the runner's */
	y->starting = true;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];

		/* A dead worker writes nothing; its replacement gets the
		 * log before it serves (bh_dirty_worker_new). */
		if (!v || !bh_dev_worker_ready(v))
			continue;
		worker_owes(y, v);
		r = send_worker_log(v, true, y->dev[i].fd);
		/* Failing the worker counts its answer as come. */
		if (r < 0)
			bh_sup_send_failed(v, r);
	}
	y->starting = false;
	bh_info("dirty logging: turning it on (%llu bytes of bitmap per "
		"writer)",
		(unsigned long long)(y->nwords * 8));
	return 0;
}

/* ---- sync, take, stop --------------------------------------------------- */

int bh_vm_dirty_sync(struct bh_vm *vm, bh_vm_dirty_done_fn done, void *arg)
{
	struct bh_devices *d = bh_vm_devices(vm);
	Bh__Empty e = BH__EMPTY__INIT;
	struct bh_dirty *y = d ? d->dirty : NULL;
	int r;

	if (!d || !d->send) {
		bh_warn("dirty sync: the VM is not running");
		return -ENOTCONN;
	}
	if (!y || !y->active) {
		bh_warn("dirty sync: dirty logging is off");
		return -EINVAL;
	}
	if (y->start_done || y->sync_done) {
		bh_warn("dirty sync: %s is under way",
			y->start_done ? "the start" : "another sync");
		return -EBUSY;
	}
	r = runner_push(y, REQ_SYNC);
	if (r == 0) {
		r = d->send(d->send_arg, BH__MSG_TYPE__MSG_RUNNER_DIRTY_SYNC,
			    &e.base, NULL, 0);
		if (r < 0)
			y->rq_len--; /* not sent: nothing owed */
	}
	if (r < 0) {
		bh_err("dirty sync: cannot reach the vCPU runner: %s",
		       strerror(-r));
		return r;
	}
	y->sync_done = done;
	y->sync_arg = arg;
	return 0;
}

uint64_t bh_vm_dirty_take(struct bh_vm *vm, uint64_t *out, size_t nwords)
{
	struct bh_devices *d = bh_vm_devices(vm);
	struct bh_dirty *y = d ? d->dirty : NULL;
	uint64_t *maps[1 + BH_MAX_DEVICES];
	size_t n = 0;

	if (!y || !y->active)
		return 0;
	maps[n++] = y->runner.words;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		maps[n++] = y->dev[i].words;
	return bh_dirtymap_take(maps, n, y->nwords, out, nwords);
}

size_t bh_vm_dirty_words(struct bh_vm *vm)
{
	struct bh_devices *d = bh_vm_devices(vm);
	struct bh_dirty *y = d ? d->dirty : NULL;

	return y && y->active ? (size_t)y->nwords : 0;
}

bool bh_vm_dirty_active(struct bh_vm *vm)
{
	struct bh_devices *d = bh_vm_devices(vm);

	return d && d->dirty && d->dirty->active;
}

/* The start and the sync under way, taken off y: call requests_call once
 * y is in order again, as a callback may start anew. */
struct requests {
	bh_vm_dirty_done_fn start, sync;
	void *start_arg, *sync_arg;
};

static void requests_take(struct bh_dirty *y, struct requests *q)
{
	q->start = y->start_done;
	q->start_arg = y->start_arg;
	q->sync = y->sync_done;
	q->sync_arg = y->sync_arg;
	y->start_done = NULL;
	y->start_owed = 0;
	y->sync_done = NULL;
}

static void requests_call(const struct requests *q, int err, const char *why)
{
	if (q->start)
		q->start(q->start_arg, err, why);
	if (q->sync)
		q->sync(q->sync_arg, err, why);
}

void bh_vm_dirty_stop(struct bh_vm *vm)
{
	struct bh_devices *d = bh_vm_devices(vm);
	struct bh_dirty *y = d ? d->dirty : NULL;
	Bh__DirtyLog dl = BH__DIRTY_LOG__INIT;
	struct requests q;

	if (!y || !y->active)
		return;
	y->active = false;
	requests_take(y, &q);
	/* Off in every writer; their answers are counted, nobody waits. */
	if (d->send &&
	    d->send(d->send_arg, BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG, &dl.base,
		    NULL, 0) == 0 &&
	    runner_push(y, REQ_LOG) < 0)
		bh_warn("dirty logging: the vCPU runner owes too many "
			"answers");
	/* A start's answers still to come end nothing now. */
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i])
			d->slot[i]->dirty_start_in = 0;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];
		int r;

		if (!v || !bh_dev_worker_ready(v))
			continue;
		worker_owes(y, v);
		r = send_worker_log(v, false, -1);
		if (r < 0)
			bh_sup_send_failed(v, r);
	}
	/* The writers keep their mappings until they read the off; the
	 * memfds live as long. */
	maps_destroy(y);
	bh_info("dirty logging off");
	requests_call(&q, -ECANCELED, "dirty logging was turned off");
}

/* ---- the runner's answers ----------------------------------------------- */

bool bh_dirty_runner_busy(const struct bh_devices *d)
{
	return d && d->dirty && d->dirty->rq_len;
}

int bh_dirty_runner_log_done(struct bh_devices *d)
{
	struct bh_dirty *y = d ? d->dirty : NULL;
	int k = y && y->rq_len ? (int)y->rq[y->rq_head] : -1;

	if (k != REQ_LOG && k != REQ_LOG_START)
		return -EPROTO;
	runner_pop(y);
	if (k == REQ_LOG_START)
		start_answered(y);
	return 0;
}

int bh_dirty_runner_synced(struct bh_devices *d, const Bh__DirtySynced *s)
{
	struct bh_dirty *y = d ? d->dirty : NULL;
	bh_vm_dirty_done_fn fn;

	if (!y || !y->rq_len || y->rq[y->rq_head] != REQ_SYNC)
		return -EPROTO;
	runner_pop(y);
	fn = y->sync_done;
	y->sync_done = NULL;
	bh_debug("dirty sync: KVM reported %llu pages",
		 (unsigned long long)s->pages);
	if (!fn)
		return 0; /* stopped meanwhile */
	if (y->lost) {
		bh_err("dirty sync: %s", y->lost_why);
		fn(y->sync_arg, y->lost, y->lost_why);
		return 0;
	}
	fn(y->sync_arg, 0, NULL);
	return 0;
}

bool bh_dirty_runner_error(struct bh_devices *d, int code, const char *msg)
{
	struct bh_dirty *y = d ? d->dirty : NULL;
	int err = code > 0 ? -code : -EIO;
	char why[256];
	bh_vm_dirty_done_fn fn;
	int k = runner_pop(y);

	if (k < 0)
		return false;
	snprintf(why, sizeof(why), "the vCPU runner refused: %.200s",
		 msg && *msg ? msg : "no reason given");
	switch (k) {
	case REQ_LOG_START:
		start_note_error(y, err, "%s", why);
		start_answered(y);
		break;
	case REQ_SYNC:
		fn = y->sync_done;
		y->sync_done = NULL;
		if (fn)
			fn(y->sync_arg, err, why);
		break;
	default:
		/* Turning it off failed: the runner logs on in vain. */
		bh_warn("dirty logging off: %s", why);
		break;
	}
	return true;
}

/* ---- the workers' answers and lives -------------------------------------- */

bool bh_dirty_worker_owes(const struct bh_dev *v)
{
	return v->dirty_owed > 0;
}

int bh_dirty_worker_answer(struct bh_dev *v, int err, const char *why)
{
	struct bh_dirty *y = v->devs->dirty;
	bool the_start;

	if (!v->dirty_owed || !y)
		return -EPROTO;
	the_start = v->dirty_start_in == 1;
	if (v->dirty_start_in)
		v->dirty_start_in--;
	if (--v->dirty_owed)
		v->dirty_sent = bh_dev_now_ms();
	if (err && y->active && !the_start && !y->lost) {
		/* A replacement's log, refused after the start. */
		y->lost = err;
		snprintf(y->lost_why, sizeof(y->lost_why),
			 "device %s: its new worker refused the dirty log "
			 "(%.160s): what it writes is not logged",
			 v->id, why && *why ? why : "no reason given");
	}
	if (the_start) {
		if (err)
			start_note_error(y, err,
					 "device %s: its worker refused the "
					 "dirty log: %.160s",
					 v->id,
					 why && *why ? why : "no reason given");
		start_answered(y);
	}
	return 0;
}

void bh_dirty_worker_gone(struct bh_dev *v)
{
	struct bh_dirty *y = v->devs->dirty;
	bool waited = v->dirty_start_in > 0;

	v->dirty_owed = 0;
	v->dirty_start_in = 0;
	v->dirty_sent = 0;
	/* It writes no more; its replacement is logged from the start. */
	if (waited && y)
		start_answered(y);
}

int bh_dirty_worker_new(struct bh_dev *v)
{
	struct bh_dirty *y = v->devs->dirty;
	int r;

	if (!y || !y->active)
		return 0;
	if (y->dev[v->index].fd < 0) {
		r = bh_dirtymap_create(&y->dev[v->index], y->ram_size);
		if (r < 0) {
			bh_err("device %s: no dirty bitmap for its new "
			       "worker: %s",
			       v->id, strerror(-r));
			return r;
		}
	}
	r = send_worker_log(v, true, y->dev[v->index].fd);
	if (r < 0)
		return r;
	worker_owes(y, v);
	bh_debug("device %s: its new worker logs into the same bitmap", v->id);
	return 0;
}

void bh_dirty_boot_end(struct bh_devices *d)
{
	struct bh_dirty *y = d->dirty;
	struct requests q;

	if (!y)
		return;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		if (d->slot[i]) {
			d->slot[i]->dirty_owed = 0;
			d->slot[i]->dirty_start_in = 0;
			d->slot[i]->dirty_sent = 0;
		}
	}
	y->rq_head = y->rq_len = 0;
	if (y->active)
		bh_warn("dirty logging: the VM stopped");
	y->active = false;
	requests_take(y, &q);
	maps_destroy(y);
	requests_call(&q, -ENOTCONN, "the VM stopped");
}

void bh_dirty_free(struct bh_devices *d)
{
	if (!d->dirty)
		return;
	maps_destroy(d->dirty);
	free(d->dirty);
	d->dirty = NULL;
}
