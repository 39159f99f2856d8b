/* A guest-and-controller stand-in that drives a real device worker over its
 * control socket, shared guest RAM and eventfds, without KVM. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/inflight.h>
#include <bulkhead/hello.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "vdriver.h"

#define VD_PAGE 4096ULL

struct vd_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vd_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vd_queue {
	bool set;
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vd_desc *desc;
	uint16_t *avail; /* flags, idx, ring[size], used_event */
	uint16_t *used;	 /* flags, idx, then elems, then avail_event */
	struct vd_used_elem *used_ring;
	uint64_t ind_gpa; /* size tables of BH_VDRIVER_MAX_INDIRECT entries */
	struct vd_desc *ind;
	/* Shadow links: the free list, and each outstanding chain, whose
	 * links are exactly the free-list links it was taken with. */
	uint16_t *next;
	uint16_t *chain_n; /* descriptors per outstanding head, 0 if none */
	uint16_t free_head;
	unsigned int num_free;
	uint16_t avail_idx; /* our copy of avail->idx */
	uint16_t kicked_idx;
	uint16_t last_used;
	/* Raw descriptors or heads were published: a used id that is not
	 * an outstanding chain is then the test's own, not an error. */
	bool raw;
	int kick_fd;
	int call_fd;
	uint64_t calls;
};

struct vd_counter {
	char name[48];
	uint64_t value;
};

struct bh_vdriver {
	struct bh_vdriver_cfg cfg;
	char id[64];
	char log_level[16];
	char selftest_open[256];
	char binary[512];
	pid_t pid;
	bool reaped;
	int status;
	int ctl;
	struct bh_frame_reader rd;

	int memfd;
	uint8_t *ram;
	uint64_t ram_total;
	unsigned int nregions;
	uint64_t region[2][3]; /* guest_phys, size, memfd offset */
	uint64_t alloc_next;

	uint64_t features;
	struct vd_queue q[BH_MAX_QUEUES];
	struct bh_vdriver_info info;

	bool needs_reset;
	char needs_reset_reason[256];
	unsigned int nerrors;
	char error_message[256];
	struct vd_counter counters[BH_VDRIVER_MAX_COUNTERS];
	unsigned int ncounters;

	/* cfg.inflight: the records memfd, and the last activation, which
	 * bh_vdriver_respawn hands to the next worker. */
	int inflight_fd;
	uint8_t *inflight;
	uint64_t inflight_size;
	struct bh_vdriver_vq_addr act_q[BH_MAX_QUEUES];
	unsigned int act_n;

	/* The dirty log memfd last handed over, and its mapping here. */
	int log_fd;
	uint8_t *log;
	uint64_t log_size;

	/* Device-specific frames from the worker, oldest first, until
	 * bh_vdriver_recv_ctl takes them. */
	struct bh_frame ctlq[BH_VDRIVER_MAX_CTL];
	unsigned int ctlq_head, ctlq_len;
};

static const char *role_of(Bh__WorkerSetup__BackendCase type)
{
	switch (type) {
	case BH__WORKER_SETUP__BACKEND_BLK:
		return "dev-blk";
	case BH__WORKER_SETUP__BACKEND_CONSOLE:
		return "dev-console";
	case BH__WORKER_SETUP__BACKEND_RNG:
		return "dev-rng";
	case BH__WORKER_SETUP__BACKEND_NET:
		return "dev-net";
	case BH__WORKER_SETUP__BACKEND_VSOCK:
		return "dev-vsock";
	case BH__WORKER_SETUP__BACKEND_PMEM:
		return "dev-pmem";
	default:
		return NULL;
	}
}

static int64_t deadline_after(int timeout_ms)
{
	return (int64_t)bh_now_ns() + (int64_t)timeout_ms * 1000000LL;
}

/* Milliseconds left until deadline, rounded up, at least 0. */
static int ms_left(int64_t deadline)
{
	int64_t left = deadline - (int64_t)bh_now_ns();

	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

/* ---- guest RAM ----------------------------------------------------------- */

void *bh_vdriver_gpa(struct bh_vdriver *d, uint64_t gpa, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < d->nregions; i++) {
		uint64_t base = d->region[i][0], size = d->region[i][1];

		if (gpa < base || gpa - base > size ||
		    len > size - (gpa - base))
			continue;
		return d->ram + d->region[i][2] + (gpa - base);
	}
	return NULL;
}

int bh_vdriver_alloc(struct bh_vdriver *d, uint64_t size, uint64_t align,
		     uint64_t *gpa)
{
	uint64_t at;
	void *p;

	if (align == 0 || (align & (align - 1)) != 0 || size == 0)
		return -EINVAL;
	at = (d->alloc_next + align - 1) & ~(align - 1);
	p = bh_vdriver_gpa(d, at, size);
	if (!p || at < d->alloc_next)
		return -ENOMEM;
	memset(p, 0, size);
	d->alloc_next = at + size;
	*gpa = at;
	return 0;
}

