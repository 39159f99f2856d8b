/* Unit tests for the block worker (bulkhead-dev-blk) on a temporary image,
 * driven through bh_vdriver. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_blk.h>

#include <bulkhead/spawn.h>

#include "vdriver.h"

#define IMG_SIZE    (8u << 20)
#define IMG_SECTORS (IMG_SIZE / 512)
#define QSIZE	    128
#define SERIAL	    "bh-disk-serial-0042"
#define F_VERSION_1 (1ULL << 32)
#define F_INDIRECT  (1ULL << 28)
#define DATA_MAX    (1u << 20)

struct blk_fx {
	char path[64];
	int fd; /* our own read-write view of the image */
	struct bh_vdriver *d;
	uint64_t hdr;	 /* 16-byte request header */
	uint64_t data;	 /* DATA_MAX bytes */
	uint64_t status; /* one byte */
	bool readonly;
	unsigned int queues;
};

/* The image's initial content: every byte names its sector and offset. */
static uint8_t pattern(uint64_t off)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511) + 1);
}

static int blk_start(void **state, bool readonly, unsigned int queues)
{
	struct blk_fx *fx = calloc(1, sizeof(*fx));
	Bh__BlkSetup bs = BH__BLK_SETUP__INIT;
	struct bh_vdriver_cfg cfg = { 0 };
	static uint8_t buf[IMG_SIZE];
	int disk;
	size_t i;

	assert_non_null(fx);
	fx->readonly = readonly;
	fx->queues = queues;
	snprintf(fx->path, sizeof(fx->path), "/tmp/bh-test-blk-XXXXXX");
	fx->fd = mkostemp(fx->path, O_CLOEXEC);
	assert_true(fx->fd >= 0);
	for (i = 0; i < IMG_SIZE; i++)
		buf[i] = pattern(i);
	assert_int_equal(pwrite(fx->fd, buf, IMG_SIZE, 0), IMG_SIZE);
	disk = open(fx->path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	assert_true(disk >= 0);

	bs.readonly = readonly;
	bs.num_queues = queues;
	bs.queue_size = QSIZE;
	bs.serial = SERIAL;
	bs.size = IMG_SIZE;
	cfg.binary = BH_WORKER_DIR "/bulkhead-dev-blk";
	cfg.type = BH__WORKER_SETUP__BACKEND_BLK;
	cfg.backend = &bs;
	cfg.backend_fds = &disk;
	cfg.n_backend_fds = 1;
	cfg.ram_size = 32ULL << 20;
	cfg.id = "disk0";
	assert_int_equal(bh_vdriver_start(&cfg, &fx->d), 0);
	close(disk);
	assert_int_equal(bh_vdriver_alloc(fx->d, 16, 16, &fx->hdr), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, DATA_MAX, 4096, &fx->data), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, 1, 1, &fx->status), 0);
	*state = fx;
	return 0;
}

static int blk_setup_rw(void **state)
{
	return blk_start(state, false, 1);
}

static int blk_setup_ro(void **state)
{
	return blk_start(state, true, 1);
}

static int blk_setup_mq(void **state)
{
	return blk_start(state, false, 2);
}

static int blk_teardown(void **state)
{
	struct blk_fx *fx = *state;
	int status = 0, r;
	char why[128];

	r = bh_vdriver_stop(fx->d, BH_VDRIVER_TIMEOUT_MS, &status);
	if (r != 0)
		fprintf(stderr, "blk worker: %s\n",
			bh_describe_status(status, why, sizeof(why)));
	close(fx->fd);
	unlink(fx->path);
	free(fx);
	assert_int_equal(r, 0);
	return 0;
}

static uint32_t cfg32(const struct bh_vdriver_info *in, size_t off)
{
	uint32_t v;

	assert_true(off + 4 <= in->config_len);
	memcpy(&v, in->config + off, 4);
	return v;
}

static void activate(struct blk_fx *fx)
{
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	unsigned int q;

	assert_true(in->device_features & F_VERSION_1);
	assert_true(in->device_features & F_INDIRECT);
	for (q = 0; q < fx->queues; q++)
		assert_int_equal(bh_vdriver_queue_alloc(fx->d, q, QSIZE), 0);
	/* A driver that understands everything the device offers. */
	assert_int_equal(bh_vdriver_activate(fx->d, in->device_features), 0);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_null(bh_vdriver_needs_reset(fx->d));
}

