/* bulkhead-dev-pmem: virtio-pmem (virtio 1.2, 5.19). The guest reaches the
 * region itself through the runner's memory slot; this worker only answers
 * its flush requests, with an fsync of the region's file. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "worker.h"

#define PMEM_QUEUE_SIZE 128

/* Requests (virtio 1.2, 5.19.6): a le32 type, answered with a le32
 * status. */
#define VIRTIO_PMEM_REQ_TYPE_FLUSH 0
#define VIRTIO_PMEM_RESP_OK	   0
#define VIRTIO_PMEM_RESP_EIO	   1
#define PMEM_REQ_SIZE		   4
#define PMEM_RESP_SIZE		   4

/* Config space (5.19.4): le64 start, le64 size. */
struct pmem_config {
	uint64_t start;
	uint64_t size;
} __attribute__((packed));

struct pmem {
	int fd; /* the region's file, owned: only ever fsync'd */
	bool discard_writes;
	struct bh_vq_req req;
};

/* Nothing to open, map or write: the fsync is all the backend needs. */
static const char *const pmem_syscalls[] = {
	"fsync",
	NULL,
};

static int pmem_setup(struct bh_worker *w, const Bh__WorkerSetup *s,
		      struct bh_frame *f)
{
	const Bh__PmemSetup *ps = s->pmem;
	struct pmem_config cfg;
	struct pmem *p;
	int fd;

	if (!ps || ps->size == 0 || ps->guest_phys > UINT64_MAX - ps->size) {
		bh_err("pmem setup: bad region");
		return -EINVAL;
	}
	fd = bh_frame_take_fd(f, 1);
	if (fd < 0) {
		bh_err("no region file: setup carries %u fds", f->nfds);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		bh_closep(&fd);
		return -ENOMEM;
	}
	p->fd = fd;
	p->discard_writes = ps->discard_writes;
	w->dev = p;
	w->device_features = 0;
	w->num_queues = 1;
	w->max_queue_size = PMEM_QUEUE_SIZE;
	cfg.start = htole64(ps->guest_phys);
	cfg.size = htole64(ps->size);
	memcpy(w->config, &cfg, sizeof(cfg));
	w->config_len = sizeof(cfg);
	return 0;
}

/* Copies the first len bytes of the readable buffers; 0 or -EINVAL when
 * they hold fewer. */
static int req_read(const struct bh_vq_req *req, void *buf, size_t len)
{
	uint8_t *dst = buf;

	for (unsigned int i = 0; i < req->n_out && len > 0; i++) {
		size_t l =
		    req->iov[i].iov_len < len ? req->iov[i].iov_len : len;

		memcpy(dst, req->iov[i].iov_base, l);
		dst += l;
		len -= l;
	}
	return len ? -EINVAL : 0;
}

/* The answer to one request (guest-controlled: type and lengths). */
static uint32_t pmem_handle(struct bh_worker *w, struct pmem *p,
			    const struct bh_vq_req *req)
{
	uint32_t type, status = VIRTIO_PMEM_RESP_EIO;
	int r;

	if (req_read(req, &type, sizeof(type)) < 0) {
		bh_log_ratelimited(BH_LOG_WARN, "pmem: request too short");
		bh_worker_count(w, "bad_requests", 1);
		return status;
	}
	type = le32toh(type);
	if (type != VIRTIO_PMEM_REQ_TYPE_FLUSH) {
		bh_log_ratelimited(BH_LOG_WARN, "pmem: request type %u unknown",
				   type);
		bh_worker_count(w, "unsupported", 1);
		return status;
	}
	bh_worker_count(w, "flushes", 1);
	/* A private mapping never writes to the file: nothing to flush. */
	if (p->discard_writes)
		return VIRTIO_PMEM_RESP_OK;
	/* fsync writes back the pages the guest dirtied through the
	 * runner's shared mapping of the same file, and its metadata (the
	 * file may have been grown at start). */
	do {
		r = fsync(p->fd);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		bh_log_ratelimited(BH_LOG_WARN, "pmem: fsync: %s",
				   strerror(errno));
		bh_worker_count(w, "errors", 1);
		return status;
	}
	return VIRTIO_PMEM_RESP_OK;
}

static void pmem_queue_notify(struct bh_worker *w, unsigned int q)
{
	struct pmem *p = w->dev;
	struct bh_vq *vq = &w->vq[q];
	uint32_t status;
	int r;

	while ((r = bh_vq_pop(vq, &p->req)) == 1) {
		/* No room for the answer: the driver broke the protocol. */
		if (p->req.in_len < PMEM_RESP_SIZE) {
			bh_worker_needs_reset(
			    w, "pmem request without room for its status");
			return;
		}
		status = htole32(pmem_handle(w, p, &p->req));
		bh_vq_push(vq, p->req.head,
			   (uint32_t)bh_iov_write(p->req.iov + p->req.n_out,
						  p->req.n_in, &status,
						  sizeof(status)));
		bh_worker_count(w, "requests", 1);
	}
	/* A broken queue (r < 0) is reported by the worker loop. */
	bh_vq_notify(vq);
}

/* The device has failed for good: every flush fails, as a dead nvdimm's
 * would, without touching the file. */
static uint32_t pmem_fail_request(struct bh_worker *w, unsigned int q,
				  struct bh_vq_req *req)
{
	uint32_t status = htole32(VIRTIO_PMEM_RESP_EIO);

	(void)q;
	bh_worker_count(w, "errors", 1);
	return (uint32_t)bh_iov_write(req->iov + req->n_out, req->n_in, &status,
				      sizeof(status));
}

static const struct bh_device_ops pmem_ops = {
	.name = "pmem",
	.device_type = BH_VIRTIO_ID_PMEM,
	.backend = BH__WORKER_SETUP__BACKEND_PMEM,
	.setup = pmem_setup,
	.queue_notify = pmem_queue_notify,
	.fail_request = pmem_fail_request,
	.extra_syscalls = pmem_syscalls,
};

int main(int argc, char **argv)
{
	return bh_worker_main(argc, argv, &pmem_ops);
}
