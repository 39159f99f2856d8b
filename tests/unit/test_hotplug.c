/* Unit tests of the runner's PCI hotplug registers, driven the way the
 * DSDT's PHPR methods drive them and the way a hostile guest might. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <bulkhead/platform.h>

#include "hotplug.h"

struct fixture {
	struct bh_hotplug h;
	unsigned int fired;
	unsigned int woken;
};

static void fire(void *opaque)
{
	struct fixture *fx = opaque;

	/* The interrupt comes after the bits the guest will read. */
	assert_int_equal(pthread_mutex_trylock(&fx->h.lock), 0);
	pthread_mutex_unlock(&fx->h.lock);
	fx->fired++;
}

static void ejected(void *opaque)
{
	struct fixture *fx = opaque;

	assert_int_equal(pthread_mutex_trylock(&fx->h.lock), 0);
	pthread_mutex_unlock(&fx->h.lock);
	fx->woken++;
}

static const struct bh_hotplug_ops ops = {
	.fire = fire,
	.ejected = ejected,
};

static int setup(void **state)
{
	static struct fixture fx;

	memset(&fx, 0, sizeof(fx));
	bh_hotplug_init(&fx.h, &ops, &fx);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	bh_hotplug_destroy(&fx->h);
	return 0;
}

static uint32_t rd(struct fixture *fx, uint64_t off)
{
	uint8_t d[8];
	uint32_t v;

	memset(d, 0xa5, sizeof(d));
	bh_hotplug_mmio(&fx->h, off, d, 4, 0);
	memcpy(&v, d, 4);
	return v;
}

static void wr(struct fixture *fx, uint64_t off, uint32_t v)
{
	uint8_t d[4];

	memcpy(d, &v, 4);
	bh_hotplug_mmio(&fx->h, off, d, 4, 1);
}

/* What the guest's PSCN sees: GDAT, then PCIU and PCID, each read once. */
static void test_add(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(bh_hotplug_add(&fx->h, 3), 0);
	assert_int_equal(bh_hotplug_add(&fx->h, 31), 0);
	assert_int_equal(fx->fired, 2);
	assert_int_equal(rd(fx, BH_HOTPLUG_GDAT), BH_GED_PCI_HOTPLUG);
	assert_int_equal(rd(fx, BH_HOTPLUG_GDAT), 0); /* read clears */
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), (1u << 3) | (1u << 31));
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), 0);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);

	/* No slot 0 (the host bridge), none beyond 31. */
	assert_int_equal(bh_hotplug_add(&fx->h, 0), -EINVAL);
	assert_int_equal(bh_hotplug_add(&fx->h, 32), -EINVAL);
	assert_int_equal(bh_hotplug_remove(&fx->h, 0), -EINVAL);
	assert_int_equal(bh_hotplug_remove(&fx->h, 32), -EINVAL);
	assert_int_equal(fx->fired, 2);
}

/* Remove, the guest's eject through PCEJ (PSEG then B0EJ), and the main
 * thread taking it. */
static void test_remove_and_eject(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(bh_hotplug_remove(&fx->h, 5), 0);
	assert_int_equal(fx->fired, 1);
	assert_int_equal(rd(fx, BH_HOTPLUG_GDAT), BH_GED_PCI_HOTPLUG);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), 1u << 5);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), 0);
	/* Nothing ejected until the guest says so. */
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);

	wr(fx, BH_HOTPLUG_PSEG, 0);
	wr(fx, BH_HOTPLUG_B0EJ, 1u << 5);
	assert_int_equal(fx->woken, 1);
	assert_int_equal(fx->h.bad_ejects, 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_B0EJ), 0); /* write-only */
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 1u << 5);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);

	/* A second eject of the same slot is no longer asked for. */
	wr(fx, BH_HOTPLUG_B0EJ, 1u << 5);
	assert_int_equal(fx->woken, 1);
	assert_int_equal(fx->h.bad_ejects, 1);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);
}

