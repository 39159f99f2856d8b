/*
 * blk_bench: the native block benchmark. "time" measures a virtio-blk worker
 * (bulkhead-dev-blk driven through bh_vdriver) against the same I/O done
 * directly by one process, on an image in tmpfs, and prints the raw figures
 * as JSON; "count" does exactly N requests once, for instruction counts
 * under callgrind (bench/native/native.py runs both).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <bulkhead/util.h>

#include "blk_bench.h"

#define BB_MAX_RUNS 100

static const struct bb_target *const targets[] = {
	&bb_target_worker,
	&bb_target_uring,
	&bb_target_pread,
};

struct bb_opts {
	const char *cmd;
	const char *worker;
	const char *dir;
	const char *image;
	const char *json;
	const char *log_level;
	char target_list[64];
	uint64_t size_mib;
	unsigned int runs;
	double seconds;
	double warmup;
	unsigned int rand_qd;
	unsigned int seq_qd;
	/* count */
	uint64_t requests;
	unsigned int qd;
	uint32_t bs;
	bool write;
	int timeout_ms;
};

/* ---- shared helpers ------------------------------------------------------ */

void bb_gen_init(struct bb_gen *g, const struct bb_job *job,
		 uint64_t image_size)
{
	g->x = 0x9e3779b97f4a7c15ULL;
	g->next = 0;
	g->image_size = image_size;
	g->bs = job->bs;
	g->random = job->random;
}

uint64_t bb_gen_next(struct bb_gen *g)
{
	uint64_t off;

	if (g->random) {
		/* xorshift64: cheap next to a request, same every run */
		g->x ^= g->x << 13;
		g->x ^= g->x >> 7;
		g->x ^= g->x << 17;
		return (g->x % ((g->image_size - g->bs) / BB_BLOCK + 1)) *
		       BB_BLOCK;
	}
	if (g->next + g->bs > g->image_size)
		g->next = 0;
	off = g->next;
	g->next += g->bs;
	return off;
}

uint64_t bb_cpu_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool bb_limit_reached(const struct bb_limit *l, uint64_t issued)
{
	if (l->max_requests && issued >= l->max_requests)
		return true;
	return l->deadline_ns && bh_now_ns() >= l->deadline_ns;
}

static const struct bb_target *target_by_name(const char *name)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(targets); i++)
		if (strcmp(targets[i]->name, name) == 0)
			return targets[i];
	return NULL;
}

/* ---- the image ----------------------------------------------------------- */

static const char *fs_name(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return "unknown";
	switch (sf.f_type) {
	case TMPFS_MAGIC:
		return "tmpfs";
	case EXT4_SUPER_MAGIC:
		return "ext4";
	case BTRFS_SUPER_MAGIC:
		return "btrfs";
	case XFS_SUPER_MAGIC:
		return "xfs";
	default:
		return "other";
	}
}

/*
 * Creates the image in dir, unlinked at once so that nothing is left behind,
 * and fills it: a file of holes would read the shared zero page. Returns the
 * read-write fd or -errno.
 */
