/* Unit tests for split virtqueues (lib/virtqueue.c): rings built by hand in a
 * memfd-backed guest RAM with a hole, as a hostile driver would build them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/util.h>

#include "gmem.h"
#include "virtqueue.h"

#define LOW_SIZE  (1 * BH_MIB)
#define HIGH_GPA  (4 * BH_GIB)
#define HIGH_SIZE (1 * BH_MIB)

#define QSIZE	  8
#define DESC_GPA  0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA  0x3000ULL
#define BUF_GPA	  0x10000ULL
#define TABLE_GPA 0x20000ULL

#define F_INDIRECT (1ULL << BH_VIRTIO_F_INDIRECT_DESC)
#define F_EVENT	   (1ULL << BH_VIRTIO_F_EVENT_IDX)

struct fx {
	int memfd;
	int call_fd;
	int kick_fd;
	struct bh_gmem mem;
	struct bh_vq vq;
	struct bh_vq_req *req;
};

static void *gp(struct fx *f, uint64_t gpa, uint64_t len)
{
	void *p = bh_gmem_ptr(&f->mem, gpa, len);

	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	static const uint64_t regions[2][3] = {
		{ 0, LOW_SIZE, 0 },
		{ HIGH_GPA, HIGH_SIZE, LOW_SIZE },
	};
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->req = calloc(1, sizeof(*f->req));
	assert_non_null(f->req);
	f->memfd = memfd_create("test-vq", MFD_CLOEXEC);
	assert_true(f->memfd >= 0);
	assert_int_equal(ftruncate(f->memfd, LOW_SIZE + HIGH_SIZE), 0);
	assert_int_equal(
	    bh_gmem_map(&f->mem, f->memfd, LOW_SIZE + HIGH_SIZE, regions, 2),
	    0);
	f->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->kick_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(f->call_fd >= 0 && f->kick_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	bh_gmem_unmap(&f->mem);
	close(f->memfd);
	close(f->call_fd);
	close(f->kick_fd);
	free(f->req);
	free(f);
	return 0;
}

static void vq_start(struct fx *f, uint16_t size, uint64_t features)
{
	assert_int_equal(bh_vq_init(&f->vq, &f->mem, size, DESC_GPA, AVAIL_GPA,
				    USED_GPA, features, f->kick_fd, f->call_fd),
			 0);
	assert_true(f->vq.ready);
	assert_false(f->vq.broken);
}

static void set_desc_at(struct fx *f, uint64_t table, uint16_t i, uint64_t addr,
			uint32_t len, uint16_t flags, uint16_t next)
{
	struct bh_vring_desc *d = gp(f, table + 16ULL * i, 16);

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void set_desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	set_desc_at(f, DESC_GPA, i, addr, len, flags, next);
}

static struct bh_vring_avail *avail(struct fx *f)
{
	return gp(f, AVAIL_GPA, 6 + 2 * QSIZE);
}

static struct bh_vring_used *used(struct fx *f)
{
	return gp(f, USED_GPA, 6 + 8 * QSIZE);
}

/* Makes head available, as the driver does. */
static void offer(struct fx *f, uint16_t head)
{
	struct bh_vring_avail *a = avail(f);

	a->ring[a->idx % f->vq.size] = head;
	a->idx++;
}

static uint64_t calls(struct fx *f)
{
	uint64_t v = 0;

	if (read(f->call_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* pop must fail with -EIO and a reason containing what. */
static void expect_broken(struct fx *f, const char *what)
{
	assert_int_equal(bh_vq_pop(&f->vq, f->req), -EIO);
	assert_true(f->vq.broken);
	if (!strstr(f->vq.why, what))
		fail_msg("reason \"%s\" lacks \"%s\"", f->vq.why, what);
	/* Broken is sticky. */
	assert_int_equal(bh_vq_pop(&f->vq, f->req), -EIO);
}

static void test_normal_chain(void **state)
{
	struct fx *f = *state;
	struct bh_vring_used *u;

	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);
	set_desc(f, 3, BUF_GPA, 100, VRING_DESC_F_NEXT, 5);
	set_desc(f, 5, HIGH_GPA + 0x1000, 200, VRING_DESC_F_WRITE, 0);
	offer(f, 3);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 3);
	assert_int_equal(f->req->n_out, 1);
	assert_int_equal(f->req->n_in, 1);
	assert_int_equal(f->req->out_len, 100);
	assert_int_equal(f->req->in_len, 200);
	assert_ptr_equal(f->req->iov[0].iov_base, gp(f, BUF_GPA, 100));
	assert_int_equal(f->req->iov[0].iov_len, 100);
	assert_ptr_equal(f->req->iov[1].iov_base,
			 gp(f, HIGH_GPA + 0x1000, 200));
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);

	bh_vq_push(&f->vq, 3, 42);
	u = used(f);
	assert_int_equal(u->idx, 1);
	assert_int_equal(u->ring[0].id, 3);
	assert_int_equal(u->ring[0].len, 42);
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 1);
	/* Nothing new pushed: no second interrupt. */
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 0);
}

