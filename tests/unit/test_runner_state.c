/* Saved state of the runner's device models (UART, CMOS, PCI host): save,
 * restore into a fresh model and save again gives the same bytes, the
 * restored model answers the guest as the first did, and state a model
 * cannot hold is refused without changing it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cmos.h"
#include "pci.h"
#include "uart.h"

struct irq_rec {
	int level;
	unsigned int calls;
};

static void rec_irq(void *opaque, int level)
{
	struct irq_rec *r = opaque;

	r->level = level;
	r->calls++;
}

static const struct bh_uart_ops rec_ops = { .set_irq = rec_irq };

static size_t pack_uart(struct bh_uart *u, uint8_t *out)
{
	static uint8_t buf[BH_UART_STATE_BUF];
	Bh__UartState s;

	bh_uart_save(u, &s, buf);
	assert_true(protobuf_c_message_get_packed_size(&s.base) < 8192);
	return protobuf_c_message_pack(&s.base, out);
}

static void test_uart(void **state)
{
	static uint8_t a[8192], b[8192], c[8192];
	struct irq_rec r1 = { 0 }, r2 = { 0 };
	struct bh_uart u1, u2;
	Bh__UartState *s;
	size_t alen, blen;

	(void)state;
	bh_uart_init(&u1, &rec_ops, &r1);
	bh_uart_write(&u1, 3, 0x83); /* DLAB */
	bh_uart_write(&u1, 0, 0x0c);
	bh_uart_write(&u1, 1, 0x00);
	bh_uart_write(&u1, 3, 0x03);
	bh_uart_write(&u1, 2, 0xc7);
	bh_uart_write(&u1, 4, 0x0b);
	bh_uart_write(&u1, 7, 0x5a);
	bh_uart_write(&u1, 1, 0x01); /* RDI */
	/* Received bytes, one of them read already, wrapping round the
	 * ring: the saved order is the guest's. */
	for (int i = 0; i < 3; i++) {
		uint8_t fill[BH_UART_RX_BUF / 2];

		memset(fill, 'a' + i, sizeof(fill));
		bh_uart_receive(&u1, fill, sizeof(fill));
		for (size_t k = 0; k < sizeof(fill) - 1; k++)
			bh_uart_read(&u1, 0);
	}
	bh_uart_receive(&u1, (const uint8_t *)"hello", 5);
	assert_int_equal(r1.level, 1);
	/* Output not yet passed on. */
	bh_uart_write(&u1, 0, 'o');
	bh_uart_write(&u1, 0, 'k');
	alen = pack_uart(&u1, a);

	bh_uart_init(&u2, &rec_ops, &r2);
	s = bh__uart_state__unpack(NULL, alen, a);
	assert_non_null(s);
	assert_int_equal(bh_uart_restore(&u2, s), 0);
	bh__uart_state__free_unpacked(s, NULL);
	/* The line follows the restored registers. */
	assert_int_equal(r2.level, 1);
	assert_true(r2.calls >= 1);
	blen = pack_uart(&u2, b);
	assert_int_equal(blen, alen);
	assert_memory_equal(a, b, alen);
	assert_true(bh_uart_tx_pending(&u2));
	/* The guest reads the same bytes and registers from both. */
	for (int i = 0; i < 12; i++)
		for (unsigned int off = 0; off < 8; off++)
			assert_int_equal(bh_uart_read(&u1, off),
					 bh_uart_read(&u2, off));

	/* What no guest write makes: refused, nothing changed. */
	alen = pack_uart(&u2, a);
	s = bh__uart_state__unpack(NULL, alen, a);
	assert_non_null(s);
	s->ier = 0x10;
	assert_int_equal(bh_uart_restore(&u2, s), -EINVAL);
	s->ier = 0x01;
	s->lcr = 0x100;
	assert_int_equal(bh_uart_restore(&u2, s), -EINVAL);
	s->lcr = 0x03;
	s->mcr = 0x20;
	assert_int_equal(bh_uart_restore(&u2, s), -EINVAL);
	s->mcr = 0x0b;
	s->fcr = 0x02;
	assert_int_equal(bh_uart_restore(&u2, s), -EINVAL);
	s->fcr = 0xc1;
	s->rx.len = BH_UART_RX_BUF + 1;
	assert_int_equal(bh_uart_restore(&u2, s), -EINVAL);
	s->rx.len = 0;
	s->tx.len = BH_UART_TX_BUF + 1;
	assert_int_equal(bh_uart_restore(&u2, s), -EINVAL);
	bh__uart_state__free_unpacked(s, NULL);
	assert_int_equal(pack_uart(&u2, c), alen);
	assert_memory_equal(a, c, alen);
	bh_uart_destroy(&u1);
	bh_uart_destroy(&u2);
}

static size_t pack_cmos(struct bh_cmos *c, uint8_t *out)
{
	Bh__CmosState s;

	bh_cmos_save(c, &s);
	return protobuf_c_message_pack(&s.base, out);
}

static void test_cmos(void **state)
{
	uint8_t a[512], b[512];
	struct bh_cmos c1, c2;
	Bh__CmosState *s;
	size_t alen;

	(void)state;
	bh_cmos_init(&c1, 512ULL << 20, 0);
	c1.fixed_time = 1700000000;
	bh_cmos_write(&c1, 0, 0x40); /* NVRAM byte 0x40 */
	bh_cmos_write(&c1, 1, 0x99);
	bh_cmos_write(&c1, 0, 0x0b); /* register B: binary mode */
	bh_cmos_write(&c1, 1, 0x06);
	c1.offset = 3600;
	bh_cmos_write(&c1, 0, 0x00); /* seconds, selected */
	alen = pack_cmos(&c1, a);

	bh_cmos_init(&c2, 4ULL << 30, 1ULL << 30);
	c2.fixed_time = 1700000000;
	s = bh__cmos_state__unpack(NULL, alen, a);
	assert_non_null(s);
	assert_int_equal(bh_cmos_restore(&c2, s), 0);
	assert_int_equal(pack_cmos(&c2, b), alen);
	assert_memory_equal(a, b, alen);
	for (unsigned int reg = 0; reg < 0x80; reg++) {
		bh_cmos_write(&c1, 0, (uint8_t)reg);
		bh_cmos_write(&c2, 0, (uint8_t)reg);
		assert_int_equal(bh_cmos_read(&c1, 1), bh_cmos_read(&c2, 1));
	}

	s->index = 0x80;
	assert_int_equal(bh_cmos_restore(&c2, s), -EINVAL);
	s->index = 0;
	s->nvram.len = 127;
	assert_int_equal(bh_cmos_restore(&c2, s), -EINVAL);
	s->nvram.len = 128;
	s->offset = INT64_MIN;
	assert_int_equal(bh_cmos_restore(&c2, s), -EINVAL);
	bh__cmos_state__free_unpacked(s, NULL);
}

static void test_pci(void **state)
{
	struct bh_pci p1, p2;
	Bh__PciHostState s;

	(void)state;
	bh_pci_init(&p1);
	bh_pci_init(&p2);
	bh_pci_write(&p1, 0, 4, 0x80000008u);
	bh_pci_save(&p1, &s);
	bh_pci_restore(&p2, &s);
	assert_int_equal(bh_pci_read(&p2, 0, 4), 0x80000008u);
	/* The host bridge's class code, read through the restored address. */
	assert_int_equal(bh_pci_read(&p2, 4, 4), bh_pci_read(&p1, 4, 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uart),
		cmocka_unit_test(test_cmos),
		cmocka_unit_test(test_pci),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
