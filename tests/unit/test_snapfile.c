/* Snapshot files (controller/snapfile.c): round trips, and every kind of
 * damage refused with a message naming the file and the problem; guest RAM
 * saved sparse and loaded back, its damage caught range by range. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "snapfile.h"

struct fx {
	char dir[64];
	int dirfd;
};

static int setup(void **state)
{
	static struct fx fx;

	snprintf(fx.dir, sizeof(fx.dir), "/tmp/bh-test-snap-XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	fx.dirfd = open(fx.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx.dirfd >= 0);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	close(fx->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static bool has_tmp(struct fx *fx, const char *name)
{
	char tmp[128];

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	return faccessat(fx->dirfd, tmp, F_OK, 0) == 0;
}

/* Changes the byte at off of name (xor 0xff), or cuts it to len. */
static void damage(struct fx *fx, const char *name, off_t off, off_t cut)
{
	int fd = openat(fx->dirfd, name, O_RDWR | O_CLOEXEC);
	uint8_t b;

	assert_true(fd >= 0);
	if (cut >= 0) {
		assert_int_equal(ftruncate(fd, cut), 0);
	} else {
		assert_int_equal(pread(fd, &b, 1, off), 1);
		b ^= 0xff;
		assert_int_equal(pwrite(fd, &b, 1, off), 1);
	}
	close(fd);
}

static int read_state(struct fx *fx, char *err, size_t errlen)
{
	void *data;
	size_t len;
	int r = bh_snapfile_read(fx->dirfd, "state", BH_SNAP_STATE, 4096, &data,
				 &len, err, errlen);

	if (r == 0)
		free(data);
	return r;
}

static void test_round_trip(void **state)
{
	struct fx *fx = *state;
	static const char msg[] = "the state of a VM";
	char err[256];
	void *data;
	size_t len;

	assert_int_equal(bh_snapfile_write(fx->dirfd, "state", BH_SNAP_STATE,
					   msg, sizeof(msg), err, sizeof(err)),
			 0);
	assert_false(has_tmp(fx, "state"));
	assert_int_equal(bh_snapfile_read(fx->dirfd, "state", BH_SNAP_STATE,
					  4096, &data, &len, err, sizeof(err)),
			 0);
	assert_int_equal(len, sizeof(msg));
	assert_memory_equal(data, msg, sizeof(msg));
	free(data);
	/* Empty payloads too. */
	assert_int_equal(bh_snapfile_write(fx->dirfd, "config", BH_SNAP_CONFIG,
					   NULL, 0, err, sizeof(err)),
			 0);
	assert_int_equal(bh_snapfile_read(fx->dirfd, "config", BH_SNAP_CONFIG,
					  4096, &data, &len, err, sizeof(err)),
			 0);
	assert_int_equal(len, 0);
	free(data);
	/* A stale .tmp from an interrupted write is replaced. */
	close(openat(fx->dirfd, "state.tmp", O_CREAT | O_WRONLY, 0600));
	assert_int_equal(bh_snapfile_write(fx->dirfd, "state", BH_SNAP_STATE,
					   msg, 4, err, sizeof(err)),
			 0);
	assert_false(has_tmp(fx, "state"));
}

static void test_refusals(void **state)
{
	struct fx *fx = *state;
	static const char msg[] = "0123456789abcdef";
	char err[256];
	void *data;
	size_t len;

	/* Missing. */
	assert_int_equal(read_state(fx, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "state: missing from the snapshot"));

#define WRITE()                                                               \
	assert_int_equal(bh_snapfile_write(fx->dirfd, "state", BH_SNAP_STATE, \
					   msg, sizeof(msg), err,             \
					   sizeof(err)),                      \
			 0)
	/* Corrupted payload. */
	WRITE();
	damage(fx, "state", BH_SNAP_HEADER_SIZE + 3, -1);
	assert_int_equal(read_state(fx, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "state: corrupted"));
	/* Truncated, in the payload and in the header. */
	WRITE();
	damage(fx, "state", 0, BH_SNAP_HEADER_SIZE + 5);
	assert_int_equal(read_state(fx, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "state: truncated"));
	WRITE();
	damage(fx, "state", 0, 10);
	assert_int_equal(read_state(fx, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "less than its header"));
	/* Not ours. */
	WRITE();
	damage(fx, "state", 0, -1);
	assert_int_equal(read_state(fx, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "not a Bulkhead snapshot file"));
	/* Another version. */
	WRITE();
	damage(fx, "state", 12, -1);
	assert_int_equal(read_state(fx, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "format version"));
	/* Another kind: a config where the state should be. */
	WRITE();
	assert_int_equal(renameat(fx->dirfd, "state", fx->dirfd, "config"), 0);
	assert_int_equal(bh_snapfile_read(fx->dirfd, "config", BH_SNAP_CONFIG,
					  4096, &data, &len, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "holds 'STAT', not 'CONF'"));
	/* Longer than its kind may be. */
	WRITE();
	assert_int_equal(bh_snapfile_read(fx->dirfd, "state", BH_SNAP_STATE, 4,
					  &data, &len, err, sizeof(err)),
			 -EBADMSG);
	/* Bytes appended. */
	WRITE();
	{
		int fd = openat(fx->dirfd, "state", O_WRONLY | O_APPEND);

		assert_int_equal(write(fd, "x", 1), 1);
		close(fd);
	}
	assert_int_equal(read_state(fx, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "longer than written"));
	/* A symlink is not followed. */
	assert_int_equal(unlinkat(fx->dirfd, "state", 0), 0);
	assert_int_equal(symlinkat("/etc/passwd", fx->dirfd, "state"), 0);
	assert_true(read_state(fx, err, sizeof(err)) < 0);
#undef WRITE
}