static void test_full_ring_and_wrap(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(f, i, BUF_GPA + 0x100 * i, 16, VRING_DESC_F_WRITE, 0);
	/* Several laps: indexes wrap modulo the ring and modulo 2^16. */
	avail(f)->idx = 0xfff0;
	f->vq.last_avail = 0xfff0;
	for (unsigned int lap = 0; lap < 4; lap++) {
		for (uint16_t i = 0; i < QSIZE; i++)
			offer(f, i);
		for (uint16_t i = 0; i < QSIZE; i++) {
			assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
			assert_int_equal(f->req->head, i);
			bh_vq_push(&f->vq, i, 16);
		}
		assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);
	}
	assert_int_equal(used(f)->idx, 4 * QSIZE);
	assert_false(f->vq.broken);
}

static void test_indirect_chain(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
	set_desc_at(f, TABLE_GPA, 2, BUF_GPA + 0x100, 512,
		    VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc_at(f, TABLE_GPA, 1, HIGH_GPA, 1, VRING_DESC_F_WRITE, 0);
	set_desc(f, 0, TABLE_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 0);
	assert_int_equal(f->req->n_out, 1);
	assert_int_equal(f->req->n_in, 2);
	assert_int_equal(f->req->out_len, 16);
	assert_int_equal(f->req->in_len, 513);
	assert_ptr_equal(f->req->iov[2].iov_base, gp(f, HIGH_GPA, 1));
}

static void test_zero_length_skipped(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, 0xdead0000000ULL, 0, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF_GPA, 100, VRING_DESC_F_NEXT, 2);
	set_desc(f, 2, UINT64_MAX, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
		 3);
	set_desc(f, 3, BUF_GPA + 0x1000, 50, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->n_out, 1);
	assert_int_equal(f->req->n_in, 1);
	assert_int_equal(f->req->out_len, 100);
	assert_int_equal(f->req->in_len, 50);
}

static void test_need_event_arithmetic(void **state)
{
	/* The driver wants an interrupt when new passes event, i.e. event
	 * lies in [old, new). */
	assert_true(bh_vring_need_event(0, 1, 0));
	assert_false(bh_vring_need_event(1, 1, 0));
	assert_true(bh_vring_need_event(3, 5, 2));
	assert_true(bh_vring_need_event(4, 5, 2));
	assert_false(bh_vring_need_event(5, 5, 2));
	assert_false(bh_vring_need_event(1, 5, 2));
	assert_false(bh_vring_need_event(7, 5, 2));
	/* Across the 16-bit wrap. */
	assert_true(bh_vring_need_event(0xffff, 1, 0xfffe));
	assert_true(bh_vring_need_event(0, 1, 0xfffe));
	assert_false(bh_vring_need_event(1, 1, 0xfffe));
	assert_false(bh_vring_need_event(0xfffd, 1, 0xfffe));
	assert_true(bh_vring_need_event(0xfffe, 0, 0xfffe));
	/* Nothing new: never. */
	assert_false(bh_vring_need_event(7, 7, 7));
	assert_false(bh_vring_need_event(6, 7, 7));
}

