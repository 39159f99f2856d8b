/* The backends the driver tests that cover every worker type start each
 * worker with (test_dev_state.c, test_dev_dirty.c): the fds handed to the
 * worker, the test's own ends, a temporary file, the set-up message. The
 * including file has cmocka, vdriver.h and BH_WORKER_DIR. */
#ifndef BH_TESTS_DEV_BACKENDS_H
#define BH_TESTS_DEV_BACKENDS_H

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vdriver.h"

#define QSIZE	  64
#define BLK_IMG	  (1u << 20)
#define PMEM_GPA  (6ULL << 30)
#define PMEM_SIZE (64ULL << 20)
#define NET_PAIRS 2
#define GUEST_CID 3

struct dev_backend {
	int theirs[2]; /* handed to the worker */
	unsigned int ntheirs;
	int ours[2]; /* the test's ends (console, net) */
	int file;    /* blk's image, pmem's region */
	char path[64];
	Bh__BlkSetup blk;
	Bh__ConsoleSetup con;
	Bh__NetSetup net;
	Bh__VsockSetup vsock;
	Bh__PmemSetup pmem;
};

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* The blk image's byte at off. */
static inline uint8_t blk_pattern(uint64_t off)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511) + 1);
}

/* A temporary file /tmp/bh-test-TAG-XXXXXX, its fd in b->file. */
static inline void dev_tmpfile(struct dev_backend *b, const char *tag)
{
	snprintf(b->path, sizeof(b->path), "/tmp/bh-test-%s-XXXXXX", tag);
	b->file = mkostemp(b->path, O_CLOEXEC);
	assert_true(b->file >= 0);
}

static inline void dev_blk_config(struct dev_backend *b, const char *tag,
				  struct bh_vdriver_cfg *cfg)
{
	static uint8_t img[BLK_IMG];

	dev_tmpfile(b, tag);
	for (size_t i = 0; i < BLK_IMG; i++)
		img[i] = blk_pattern(i);
	assert_int_equal(pwrite(b->file, img, BLK_IMG, 0), BLK_IMG);
	b->theirs[0] = open(b->path, O_RDWR | O_CLOEXEC);
	assert_true(b->theirs[0] >= 0);
	b->ntheirs = 1;
	bh__blk_setup__init(&b->blk);
	b->blk.num_queues = 1;
	b->blk.queue_size = QSIZE;
	b->blk.size = BLK_IMG;
	cfg->binary = BH_WORKER_DIR "/bulkhead-dev-blk";
	cfg->type = BH__WORKER_SETUP__BACKEND_BLK;
	cfg->backend = &b->blk;
}

static inline void dev_rng_config(struct dev_backend *b,
				  struct bh_vdriver_cfg *cfg)
{
	b->theirs[0] = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	assert_true(b->theirs[0] >= 0);
	b->ntheirs = 1;
	cfg->binary = BH_WORKER_DIR "/bulkhead-dev-rng";
	cfg->type = BH__WORKER_SETUP__BACKEND_RNG;
}

static inline void dev_pmem_config(struct dev_backend *b, const char *tag,
				   struct bh_vdriver_cfg *cfg)
{
	dev_tmpfile(b, tag);
	assert_int_equal(ftruncate(b->file, (off_t)PMEM_SIZE), 0);
	b->theirs[0] = b->file;
	b->ntheirs = 1;
	bh__pmem_setup__init(&b->pmem);
	b->pmem.guest_phys = PMEM_GPA;
	b->pmem.size = PMEM_SIZE;
	cfg->binary = BH_WORKER_DIR "/bulkhead-dev-pmem";
	cfg->type = BH__WORKER_SETUP__BACKEND_PMEM;
	cfg->backend = &b->pmem;
}

/* Output read from ours[0], input written to ours[1]. */
static inline void dev_con_config(struct dev_backend *b,
				  struct bh_vdriver_cfg *cfg)
{
	int out[2], in[2];

	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	b->ours[0] = out[0];
	b->ours[1] = in[1];
	b->theirs[0] = out[1];
	b->theirs[1] = in[0];
	b->ntheirs = 2;
	bh__console_setup__init(&b->con);
	b->con.has_input = true;
	cfg->binary = BH_WORKER_DIR "/bulkhead-dev-console";
	cfg->type = BH__WORKER_SETUP__BACKEND_CONSOLE;
	cfg->backend = &b->con;
}

/* NET_PAIRS queue pairs, ours[p] the other end of pair p's TAP. */
static inline void dev_net_config(struct dev_backend *b,
				  struct bh_vdriver_cfg *cfg)
{
	for (unsigned int p = 0; p < NET_PAIRS; p++) {
		int sv[2];

		/* A TAP's stand-in: one frame per message, the vnet header
		 * with each (as test_dev_net). */
		assert_int_equal(
		    socketpair(AF_UNIX,
			       SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
			       sv),
		    0);
		b->ours[p] = sv[0];
		b->theirs[p] = sv[1];
	}
	b->ntheirs = NET_PAIRS;
	bh__net_setup__init(&b->net);
	b->net.mac.data = (uint8_t *)test_mac;
	b->net.mac.len = sizeof(test_mac);
	b->net.mtu = 1500;
	b->net.queue_pairs = NET_PAIRS;
	b->net.queue_size = 256;
	cfg->binary = BH_WORKER_DIR "/bulkhead-dev-net";
	cfg->type = BH__WORKER_SETUP__BACKEND_NET;
	cfg->backend = &b->net;
}

static inline void dev_vsock_config(struct dev_backend *b,
				    struct bh_vdriver_cfg *cfg)
{
	bh__vsock_setup__init(&b->vsock);
	b->vsock.cid = GUEST_CID;
	cfg->binary = BH_WORKER_DIR "/bulkhead-dev-vsock";
	cfg->type = BH__WORKER_SETUP__BACKEND_VSOCK;
	cfg->backend = &b->vsock;
}

/* len bytes from fd, waiting at most timeout_ms for each part. */
static inline void dev_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, timeout_ms), 1);
		n = read(fd, (uint8_t *)buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

#endif