#define RAM (64ULL << 20)

static unsigned int progress_calls;

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	assert_true(done <= total);
	progress_calls++;
}

static void test_memory(void **state)
{
	struct fx *fx = *state;
	struct bh_snapmem_range *r = NULL;
	size_t n = 0;
	int mem = memfd_create("ram", MFD_CLOEXEC), back;
	uint8_t *p, *q;
	char err[256];
	struct stat st;

	assert_true(mem >= 0);
	assert_int_equal(ftruncate(mem, RAM), 0);
	p = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
	assert_true(p != MAP_FAILED);
	/* Touched pages: two runs, one crossing a 2 MiB boundary, and a
	 * touched page left all zero (not saved). */
	memset(p + 4096, 0xa5, 8192);
	for (size_t i = 0; i < (3u << 20); i++)
		p[(10u << 20) - (1u << 20) + i] = (uint8_t)(i * 7);
	p[RAM - 1] = 1;
	p[(30u << 20)] = 0;
	progress_calls = 0;
	assert_int_equal(bh_snapmem_save(mem, RAM, fx->dirfd, "memory", &r, &n,
					 on_progress, NULL, err, sizeof(err)),
			 0);
	assert_true(progress_calls >= 1);
	assert_true(n >= 2);
	for (size_t i = 1; i < n; i++)
		assert_true(r[i].offset >= r[i - 1].offset + r[i - 1].length);
	assert_false(has_tmp(fx, "memory"));
	/* Sparse: far less space than the RAM's size. */
	assert_int_equal(fstatat(fx->dirfd, "memory", &st, 0), 0);
	assert_int_equal(st.st_size, RAM);
	assert_true((uint64_t)st.st_blocks * 512 < 16ULL << 20);

	back = memfd_create("ram2", MFD_CLOEXEC);
	assert_int_equal(ftruncate(back, RAM), 0);
	assert_int_equal(bh_snapmem_load(fx->dirfd, "memory", RAM, r, n, back,
					 on_progress, NULL, err, sizeof(err)),
			 0);
	q = mmap(NULL, RAM, PROT_READ, MAP_SHARED, back, 0);
	assert_true(q != MAP_FAILED);
	assert_memory_equal(p, q, RAM);
	munmap(q, RAM);

	/* Damage in a range, ranges that do not fit, another size. */
	damage(fx, "memory", (10u << 20) + 77, -1);
	assert_int_equal(bh_snapmem_load(fx->dirfd, "memory", RAM, r, n, back,
					 NULL, NULL, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "memory: corrupted"));
	{
		struct bh_snapmem_range bad[2] = { r[0], r[0] };

		assert_int_equal(bh_snapmem_load(fx->dirfd, "memory", RAM, bad,
						 2, back, NULL, NULL, err,
						 sizeof(err)),
				 -EINVAL);
		bad[0].offset = RAM - 4096;
		bad[0].length = 8192;
		assert_int_equal(bh_snapmem_load(fx->dirfd, "memory", RAM, bad,
						 1, back, NULL, NULL, err,
						 sizeof(err)),
				 -EINVAL);
		bad[0].offset = UINT64_MAX - 10;
		assert_int_equal(bh_snapmem_load(fx->dirfd, "memory", RAM, bad,
						 1, back, NULL, NULL, err,
						 sizeof(err)),
				 -EINVAL);
	}
	assert_int_equal(bh_snapmem_load(fx->dirfd, "memory", RAM * 2, r, n,
					 back, NULL, NULL, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "not the"));
	assert_int_equal(bh_snapmem_load(fx->dirfd, "nothing", RAM, r, n, back,
					 NULL, NULL, err, sizeof(err)),
			 -ENOENT);
	free(r);
	munmap(p, RAM);
	close(mem);
	close(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