static void test_event_idx_notify(void **state)
{
	struct fx *f = *state;
	uint16_t *used_event, *avail_event;

	vq_start(f, QSIZE, F_EVENT);
	used_event = &avail(f)->ring[QSIZE];
	avail_event = (uint16_t *)&used(f)->ring[QSIZE];
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(f, i, BUF_GPA + 0x100 * i, 16, VRING_DESC_F_WRITE, 0);

	/* Popping publishes how far the device got (avail_event). */
	offer(f, 0);
	offer(f, 1);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(*avail_event, 1);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(*avail_event, 2);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);
	assert_int_equal(*avail_event, 2);

	/* The first signal is always sent. */
	*used_event = 0;
	bh_vq_push(&f->vq, 0, 16);
	assert_true(bh_vq_need_notify(&f->vq));
	/* Driver asks for an interrupt after used entry 2 (idx 3). */
	*used_event = 2;
	bh_vq_push(&f->vq, 1, 16); /* idx 2 */
	assert_false(bh_vq_need_notify(&f->vq));
	bh_vq_push(&f->vq, 0, 16); /* idx 3: passes 2 */
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 1);
	/* Already signalled past used_event: quiet until it moves. */
	bh_vq_push(&f->vq, 0, 16); /* idx 4 */
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 0);
	*used_event = 5;
	bh_vq_push(&f->vq, 0, 16); /* idx 5 */
	assert_false(bh_vq_need_notify(&f->vq));
	bh_vq_push(&f->vq, 0, 16); /* idx 6: passes 5 */
	assert_true(bh_vq_need_notify(&f->vq));

	/* Across the wrap of the 16-bit used index. */
	f->vq.used_idx = 0xfffe;
	f->vq.signalled_used = 0xfffe;
	*used_event = 0xffff;
	bh_vq_push(&f->vq, 0, 16); /* idx 0xffff */
	assert_false(bh_vq_need_notify(&f->vq));
	bh_vq_push(&f->vq, 0, 16); /* idx 0: passes 0xffff */
	assert_true(bh_vq_need_notify(&f->vq));
	assert_int_equal(used(f)->idx, 0);
}

static void test_no_interrupt_flag(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	avail(f)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	bh_vq_push(&f->vq, 0, 1);
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 0);
	avail(f)->flags = 0;
	bh_vq_push(&f->vq, 1, 1);
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 1);
	/* The flag is only a hint with EVENT_IDX off; used_event is not
	 * consulted. */
	avail(f)->ring[QSIZE] = 100;
	bh_vq_push(&f->vq, 2, 1);
	assert_true(bh_vq_need_notify(&f->vq));
}

static void test_drain_kick(void **state)
{
	struct fx *f = *state;
	uint64_t one = 1;

	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_drain_kick(&f->vq), -EAGAIN);
	assert_int_equal(write(f->kick_fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(write(f->kick_fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(bh_vq_drain_kick(&f->vq), 0);
	/* The blocking eventfd is not read again when empty. */
	assert_int_equal(bh_vq_drain_kick(&f->vq), -EAGAIN);
}

/* ---- hostile drivers ---------------------------------------------------- */

static void test_loop(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF_GPA, 8, VRING_DESC_F_NEXT, 0);
	offer(f, 0);
	expect_broken(f, "longer than the queue");
}

static void test_self_loop(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 4, 0, 0, VRING_DESC_F_NEXT, 4);
	offer(f, 4);
	expect_broken(f, "longer than the queue");
}

static void test_chain_longer_than_queue(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	/* Every descriptor once, then back to the start: size + 1 steps. */
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(f, i, BUF_GPA, 8, VRING_DESC_F_NEXT,
			 (uint16_t)((i + 1) % QSIZE));
	offer(f, 0);
	expect_broken(f, "longer than the queue");
}

static void test_chain_exactly_queue(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(f, i, BUF_GPA, 8,
			 i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, i + 1);
	offer(f, 0);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->n_out, QSIZE);
}

static void test_avail_idx_too_far(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, BUF_GPA, 8, 0, 0);
	avail(f)->idx = QSIZE + 1;
	expect_broken(f, "ahead");
}

static void test_avail_idx_backwards(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	f->vq.last_avail = 10;
	avail(f)->idx = 9; /* 0xffff entries ahead */
	expect_broken(f, "ahead");
}

static void test_head_out_of_range(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	offer(f, QSIZE);
	expect_broken(f, "head 8 out of range");
}