static int image_create(const char *dir, uint64_t size)
{
	char path[4096];
	uint8_t *chunk;
	int fd, r = 0;

	if (snprintf(path, sizeof(path), "%s/bh-bench-XXXXXX", dir) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	chunk = malloc(BB_MAX_BS);
	if (!chunk) {
		close(fd);
		return -ENOMEM;
	}
	for (uint64_t off = 0; off < size && r == 0; off += BB_MAX_BS) {
		size_t len = size - off < BB_MAX_BS ? size - off : BB_MAX_BS;

		for (size_t i = 0; i < len; i++)
			chunk[i] = (uint8_t)((off + i) * 131 + (off >> 20) + 3);
		if (pwrite(fd, chunk, len, (off_t)off) != (ssize_t)len)
			r = errno ? -errno : -ENOSPC;
	}
	free(chunk);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* ---- time ---------------------------------------------------------------- */

struct bb_sample {
	struct bb_result r[BB_MAX_RUNS];
	unsigned int n;
};

static int time_one(const struct bb_target *t, void *state,
		    const struct bb_job *job, double seconds,
		    struct bb_result *res)
{
	struct bb_limit lim = { 0 };
	struct bb_job j = *job;
	int r;

	/* pread has no queue: one request at a time by definition. */
	if (t == &bb_target_pread)
		j.qd = 1;
	lim.deadline_ns = bh_now_ns() + (uint64_t)(seconds * 1e9);
	memset(res, 0, sizeof(*res));
	r = t->run(state, &j, &lim, res);
	if (r < 0)
		fprintf(stderr, "blk_bench: %s on %s: %s\n", job->name, t->name,
			strerror(-r));
	return r;
}

static void json_results(FILE *f, const struct bb_sample *s)
{
	for (unsigned int i = 0; i < s->n; i++)
		fprintf(f, "%s[%llu, %llu, %llu, %llu, %llu, %llu]",
			i ? ", " : "", (unsigned long long)s->r[i].requests,
			(unsigned long long)s->r[i].bytes,
			(unsigned long long)s->r[i].elapsed_ns,
			(unsigned long long)s->r[i].cpu_ns,
			(unsigned long long)s->r[i].kicks,
			(unsigned long long)s->r[i].calls);
}

static int cmd_time(const struct bb_opts *o)
{
	const struct bb_job jobs[] = {
		{ "rand4k-read", false, true, 4096, o->rand_qd },
		{ "rand4k-read-qd1", false, true, 4096, 1 },
		{ "seq1m-read", false, false, 1u << 20, o->seq_qd },
		{ "seq1m-write", true, false, 1u << 20, o->seq_qd },
	};
	enum { NJOBS = BH_ARRAY_SIZE(jobs), NT = BH_ARRAY_SIZE(targets) };
	static struct bb_sample sample[NJOBS][NT];
	const struct bb_target *use[NT] = { NULL };
	void *state[NT] = { NULL };
	struct bb_open op = { 0 };
	const char *fs;
	char list[64], *tok, *save = NULL;
	FILE *f;
	int fd, r = 0;

	snprintf(list, sizeof(list), "%s", o->target_list);
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		const struct bb_target *t = target_by_name(tok);

		if (!t) {
			fprintf(stderr, "blk_bench: no target %s\n", tok);
			return -EINVAL;
		}
		for (size_t i = 0; i < NT; i++)
			if (targets[i] == t)
				use[i] = t;
	}
	fd = image_create(o->dir, o->size_mib << 20);
	if (fd < 0) {
		fprintf(stderr, "blk_bench: image in %s: %s\n", o->dir,
			strerror(-fd));
		return fd;
	}
	fs = fs_name(fd);
	if (strcmp(fs, "tmpfs") != 0)
		fprintf(stderr,
			"blk_bench: %s is %s, not tmpfs: the figures include "
			"its caching\n",
			o->dir, fs);
	op.image_fd = fd;
	op.image_size = o->size_mib << 20;
	op.worker = o->worker;
	op.log_level = o->log_level;
	op.timeout_ms = o->timeout_ms;
	for (size_t i = 0; i < NT && r == 0; i++)
		if (use[i])
			r = use[i]->open(&op, &state[i]);
	if (r < 0)
		goto out;

	/* Warm-up: the page cache, guest RAM and the kernel's io_uring
	 * workers in place before anything is timed. */
	for (size_t j = 0; j < NJOBS && r == 0; j++)
		for (size_t i = 0; i < NT && r == 0; i++) {
			struct bb_result res;

			if (use[i])
				r = time_one(use[i], state[i], &jobs[j],
					     o->warmup, &res);
		}
	/* Runs interleave jobs and targets so that whatever else the
	 * machine does falls on all of them alike. */
	for (unsigned int run = 0; run < o->runs && r == 0; run++) {
		for (size_t j = 0; j < NJOBS && r == 0; j++) {
			for (size_t i = 0; i < NT && r == 0; i++) {
				struct bb_sample *s = &sample[j][i];

				if (!use[i])
					continue;
				r = time_one(use[i], state[i], &jobs[j],
					     o->seconds, &s->r[s->n]);
				if (r == 0)
					s->n++;
			}
		}
		fprintf(stderr, "blk_bench: run %u of %u done\n", run + 1,
			o->runs);
	}
	if (r < 0)
		goto out;

	f = strcmp(o->json, "-") == 0 ? stdout : fopen(o->json, "w");
	if (!f) {
		r = -errno;
		fprintf(stderr, "blk_bench: %s: %s\n", o->json, strerror(-r));
		goto out;
	}
	fprintf(
	    f,
	    "{\"image\": {\"dir\": \"%s\", \"fs\": \"%s\", "
	    "\"size_mib\": %llu},\n \"runs\": %u, \"seconds\": %g,\n"
	    " \"result_fields\": [\"requests\", \"bytes\", "
	    "\"elapsed_ns\", \"cpu_ns\", \"kicks\", \"calls\"],\n \"jobs\": [",
	    o->dir, fs, (unsigned long long)o->size_mib, o->runs, o->seconds);
	for (size_t j = 0; j < NJOBS; j++) {
		bool first = true;

		fprintf(f,
			"%s\n  {\"name\": \"%s\", \"rw\": \"%s\", "
			"\"pattern\": \"%s\", \"bs\": %u, \"qd\": %u, "
			"\"targets\": {",
			j ? "," : "", jobs[j].name,
			jobs[j].write ? "write" : "read",
			jobs[j].random ? "random" : "sequential", jobs[j].bs,
			jobs[j].qd);
		for (size_t i = 0; i < NT; i++) {
			if (!use[i])
				continue;
			fprintf(f,
				"%s\n    \"%s\": {\"qd\": %u, \"results\": [",
				first ? "" : ",", use[i]->name,
				use[i] == &bb_target_pread ? 1 : jobs[j].qd);
			json_results(f, &sample[j][i]);
			fprintf(f, "]}");
			first = false;
		}
		fprintf(f, "}}");
	}
	fprintf(f, "]}\n");
	if (f != stdout && fclose(f) != 0)
		r = -errno;
out:
	for (size_t i = 0; i < NT; i++)
		if (use[i] && state[i])
			use[i]->close(state[i]);
	close(fd);
	return r;
}

/* ---- count --------------------------------------------------------------- */

/* Exactly o->requests requests on an existing image: what callgrind sees
 * beyond start-up, which a run with twice as many cancels out. */
static int cmd_count(const struct bb_opts *o)
{
	const struct bb_target *t = target_by_name(o->target_list);
	struct bb_job job = { "count", o->write, true, o->bs, o->qd };
	struct bb_limit lim = { o->requests, 0 };
	struct bb_open op = { 0 };
	struct bb_result res;
	void *state = NULL;
	off_t size;
	int fd, r;

	if (!t || !o->image || o->requests == 0) {
		fprintf(stderr, "blk_bench count: needs --target worker|uring|"
				"pread, --image and --requests\n");
		return -EINVAL;
	}
	if (t == &bb_target_pread)
		job.qd = 1;
	fd = open(o->image, O_RDWR | O_CLOEXEC);
	if (fd < 0 || (size = lseek(fd, 0, SEEK_END)) < 0) {
		r = -errno;
		fprintf(stderr, "blk_bench: %s: %s\n", o->image, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	op.image_fd = fd;
	op.image_size = (uint64_t)size & ~(uint64_t)(BB_BLOCK - 1);
	op.worker = o->worker;
	op.log_level = o->log_level;
	op.timeout_ms = o->timeout_ms;
	r = t->open(&op, &state);
	if (r == 0) {
		r = t->run(state, &job, &lim, &res);
		if (r == 0 && res.requests != o->requests)
			r = -EIO;
		t->close(state);
	}
	close(fd);
	if (r < 0)
		fprintf(stderr, "blk_bench count: %s\n", strerror(-r));
	return r;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: blk_bench time [--worker PATH] [--dir DIR] "
		"[--size-mib N] [--runs N]\n"
		"                      [--seconds S] [--warmup S] "
		"[--rand-qd N] [--seq-qd N]\n"
		"                      [--targets worker,uring,pread] "
		"[--json FILE|-]\n"
		"       blk_bench count --target worker|uring|pread "
		"--image PATH --requests N\n"
		"                      [--qd N] [--bs BYTES] [--write] "
		"[--worker PATH]\n"
		"common: [--log-level LEVEL] [--timeout-ms MS]\n"
		"The worker is bulkhead-dev-blk (default %s).\n",
		BB_DEFAULT_WORKER);
}

static int parse_uint(const char *name, const char *s, uint64_t min,
		      uint64_t max, uint64_t *out)
{
	if (bh_parse_uint(s, min, max, out) == 0)
		return 0;
	fprintf(stderr, "blk_bench: %s wants a number in [%llu, %llu]\n", name,
		(unsigned long long)min, (unsigned long long)max);
	return -EINVAL;
}

static int parse_seconds(const char *name, const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno == 0 && end != s && *end == '\0' && *out >= 0 && *out <= 3600)
		return 0;
	fprintf(stderr, "blk_bench: %s wants seconds in [0, 3600]\n", name);
	return -EINVAL;
}

static int parse_args(int argc, char **argv, struct bb_opts *o)
{
	static const struct option lopts[] = {
		{ "worker", required_argument, NULL, 'w' },
		{ "dir", required_argument, NULL, 'd' },
		{ "size-mib", required_argument, NULL, 'S' },
		{ "runs", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "rand-qd", required_argument, NULL, 'R' },
		{ "seq-qd", required_argument, NULL, 'Q' },
		{ "targets", required_argument, NULL, 't' },
		{ "target", required_argument, NULL, 't' },
		{ "json", required_argument, NULL, 'j' },
		{ "image", required_argument, NULL, 'i' },
		{ "requests", required_argument, NULL, 'n' },
		{ "qd", required_argument, NULL, 'q' },
		{ "bs", required_argument, NULL, 'b' },
		{ "write", no_argument, NULL, 'x' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c, r = 0;

	if (argc < 2) {
		usage();
		return -EINVAL;
	}
	o->cmd = argv[1];
	optind = 2;
	while (r == 0 && (c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			o->worker = optarg;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'S':
			r = parse_uint("--size-mib", optarg, 16, 1 << 20,
				       &o->size_mib);
			break;
		case 'r':
			r = parse_uint("--runs", optarg, 1, BB_MAX_RUNS, &v);
			o->runs = (unsigned int)v;
			break;
		case 's':
			r = parse_seconds("--seconds", optarg, &o->seconds);
			break;
		case 'W':
			r = parse_seconds("--warmup", optarg, &o->warmup);
			break;
		case 'R':
		case 'Q':
		case 'q':
			r = parse_uint("queue depth", optarg, 1, BB_MAX_QD, &v);
			*(c == 'R'   ? &o->rand_qd
			  : c == 'Q' ? &o->seq_qd
				     : &o->qd) = (unsigned int)v;
			break;
		case 't':
			snprintf(o->target_list, sizeof(o->target_list), "%s",
				 optarg);
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'i':
			o->image = optarg;
			break;
		case 'n':
			r = parse_uint("--requests", optarg, 1, UINT32_MAX,
				       &o->requests);
			break;
		case 'b':
			r = parse_uint("--bs", optarg, 512, BB_MAX_BS, &v);
			o->bs = (uint32_t)v;
			if (r == 0 && o->bs % 512) {
				fprintf(stderr, "blk_bench: --bs: sectors\n");
				r = -EINVAL;
			}
			break;
		case 'x':
			o->write = true;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 'T':
			r = parse_uint("--timeout-ms", optarg, 100, 3600000,
				       &v);
			o->timeout_ms = (int)v;
			break;
		default:
			usage();
			r = -EINVAL;
			break;
		}
	}
	if (r == 0 && optind != argc) {
		usage();
		r = -EINVAL;
	}
	return r;
}

int main(int argc, char **argv)
{
	struct bb_opts o = {
		.worker = BB_DEFAULT_WORKER,
		.dir = "/dev/shm",
		.json = "-",
		.log_level = "error",
		.target_list = "worker,uring,pread",
		.size_mib = 256,
		.runs = 5,
		.seconds = 2.0,
		.warmup = 0.3,
		.rand_qd = 32,
		.seq_qd = 8,
		.qd = 1,
		.bs = 4096,
		.timeout_ms = 10000,
	};
	int r;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (strcmp(o.cmd, "time") == 0)
		r = cmd_time(&o);
	else if (strcmp(o.cmd, "count") == 0)
		r = cmd_count(&o);
	else {
		usage();
		return 2;
	}
	return r < 0 ? 1 : 0;
}