static void *ram(struct blk_fx *fx, uint64_t gpa, uint64_t len)
{
	void *p = bh_vdriver_gpa(fx->d, gpa, len);

	assert_non_null(p);
	return p;
}

/*
 * Runs one request: header (type, sector), then the given data buffers,
 * then the status byte. Returns the status; *used_len gets the used length.
 */
static int blk_req_bufs(struct blk_fx *fx, unsigned int q, uint32_t type,
			uint64_t sector, const struct bh_vdriver_buf *data,
			unsigned int ndata, unsigned int flags,
			uint32_t *used_len)
{
	struct bh_vdriver_buf b[BH_VDRIVER_MAX_INDIRECT];
	struct virtio_blk_outhdr h = { 0 };
	struct bh_vdriver_used u;
	uint8_t *st;
	uint16_t head;
	unsigned int i, n = 0;
	int r;

	assert_true(ndata + 2 <= BH_VDRIVER_MAX_INDIRECT);
	h.type = type;
	h.sector = sector;
	memcpy(ram(fx, fx->hdr, 16), &h, 16);
	st = ram(fx, fx->status, 1);
	*st = 0xee;
	b[n++] = (struct bh_vdriver_buf){ fx->hdr, 16, false };
	for (i = 0; i < ndata; i++)
		b[n++] = data[i];
	b[n++] = (struct bh_vdriver_buf){ fx->status, 1, true };
	assert_int_equal(bh_vdriver_submit(fx->d, q, b, n, flags, &head), 0);
	r = bh_vdriver_wait_used(fx->d, q, BH_VDRIVER_TIMEOUT_MS, &u);
	if (r != 1)
		fprintf(stderr, "wait_used: %s; needs reset: %s\n",
			strerror(-r),
			bh_vdriver_needs_reset(fx->d)
			    ? bh_vdriver_needs_reset(fx->d)
			    : "no");
	assert_int_equal(r, 1);
	assert_int_equal(u.id, head);
	if (used_len)
		*used_len = u.len;
	return *st;
}

/* One data buffer of len bytes at fx->data. */
static int blk_req(struct blk_fx *fx, uint32_t type, uint64_t sector,
		   uint32_t len, bool writable, uint32_t *used_len)
{
	struct bh_vdriver_buf b = { fx->data, len, writable };

	return blk_req_bufs(fx, 0, type, sector, &b, len ? 1 : 0, 0, used_len);
}

static void check_file(struct blk_fx *fx, uint64_t off, const uint8_t *want,
		       size_t len)
{
	static uint8_t got[DATA_MAX];

	assert_true(len <= sizeof(got));
	assert_int_equal(pread(fx->fd, got, len, (off_t)off), (ssize_t)len);
	assert_memory_equal(got, want, len);
}

static void check_pattern(const uint8_t *p, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != pattern(off + i))
			fail_msg("byte %zu of the read differs", i);
	}
}

