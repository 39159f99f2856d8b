/* bh-randread: 4 KiB random reads at a fixed queue depth, for the KVM
 * benchmark's guest (bench/kvm/kvm.py builds it statically and puts it into
 * the guest's initramfs as /usr/bin/bh-randread).
 *
 * Opens a block device (or file) with O_DIRECT and keeps DEPTH reads of
 * 4 KiB in flight at random 4 KiB-aligned offsets over the device (or its
 * first SIZE bytes) for SECONDS, with Linux native AIO through the raw
 * system calls (io_setup, io_submit, io_getevents, io_destroy; no libaio).
 * Offsets come from a fixed seed unless -r gives another. When the time is
 * up no more reads are submitted and those in flight are waited for; all
 * of them count. Reads still in flight 30 s after the time is up are
 * *stuck* (a lost completion or interrupt): they are not waited for.
 *
 * Prints one line:
 *   RANDREAD reads=N errors=E seconds=S iops=I depth=D bs=4096 size=B stuck=K
 * and exits 0, or 1 when any read failed or came back short (errors > 0),
 * 2 on a usage or set-up error, 3 when reads were stuck (the process may
 * then hang in its exit, which the kernel makes wait for them). Used only
 * by the benchmark; not part of Bulkhead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BS	  4096u
#define MAX_DEPTH 1024
#define DRAIN_S	  30.0

static void usage(void)
{
	fprintf(stderr,
		"usage: bh-randread [-q DEPTH] [-t SECONDS] "
		"[-s SIZE] [-r SEED] DEVICE\n"
		"  DEPTH reads of 4 KiB in flight (default 32, "
		"at most %d), for SECONDS (default 10),\n"
		"  at random 4 KiB-aligned offsets below SIZE bytes "
		"(default: the device's size)\n",
		MAX_DEPTH);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: a fixed sequence for a given seed. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static long sys_io_setup(unsigned nr, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, nr, ctx);
}

static long sys_io_destroy(aio_context_t ctx)
{
	return syscall(SYS_io_destroy, ctx);
}

static long sys_io_submit(aio_context_t ctx, long nr, struct iocb **iocbs)
{
	return syscall(SYS_io_submit, ctx, nr, iocbs);
}

static long sys_io_getevents(aio_context_t ctx, long min_nr, long nr,
			     struct io_event *events, struct timespec *timeout)
{
	return syscall(SYS_io_getevents, ctx, min_nr, nr, events, timeout);
}

static int submit(aio_context_t ctx, struct iocb *cb, int fd, void *buf,
		  uint64_t blocks, uint64_t *seed)
{
	struct iocb *list[1] = { cb };
	uint64_t slot = cb->aio_data;

	memset(cb, 0, sizeof(*cb));
	cb->aio_data = slot;
	cb->aio_lio_opcode = IOCB_CMD_PREAD;
	cb->aio_fildes = (uint32_t)fd;
	cb->aio_buf = (uint64_t)(uintptr_t)buf;
	cb->aio_nbytes = BS;
	cb->aio_offset = (int64_t)((next_rand(seed) % blocks) * BS);
	for (;;) {
		long r = sys_io_submit(ctx, 1, list);
		if (r == 1)
			return 0;
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		fprintf(stderr, "bh-randread: io_submit: %s\n",
			r < 0 ? strerror(errno) : "nothing submitted");
		return -1;
	}
}

int main(int argc, char **argv)
{
	uint64_t depth = 32, seconds = 10, size = 0,
		 seed = 0x9e3779b97f4a7c15ull;
	int c;

	while ((c = getopt(argc, argv, "q:t:s:r:h")) != -1) {
		uint64_t *dst = c == 'q'   ? &depth
				: c == 't' ? &seconds
				: c == 's' ? &size
				: c == 'r' ? &seed
					   : NULL;
		if (!dst) {
			usage();
			return 2;
		}
		if (parse_u64(optarg, dst) < 0) {
			fprintf(stderr,
				"bh-randread: -%c wants a number, not %s\n", c,
				optarg);
			return 2;
		}
	}
	if (optind != argc - 1 || depth == 0 || depth > MAX_DEPTH ||
	    seconds == 0) {
		usage();
		return 2;
	}
	if (seed == 0)
		seed = 1; /* xorshift stays at 0 */
	const char *path = argv[optind];
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bh-randread: %s: %s\n", path, strerror(errno));
		return 2;
	}
	struct stat st;
	uint64_t devsize = 0;
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "bh-randread: fstat %s: %s\n", path,
			strerror(errno));
		return 2;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &devsize) < 0) {
			fprintf(stderr, "bh-randread: BLKGETSIZE64 %s: %s\n",
				path, strerror(errno));
			return 2;
		}
	} else {
		devsize = (uint64_t)st.st_size;
	}
	if (size == 0)
		size = devsize;
	if (size > devsize) {
		fprintf(stderr,
			"bh-randread: -s %" PRIu64 " is beyond %s's %" PRIu64
			" bytes\n",
			size, path, devsize);
		return 2;
	}
	uint64_t blocks = size / BS;
	if (blocks == 0) {
		fprintf(stderr, "bh-randread: %s has less than 4 KiB\n", path);
		return 2;
	}

	static struct iocb cbs[MAX_DEPTH];
	static struct io_event events[MAX_DEPTH];
	char *bufs;
	int e = posix_memalign((void **)&bufs, BS, (size_t)depth * BS);
	if (e) {
		fprintf(stderr, "bh-randread: posix_memalign: %s\n",
			strerror(e));
		return 2;
	}
	aio_context_t ctx = 0;
	if (sys_io_setup((unsigned)depth, &ctx) < 0) {
		fprintf(stderr, "bh-randread: io_setup(%" PRIu64 "): %s\n",
			depth, strerror(errno));
		return 2;
	}

	uint64_t reads = 0, errors = 0, inflight = 0;
	double t0 = now_s();
	double end = t0 + (double)seconds;
	int status = 0;
	for (uint64_t i = 0; i < depth; i++) {
		cbs[i].aio_data = i;
		if (submit(ctx, &cbs[i], fd, bufs + i * BS, blocks, &seed) <
		    0) {
			status = 2;
			break;
		}
		inflight++;
	}
	int stopping = status != 0;
	while (inflight > 0) {
		struct timespec wait = { .tv_sec = 0, .tv_nsec = 100000000 };
		long n = sys_io_getevents(ctx, 1, (long)depth, events, &wait);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "bh-randread: io_getevents: %s\n",
				strerror(errno));
			status = 2;
			break;
		}
		double t = now_s();
		if (!stopping && t >= end)
			stopping = 1;
		if (n == 0 && t >= end + DRAIN_S)
			break;
		for (long k = 0; k < n; k++) {
			uint64_t slot = events[k].data;
			inflight--;
			if (events[k].res == (int64_t)BS) {
				reads++;
			} else {
				if (errors == 0)
					fprintf(
					    stderr,
					    "bh-randread: read at %" PRId64
					    " of %s: %s\n",
					    (int64_t)cbs[slot].aio_offset, path,
					    events[k].res < 0
						? strerror((int)-events[k].res)
						: "short read");
				errors++;
			}
			if (stopping)
				continue;
			if (submit(ctx, &cbs[slot], fd, bufs + slot * BS,
				   blocks, &seed) < 0) {
				status = 2;
				stopping = 1;
				continue;
			}
			inflight++;
		}
	}
	double secs = now_s() - t0;
	printf("RANDREAD reads=%" PRIu64 " errors=%" PRIu64
	       " seconds=%.3f iops=%.0f depth=%" PRIu64 " bs=%u size=%" PRIu64
	       " stuck=%" PRIu64 "\n",
	       reads, errors, secs, secs > 0 ? (double)reads / secs : 0.0,
	       depth, BS, size, inflight);
	fflush(stdout);
	if (inflight > 0) {
		if (!status)
			fprintf(stderr,
				"bh-randread: %" PRIu64
				" reads never completed\n",
				inflight);
		_exit(status ? status : 3);
	}
	sys_io_destroy(ctx);
	close(fd);
	free(bufs);
	if (status)
		return status;
	return errors ? 1 : 0;
}