static void test_next_out_of_range(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 0xffff);
	offer(f, 0);
	expect_broken(f, "next 65535 out of range");
}

static void test_buffer_outside_ram(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, 2 * BH_GIB, 8, 0, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_buffer_straddles_hole(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	/* The host mapping continues into region 1; guest RAM does not. */
	set_desc(f, 0, LOW_SIZE - 16, 32, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_buffer_past_high_end(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, HIGH_GPA + HIGH_SIZE - 4, 8, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_addr_len_overflow(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, UINT64_MAX - 10, 100, 0, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_readable_after_writable(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc(f, 0, BUF_GPA, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(f, 1, BUF_GPA, 8, 0, 0);
	offer(f, 0);
	expect_broken(f, "readable buffer after a writable");
}

static void test_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, 0, 0);
	set_desc(f, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "not negotiated");
}

static void test_indirect_len_zero(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc(f, 0, TABLE_GPA, 0, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "indirect table of 0 bytes");
}

static void test_indirect_len_not_multiple(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc(f, 0, TABLE_GPA, 24, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "indirect table of 24 bytes");
}

static void test_indirect_too_long(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc(f, 0, TABLE_GPA, 16 * (BH_VQ_MAX_IOV + 1),
		 VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "entries");
}

static void test_indirect_nested(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc_at(f, TABLE_GPA, 1, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	set_desc(f, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "inside an indirect table");
}

/* An indirect descriptor whose table is the ring itself, pointing at
 * itself: each entry into the "table" would start the walk afresh, for
 * ever, if the walker judged nesting by the table's address. */
static void test_indirect_table_is_the_ring(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc(f, 0, DESC_GPA, 16 * QSIZE, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "inside an indirect table");
}

static void test_indirect_with_next(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, 0, 0);
	set_desc(f, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT,
		 1);
	set_desc(f, 1, BUF_GPA, 8, 0, 0);
	offer(f, 0);
	expect_broken(f, "NEXT");
}

static void test_indirect_mid_chain(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, 0, 0);
	set_desc(f, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "inside a chain");
}

static void test_indirect_loop(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc_at(f, TABLE_GPA, 1, BUF_GPA, 8, VRING_DESC_F_NEXT, 0);
	set_desc(f, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "longer than its indirect table");
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 2);
	set_desc(f, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "next 2 out of range (2)");
}

static void test_indirect_table_outside_ram(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, F_INDIRECT);
	set_desc(f, 0, LOW_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_too_many_buffers(void **state)
{
	struct fx *f = *state;
	const uint16_t size = 2048;

	/* A chain within the queue size but beyond BH_VQ_MAX_IOV buffers. */
	vq_start(f, size, 0);
	for (uint16_t i = 0; i <= BH_VQ_MAX_IOV; i++)
		set_desc(f, i, BUF_GPA, 8, VRING_DESC_F_NEXT, i + 1);
	set_desc(f, BH_VQ_MAX_IOV + 1, BUF_GPA, 8, 0, 0);
	offer(f, 0);
	expect_broken(f, "more than 1024 buffers");
}

static void test_first_reason_kept(void **state)
{
	struct fx *f = *state;

	vq_start(f, QSIZE, 0);
	offer(f, QSIZE + 3);
	expect_broken(f, "head 11");
	bh_vq_set_broken(&f->vq, "something later");
	assert_non_null(strstr(f->vq.why, "head 11"));
	/* A broken queue leaves the used ring alone and raises nothing. */
	bh_vq_push(&f->vq, 0, 1);
	assert_int_equal(used(f)->idx, 0);
	bh_vq_notify(&f->vq);
	assert_int_equal(calls(f), 0);
}

static void expect_init_fails(struct fx *f, uint16_t size, uint64_t desc,
			      uint64_t av, uint64_t us, const char *what)
{
	assert_int_equal(
	    bh_vq_init(&f->vq, &f->mem, size, desc, av, us, 0, -1, -1),
	    -EINVAL);
	assert_false(f->vq.ready);
	assert_true(f->vq.broken);
	if (!strstr(f->vq.why, what))
		fail_msg("reason \"%s\" lacks \"%s\"", f->vq.why, what);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), -EIO);
}

static void test_init_checks(void **state)
{
	struct fx *f = *state;

	expect_init_fails(f, 0, DESC_GPA, AVAIL_GPA, USED_GPA, "power of two");
	expect_init_fails(f, 6, DESC_GPA, AVAIL_GPA, USED_GPA, "power of two");
	expect_init_fails(f, 0xffff, DESC_GPA, AVAIL_GPA, USED_GPA,
			  "power of two");
	expect_init_fails(f, QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA,
			  "misaligned");
	expect_init_fails(f, QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA,
			  "misaligned");
	expect_init_fails(f, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2,
			  "misaligned");
	expect_init_fails(f, QSIZE, 2 * BH_GIB, AVAIL_GPA, USED_GPA,
			  "outside guest RAM");
	/* Rings that run off the end of region 0 into the hole. */
	expect_init_fails(f, QSIZE, LOW_SIZE - 64, AVAIL_GPA, USED_GPA,
			  "outside guest RAM");
	expect_init_fails(f, QSIZE, DESC_GPA, LOW_SIZE - 8, USED_GPA,
			  "outside guest RAM");
	expect_init_fails(f, QSIZE, DESC_GPA, AVAIL_GPA, LOW_SIZE - 32,
			  "outside guest RAM");
	expect_init_fails(f, QSIZE, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3,
			  "outside guest RAM");
	/* The largest queue in the high region is fine. */
	assert_int_equal(bh_vq_init(&f->vq, &f->mem, BH_MAX_QUEUE_SIZE,
				    HIGH_GPA, HIGH_GPA + 0x80000,
				    HIGH_GPA + 0x90000, 0, -1, -1),
			 0);
	assert_true(f->vq.ready);
}

/* ---- in-flight records -----------------------------------------------------
 */

#define INF_BYTES BH_INFLIGHT_BYTES(QSIZE)

/* A worker that died: a new vq on the same rings and records, resumed. */
static void vq_resume(struct fx *f, void *records)
{
	bh_vq_release(&f->vq);
	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, true), 0);
}

