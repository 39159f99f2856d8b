/* blk_bench: what the block benchmark's targets share: the job description,
 * the offset generator and the interface each target (the worker through
 * bh_vdriver, io_uring and pread done directly) implements. */
#ifndef BH_BENCH_BLK_BENCH_H
#define BH_BENCH_BLK_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Queue depths and request sizes a target must accept. */
#define BB_MAX_QD 64
#define BB_MAX_BS (1u << 20)
/* 4 KiB-aligned random offsets, as a guest filesystem issues them. */
#define BB_BLOCK 4096u

/* One kind of I/O: a figure in the results. */
struct bb_job {
	const char *name; /* "rand4k-read" */
	bool write;
	bool random;
	uint32_t bs;
	unsigned int qd;
};

/*
 * Where a job's requests go: random 4 KiB-aligned offsets from a fixed seed
 * (so that runs and targets see the same sequence), or sequential, wrapping
 * at the end of the image.
 */
struct bb_gen {
	uint64_t x;
	uint64_t next;
	uint64_t image_size;
	uint32_t bs;
	bool random;
};

void bb_gen_init(struct bb_gen *g, const struct bb_job *job,
		 uint64_t image_size);
uint64_t bb_gen_next(struct bb_gen *g);

/* When a job stops: after max_requests completions, or once issuing stops
 * at deadline_ns (monotonic; 0 for none) and what is in flight completed. */
struct bb_limit {
	uint64_t max_requests; /* 0 for none */
	uint64_t deadline_ns;
};

struct bb_result {
	uint64_t requests;
	uint64_t bytes;
	uint64_t elapsed_ns; /* first submission to last completion */
	/* CPU time of the process doing the I/O (the worker, or this one for
	 * the direct targets), all its threads, the kernel's io_uring
	 * workers among them. */
	uint64_t cpu_ns;
	/* The worker only: kicks the driver sent and interrupts (call
	 * eventfd signals) it got; per request they show how requests were
	 * batched. */
	uint64_t kicks;
	uint64_t calls;
};

/* What a target is opened with. */
struct bb_open {
	int image_fd; /* borrowed; read-write */
	uint64_t image_size;
	const char *worker;    /* the worker target's binary */
	const char *log_level; /* the worker's --log-level */
	int timeout_ms;	       /* longest wait for the worker */
};

/* A target: open once, run jobs, close. Each returns 0 or -errno. */
struct bb_target {
	const char *name;
	int (*open)(const struct bb_open *o, void **state);
	int (*run)(void *state, const struct bb_job *job,
		   const struct bb_limit *limit, struct bb_result *out);
	void (*close)(void *state);
};

/* bh_vdriver against a bulkhead-dev-blk process. */
extern const struct bb_target bb_target_worker;
/* io_uring in this process, as the worker uses it (readv/writev on a fixed
 * file). */
extern const struct bb_target bb_target_uring;
/* pread/pwrite in this process, one request at a time. */
extern const struct bb_target bb_target_pread;

/* CPU time used so far by the process whose CPU-time clock is clk. */
uint64_t bb_cpu_ns(clockid_t clk);

/* True once the limit says to stop issuing. */
bool bb_limit_reached(const struct bb_limit *l, uint64_t issued);

#endif
