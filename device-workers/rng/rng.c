/* bulkhead-dev-rng: virtio-rng (virtio 1.x, 5.4). Fills each buffer the
 * driver offers from the entropy source the controller opened for it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "worker.h"

#define RNG_QUEUE_SIZE 256
/* Bytes per request at most: a guest asking for gigabytes gets a short
 * answer, which virtio-rng allows, and the worker stays responsive. */
#define RNG_MAX_PER_REQUEST (64 * 1024)

struct rng {
	int src; /* entropy source (e.g. /dev/urandom), owned */
	struct bh_vq_req req;
};

static int rng_setup(struct bh_worker *w, const Bh__WorkerSetup *s,
		     struct bh_frame *f)
{
	struct rng *rng;
	int src;

	src = bh_frame_take_fd(f, 1);
	if (src < 0) {
		bh_err("no entropy source: setup carries %u fds", f->nfds);
		return -EINVAL;
	}
	rng = calloc(1, sizeof(*rng));
	if (!rng) {
		bh_closep(&src);
		return -ENOMEM;
	}
	rng->src = src;
	w->dev = rng;
	w->device_features = 0;
	w->num_queues = 1;
	w->max_queue_size = RNG_QUEUE_SIZE;
	w->config_len = 0;
	return 0;
}

/* Reads into the request's writable buffers until they are full, the
 * per-request limit is reached or the source gives less than asked. */
static uint32_t rng_fill(struct bh_worker *w, struct rng *rng,
			 const struct bh_vq_req *req)
{
	uint32_t done = 0;

	for (unsigned int i = req->n_out; i < req->n_out + req->n_in; i++) {
		size_t want = req->iov[i].iov_len;
		ssize_t n;

		if (want > RNG_MAX_PER_REQUEST - done)
			want = RNG_MAX_PER_REQUEST - done;
		if (want == 0)
			break;
		do {
			n = read(rng->src, req->iov[i].iov_base, want);
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN)
				bh_log_ratelimited(BH_LOG_WARN,
						   "entropy source: %s",
						   strerror(errno));
			break;
		}
		done += (uint32_t)n;
		if ((size_t)n < want)
			break;
	}
	return done;
}

static void rng_queue_notify(struct bh_worker *w, unsigned int q)
{
	struct rng *rng = w->dev;
	struct bh_vq *vq = &w->vq[q];
	int r;

	while ((r = bh_vq_pop(vq, &rng->req)) == 1) {
		uint32_t n = rng_fill(w, rng, &rng->req);

		bh_vq_push(vq, rng->req.head, n);
		bh_worker_count(w, "requests", 1);
		bh_worker_count(w, "read_bytes", n);
	}
	/* A broken queue (r < 0) is reported by the worker loop. */
	bh_vq_notify(vq);
}

static const struct bh_device_ops rng_ops = {
	.name = "rng",
	.device_type = BH_VIRTIO_ID_RNG,
	.backend = BH__WORKER_SETUP__BACKEND_RNG,
	.setup = rng_setup,
	.queue_notify = rng_queue_notify,
};

int main(int argc, char **argv)
{
	return bh_worker_main(argc, argv, &rng_ops);
}
