/* blk_direct: the block benchmark's baselines: the same requests done by this
 * process directly on the image, with io_uring as the worker does them (the
 * limit the worker should approach) and with plain pread/pwrite. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include <bulkhead/util.h>

#include "blk_bench.h"

/* As many ring entries as the worker's ring has. */
#define BD_RING_ENTRIES 64
#define BD_BUF_SIZE	(BB_MAX_QD * (size_t)BB_MAX_BS)

struct bd {
	int fd; /* borrowed */
	uint64_t image_size;
	/* The buffers live in a shared memfd mapping, like the guest RAM the
	 * worker copies into. */
	uint8_t *buf;
	bool uring;
	struct io_uring ring;
	struct iovec iov[BB_MAX_QD];
};

static void bd_close(void *state)
{
	struct bd *b = state;

	if (!b)
		return;
	if (b->uring)
		io_uring_queue_exit(&b->ring);
	if (b->buf)
		munmap(b->buf, BD_BUF_SIZE);
	free(b);
}

static int bd_open_common(const struct bb_open *o, struct bd **out)
{
	struct bd *b;
	int memfd, r = 0;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = o->image_fd;
	b->image_size = o->image_size;
	memfd = memfd_create("blk-bench-buffers", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, BD_BUF_SIZE) < 0) {
		r = -errno;
		goto out;
	}
	b->buf = mmap(NULL, BD_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      memfd, 0);
	if (b->buf == MAP_FAILED) {
		b->buf = NULL;
		r = -errno;
		goto out;
	}
	/* Every page present before anything is timed, as the worker's
	 * buffers are. */
	memset(b->buf, 0x5a, BD_BUF_SIZE);
out:
	bh_closep(&memfd);
	if (r < 0) {
		bd_close(b);
		return r;
	}
	*out = b;
	return 0;
}

static int bd_open_pread(const struct bb_open *o, void **state)
{
	return bd_open_common(o, (struct bd **)state);
}

static int bd_open_uring(const struct bb_open *o, void **state)
{
	struct bd *b;
	int r;

	r = bd_open_common(o, &b);
	if (r < 0)
		return r;
	r = io_uring_queue_init(BD_RING_ENTRIES, &b->ring, 0);
	if (r < 0)
		goto err;
	b->uring = true;
	/* A fixed file, as the worker's restricted ring requires. */
	r = io_uring_register_files(&b->ring, &b->fd, 1);
	if (r < 0)
		goto err;
	*state = b;
	return 0;
err:
	fprintf(stderr, "blk_bench: io_uring: %s\n", strerror(-r));
	bd_close(b);
	return r;
}

static uint64_t bd_stride(const struct bb_job *job)
{
	return job->bs < BB_BLOCK ? BB_BLOCK : job->bs;
}

static int bd_issue(struct bd *b, const struct bb_job *job, struct bb_gen *g,
		    unsigned int slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	/* Never more in flight than the ring has entries. */
	if (!sqe)
		return -EBUSY;
	b->iov[slot].iov_base = b->buf + bd_stride(job) * slot;
	b->iov[slot].iov_len = job->bs;
	if (job->write)
		io_uring_prep_writev(sqe, 0, &b->iov[slot], 1, bb_gen_next(g));
	else
		io_uring_prep_readv(sqe, 0, &b->iov[slot], 1, bb_gen_next(g));
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, slot);
	return 0;
}

static int bd_run_uring(void *state, const struct bb_job *job,
			const struct bb_limit *limit, struct bb_result *out)
{
	struct bd *b = state;
	struct bb_gen g;
	uint64_t issued = 0, done = 0, start, cpu;
	unsigned int slot;
	int r;

	if (job->qd < 1 || job->qd > BB_MAX_QD || job->qd > BD_RING_ENTRIES ||
	    job->bs > BB_MAX_BS)
		return -EINVAL;
	bb_gen_init(&g, job, b->image_size);
	cpu = bb_cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
	start = bh_now_ns();
	for (slot = 0; slot < job->qd && !bb_limit_reached(limit, issued);
	     slot++) {
		r = bd_issue(b, job, &g, slot);
		if (r < 0)
			return r;
		issued++;
	}
	while (done < issued) {
		struct io_uring_cqe *cqe;

		/* One system call submits the replacements and waits. */
		r = io_uring_submit_and_wait(&b->ring, 1);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
			int res = cqe->res;

			slot = (unsigned int)io_uring_cqe_get_data64(cqe);
			io_uring_cqe_seen(&b->ring, cqe);
			/* A tmpfs image never transfers short. */
			if (res != (int)job->bs)
				return res < 0 ? res : -EIO;
			done++;
			if (!bb_limit_reached(limit, issued)) {
				r = bd_issue(b, job, &g, slot);
				if (r < 0)
					return r;
				issued++;
			}
		}
	}
	out->elapsed_ns = bh_now_ns() - start;
	out->cpu_ns = bb_cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	out->requests = done;
	out->bytes = done * job->bs;
	return 0;
}

static int bd_run_pread(void *state, const struct bb_job *job,
			const struct bb_limit *limit, struct bb_result *out)
{
	struct bd *b = state;
	struct bb_gen g;
	uint64_t done = 0, start, cpu;

	if (job->bs > BB_MAX_BS)
		return -EINVAL;
	bb_gen_init(&g, job, b->image_size);
	cpu = bb_cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
	start = bh_now_ns();
	while (!bb_limit_reached(limit, done)) {
		uint64_t off = bb_gen_next(&g);
		ssize_t n = job->write ? pwrite(b->fd, b->buf, job->bs, off)
				       : pread(b->fd, b->buf, job->bs, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n != (ssize_t)job->bs)
			return -EIO;
		done++;
	}
	out->elapsed_ns = bh_now_ns() - start;
	out->cpu_ns = bb_cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	out->requests = done;
	out->bytes = done * job->bs;
	return 0;
}

const struct bb_target bb_target_uring = {
	.name = "uring",
	.open = bd_open_uring,
	.run = bd_run_uring,
	.close = bd_close,
};

const struct bb_target bb_target_pread = {
	.name = "pread",
	.open = bd_open_pread,
	.run = bd_run_pread,
	.close = bd_close,
};