static void test_inflight_resume(void **state)
{
	struct fx *f = *state;
	uint64_t records[INF_BYTES / 8] = { 0 };
	struct bh_inflight *inf = (struct bh_inflight *)records;

	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, false), 0);
	assert_int_equal(inf->magic, BH_INFLIGHT_MAGIC);
	for (uint16_t i = 0; i < 4; i++) {
		set_desc(f, i, BUF_GPA + 0x100 * i, 16, VRING_DESC_F_WRITE, 0);
		offer(f, i);
	}
	/* Taken: 0, 1, 2; returned: 1. Then the worker dies. */
	for (uint16_t i = 0; i < 3; i++) {
		assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
		assert_int_equal(inf->desc[i].inflight, 1);
	}
	bh_vq_push(&f->vq, 1, 16);
	assert_int_equal(inf->desc[1].inflight, 0);
	assert_int_equal(inf->used_idx, 1);

	vq_resume(f, records);
	assert_int_equal(f->vq.nreplay, 2);
	assert_int_equal(f->vq.used_idx, 1);
	assert_int_equal(f->vq.last_avail, 3);
	/* In flight first, oldest first, then what is new. */
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 0);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 2);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 3);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);
	bh_vq_push(&f->vq, 2, 16);
	bh_vq_push(&f->vq, 0, 16);
	bh_vq_push(&f->vq, 3, 16);
	assert_int_equal(used(f)->idx, 4);
	assert_int_equal(used(f)->ring[1].id, 2);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(inf->desc[i].inflight, 0);
	bh_vq_release(&f->vq);
}

static void test_inflight_order_kept(void **state)
{
	struct fx *f = *state;
	uint64_t records[INF_BYTES / 8] = { 0 };

	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, false), 0);
	/* Heads taken in the order 5, 2, 7. */
	set_desc(f, 5, BUF_GPA, 16, VRING_DESC_F_WRITE, 0);
	set_desc(f, 2, BUF_GPA, 16, VRING_DESC_F_WRITE, 0);
	set_desc(f, 7, BUF_GPA, 16, VRING_DESC_F_WRITE, 0);
	offer(f, 5);
	offer(f, 2);
	offer(f, 7);
	for (int i = 0; i < 3; i++)
		assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	vq_resume(f, records);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 5);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 2);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	assert_int_equal(f->req->head, 7);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);
	bh_vq_release(&f->vq);
}