static int ram_create(struct bh_vdriver *d)
{
	const struct bh_vdriver_cfg *c = &d->cfg;
	void *p;

	if (c->ram_size == 0 || c->ram_size % VD_PAGE != 0 ||
	    c->ram_size > BH_VDRIVER_HIGH_BASE ||
	    c->high_ram_size % VD_PAGE != 0)
		return -EINVAL;
	d->ram_total = c->ram_size + c->high_ram_size;
	d->memfd =
	    memfd_create("bh-vdriver-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (d->memfd < 0)
		return -errno;
	if (ftruncate(d->memfd, (off_t)d->ram_total) < 0)
		return -errno;
	/* As the controller does: nobody may shrink it under the worker. */
	if (fcntl(d->memfd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	p = mmap(NULL, (size_t)d->ram_total, PROT_READ | PROT_WRITE, MAP_SHARED,
		 d->memfd, 0);
	if (p == MAP_FAILED)
		return -errno;
	d->ram = p;
	d->region[0][0] = 0;
	d->region[0][1] = c->ram_size;
	d->region[0][2] = 0;
	d->nregions = 1;
	if (c->high_ram_size) {
		d->region[1][0] = BH_VDRIVER_HIGH_BASE;
		d->region[1][1] = c->high_ram_size;
		d->region[1][2] = c->ram_size;
		d->nregions = 2;
	}
	d->alloc_next = BH_VDRIVER_ALLOC_BASE;
	return 0;
}

/* ---- control socket ------------------------------------------------------ */

static int send_msg(struct bh_vdriver *d, Bh__MsgType type,
		    const ProtobufCMessage *msg, const int *fds,
		    unsigned int nfds)
{
	if (d->ctl < 0)
		return -EPIPE;
	return bh_frame_send(d->ctl, (uint16_t)type, msg, fds, nfds);
}

static void on_needs_reset(struct bh_vdriver *d, const struct bh_frame *f)
{
	Bh__VirtioDeviceRef *ref;

	d->needs_reset = true;
	ref = bh__virtio_device_ref__unpack(NULL, f->len, f->body);
	copy_str(d->needs_reset_reason, sizeof(d->needs_reset_reason),
		 ref && ref->reason && ref->reason[0] ? ref->reason
						      : "(no reason given)");
	if (ref)
		bh__virtio_device_ref__free_unpacked(ref, NULL);
}

static void on_error(struct bh_vdriver *d, const struct bh_frame *f)
{
	Bh__Error *e;

	d->nerrors++;
	e = bh__error__unpack(NULL, f->len, f->body);
	snprintf(d->error_message, sizeof(d->error_message), "%d %s",
		 e ? e->code : 0, e && e->message ? e->message : "");
	if (e)
		bh__error__free_unpacked(e, NULL);
}

static void on_config_update(struct bh_vdriver *d, const struct bh_frame *f)
{
	Bh__VirtioConfigUpdate *u;

	u = bh__virtio_config_update__unpack(NULL, f->len, f->body);
	if (!u)
		return;
	if (u->config.len <= sizeof(d->info.config)) {
		memcpy(d->info.config, u->config.data, u->config.len);
		d->info.config_len = u->config.len;
	}
	bh__virtio_config_update__free_unpacked(u, NULL);
}

static int on_counters(struct bh_vdriver *d, const struct bh_frame *f)
{
	Bh__Counters *c;
	size_t i;

	c = bh__counters__unpack(NULL, f->len, f->body);
	if (!c)
		return -EBADMSG;
	d->ncounters = 0;
	for (i = 0; i < c->n_counters && i < BH_VDRIVER_MAX_COUNTERS; i++) {
		copy_str(d->counters[i].name, sizeof(d->counters[i].name),
			 c->counters[i]->name);
		d->counters[i].value = c->counters[i]->value;
		d->ncounters++;
	}
	bh__counters__free_unpacked(c, NULL);
	return 0;
}

/* Handles a frame nobody waits for. */
static void handle_async(struct bh_vdriver *d, struct bh_frame *f)
{
	switch (f->type) {
	case BH__MSG_TYPE__MSG_DEVICE_NEEDS_RESET:
		on_needs_reset(d, f);
		break;
	case BH__MSG_TYPE__MSG_ERROR:
		on_error(d, f);
		break;
	case BH__MSG_TYPE__MSG_DEVICE_CONFIG_UPDATE:
		on_config_update(d, f);
		break;
	case BH__MSG_TYPE__MSG_COUNTERS:
		on_counters(d, f);
		break;
	default:
		fprintf(stderr, "vdriver: unexpected frame type %u from %s\n",
			f->type, d->id);
		break;
	}
}

/* Frames of the library's own protocol; anything else is the device's. */
static bool lib_frame(uint16_t type)
{
	switch (type) {
	case BH__MSG_TYPE__MSG_DEVICE_NEEDS_RESET:
	case BH__MSG_TYPE__MSG_ERROR:
	case BH__MSG_TYPE__MSG_DEVICE_CONFIG_UPDATE:
	case BH__MSG_TYPE__MSG_COUNTERS:
	case BH__MSG_TYPE__MSG_WORKER_READY:
	case BH__MSG_TYPE__MSG_DEVICE_RESET_DONE:
	case BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG_DONE:
	case BH__MSG_TYPE__MSG_HELLO:
		return true;
	default:
		return false;
	}
}

/* Keeps a device-specific frame (taken) for bh_vdriver_recv_ctl. */
static void ctlq_push(struct bh_vdriver *d, struct bh_frame *f)
{
	if (d->ctlq_len == BH_VDRIVER_MAX_CTL) {
		fprintf(stderr,
			"vdriver: %s: device frame type %u dropped, "
			"queue full\n",
			d->id, f->type);
		bh_frame_release(f);
		return;
	}
	d->ctlq[(d->ctlq_head + d->ctlq_len) % BH_VDRIVER_MAX_CTL] = *f;
	d->ctlq_len++;
}

static void ctlq_clear(struct bh_vdriver *d)
{
	while (d->ctlq_len) {
		bh_frame_release(&d->ctlq[d->ctlq_head]);
		d->ctlq_head = (d->ctlq_head + 1) % BH_VDRIVER_MAX_CTL;
		d->ctlq_len--;
	}
}

/* The peer is gone: later sends fail with -EPIPE instead of SIGPIPE. */
static void ctl_lost(struct bh_vdriver *d)
{
	bh_closep(&d->ctl);
	bh_frame_reader_reset(&d->rd);
}

/*
 * Reads frames until one of type want or want2 (0: none) arrives (returned
 * in *out, caller releases it) or the deadline. want 0 waits for nothing:
 * returns 0 at the deadline after handling whatever came. Frames of other
 * types are handled on the way (NEEDS_RESET, ERROR, ... are recorded).
 */
static int wait_frame2(struct bh_vdriver *d, uint16_t want, uint16_t want2,
		       int64_t deadline, struct bh_frame *out)
{
	for (;;) {
		struct pollfd p;
		struct bh_frame f;
		int r;

		if (d->ctl < 0)
			return -EPIPE;
		r = bh_frame_read(d->ctl, &d->rd, &f);
		if (r < 0) {
			ctl_lost(d);
			return -EPIPE;
		}
		if (r == 1) {
			if (want && (f.type == want || f.type == want2)) {
				*out = f;
				return 1;
			}
			if (!lib_frame(f.type)) {
				ctlq_push(d, &f);
				continue;
			}
			handle_async(d, &f);
			bh_frame_release(&f);
			continue;
		}
		p.fd = d->ctl;
		p.events = POLLIN;
		p.revents = 0;
		r = poll(&p, 1, ms_left(deadline));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			return want ? -ETIMEDOUT : 0;
	}
}

static int wait_frame(struct bh_vdriver *d, uint16_t want, int64_t deadline,
		      struct bh_frame *out)
{
	return wait_frame2(d, want, 0, deadline, out);
}

int bh_vdriver_poll(struct bh_vdriver *d, int timeout_ms)
{
	int r = wait_frame(d, 0, deadline_after(timeout_ms), NULL);

	return r < 0 ? r : 0;
}

int bh_vdriver_send_ctl(struct bh_vdriver *d, uint16_t type,
			const ProtobufCMessage *msg, const int *fds,
			unsigned int nfds)
{
	return send_msg(d, (Bh__MsgType)type, msg, fds, nfds);
}

int bh_vdriver_recv_ctl(struct bh_vdriver *d, struct bh_frame *out,
			int timeout_ms)
{
	int64_t deadline = deadline_after(timeout_ms);

	for (;;) {
		struct pollfd p;
		struct bh_frame f;
		int r;

		if (d->ctlq_len) {
			*out = d->ctlq[d->ctlq_head];
			d->ctlq_head = (d->ctlq_head + 1) % BH_VDRIVER_MAX_CTL;
			d->ctlq_len--;
			return 1;
		}
		if (d->ctl < 0)
			return -EPIPE;
		r = bh_frame_read(d->ctl, &d->rd, &f);
		if (r < 0) {
			ctl_lost(d);
			return -EPIPE;
		}
		if (r == 1) {
			if (lib_frame(f.type)) {
				handle_async(d, &f);
				bh_frame_release(&f);
			} else {
				ctlq_push(d, &f);
			}
			continue;
		}
		p.fd = d->ctl;
		p.events = POLLIN;
		p.revents = 0;
		r = poll(&p, 1, ms_left(deadline));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
	}
}

static int hello(struct bh_vdriver *d, int timeout_ms)
{
	int64_t deadline = deadline_after(timeout_ms);
	struct bh_frame f;
	int r;

	r = bh_hello_send(d->ctl, "controller");
	if (r < 0)
		return r;
	r = wait_frame(d, BH__MSG_TYPE__MSG_HELLO, deadline, &f);
	if (r < 0)
		return r;
	r = bh_hello_check(&f, role_of(d->cfg.type));
	bh_frame_release(&f);
	return r;
}

/* ---- life cycle ---------------------------------------------------------- */

static void queue_free(struct vd_queue *vq)
{
	bh_closep(&vq->kick_fd);
	bh_closep(&vq->call_fd);
	free(vq->next);
	free(vq->chain_n);
	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
}

static void inflight_free(struct bh_vdriver *d)
{
	if (d->inflight)
		munmap(d->inflight, (size_t)d->inflight_size);
	d->inflight = NULL;
	d->inflight_size = 0;
	bh_closep(&d->inflight_fd);
}

/*
 * A fresh records memfd sized as the controller sizes it, holding len bytes
 * of records (NULL: zeroed). It replaces the old one only once it is made,
 * so records may point into the old mapping.
 */
static int inflight_create(struct bh_vdriver *d, const void *records,
			   size_t len)
{
	uint64_t size =
	    BH_INFLIGHT_TOTAL(d->info.num_queues, d->info.max_queue_size);
	void *p;
	int fd, r;

	if (size == 0 || (records && len != size))
		return -EINVAL;
	fd = memfd_create("vdriver-inflight", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto err;
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto err;
	if (records)
		memcpy(p, records, len);
	inflight_free(d);
	d->inflight_fd = fd;
	d->inflight = p;
	d->inflight_size = size;
	return 0;
err:
	r = -errno;
	close(fd);
	return r;
}

void *bh_vdriver_inflight(struct bh_vdriver *d, unsigned int q)
{
	if (!d->inflight || q >= d->info.num_queues)
		return NULL;
	return d->inflight + q * BH_INFLIGHT_BYTES(d->info.max_queue_size);
}

void *bh_vdriver_inflight_region(struct bh_vdriver *d, size_t *size)
{
	*size = d->inflight ? (size_t)d->inflight_size : 0;
	return d->inflight;
}

static void log_free(struct bh_vdriver *d)
{
	if (d->log)
		munmap(d->log, (size_t)d->log_size);
	d->log = NULL;
	d->log_size = 0;
	bh_closep(&d->log_fd);
}

static void vd_free(struct bh_vdriver *d)
{
	unsigned int i;

	for (i = 0; i < BH_MAX_QUEUES; i++)
		queue_free(&d->q[i]);
	bh_frame_reader_reset(&d->rd);
	ctlq_clear(d);
	bh_closep(&d->ctl);
	inflight_free(d);
	log_free(d);
	if (d->ram)
		munmap(d->ram, (size_t)d->ram_total);
	bh_closep(&d->memfd);
	free(d);
}

static int launch(struct bh_vdriver *d);

int bh_vdriver_spawn(const struct bh_vdriver_cfg *cfg, struct bh_vdriver **out)
{
	struct bh_vdriver *d;
	unsigned int i;
	int r;

	*out = NULL;
	if (!cfg || !cfg->binary || !role_of(cfg->type))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->ctl = -1;
	d->memfd = -1;
	d->inflight_fd = -1;
	d->log_fd = -1;
	d->pid = -1;
	for (i = 0; i < BH_MAX_QUEUES; i++) {
		d->q[i].kick_fd = -1;
		d->q[i].call_fd = -1;
	}
	bh_frame_reader_init(&d->rd, BH_FRAME_MAX_BODY);
	copy_str(d->id, sizeof(d->id), cfg->id ? cfg->id : "vdrv0");
	copy_str(d->log_level, sizeof(d->log_level),
		 cfg->log_level ? cfg->log_level : "warn");
	copy_str(d->binary, sizeof(d->binary), cfg->binary);
	d->cfg.id = d->id;
	d->cfg.log_level = d->log_level;
	d->cfg.binary = d->binary;
	if (cfg->selftest_open) {
		copy_str(d->selftest_open, sizeof(d->selftest_open),
			 cfg->selftest_open);
		d->cfg.selftest_open = d->selftest_open;
	}

	r = ram_create(d);
	if (r < 0)
		goto err;
	r = launch(d);
	if (r < 0)
		goto err;
	*out = d;
	return hello(d, BH_VDRIVER_TIMEOUT_MS);
err:
	vd_free(d);
	return r;
}

/* Starts the worker process on a new control socket (non-blocking). */
static int launch(struct bh_vdriver *d)
{
	struct bh_spawn_fd map;
	char *argv[9];
	unsigned int argc = 0;
	int sv[2] = { -1, -1 };
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	argv[argc++] = d->binary;
	argv[argc++] = "--id";
	argv[argc++] = d->id;
	argv[argc++] = "--log-level";
	argv[argc++] = d->log_level;
	if (d->cfg.selftest_open) {
		argv[argc++] = "--selftest-open";
		argv[argc++] = d->selftest_open;
	}
	argv[argc] = NULL;
	map.src = sv[1];
	map.dst = BH_CHILD_FD_CONTROL;
	/* As the controller spawns its workers. */
	r = bh_spawn_ns(
	    d->binary, argv, &map, 1,
	    BH_SPAWN_PIDNS |
		(d->cfg.strict_sandbox ? BH_SPAWN_PIDNS_REQUIRED : 0),
	    &d->pid, NULL);
	bh_closep(&sv[1]);
	if (r < 0) {
		bh_closep(&sv[0]);
		d->pid = -1;
		return r;
	}
	d->reaped = false;
	d->ctl = sv[0];
	/* Reads never block (bh_frame_read returns 0 instead); sends poll. */
	if (fcntl(d->ctl, F_SETFL, fcntl(d->ctl, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int bh_vdriver_setup(struct bh_vdriver *d, int timeout_ms)
{
	Bh__WorkerSetup ws = BH__WORKER_SETUP__INIT;
	Bh__MemRegion mr[2] = { BH__MEM_REGION__INIT, BH__MEM_REGION__INIT };
	Bh__MemRegion *mrp[2] = { &mr[0], &mr[1] };
	Bh__BlkSetup blk = BH__BLK_SETUP__INIT;
	Bh__ConsoleSetup con = BH__CONSOLE_SETUP__INIT;
	Bh__RngSetup rng = BH__RNG_SETUP__INIT;
	Bh__NetSetup net = BH__NET_SETUP__INIT;
	Bh__VsockSetup vsock = BH__VSOCK_SETUP__INIT;
	Bh__PmemSetup pmem = BH__PMEM_SETUP__INIT;
	Bh__WorkerReady *rdy;
	int fds[BH_FRAME_MAX_FDS];
	struct bh_frame f;
	unsigned int i;
	int r;

	if (d->ctl < 0)
		return -EPIPE;
	ws.id = d->id;
	for (i = 0; i < d->nregions; i++) {
		mr[i].guest_phys = d->region[i][0];
		mr[i].size = d->region[i][1];
		mr[i].memfd_offset = d->region[i][2];
	}
	ws.n_regions = d->nregions;
	ws.regions = mrp;
	ws.memfd_size = d->ram_total;
	ws.backend_case = d->cfg.type;
	ws.strict_sandbox = d->cfg.strict_sandbox;
	switch (d->cfg.type) {
	case BH__WORKER_SETUP__BACKEND_BLK:
		ws.blk = d->cfg.backend ? (Bh__BlkSetup *)d->cfg.backend : &blk;
		break;
	case BH__WORKER_SETUP__BACKEND_CONSOLE:
		ws.console =
		    d->cfg.backend ? (Bh__ConsoleSetup *)d->cfg.backend : &con;
		break;
	case BH__WORKER_SETUP__BACKEND_NET:
		ws.net = d->cfg.backend ? (Bh__NetSetup *)d->cfg.backend : &net;
		break;
	case BH__WORKER_SETUP__BACKEND_VSOCK:
		vsock.cid = 3;
		ws.vsock =
		    d->cfg.backend ? (Bh__VsockSetup *)d->cfg.backend : &vsock;
		break;
	case BH__WORKER_SETUP__BACKEND_PMEM:
		pmem.guest_phys = 1ULL << 32;
		pmem.size = 2ULL << 20;
		ws.pmem =
		    d->cfg.backend ? (Bh__PmemSetup *)d->cfg.backend : &pmem;
		break;
	default:
		ws.rng = d->cfg.backend ? (Bh__RngSetup *)d->cfg.backend : &rng;
		break;
	}
	if (d->cfg.n_backend_fds + 1 > BH_FRAME_MAX_FDS)
		return -EINVAL;
	fds[0] = d->memfd;
	for (i = 0; i < d->cfg.n_backend_fds; i++)
		fds[i + 1] = d->cfg.backend_fds[i];
	r = send_msg(d, BH__MSG_TYPE__MSG_WORKER_SETUP, &ws.base, fds,
		     d->cfg.n_backend_fds + 1);
	if (r < 0)
		return r;
	r = wait_frame(d, BH__MSG_TYPE__MSG_WORKER_READY,
		       deadline_after(timeout_ms), &f);
	if (r < 0)
		return r;
	rdy = bh__worker_ready__unpack(NULL, f.len, f.body);
	bh_frame_release(&f);
	if (!rdy || !rdy->device) {
		if (rdy)
			bh__worker_ready__free_unpacked(rdy, NULL);
		return -EBADMSG;
	}
	d->info.device_type = rdy->device->device_type;
	d->info.device_features = rdy->device->device_features;
	d->info.num_queues = rdy->device->num_queues;
	d->info.max_queue_size = rdy->device->max_queue_size;
	d->info.config_len = rdy->device->config.len;
	r = 0;
	if (d->info.config_len > sizeof(d->info.config))
		r = -EMSGSIZE;
	else if (d->info.config_len)
		memcpy(d->info.config, rdy->device->config.data,
		       d->info.config_len);
	bh__worker_ready__free_unpacked(rdy, NULL);
	return r;
}

int bh_vdriver_start(const struct bh_vdriver_cfg *cfg, struct bh_vdriver **out)
{
	struct bh_vdriver *d;
	int r;

	r = bh_vdriver_spawn(cfg, &d);
	if (r == 0)
		r = bh_vdriver_setup(d, BH_VDRIVER_TIMEOUT_MS);
	if (r < 0) {
		bh_vdriver_stop(d, 1000, NULL);
		*out = NULL;
		return r;
	}
	*out = d;
	return 0;
}

static bool reap(struct bh_vdriver *d, bool block)
{
	pid_t p;

	if (d->reaped)
		return true;
	if (d->pid <= 0)
		return false;
	do {
		p = waitpid(d->pid, &d->status, block ? 0 : WNOHANG);
	} while (p < 0 && errno == EINTR);
	if (p == d->pid) {
		d->reaped = true;
		return true;
	}
	return false;
}

int bh_vdriver_wait_exit(struct bh_vdriver *d, int timeout_ms, int *status)
{
	int64_t deadline = deadline_after(timeout_ms);

	for (;;) {
		if (reap(d, false)) {
			if (status)
				*status = d->status;
			return 0;
		}
		if (ms_left(deadline) == 0)
			return -ETIMEDOUT;
		/* Also notices the socket closing, and keeps it drained. */
		if (d->ctl >= 0)
			bh_vdriver_poll(d, 5);
		else
			usleep(2000);
	}
}

bool bh_vdriver_alive(struct bh_vdriver *d)
{
	return !reap(d, false);
}

const char *bh_vdriver_describe_exit(struct bh_vdriver *d, char *buf,
				     size_t len)
{
	if (!reap(d, false)) {
		snprintf(buf, len, "running");
		return buf;
	}
	return bh_describe_status(d->status, buf, len);
}

pid_t bh_vdriver_pid(const struct bh_vdriver *d)
{
	return d->pid;
}

const struct bh_vdriver_info *bh_vdriver_info(const struct bh_vdriver *d)
{
	return &d->info;
}

int bh_vdriver_stop(struct bh_vdriver *d, int timeout_ms, int *status)
{
	Bh__Quit q = BH__QUIT__INIT;
	int r = 0;

	if (!d)
		return 0;
	if (d->pid > 0 && !d->reaped) {
		send_msg(d, BH__MSG_TYPE__MSG_QUIT, &q.base, NULL, 0);
		if (bh_vdriver_wait_exit(d, timeout_ms, NULL) < 0) {
			kill(d->pid, SIGKILL);
			reap(d, true);
			r = -ETIMEDOUT;
		}
	}
	if (r == 0 && d->reaped &&
	    !(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0))
		r = -ECHILD;
	if (status)
		*status = d->reaped ? d->status : 0;
	vd_free(d);
	return r;
}

/* ---- queues -------------------------------------------------------------- */

static struct vd_queue *queue_get(struct bh_vdriver *d, unsigned int q)
{
	if (q >= BH_MAX_QUEUES || !d->q[q].set)
		return NULL;
	return &d->q[q];
}

/* Zeroes the rings and rebuilds the free list. */
static void queue_clear(struct vd_queue *vq)
{
	unsigned int i;

	memset(vq->desc, 0, sizeof(*vq->desc) * vq->size);
	memset(vq->avail, 0, sizeof(uint16_t) * (3u + vq->size));
	memset(vq->used, 0, 6 + sizeof(struct vd_used_elem) * vq->size);
	for (i = 0; i < vq->size; i++) {
		vq->next[i] = (uint16_t)(i + 1);
		vq->chain_n[i] = 0;
	}
	vq->free_head = 0;
	vq->num_free = vq->size;
	vq->avail_idx = 0;
	vq->kicked_idx = 0;
	vq->last_used = 0;
	vq->calls = 0;
	vq->raw = false;
}

int bh_vdriver_queue_setup(struct bh_vdriver *d, unsigned int q, uint16_t size,
			   uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vd_queue *vq;
	uint64_t ind;
	int r;

	if (q >= BH_MAX_QUEUES || size == 0 || (size & (size - 1)))
		return -EINVAL;
	vq = &d->q[q];
	queue_free(vq);
	vq->desc = bh_vdriver_gpa(d, desc, 16ULL * size);
	vq->avail = bh_vdriver_gpa(d, avail, 6ULL + 2ULL * size);
	vq->used = bh_vdriver_gpa(d, used, 6ULL + 8ULL * size);
	if (!vq->desc || !vq->avail || !vq->used || desc % 16 || avail % 2 ||
	    used % 4) {
		memset(vq, 0, sizeof(*vq));
		vq->kick_fd = vq->call_fd = -1;
		return -EFAULT;
	}
	r = bh_vdriver_alloc(d, 16ULL * BH_VDRIVER_MAX_INDIRECT * size, 16,
			     &ind);
	if (r < 0)
		return r;
	vq->next = calloc(size, sizeof(*vq->next));
	vq->chain_n = calloc(size, sizeof(*vq->chain_n));
	if (!vq->next || !vq->chain_n) {
		queue_free(vq);
		return -ENOMEM;
	}
	vq->used_ring = (struct vd_used_elem *)(vq->used + 2);
	vq->ind =
	    bh_vdriver_gpa(d, ind, 16ULL * BH_VDRIVER_MAX_INDIRECT * size);
	vq->ind_gpa = ind;
	vq->size = size;
	vq->desc_gpa = desc;
	vq->avail_gpa = avail;
	vq->used_gpa = used;
	vq->set = true;
	queue_clear(vq);
	return 0;
}

int bh_vdriver_queue_alloc(struct bh_vdriver *d, unsigned int q, uint16_t size)
{
	uint64_t desc, avail, used;
	int r;

	r = bh_vdriver_alloc(d, 16ULL * size, VD_PAGE, &desc);
	if (r == 0)
		r = bh_vdriver_alloc(d, 6ULL + 2ULL * size, VD_PAGE, &avail);
	if (r == 0)
		r = bh_vdriver_alloc(d, 6ULL + 8ULL * size, VD_PAGE, &used);
	if (r < 0)
		return r;
	return bh_vdriver_queue_setup(d, q, size, desc, avail, used);
}

unsigned int bh_vdriver_num_free(const struct bh_vdriver *d, unsigned int q)
{
	if (q >= BH_MAX_QUEUES || !d->q[q].set)
		return 0;
	return d->q[q].num_free;
}

/* Fresh eventfds for queue slot i (the old ones are closed). */
static int queue_eventfds(struct vd_queue *vq)
{
	bh_closep(&vq->kick_fd);
	bh_closep(&vq->call_fd);
	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0)
		return -errno;
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->call_fd < 0)
		return -errno;
	return 0;
}

int bh_vdriver_activate_raw(struct bh_vdriver *d, uint64_t driver_features,
			    const struct bh_vdriver_vq_addr *qs, unsigned int n)
{
	Bh__DeviceActivate act = BH__DEVICE_ACTIVATE__INIT;
	Bh__VirtQueue vqs[BH_MAX_QUEUES];
	Bh__VirtQueue *vqp[BH_MAX_QUEUES];
	int fds[2 * BH_MAX_QUEUES + 1];
	unsigned int i;
	int r;

	if (n > BH_MAX_QUEUES)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		struct vd_queue *vq = &d->q[i];

		r = queue_eventfds(vq);
		if (r < 0)
			return r;
		bh__virt_queue__init(&vqs[i]);
		vqs[i].index = qs[i].index;
		vqs[i].size = qs[i].size;
		vqs[i].desc = qs[i].desc;
		vqs[i].avail = qs[i].avail;
		vqs[i].used = qs[i].used;
		vqs[i].enabled = qs[i].enabled;
		vqp[i] = &vqs[i];
		fds[2 * i] = vq->kick_fd;
		fds[2 * i + 1] = vq->call_fd;
	}
	act.driver_features = driver_features;
	act.n_queues = n;
	act.queues = vqp;
	d->features = driver_features;
	if (d->cfg.inflight) {
		r = inflight_create(d, NULL, 0);
		if (r < 0)
			return r;
		act.inflight_size = d->inflight_size;
		fds[2 * n] = d->inflight_fd;
		memcpy(d->act_q, qs, n * sizeof(*qs));
		d->act_n = n;
	}
	return send_msg(d, BH__MSG_TYPE__MSG_DEVICE_ACTIVATE, &act.base, fds,
			2 * n + (d->cfg.inflight ? 1 : 0));
}

/* Kills the worker if it still runs and starts a new one on the same guest
 * RAM (handshake, setup), as the controller replaces a worker. */
static int relaunch(struct bh_vdriver *d, int timeout_ms)
{
	int status, r;

	if (!d->reaped && d->pid > 0) {
		kill(d->pid, SIGKILL);
		if (waitpid(d->pid, &status, 0) == d->pid) {
			d->reaped = true;
			d->status = status;
		}
	}
	ctl_lost(d);
	bh_frame_reader_init(&d->rd, BH_FRAME_MAX_BODY);
	d->needs_reset = false;
	r = launch(d);
	if (r == 0)
		r = hello(d, timeout_ms);
	if (r == 0)
		r = bh_vdriver_setup(d, timeout_ms);
	return r;
}

/* Hands the worker the last activation with the same eventfds and the
 * records memfd, resume set (and failed as given). */
static int activate_resume(struct bh_vdriver *d, bool failed)
{
	Bh__DeviceActivate act = BH__DEVICE_ACTIVATE__INIT;
	Bh__VirtQueue vqs[BH_MAX_QUEUES];
	Bh__VirtQueue *vqp[BH_MAX_QUEUES];
	int fds[2 * BH_MAX_QUEUES + 1];
	unsigned int i, n = d->act_n;

	for (i = 0; i < n; i++) {
		const struct bh_vdriver_vq_addr *q = &d->act_q[i];

		bh__virt_queue__init(&vqs[i]);
		vqs[i].index = q->index;
		vqs[i].size = q->size;
		vqs[i].desc = q->desc;
		vqs[i].avail = q->avail;
		vqs[i].used = q->used;
		vqs[i].enabled = q->enabled;
		vqp[i] = &vqs[i];
		/* The same eventfds: KVM would keep signalling these. */
		fds[2 * i] = d->q[i].kick_fd;
		fds[2 * i + 1] = d->q[i].call_fd;
	}
	fds[2 * n] = d->inflight_fd;
	act.driver_features = d->features;
	act.n_queues = n;
	act.queues = vqp;
	act.inflight_size = d->inflight_size;
	act.resume = true;
	act.failed = failed;
	return send_msg(d, BH__MSG_TYPE__MSG_DEVICE_ACTIVATE, &act.base, fds,
			2 * n + 1);
}

int bh_vdriver_respawn(struct bh_vdriver *d, bool failed, int timeout_ms)
{
	int r;

	if (!d->cfg.inflight || !d->inflight)
		return -EINVAL;
	r = relaunch(d, timeout_ms);
	return r < 0 ? r : activate_resume(d, failed);
}

int bh_vdriver_restore(struct bh_vdriver *d, const void *records, size_t len,
		       int timeout_ms)
{
	int r;

	if (!d->cfg.inflight || !d->inflight || !records ||
	    len != d->inflight_size)
		return -EINVAL;
	r = relaunch(d, timeout_ms);
	/* The restored VM starts paused: the worker is paused before it
	 * sees its queues. */
	if (r == 0)
		r = bh_vdriver_pause(d, timeout_ms);
	if (r == 0)
		r = inflight_create(d, records, len);
	return r < 0 ? r : activate_resume(d, false);
}

int bh_vdriver_activate(struct bh_vdriver *d, uint64_t driver_features)
{
	struct bh_vdriver_vq_addr qs[BH_MAX_QUEUES];
	unsigned int i, n = 0;

	for (i = 0; i < BH_MAX_QUEUES && d->q[i].set; i++) {
		qs[n].index = i;
		qs[n].size = d->q[i].size;
		qs[n].desc = d->q[i].desc_gpa;
		qs[n].avail = d->q[i].avail_gpa;
		qs[n].used = d->q[i].used_gpa;
		qs[n].enabled = true;
		n++;
	}
	return bh_vdriver_activate_raw(d, driver_features, qs, n);
}

/* ---- requests ------------------------------------------------------------ */

static void desc_put(struct vd_desc *dst, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	dst->addr = addr;
	dst->len = len;
	dst->flags = flags;
	dst->next = next;
}

/* Makes entry avail_idx visible: ring slot first, then the index. */
static void publish(struct vd_queue *vq, uint16_t head)
{
	vq->avail[2 + vq->avail_idx % vq->size] = head;
	vq->avail_idx++;
	__atomic_store_n(&vq->avail[1], vq->avail_idx, __ATOMIC_RELEASE);
}

int bh_vdriver_add(struct bh_vdriver *d, unsigned int q,
		   const struct bh_vdriver_buf *bufs, unsigned int n,
		   unsigned int flags, uint16_t *head_out)
{
	struct vd_queue *vq = queue_get(d, q);
	bool indirect = flags & BH_VDRIVER_INDIRECT;
	unsigned int i, need;
	uint16_t head, cur;

	if (!vq || n == 0 || (indirect && n > BH_VDRIVER_MAX_INDIRECT))
		return -EINVAL;
	need = indirect ? 1 : n;
	if (vq->num_free < need)
		return -ENOSPC;
	head = vq->free_head;
	if (indirect) {
		struct vd_desc *t =
		    vq->ind + (size_t)head * BH_VDRIVER_MAX_INDIRECT;

		for (i = 0; i < n; i++)
			desc_put(
			    &t[i], bufs[i].gpa, bufs[i].len,
			    (uint16_t)((i + 1 < n ? BH_VRING_DESC_F_NEXT : 0) |
				       (bufs[i].writable ? BH_VRING_DESC_F_WRITE
							 : 0)),
			    (uint16_t)(i + 1 < n ? i + 1 : 0));
		desc_put(&vq->desc[head],
			 vq->ind_gpa + 16ULL * BH_VDRIVER_MAX_INDIRECT * head,
			 16u * n, BH_VRING_DESC_F_INDIRECT, 0);
		vq->free_head = vq->next[head];
	} else {
		cur = head;
		for (i = 0; i < n; i++) {
			uint16_t nx = vq->next[cur];
			uint16_t fl =
			    bufs[i].writable ? BH_VRING_DESC_F_WRITE : 0;

			if (i + 1 < n)
				fl |= BH_VRING_DESC_F_NEXT;
			desc_put(&vq->desc[cur], bufs[i].gpa, bufs[i].len, fl,
				 i + 1 < n ? nx : 0);
			if (i + 1 < n)
				cur = nx;
			else
				vq->free_head = nx;
		}
	}
	vq->num_free -= need;
	vq->chain_n[head] = (uint16_t)need;
	publish(vq, head);
	if (head_out)
		*head_out = head;
	return 0;
}

static int kick(struct vd_queue *vq)
{
	uint64_t one = 1;

	if (vq->kick_fd < 0)
		return -EBADF;
	vq->kicked_idx = vq->avail_idx;
	if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

int bh_vdriver_kick(struct bh_vdriver *d, unsigned int q)
{
	struct vd_queue *vq = queue_get(d, q);

	if (!vq)
		return -EINVAL;
	/* Orders the avail index store before whatever the kick wakes. */
	atomic_thread_fence(memory_order_seq_cst);
	return kick(vq);
}

int bh_vdriver_kick_if_needed(struct bh_vdriver *d, unsigned int q)
{
	struct vd_queue *vq = queue_get(d, q);
	bool need;
	int r;

	if (!vq)
		return -EINVAL;
	/* The device's flags/avail_event must be read after our index
	 * store is visible, or both sides may skip the notification. */
	atomic_thread_fence(memory_order_seq_cst);
	if (d->features & (1ULL << 29)) {
		uint16_t ev = __atomic_load_n(
		    (uint16_t *)&vq->used_ring[vq->size], __ATOMIC_ACQUIRE);
		uint16_t new_idx = vq->avail_idx, old = vq->kicked_idx;

		need = (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
	} else {
		need = !(__atomic_load_n(&vq->used[0], __ATOMIC_ACQUIRE) & 1);
	}
	if (!need)
		return 0;
	r = kick(vq);
	return r < 0 ? r : 1;
}

int bh_vdriver_submit(struct bh_vdriver *d, unsigned int q,
		      const struct bh_vdriver_buf *bufs, unsigned int n,
		      unsigned int flags, uint16_t *head)
{
	int r = bh_vdriver_add(d, q, bufs, n, flags, head);

	return r < 0 ? r : bh_vdriver_kick(d, q);
}

int bh_vdriver_get_used(struct bh_vdriver *d, unsigned int q,
			struct bh_vdriver_used *out)
{
	struct vd_queue *vq = queue_get(d, q);
	struct vd_used_elem e;
	uint16_t idx, tail;
	unsigned int i, n;

	if (!vq)
		return -EINVAL;
	idx = __atomic_load_n(&vq->used[1], __ATOMIC_ACQUIRE);
	if (idx == vq->last_used)
		return 0;
	e = vq->used_ring[vq->last_used % vq->size];
	vq->last_used++;
	/* With EVENT_IDX: interrupt us again at the next entry. */
	__atomic_store_n(&vq->avail[2 + vq->size], vq->last_used,
			 __ATOMIC_RELEASE);
	out->id = e.id;
	out->len = e.len;
	if (e.id >= vq->size || vq->chain_n[e.id] == 0)
		return vq->raw ? 1 : -EPROTO;
	n = vq->chain_n[e.id];
	tail = (uint16_t)e.id;
	for (i = 1; i < n; i++)
		tail = vq->next[tail];
	vq->next[tail] = vq->free_head;
	vq->free_head = (uint16_t)e.id;
	vq->num_free += n;
	vq->chain_n[e.id] = 0;
	return 1;
}

static void drain_call(struct vd_queue *vq)
{
	uint64_t v;

	if (vq->call_fd >= 0 && read(vq->call_fd, &v, sizeof(v)) == sizeof(v))
		vq->calls += v;
}

uint64_t bh_vdriver_calls(struct bh_vdriver *d, unsigned int q)
{
	struct vd_queue *vq = queue_get(d, q);
	uint64_t n;

	if (!vq)
		return 0;
	drain_call(vq);
	n = vq->calls;
	vq->calls = 0;
	return n;
}

int bh_vdriver_wait_used(struct bh_vdriver *d, unsigned int q, int timeout_ms,
			 struct bh_vdriver_used *out)
{
	struct vd_queue *vq = queue_get(d, q);
	int64_t deadline = 0;
	bool have_deadline = false;

	if (!vq)
		return -EINVAL;
	for (;;) {
		struct pollfd p[2];
		int r;

		r = bh_vdriver_get_used(d, q, out);
		if (r != 0)
			return r;
		if (d->needs_reset)
			return -EIO;
		if (d->ctl < 0)
			return -EPIPE;
		if (!have_deadline) {
			deadline = deadline_after(timeout_ms);
			have_deadline = true;
		}
		p[0].fd = vq->call_fd;
		p[0].events = POLLIN;
		p[1].fd = d->ctl;
		p[1].events = POLLIN;
		p[0].revents = p[1].revents = 0;
		r = poll(p, 2, ms_left(deadline));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0) {
			/* A last look: the entry may be there without a
			 * call, which the caller sees in bh_vdriver_calls. */
			r = bh_vdriver_get_used(d, q, out);
			return r != 0 ? r : -ETIMEDOUT;
		}
		if (p[0].revents & POLLIN)
			drain_call(vq);
		if (p[1].revents) {
			r = bh_vdriver_poll(d, 0);
			if (r < 0 && !d->needs_reset) {
				r = bh_vdriver_get_used(d, q, out);
				return r != 0 ? r : -EPIPE;
			}
		}
	}
}

/* ---- corrupting rings ---------------------------------------------------- */

int bh_vdriver_write_desc(struct bh_vdriver *d, unsigned int q, uint16_t idx,
			  uint64_t addr, uint32_t len, uint16_t flags,
			  uint16_t next)
{
	struct vd_queue *vq = queue_get(d, q);

	if (!vq || idx >= vq->size)
		return -EINVAL;
	desc_put(&vq->desc[idx], addr, len, flags, next);
	return 0;
}

int bh_vdriver_write_desc_at(struct bh_vdriver *d, uint64_t gpa, uint64_t addr,
			     uint32_t len, uint16_t flags, uint16_t next)
{
	struct vd_desc *p = bh_vdriver_gpa(d, gpa, sizeof(*p));

	if (!p)
		return -EFAULT;
	desc_put(p, addr, len, flags, next);
	return 0;
}

int bh_vdriver_publish_raw(struct bh_vdriver *d, unsigned int q, uint16_t head)
{
	struct vd_queue *vq = queue_get(d, q);

	if (!vq)
		return -EINVAL;
	vq->raw = true;
	publish(vq, head);
	return 0;
}

int bh_vdriver_set_avail_idx(struct bh_vdriver *d, unsigned int q, uint16_t idx)
{
	struct vd_queue *vq = queue_get(d, q);

	if (!vq)
		return -EINVAL;
	vq->raw = true;
	vq->avail_idx = idx;
	__atomic_store_n(&vq->avail[1], idx, __ATOMIC_RELEASE);
	return 0;
}

/* ---- control messages ---------------------------------------------------- */

int bh_vdriver_config_write(struct bh_vdriver *d, uint32_t offset,
			    const void *data, size_t len)
{
	Bh__VirtioConfigWrite w = BH__VIRTIO_CONFIG_WRITE__INIT;

	w.offset = offset;
	w.data.data = (uint8_t *)data;
	w.data.len = len;
	return send_msg(d, BH__MSG_TYPE__MSG_DEVICE_CONFIG_WRITE, &w.base, NULL,
			0);
}

int bh_vdriver_reset(struct bh_vdriver *d, int timeout_ms)
{
	struct bh_frame f;
	unsigned int i;
	int r;

	r = send_msg(d, BH__MSG_TYPE__MSG_DEVICE_RESET, NULL, NULL, 0);
	if (r < 0)
		return r;
	r = wait_frame(d, BH__MSG_TYPE__MSG_DEVICE_RESET_DONE,
		       deadline_after(timeout_ms), &f);
	if (r < 0)
		return r;
	bh_frame_release(&f);
	for (i = 0; i < BH_MAX_QUEUES; i++) {
		struct vd_queue *vq = &d->q[i];

		bh_closep(&vq->kick_fd);
		bh_closep(&vq->call_fd);
		if (vq->set)
			queue_clear(vq);
	}
	d->needs_reset = false;
	d->needs_reset_reason[0] = '\0';
	return 0;
}

int bh_vdriver_pause_send(struct bh_vdriver *d)
{
	return send_msg(d, BH__MSG_TYPE__MSG_DEVICE_PAUSE, NULL, NULL, 0);
}

int bh_vdriver_pause_wait(struct bh_vdriver *d, int timeout_ms)
{
	struct bh_frame f;
	int r;

	r = wait_frame(d, BH__MSG_TYPE__MSG_DEVICE_PAUSED,
		       deadline_after(timeout_ms), &f);
	if (r < 0)
		return r;
	bh_frame_release(&f);
	return 0;
}

int bh_vdriver_pause(struct bh_vdriver *d, int timeout_ms)
{
	int r = bh_vdriver_pause_send(d);

	return r < 0 ? r : bh_vdriver_pause_wait(d, timeout_ms);
}

int bh_vdriver_resume(struct bh_vdriver *d)
{
	return send_msg(d, BH__MSG_TYPE__MSG_DEVICE_RESUME, NULL, NULL, 0);
}

int bh_vdriver_sync(struct bh_vdriver *d, int timeout_ms)
{
	struct bh_frame f;
	int r;

	r = send_msg(d, BH__MSG_TYPE__MSG_COUNTERS_REQUEST, NULL, NULL, 0);
	if (r < 0)
		return r;
	r = wait_frame(d, BH__MSG_TYPE__MSG_COUNTERS,
		       deadline_after(timeout_ms), &f);
	if (r < 0)
		return r;
	r = on_counters(d, &f);
	bh_frame_release(&f);
	return r;
}

int bh_vdriver_counter(const struct bh_vdriver *d, const char *name,
		       uint64_t *value)
{
	unsigned int i;

	for (i = 0; i < d->ncounters; i++) {
		if (strcmp(d->counters[i].name, name) == 0) {
			*value = d->counters[i].value;
			return 0;
		}
	}
	return -ENOENT;
}

const char *bh_vdriver_needs_reset(const struct bh_vdriver *d)
{
	return d->needs_reset ? d->needs_reset_reason : NULL;
}

unsigned int bh_vdriver_errors(const struct bh_vdriver *d,
			       const char **last_message)
{
	if (last_message)
		*last_message = d->nerrors ? d->error_message : NULL;
	return d->nerrors;
}

/* ---- dirty log ----------------------------------------------------------- */

uint8_t *bh_vdriver_ram(struct bh_vdriver *d, uint64_t *size)
{
	*size = d->ram_total;
	return d->ram;
}

uint64_t bh_vdriver_dirty_log_bytes(const struct bh_vdriver *d)
{
	uint64_t pages = (d->ram_total + VD_PAGE - 1) / VD_PAGE;

	return (pages + 63) / 64 * 8;
}

/* Sends DEVICE_DIRTY_LOG with fd (or none) and waits for the answer: 0 on
 * DONE, -code on an ERROR (recorded as bh_vdriver_errors says). */
static int dirty_log_send(struct bh_vdriver *d, bool enable, int fd,
			  int timeout_ms)
{
	Bh__DirtyLog msg = BH__DIRTY_LOG__INIT;
	struct bh_frame f;
	int r, code;

	msg.enable = enable;
	r = send_msg(d, BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG, &msg.base,
		     enable ? &fd : NULL, enable ? 1 : 0);
	if (r < 0)
		return r;
	r = wait_frame2(d, BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG_DONE,
			BH__MSG_TYPE__MSG_ERROR, deadline_after(timeout_ms),
			&f);
	if (r < 0)
		return r;
	if (f.type == BH__MSG_TYPE__MSG_DEVICE_DIRTY_LOG_DONE) {
		bh_frame_release(&f);
		return 0;
	}
	on_error(d, &f);
	bh_frame_release(&f);
	code = atoi(d->error_message);
	return code > 0 ? -code : -EPROTO;
}

int bh_vdriver_dirty_log_sized(struct bh_vdriver *d, uint64_t size,
			       int timeout_ms, uint8_t **bitmap)
{
	void *p;
	int fd, r;

	if (size == 0 || size > SIZE_MAX)
		return -EINVAL;
	fd = memfd_create("vdriver-dirty-log", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	r = dirty_log_send(d, true, fd, timeout_ms);
	if (r < 0) {
		/* The worker kept what it had: so does the driver. */
		munmap(p, (size_t)size);
		close(fd);
		return r;
	}
	log_free(d);
	d->log_fd = fd;
	d->log = p;
	d->log_size = size;
	if (bitmap)
		*bitmap = d->log;
	return 0;
}

int bh_vdriver_dirty_log(struct bh_vdriver *d, bool enable, int timeout_ms,
			 uint8_t **bitmap)
{
	int r;

	if (enable)
		return bh_vdriver_dirty_log_sized(
		    d, bh_vdriver_dirty_log_bytes(d), timeout_ms, bitmap);
	r = dirty_log_send(d, false, -1, timeout_ms);
	if (r == 0 && bitmap)
		*bitmap = d->log;
	return r;
}

void bh_vdriver_dirty_clear(struct bh_vdriver *d)
{
	if (d->log)
		memset(d->log, 0, (size_t)d->log_size);
}

bool bh_vdriver_dirty_page(const struct bh_vdriver *d, uint64_t page)
{
	if (!d->log || page / 8 >= d->log_size)
		return false;
	return __atomic_load_n(&d->log[page / 8], __ATOMIC_ACQUIRE) &
	       (1u << (page % 8));
}