/* Ejects the runner did not ask for are counted and never acted on. */
static void test_unrequested_eject(void **state)
{
	struct fixture *fx = *state;

	wr(fx, BH_HOTPLUG_B0EJ, 1u << 7);
	wr(fx, BH_HOTPLUG_B0EJ, 0xffffffffu);
	wr(fx, BH_HOTPLUG_B0EJ, 1u); /* the host bridge */
	assert_int_equal(fx->h.bad_ejects, 3);
	assert_int_equal(fx->woken, 0);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);

	/* One slot asked for among others: only it is taken. */
	assert_int_equal(bh_hotplug_remove(&fx->h, 9), 0);
	wr(fx, BH_HOTPLUG_B0EJ, (1u << 9) | (1u << 10));
	assert_int_equal(fx->h.bad_ejects, 4);
	assert_int_equal(fx->woken, 1);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 1u << 9);

	/* On another segment nothing is ejected, even a slot asked for. */
	assert_int_equal(bh_hotplug_remove(&fx->h, 11), 0);
	wr(fx, BH_HOTPLUG_PSEG, 1);
	assert_int_equal(rd(fx, BH_HOTPLUG_PSEG), 1);
	wr(fx, BH_HOTPLUG_B0EJ, 1u << 11);
	assert_int_equal(fx->h.bad_ejects, 5);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);
	wr(fx, BH_HOTPLUG_PSEG, 0);
	wr(fx, BH_HOTPLUG_B0EJ, 1u << 11);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 1u << 11);

	/* A removal forgotten (the device went another way) is not ejectable.
	 */
	assert_int_equal(bh_hotplug_remove(&fx->h, 12), 0);
	bh_hotplug_forget(&fx->h, 12);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), (1u << 9) | (1u << 11));
	wr(fx, BH_HOTPLUG_B0EJ, 1u << 12);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 0);
	assert_int_equal(fx->h.bad_ejects, 6);
}

/* A removal cancels an add the guest has not scanned; asking again signals
 * again. */
static void test_add_then_remove(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(bh_hotplug_add(&fx->h, 4), 0);
	assert_int_equal(bh_hotplug_remove(&fx->h, 4), 0);
	assert_int_equal(bh_hotplug_remove(&fx->h, 4), 0);
	assert_int_equal(fx->fired, 3);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), 1u << 4);
	/* And an add after it (a new device in a reused slot) is an add. */
	wr(fx, BH_HOTPLUG_B0EJ, 1u << 4);
	assert_int_equal(bh_hotplug_take_ejected(&fx->h), 1u << 4);
	assert_int_equal(bh_hotplug_add(&fx->h, 4), 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), 1u << 4);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), 0);
}

/* Every width and offset a guest can use: only aligned dwords on the five
 * registers do anything, and no access reads or writes out of bounds. */
static void test_odd_accesses(void **state)
{
	static const unsigned int lens[] = { 1, 2, 3, 4, 8 };
	struct fixture *fx = *state;
	uint8_t d[16];

	assert_int_equal(bh_hotplug_add(&fx->h, 2), 0);
	assert_int_equal(bh_hotplug_remove(&fx->h, 6), 0);
	for (uint64_t off = 0; off < BH_HOTPLUG_MMIO_SIZE; off++) {
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			unsigned int len = lens[i];

			if (len == 4 && !(off & 3) && off < BH_HOTPLUG_REGS_LEN)
				continue;
			memset(d, 0xa5, sizeof(d));
			bh_hotplug_mmio(&fx->h, off, d, len, 0);
			for (unsigned int b = 0; b < len; b++)
				assert_int_equal(d[b], 0);
			assert_int_equal(d[len], 0xa5);
			memset(d, 0xff, sizeof(d));
			bh_hotplug_mmio(&fx->h, off, d, len, 1);
		}
	}
	/* Unknown offsets inside the register range, at the right width. */
	assert_int_equal(rd(fx, BH_HOTPLUG_REGS_LEN), 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_MMIO_SIZE - 4), 0);
	wr(fx, BH_HOTPLUG_REGS_LEN, 0xffffffffu);
	/* None of it ejected, cleared or changed anything. */
	assert_int_equal(fx->woken, 0);
	assert_int_equal(fx->h.bad_ejects, 0);
	assert_true(fx->h.bad_access > 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_PSEG), 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), 1u << 2);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCID), 1u << 6);
	/* Writes to the read-only registers are dropped too. */
	assert_int_equal(bh_hotplug_add(&fx->h, 2), 0);
	wr(fx, BH_HOTPLUG_PCIU, 0);
	wr(fx, BH_HOTPLUG_GDAT, 0);
	assert_int_equal(rd(fx, BH_HOTPLUG_GDAT), BH_GED_PCI_HOTPLUG);
	assert_int_equal(rd(fx, BH_HOTPLUG_PCIU), 1u << 2);
	/* A length beyond 8 never writes past the guest's 8 bytes. */
	memset(d, 0xa5, sizeof(d));
	bh_hotplug_mmio(&fx->h, 0, d, 12, 0);
	assert_int_equal(d[8], 0xa5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_and_eject, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unrequested_eject, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_then_remove, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_odd_accesses, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