/* Death between publishing used->idx and settling the record: the head is
 * returned once, not twice. */
static void test_inflight_torn_push(void **state)
{
	struct fx *f = *state;
	uint64_t records[INF_BYTES / 8] = { 0 };
	struct bh_inflight *inf = (struct bh_inflight *)records;

	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, false), 0);
	set_desc(f, 4, BUF_GPA, 16, VRING_DESC_F_WRITE, 0);
	offer(f, 4);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 1);
	/* What bh_vq_push does up to the used index, and no further. */
	inf->last_head = 4;
	used(f)->ring[0].id = 4;
	used(f)->ring[0].len = 16;
	used(f)->idx = 1;
	assert_int_equal(inf->desc[4].inflight, 1);

	vq_resume(f, records);
	assert_int_equal(f->vq.nreplay, 0);
	assert_int_equal(f->vq.used_idx, 1);
	assert_int_equal(f->vq.last_avail, 1);
	assert_int_equal(inf->desc[4].inflight, 0);
	assert_int_equal(bh_vq_pop(&f->vq, f->req), 0);
	bh_vq_release(&f->vq);
}

/* Records the dead worker never began count as empty; records that do not
 * fit break the queue instead of being believed. */
static void test_inflight_bad_records(void **state)
{
	struct fx *f = *state;
	uint64_t records[INF_BYTES / 8] = { 0 };
	struct bh_inflight *inf = (struct bh_inflight *)records;

	vq_resume(f, records);
	assert_int_equal(inf->magic, BH_INFLIGHT_MAGIC);
	assert_int_equal(f->vq.nreplay, 0);

	inf->size = QSIZE * 2;
	bh_vq_release(&f->vq);
	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, true), -EIO);
	assert_true(f->vq.broken);
	assert_non_null(strstr(f->vq.why, "in-flight"));

	inf->size = QSIZE;
	inf->magic = 0x12345678;
	bh_vq_release(&f->vq);
	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, true), -EIO);

	/* Every entry flagged with a garbage value: all replayed once, the
	 * ring position stays within the queue. */
	inf->magic = BH_INFLIGHT_MAGIC;
	for (unsigned int i = 0; i < QSIZE; i++) {
		inf->desc[i].inflight = 0xff;
		inf->desc[i].counter = ~0ULL - i;
	}
	bh_vq_release(&f->vq);
	vq_start(f, QSIZE, 0);
	assert_int_equal(bh_vq_inflight_attach(&f->vq, records, true), 0);
	assert_int_equal(f->vq.nreplay, QSIZE);
	assert_int_equal((uint16_t)(f->vq.last_avail - f->vq.used_idx), QSIZE);
	bh_vq_release(&f->vq);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_normal_chain),
		T(test_full_ring_and_wrap),
		T(test_indirect_chain),
		T(test_zero_length_skipped),
		cmocka_unit_test(test_need_event_arithmetic),
		T(test_event_idx_notify),
		T(test_no_interrupt_flag),
		T(test_drain_kick),
		T(test_loop),
		T(test_self_loop),
		T(test_chain_longer_than_queue),
		T(test_chain_exactly_queue),
		T(test_avail_idx_too_far),
		T(test_avail_idx_backwards),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_buffer_outside_ram),
		T(test_buffer_straddles_hole),
		T(test_buffer_past_high_end),
		T(test_addr_len_overflow),
		T(test_readable_after_writable),
		T(test_indirect_not_negotiated),
		T(test_indirect_len_zero),
		T(test_indirect_len_not_multiple),
		T(test_indirect_too_long),
		T(test_indirect_nested),
		T(test_indirect_table_is_the_ring),
		T(test_indirect_with_next),
		T(test_indirect_mid_chain),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_table),
		T(test_indirect_table_outside_ram),
		T(test_too_many_buffers),
		T(test_first_reason_kept),
		T(test_init_checks),
		T(test_inflight_resume),
		T(test_inflight_order_kept),
		T(test_inflight_torn_push),
		T(test_inflight_bad_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