static void test_config(void **state)
{
	struct blk_fx *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	uint64_t cap;

	assert_int_equal(in->device_type, 2);
	assert_int_equal(in->num_queues, 1);
	assert_int_equal(in->max_queue_size, QSIZE);
	assert_true(in->config_len >= 8);
	memcpy(&cap, in->config, 8);
	assert_int_equal(cap, IMG_SECTORS);
	assert_true(in->device_features & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	assert_int_equal(cfg32(in, 12), QSIZE - 2);
	assert_true(in->device_features & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(in->device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_true(in->device_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(in->device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(in->device_features & (1ULL << VIRTIO_BLK_F_MQ));
}

static void test_read(void **state)
{
	struct blk_fx *fx = *state;
	uint32_t len;

	activate(fx);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 5, 4096, true, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 4096 + 1);
	check_pattern(ram(fx, fx->data, 4096), 5 * 512, 4096);
	/* The last sector. */
	assert_int_equal(
	    blk_req(fx, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, 512, true, &len),
	    VIRTIO_BLK_S_OK);
	check_pattern(ram(fx, fx->data, 512), IMG_SIZE - 512, 512);
}

static void test_write(void **state)
{
	struct blk_fx *fx = *state;
	uint8_t *p = ram(fx, fx->data, 8192);
	uint32_t len;
	size_t i;

	activate(fx);
	for (i = 0; i < 8192; i++)
		p[i] = (uint8_t)(i * 13 + 7);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_OUT, 100, 8192, false, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	check_file(fx, 100 * 512, p, 8192);
	/* And back through the device. */
	memset(p, 0, 8192);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 100, 8192, true, &len),
			 VIRTIO_BLK_S_OK);
	for (i = 0; i < 8192; i++)
		assert_int_equal(p[i], (uint8_t)(i * 13 + 7));
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_FLUSH, 0, 0, false, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
}

static void test_get_id(void **state)
{
	struct blk_fx *fx = *state;
	uint8_t *p = ram(fx, fx->data, VIRTIO_BLK_ID_BYTES);
	uint32_t len;

	activate(fx);
	memset(p, 0xaa, VIRTIO_BLK_ID_BYTES);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_GET_ID, 0,
				 VIRTIO_BLK_ID_BYTES, true, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, VIRTIO_BLK_ID_BYTES + 1);
	/* 19 characters and NUL padding. */
	assert_memory_equal(p, SERIAL, strlen(SERIAL));
	assert_int_equal(p[strlen(SERIAL)], 0);
}

static int discard_wz(struct blk_fx *fx, uint32_t type, uint64_t sector,
		      uint32_t nsec, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes seg = { 0 };

	seg.sector = sector;
	seg.num_sectors = nsec;
	seg.flags = flags;
	memcpy(ram(fx, fx->data, sizeof(seg)), &seg, sizeof(seg));
	return blk_req(fx, type, 0, sizeof(seg), false, NULL);
}

static void test_discard_write_zeroes(void **state)
{
	struct blk_fx *fx = *state;
	static const uint8_t zero[16 * 512];
	uint8_t cur[512];

	activate(fx);
	assert_int_equal(discard_wz(fx, VIRTIO_BLK_T_DISCARD, 200, 8, 0),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(discard_wz(fx, VIRTIO_BLK_T_WRITE_ZEROES, 300, 16, 0),
			 VIRTIO_BLK_S_OK);
	check_file(fx, 300 * 512, zero, sizeof(zero));
	assert_int_equal(discard_wz(fx, VIRTIO_BLK_T_WRITE_ZEROES, 400, 16,
				    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_OK);
	check_file(fx, 400 * 512, zero, sizeof(zero));
	/* The sectors next to them are untouched. */
	assert_int_equal(pread(fx->fd, cur, 512, 316 * 512), 512);
	check_pattern(cur, 316 * 512, 512);
	/* Past the end. */
	assert_int_equal(
	    discard_wz(fx, VIRTIO_BLK_T_WRITE_ZEROES, IMG_SECTORS - 4, 8, 0),
	    VIRTIO_BLK_S_IOERR);
	assert_int_equal(
	    discard_wz(fx, VIRTIO_BLK_T_DISCARD, IMG_SECTORS, 1, 0),
	    VIRTIO_BLK_S_IOERR);
}

static void test_unsupported(void **state)
{
	struct blk_fx *fx = *state;
	uint32_t len;

	activate(fx);
	assert_int_equal(blk_req(fx, 99, 0, 512, true, &len),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(len, 1);
	/* The device still serves requests afterwards. */
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 0, 512, true, &len),
			 VIRTIO_BLK_S_OK);
}

static void test_out_of_range(void **state)
{
	struct blk_fx *fx = *state;
	uint8_t *p = ram(fx, fx->data, 1024);
	uint32_t len;

	activate(fx);
	assert_int_equal(
	    blk_req(fx, VIRTIO_BLK_T_IN, IMG_SECTORS, 512, true, &len),
	    VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(
	    blk_req(fx, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, 1024, true, &len),
	    VIRTIO_BLK_S_IOERR);
	/* sector * 512 overflows 64 bits */
	assert_int_equal(
	    blk_req(fx, VIRTIO_BLK_T_IN, 1ULL << 58, 512, true, &len),
	    VIRTIO_BLK_S_IOERR);
	assert_int_equal(
	    blk_req(fx, VIRTIO_BLK_T_IN, UINT64_MAX, 512, true, &len),
	    VIRTIO_BLK_S_IOERR);
	memset(p, 0x5a, 1024);
	assert_int_equal(
	    blk_req(fx, VIRTIO_BLK_T_OUT, IMG_SECTORS - 1, 1024, false, &len),
	    VIRTIO_BLK_S_IOERR);
	/* Nothing was written, not even the part that fitted. */
	{
		uint8_t last[512];

		assert_int_equal(pread(fx->fd, last, 512, IMG_SIZE - 512), 512);
		check_pattern(last, IMG_SIZE - 512, 512);
	}
	/* A data length that is not a whole sector. */
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 0, 100, true, &len),
			 VIRTIO_BLK_S_IOERR);
}

static void test_readonly(void **state)
{
	struct blk_fx *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	uint8_t *p = ram(fx, fx->data, 4096);
	uint8_t before[4096];
	uint32_t len;

	assert_true(in->device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(in->device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(in->device_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	activate(fx);
	assert_int_equal(pread(fx->fd, before, 4096, 0), 4096);
	memset(p, 0x77, 4096);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_OUT, 0, 4096, false, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	check_file(fx, 0, before, 4096);
	assert_int_equal(discard_wz(fx, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(discard_wz(fx, VIRTIO_BLK_T_DISCARD, 0, 8, 0),
			 VIRTIO_BLK_S_IOERR);
	check_file(fx, 0, before, 4096);
	/* Reads still work. */
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 0, 4096, true, &len),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(p, before, 4096);
}

/* Data split over many segments of odd sizes, header split in two, direct
 * and indirect. */
static void multi_segment(struct blk_fx *fx, unsigned int flags)
{
	struct bh_vdriver_buf b[40];
	struct bh_vdriver_buf h[2] = { { fx->hdr, 8, false },
				       { fx->hdr + 8, 8, false } };
	uint8_t *p = ram(fx, fx->data, DATA_MAX);
	struct virtio_blk_outhdr hd = { 0 };
	struct bh_vdriver_used u;
	uint16_t head;
	unsigned int i, n;
	uint32_t total = 0, len;
	uint8_t *st;

	/* Reads: 30 segments of 1..3 sectors, each 8 KiB apart. */
	for (i = 0; i < 30; i++) {
		b[i].gpa = fx->data + 8192ULL * i;
		b[i].len = 512u * (1 + i % 3);
		b[i].writable = true;
		total += b[i].len;
	}
	memset(p, 0, DATA_MAX);
	assert_int_equal(
	    blk_req_bufs(fx, 0, VIRTIO_BLK_T_IN, 1000, b, 30, flags, &len),
	    VIRTIO_BLK_S_OK);
	assert_int_equal(len, total + 1);
	total = 0;
	for (i = 0; i < 30; i++) {
		check_pattern(p + 8192ULL * i, 1000 * 512 + total, b[i].len);
		total += b[i].len;
	}

	/* A write with the header in two pieces and 5 data segments. */
	for (i = 0; i < 5; i++) {
		memset(p + 8192ULL * i, 0x30 + (int)i, 1024);
		b[i + 2] = (struct bh_vdriver_buf){ fx->data + 8192ULL * i,
						    1024, false };
	}
	b[0] = h[0];
	b[1] = h[1];
	b[7] = (struct bh_vdriver_buf){ fx->status, 1, true };
	n = 8;
	hd.type = VIRTIO_BLK_T_OUT;
	hd.sector = 2000;
	memcpy(ram(fx, fx->hdr, 16), &hd, 16);
	st = ram(fx, fx->status, 1);
	*st = 0xee;
	assert_int_equal(bh_vdriver_submit(fx->d, 0, b, n, flags, &head), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.id, head);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);
	for (i = 0; i < 5; i++)
		check_file(fx, 2000 * 512 + 1024ULL * i, p + 8192ULL * i, 1024);
	assert_int_equal(bh_vdriver_num_free(fx->d, 0), QSIZE);
}

static void test_multi_segment(void **state)
{
	struct blk_fx *fx = *state;

	activate(fx);
	multi_segment(fx, 0);
}

static void test_indirect(void **state)
{
	struct blk_fx *fx = *state;

	activate(fx);
	multi_segment(fx, BH_VDRIVER_INDIRECT);
}

/* Many requests in flight at once, completed in any order. */
static void test_queue_full(void **state)
{
	struct blk_fx *fx = *state;
	struct virtio_blk_outhdr *hd;
	bool seen[QSIZE] = { false };
	uint64_t hdrs, st;
	unsigned int i, n = QSIZE / 3, got = 0;

	activate(fx);
	assert_int_equal(bh_vdriver_alloc(fx->d, 16ULL * n, 16, &hdrs), 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, n, 1, &st), 0);
	hd = ram(fx, hdrs, 16ULL * n);
	for (i = 0; i < n; i++) {
		struct bh_vdriver_buf b[3] = {
			{ hdrs + 16ULL * i, 16, false },
			{ fx->data + 512ULL * i, 512, true },
			{ st + i, 1, true },
		};

		hd[i].type = VIRTIO_BLK_T_IN;
		hd[i].sector = i;
		assert_int_equal(bh_vdriver_add(fx->d, 0, b, 3, 0, NULL), 0);
	}
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	while (got < n) {
		struct bh_vdriver_used u;

		assert_int_equal(
		    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u),
		    1);
		assert_false(seen[u.id]);
		seen[u.id] = true;
		assert_int_equal(u.len, 513);
		got++;
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(((uint8_t *)ram(fx, st, n))[i], 0);
		check_pattern(ram(fx, fx->data + 512ULL * i, 512), 512ULL * i,
			      512);
	}
}

/*
 * Pause: every read in flight is complete (used entry, status, data) when
 * the worker confirms; a request made while paused waits, and is served
 * after resume.
 */
static void test_pause(void **state)
{
	struct blk_fx *fx = *state;
	struct virtio_blk_outhdr *hd;
	struct bh_vdriver_used u;
	bool seen[QSIZE] = { false };
	uint64_t hdrs, st;
	unsigned int i, n = QSIZE / 3, got = 0;
	uint16_t head;

	activate(fx);
	assert_int_equal(bh_vdriver_alloc(fx->d, 16ULL * (n + 1), 16, &hdrs),
			 0);
	assert_int_equal(bh_vdriver_alloc(fx->d, n + 1, 1, &st), 0);
	hd = ram(fx, hdrs, 16ULL * (n + 1));
	memset(ram(fx, st, n + 1), 0xee, n + 1);
	for (i = 0; i < n; i++) {
		struct bh_vdriver_buf b[3] = {
			{ hdrs + 16ULL * i, 16, false },
			{ fx->data + 4096ULL * i, 4096, true },
			{ st + i, 1, true },
		};

		hd[i].type = VIRTIO_BLK_T_IN;
		hd[i].sector = 8ULL * i;
		assert_int_equal(bh_vdriver_add(fx->d, 0, b, 3, 0, NULL), 0);
	}
	/* The kick and the pause reach the worker in one wake-up: the reads
	 * are in flight when the pause is read. */
	assert_int_equal(kill(bh_vdriver_pid(fx->d), SIGSTOP), 0);
	assert_int_equal(bh_vdriver_kick(fx->d, 0), 0);
	assert_int_equal(bh_vdriver_pause_send(fx->d), 0);
	assert_int_equal(kill(bh_vdriver_pid(fx->d), SIGCONT), 0);
	assert_int_equal(bh_vdriver_pause_wait(fx->d, BH_VDRIVER_TIMEOUT_MS),
			 0);
	/* Confirmed: everything is in the used ring already. */
	while (bh_vdriver_get_used(fx->d, 0, &u) == 1) {
		assert_false(seen[u.id]);
		seen[u.id] = true;
		assert_int_equal(u.len, 4097);
		got++;
	}
	assert_int_equal(got, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(((uint8_t *)ram(fx, st, n))[i], 0);
		check_pattern(ram(fx, fx->data + 4096ULL * i, 4096),
			      4096ULL * i, 4096);
	}

	/* Paused: a new request is not taken. */
	{
		struct bh_vdriver_buf b[3] = {
			{ hdrs + 16ULL * n, 16, false },
			{ fx->data, 512, true },
			{ st + n, 1, true },
		};

		hd[n].type = VIRTIO_BLK_T_IN;
		hd[n].sector = 3;
		assert_int_equal(bh_vdriver_submit(fx->d, 0, b, 3, 0, &head),
				 0);
	}
	assert_int_equal(bh_vdriver_wait_used(fx->d, 0, 300, &u), -ETIMEDOUT);
	assert_int_equal(((uint8_t *)ram(fx, st, n + 1))[n], 0xee);
	/* A second pause is confirmed as well. */
	assert_int_equal(bh_vdriver_pause(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_resume(fx->d), 0);
	assert_int_equal(
	    bh_vdriver_wait_used(fx->d, 0, BH_VDRIVER_TIMEOUT_MS, &u), 1);
	assert_int_equal(u.id, head);
	assert_int_equal(((uint8_t *)ram(fx, st, n + 1))[n], 0);
	check_pattern(ram(fx, fx->data, 512), 3 * 512, 512);
}

static void test_two_queues(void **state)
{
	struct blk_fx *fx = *state;
	const struct bh_vdriver_info *in = bh_vdriver_info(fx->d);
	struct bh_vdriver_buf b = { 0, 512, true };
	uint16_t nq;
	uint32_t len;

	assert_int_equal(in->num_queues, 2);
	assert_true(in->device_features & (1ULL << VIRTIO_BLK_F_MQ));
	assert_true(in->config_len >= 36);
	memcpy(&nq, in->config + 34, 2);
	assert_int_equal(nq, 2);
	activate(fx);
	b.gpa = fx->data;
	assert_int_equal(
	    blk_req_bufs(fx, 1, VIRTIO_BLK_T_IN, 7, &b, 1, 0, &len),
	    VIRTIO_BLK_S_OK);
	check_pattern(ram(fx, fx->data, 512), 7 * 512, 512);
	assert_int_equal(
	    blk_req_bufs(fx, 0, VIRTIO_BLK_T_IN, 9, &b, 1, 0, &len),
	    VIRTIO_BLK_S_OK);
	check_pattern(ram(fx, fx->data, 512), 9 * 512, 512);
	b.writable = false;
	memset(ram(fx, fx->data, 512), 0x42, 512);
	assert_int_equal(
	    blk_req_bufs(fx, 1, VIRTIO_BLK_T_OUT, 11, &b, 1, 0, &len),
	    VIRTIO_BLK_S_OK);
	check_file(fx, 11 * 512, ram(fx, fx->data, 512), 512);
}

static void test_counters(void **state)
{
	struct blk_fx *fx = *state;
	uint64_t v;

	activate(fx);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 0, 4096, true, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_IN, 8, 1024, true, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_req(fx, VIRTIO_BLK_T_OUT, 8, 2048, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(bh_vdriver_sync(fx->d, BH_VDRIVER_TIMEOUT_MS), 0);
	assert_int_equal(bh_vdriver_counter(fx->d, "read_requests", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(bh_vdriver_counter(fx->d, "read_bytes", &v), 0);
	assert_int_equal(v, 4096 + 1024);
	assert_int_equal(bh_vdriver_counter(fx->d, "write_requests", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(bh_vdriver_counter(fx->d, "write_bytes", &v), 0);
	assert_int_equal(v, 2048);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_read, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_write, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_get_id, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_discard_write_zeroes,
						blk_setup_rw, blk_teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_readonly, blk_setup_ro,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_multi_segment,
						blk_setup_rw, blk_teardown),
		cmocka_unit_test_setup_teardown(test_indirect, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_pause, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_queue_full, blk_setup_rw,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_two_queues, blk_setup_mq,
						blk_teardown),
		cmocka_unit_test_setup_teardown(test_counters, blk_setup_rw,
						blk_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
