/* blk_worker: the block benchmark's worker target: a guest's virtio-blk
 * requests, several in flight, through bh_vdriver to a real bulkhead-dev-blk
 * process serving the image. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>

#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "blk_bench.h"
#include "vdriver.h"

/* Room for BB_MAX_QD chains of one indirect descriptor each, as a Linux
 * guest builds them when INDIRECT_DESC is offered. */
#define BW_QSIZE 256
/* The data buffers (BB_MAX_QD x BB_MAX_BS) plus rings and tables. */
#define BW_RAM (BB_MAX_QD * (uint64_t)BB_MAX_BS + (32ULL << 20))

struct bw {
	struct bh_vdriver *d;
	Bh__BlkSetup setup; /* the driver keeps pointing at it */
	uint64_t image_size;
	int timeout_ms;
	uint64_t hdr_gpa, status_gpa, data_gpa;
	uint8_t *hdr, *status;
	clockid_t cpu_clock;	    /* the worker process's */
	uint16_t slot_of[BW_QSIZE]; /* chain head -> request slot */
};

static void bw_close(void *state)
{
	struct bw *w = state;
	int status = 0;

	if (!w)
		return;
	if (bh_vdriver_stop(w->d, w->timeout_ms, &status) < 0) {
		char why[128];

		fprintf(stderr, "blk_bench: worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	}
	free(w);
}

static int bw_open(const struct bb_open *o, void **state)
{
	struct bh_vdriver_cfg cfg = { 0 };
	const struct bh_vdriver_info *info;
	struct bw *w;
	uint8_t *data;
	int r;

	*state = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->image_size = o->image_size;
	w->timeout_ms = o->timeout_ms;
	bh__blk_setup__init(&w->setup);
	w->setup.num_queues = 1;
	w->setup.queue_size = BW_QSIZE;
	w->setup.size = o->image_size;
	w->setup.serial = "bench0";
	cfg.binary = o->worker;
	cfg.type = BH__WORKER_SETUP__BACKEND_BLK;
	cfg.backend = &w->setup;
	cfg.backend_fds = &o->image_fd;
	cfg.n_backend_fds = 1;
	cfg.ram_size = BW_RAM;
	cfg.id = "bench0";
	cfg.log_level = o->log_level;
	/* The controller hands every activation in-flight records, which
	 * the worker keeps up to date on each request. */
	cfg.inflight = true;
	/* Not bh_vdriver_start: set-up gets the caller's timeout, which a
	 * worker under valgrind needs. */
	r = bh_vdriver_spawn(&cfg, &w->d);
	if (r == 0)
		r = bh_vdriver_setup(w->d, o->timeout_ms);
	if (r < 0) {
		fprintf(stderr, "blk_bench: starting %s: %s\n", o->worker,
			strerror(-r));
		goto err;
	}
	r = bh_vdriver_alloc(w->d, 16 * BB_MAX_QD, 16, &w->hdr_gpa);
	if (r == 0)
		r = bh_vdriver_alloc(w->d, BB_MAX_QD, 1, &w->status_gpa);
	if (r == 0)
		r = bh_vdriver_alloc(w->d, BB_MAX_QD * (uint64_t)BB_MAX_BS,
				     BB_BLOCK, &w->data_gpa);
	if (r == 0)
		r = bh_vdriver_queue_alloc(w->d, 0, BW_QSIZE);
	if (r < 0)
		goto err;
	w->hdr = bh_vdriver_gpa(w->d, w->hdr_gpa, 16 * BB_MAX_QD);
	w->status = bh_vdriver_gpa(w->d, w->status_gpa, BB_MAX_QD);
	data =
	    bh_vdriver_gpa(w->d, w->data_gpa, BB_MAX_QD * (uint64_t)BB_MAX_BS);
	/* Every page of the buffers present before anything is timed. */
	memset(data, 0x5a, BB_MAX_QD * (size_t)BB_MAX_BS);
	r = -clock_getcpuclockid(bh_vdriver_pid(w->d), &w->cpu_clock);
	if (r < 0)
		goto err;

	/* A driver that takes every feature offered: EVENT_IDX and
	 * INDIRECT_DESC among them, as Linux does. */
	info = bh_vdriver_info(w->d);
	r = bh_vdriver_activate(w->d, info->device_features);
	if (r == 0)
		r = bh_vdriver_sync(w->d, o->timeout_ms);
	if (r == 0 && bh_vdriver_needs_reset(w->d)) {
		fprintf(stderr, "blk_bench: worker refused activation: %s\n",
			bh_vdriver_needs_reset(w->d));
		r = -EIO;
	}
	if (r < 0)
		goto err;
	*state = w;
	return 0;

err:
	bw_close(w);
	return r;
}

/* Puts one request for the next offset into slot's buffers and the ring;
 * no kick. */
static int bw_issue(struct bw *w, const struct bb_job *job, struct bb_gen *g,
		    unsigned int slot)
{
	struct virtio_blk_outhdr h;
	struct bh_vdriver_buf b[3];
	uint64_t stride = job->bs < BB_BLOCK ? BB_BLOCK : job->bs;
	uint16_t head;
	int r;

	h.type = htole32(job->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	h.ioprio = 0;
	h.sector = htole64(bb_gen_next(g) >> 9);
	memcpy(w->hdr + 16 * slot, &h, sizeof(h));
	w->status[slot] = 0xff;
	b[0] = (struct bh_vdriver_buf){ w->hdr_gpa + 16 * slot, 16, false };
	b[1] = (struct bh_vdriver_buf){ w->data_gpa + stride * slot, job->bs,
					!job->write };
	b[2] = (struct bh_vdriver_buf){ w->status_gpa + slot, 1, true };
	r = bh_vdriver_add(w->d, 0, b, 3, BH_VDRIVER_INDIRECT, &head);
	if (r < 0)
		return r;
	w->slot_of[head] = (uint16_t)slot;
	return 0;
}

/* Checks a completion the way a driver would: status byte and length. */
static int bw_check(struct bw *w, const struct bb_job *job,
		    const struct bh_vdriver_used *u, unsigned int *slot)
{
	uint32_t want = job->write ? 1 : job->bs + 1;

	if (u->id >= BW_QSIZE)
		return -EPROTO;
	*slot = w->slot_of[u->id];
	if (w->status[*slot] != VIRTIO_BLK_S_OK || u->len != want) {
		fprintf(stderr,
			"blk_bench: request failed: status %u, %u bytes "
			"written (expected %u)\n",
			w->status[*slot], u->len, want);
		return -EIO;
	}
	return 0;
}

static int bw_run(void *state, const struct bb_job *job,
		  const struct bb_limit *limit, struct bb_result *out)
{
	struct bw *w = state;
	struct bh_vdriver_used u;
	struct bb_gen g;
	uint64_t issued = 0, done = 0, kicks = 0, start, cpu;
	unsigned int slot;
	int r;

	if (job->qd < 1 || job->qd > BB_MAX_QD || job->bs > BB_MAX_BS)
		return -EINVAL;
	bb_gen_init(&g, job, w->image_size);
	bh_vdriver_calls(w->d, 0); /* from here on */
	cpu = bb_cpu_ns(w->cpu_clock);
	start = bh_now_ns();
	for (slot = 0; slot < job->qd && !bb_limit_reached(limit, issued);
	     slot++) {
		r = bw_issue(w, job, &g, slot);
		if (r < 0)
			return r;
		issued++;
	}
	r = bh_vdriver_kick_if_needed(w->d, 0);
	kicks += r == 1;
	while (r >= 0 && done < issued) {
		r = bh_vdriver_wait_used(w->d, 0, w->timeout_ms, &u);
		/* Everything that completed meanwhile, then one kick for all
		 * the requests that replace them. */
		while (r == 1) {
			r = bw_check(w, job, &u, &slot);
			if (r < 0)
				return r;
			done++;
			if (!bb_limit_reached(limit, issued)) {
				r = bw_issue(w, job, &g, slot);
				if (r < 0)
					return r;
				issued++;
			}
			r = bh_vdriver_get_used(w->d, 0, &u);
		}
		if (r == 0) {
			r = bh_vdriver_kick_if_needed(w->d, 0);
			kicks += r == 1;
		}
	}
	if (r < 0) {
		fprintf(stderr, "blk_bench: worker: %s%s%s\n", strerror(-r),
			bh_vdriver_needs_reset(w->d) ? ": " : "",
			bh_vdriver_needs_reset(w->d)
			    ? bh_vdriver_needs_reset(w->d)
			    : "");
		return r;
	}
	out->elapsed_ns = bh_now_ns() - start;
	out->cpu_ns = bb_cpu_ns(w->cpu_clock) - cpu;
	out->kicks = kicks;
	out->calls = bh_vdriver_calls(w->d, 0);
	out->requests = done;
	out->bytes = done * job->bs;
	return 0;
}

const struct bb_target bb_target_worker = {
	.name = "worker",
	.open = bw_open,
	.run = bw_run,
	.close = bw_close,
};
