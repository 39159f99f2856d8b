/* Unit tests of the runner's virtio-pci transport, driven the way Linux's
 * virtio_pci_modern driver drives it, and of hot add and removal, without
 * KVM (ioctls fail harmlessly on a closed VM fd). */
#include <errno.h>
#include <fcntl.h>
#include <bulkhead/platform.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "runner.h"
#include "virtio_pci.h"

/* What the transport sent to the controller. */
static uint16_t sent_types[16];
static unsigned int nsent;
static Bh__VirtioActivate *last_activate;
static struct bh_vpci *sending_dev; /* the fixture's device */
static Bh__RunnerDeviceRemoved *last_removed;
static unsigned int nquiesce;

/* The vCPU side of a removal: no vCPU threads here, only the count. */
void runner_vcpus_quiesce(struct runner *rn)
{
	(void)rn;
	nquiesce++;
}

int runner_send(struct runner *rn, uint16_t type, const ProtobufCMessage *msg)
{
	uint8_t buf[4096];
	size_t len;

	(void)rn;
	/* A send may wait for the controller: never with the device lock
	 * held, which the runner's main thread needs meanwhile. */
	if (sending_dev) {
		assert_int_equal(pthread_mutex_trylock(&sending_dev->lock), 0);
		pthread_mutex_unlock(&sending_dev->lock);
	}
	if (nsent < 16)
		sent_types[nsent] = type;
	nsent++;
	if (type == BH__MSG_TYPE__MSG_VIRTIO_ACTIVATE) {
		len = protobuf_c_message_pack(msg, buf);
		if (last_activate)
			bh__virtio_activate__free_unpacked(last_activate, NULL);
		last_activate = bh__virtio_activate__unpack(NULL, len, buf);
	}
	if (type == BH__MSG_TYPE__MSG_RUNNER_DEVICE_REMOVED) {
		len = protobuf_c_message_pack(msg, buf);
		if (last_removed)
			bh__runner_device_removed__free_unpacked(last_removed,
								 NULL);
		last_removed =
		    bh__runner_device_removed__unpack(NULL, len, buf);
	}
	return 0;
}

struct fixture {
	struct runner rn;
	struct bh_vpci *d;
};

static int setup(void **state)
{
	static struct fixture fx;
	uint8_t config[8] = { 0x00, 0x40, 0, 0, 0, 0, 0, 0 }; /* capacity */
	int fds[4];

	memset(&fx, 0, sizeof(fx));
	fx.rn.vm = -1;
	fx.rn.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(fx.rn.wake_fd >= 0);
	bh_hotplug_init(&fx.rn.hotplug, &runner_hotplug_ops, &fx.rn);
	pthread_mutex_init(&fx.rn.route_lock, NULL);
	bh_pci_init(&fx.rn.pci);
	for (int i = 0; i < 4; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(fds[i] >= 0);
	}
	assert_int_equal(
	    bh_vpci_create(&fx.rn, 0, 2, 1, (1ULL << 32) | (1ULL << 9), 2, 256,
			   config, sizeof(config), "disk0", fds, &fx.d),
	    0);
	nsent = 0;
	sending_dev = fx.d;
	*state = &fx;
	return 0;
}

/* The runner keeps its devices for its lifetime; a test frees its own. */
static int teardown(void **state)
{
	struct fixture *fx = *state;

	close(fx->rn.wake_fd);
	bh_hotplug_destroy(&fx->rn.hotplug);
	if (!fx->d) /* the test removed it */
		return 0;
	for (unsigned int q = 0; q < fx->d->nq; q++) {
		if (fx->d->q[q].kick_fd >= 0)
			close(fx->d->q[q].kick_fd);
		if (fx->d->q[q].call_fd >= 0)
			close(fx->d->q[q].call_fd);
	}
	sending_dev = NULL;
	pthread_mutex_destroy(&fx->d->lock);
	pthread_mutex_destroy(&fx->d->out_lock);
	free(fx->d);
	return 0;
}

static uint32_t cfg_read(struct fixture *fx, unsigned int reg,
			 unsigned int size)
{
	bh_pci_write(&fx->rn.pci, 0, 4,
		     0x80000000u | (1u << 11) | (reg & 0xfc));
	return bh_pci_read(&fx->rn.pci, 4 + (reg & 3), size);
}

static void cfg_write(struct fixture *fx, unsigned int reg, unsigned int size,
		      uint32_t val)
{
	bh_pci_write(&fx->rn.pci, 0, 4,
		     0x80000000u | (1u << 11) | (reg & 0xfc));
	bh_pci_write(&fx->rn.pci, 4 + (reg & 3), size, val);
}

static uint64_t mmio_read(struct fixture *fx, uint64_t off, unsigned int len)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	bh_vpci_mmio(fx->d, off, b, len, 0);
	for (unsigned int i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void mmio_write(struct fixture *fx, uint64_t off, unsigned int len,
		       uint64_t v)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bh_vpci_mmio(fx->d, off, b, len, 1);
}

static void test_identity_and_caps(void **state)
{
	struct fixture *fx = *state;
	unsigned int seen = 0, at;

	assert_int_equal(cfg_read(fx, 0, 4), 0x10421af4); /* modern blk */
	assert_int_equal(cfg_read(fx, 0x0a, 2), 0x0180);
	assert_int_equal(cfg_read(fx, 0x06, 2) & 0x10, 0x10);
	/* Walk the capability list as the driver does. */
	for (at = cfg_read(fx, 0x34, 1); at; at = cfg_read(fx, at + 1, 1)) {
		uint8_t id = (uint8_t)cfg_read(fx, at, 1);

		if (id == 0x09)
			seen |= 1u << cfg_read(fx, at + 3, 1);
		else if (id == 0x11)
			seen |= 1u << 8;
		assert_true(at < 256);
	}
	assert_int_equal(seen, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) |
				   (1u << 8));
	/* Two queues plus the config vector. */
	assert_int_equal(cfg_read(fx, 0x84 + 2, 2) & 0x7ff, 2);
	/* Another slot is empty. */
	bh_pci_write(&fx->rn.pci, 0, 4, 0x80000000u | (2u << 11));
	assert_int_equal(bh_pci_read(&fx->rn.pci, 4, 4), 0xffffffffu);
}

static void test_bar_sizing(void **state)
{
	struct fixture *fx = *state;
	uint32_t orig = cfg_read(fx, 0x10, 4);

	assert_int_equal(orig & 0xf, 0x4); /* 64-bit memory BAR */
	cfg_write(fx, 0x10, 4, 0xffffffffu);
	assert_int_equal(cfg_read(fx, 0x10, 4),
			 (uint32_t) ~(BH_VPCI_BAR_SIZE - 1) | 0x4);
	cfg_write(fx, 0x10, 4, orig);
	assert_int_equal(cfg_read(fx, 0x10, 4), orig);
	/* Decoding off: the BAR does not claim guest accesses. */
	{
		uint64_t off;

		assert_false(bh_vpci_claims(fx->d, orig & ~0xfu, &off));
		cfg_write(fx, 0x04, 2, 0x0006);
		assert_true(bh_vpci_claims(fx->d, (orig & ~0xfu) + 0x10, &off));
		assert_int_equal(off, 0x10);
	}
}

static void negotiate(struct fixture *fx, uint64_t features)
{
	mmio_write(fx, 0x14, 1, 1 | 2);
	mmio_write(fx, 0x08, 4, 0);
	mmio_write(fx, 0x0c, 4, (uint32_t)features);
	mmio_write(fx, 0x08, 4, 1);
	mmio_write(fx, 0x0c, 4, (uint32_t)(features >> 32));
	mmio_write(fx, 0x14, 1, 1 | 2 | 8);
}

static void test_features(void **state)
{
	struct fixture *fx = *state;

	mmio_write(fx, 0x00, 4, 1);
	assert_int_equal(mmio_read(fx, 0x04, 4), 1); /* VERSION_1 */
	mmio_write(fx, 0x00, 4, 0);
	assert_int_equal(mmio_read(fx, 0x04, 4), 1u << 9);
	assert_int_equal(mmio_read(fx, 0x12, 2), 2);
	/* Without VERSION_1 FEATURES_OK does not stick. */
	negotiate(fx, 1u << 9);
	assert_int_equal(mmio_read(fx, 0x14, 1) & 8, 0);
	mmio_write(fx, 0x14, 1, 0);
	/* A feature the device lacks is refused too. */
	negotiate(fx, (1ULL << 32) | (1u << 3));
	assert_int_equal(mmio_read(fx, 0x14, 1) & 8, 0);
	mmio_write(fx, 0x14, 1, 0);
	negotiate(fx, (1ULL << 32) | (1u << 9));
	assert_int_equal(mmio_read(fx, 0x14, 1) & 8, 8);
}

static void test_activate_and_reset(void **state)
{
	struct fixture *fx = *state;

	negotiate(fx, 1ULL << 32);
	mmio_write(fx, 0x16, 2, 1); /* queue 1 */
	assert_int_equal(mmio_read(fx, 0x18, 2), 256);
	mmio_write(fx, 0x18, 2, 128);
	mmio_write(fx, 0x1a, 2, 1);
	mmio_write(fx, 0x20, 4, 0x10000);
	mmio_write(fx, 0x24, 4, 0x1);
	mmio_write(fx, 0x28, 8, 0x20000);
	mmio_write(fx, 0x30, 8, 0x30000);
	mmio_write(fx, 0x1c, 2, 1);
	assert_int_equal(mmio_read(fx, 0x1e, 2), 1); /* notify offset */
	assert_int_equal(mmio_read(fx, 0x20, 8), 0x100010000ULL);
	mmio_write(fx, 0x14, 1, 1 | 2 | 8 | 4);
	assert_int_equal(nsent, 1);
	assert_int_equal(sent_types[0], BH__MSG_TYPE__MSG_VIRTIO_ACTIVATE);
	assert_non_null(last_activate);
	assert_int_equal(last_activate->n_queues, 2);
	assert_false(last_activate->queues[0]->enabled);
	assert_true(last_activate->queues[1]->enabled);
	assert_int_equal(last_activate->queues[1]->size, 128);
	assert_int_equal(last_activate->queues[1]->desc, 0x100010000ULL);
	assert_int_equal(last_activate->queues[1]->avail, 0x20000);
	assert_int_equal(last_activate->queues[1]->used, 0x30000);
	assert_int_equal(last_activate->driver_features, 1ULL << 32);
	/* Live queues do not move. */
	mmio_write(fx, 0x20, 8, 0x5000);
	assert_int_equal(mmio_read(fx, 0x20, 8), 0x100010000ULL);

	/* Reset: status reads non-zero until the worker confirmed. */
	mmio_write(fx, 0x14, 1, 0);
	assert_int_equal(sent_types[1], BH__MSG_TYPE__MSG_VIRTIO_RESET);
	assert_int_not_equal(mmio_read(fx, 0x14, 1), 0);
	bh_vpci_reset_done(fx->d);
	assert_int_equal(mmio_read(fx, 0x14, 1), 0);
	assert_int_equal(mmio_read(fx, 0x18, 2), 256);
	assert_int_equal(mmio_read(fx, 0x1c, 2), 0);
}

static void test_device_config(void **state)
{
	struct fixture *fx = *state;
	uint8_t cfg[8] = { 0, 0, 1, 0, 0, 0, 0, 0 };

	assert_int_equal(mmio_read(fx, 0x2000, 8), 0x4000);
	/* Past the config space: zeros, no crash. */
	assert_int_equal(mmio_read(fx, 0x2000 + 200, 4), 0);
	assert_int_equal(mmio_read(fx, 0x2ffe, 8), 0);
	mmio_write(fx, 0x2000, 4, 7);
	assert_int_equal(sent_types[0], BH__MSG_TYPE__MSG_VIRTIO_CONFIG_WRITE);
	mmio_write(fx, 0x2000 + 250, 4, 7); /* out of range: dropped */
	assert_int_equal(nsent, 1);
	bh_vpci_config_update(fx->d, cfg, sizeof(cfg), 1);
	assert_int_equal(mmio_read(fx, 0x2000, 4), 0x10000);
	assert_int_equal(mmio_read(fx, 0x15, 1), 1);   /* generation moved */
	assert_int_equal(mmio_read(fx, 0x1000, 1), 2); /* ISR: config */
	assert_int_equal(mmio_read(fx, 0x1000, 1), 0); /* read clears */
	bh_vpci_needs_reset(fx->d, "test");
	assert_int_equal(mmio_read(fx, 0x14, 1) & 0x40, 0x40);
}

static void test_msix_table(void **state)
{
	struct fixture *fx = *state;

	mmio_write(fx, 0x4000 + 16, 4, 0xfee00000u);
	mmio_write(fx, 0x4000 + 16 + 8, 4, 0x4041);
	assert_int_equal(mmio_read(fx, 0x4000 + 16, 4), 0xfee00000u);
	assert_int_equal(mmio_read(fx, 0x4000 + 16 + 8, 4), 0x4041);
	/* Vector 3 does not exist (2 queues + config = 3 vectors). */
	mmio_write(fx, 0x4000 + 48, 4, 0x1234);
	assert_int_equal(mmio_read(fx, 0x4000 + 48, 4), 0);
	cfg_write(fx, 0x84 + 2, 2, 0x8000);
	assert_int_equal(cfg_read(fx, 0x84 + 2, 2), 0x8002);
	/* A notify that missed its ioeventfd still reaches the worker. */
	{
		uint64_t n = 0;

		mmio_write(fx, 0x3000 + 4, 2, 1);
		assert_int_equal(read(fx->d->q[1].kick_fd, &n, sizeof(n)),
				 sizeof(n));
		assert_int_equal(n, 1);
	}
}

/* A device without config space (virtio-rng): protobuf-c hands over an
 * empty config as NULL and 0, which must not reach memcpy (undefined even
 * for 0 bytes; UBSan in sanitizer builds stops the test there). */
static void test_no_config_space(void **state)
{
	struct fixture fx;
	void *st;
	int fds[2];

	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.rn.vm = -1;
	fx.rn.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(fx.rn.wake_fd >= 0);
	bh_hotplug_init(&fx.rn.hotplug, &runner_hotplug_ops, &fx.rn);
	pthread_mutex_init(&fx.rn.route_lock, NULL);
	bh_pci_init(&fx.rn.pci);
	for (int i = 0; i < 2; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(fds[i] >= 0);
	}
	assert_int_equal(bh_vpci_create(&fx.rn, 0, 4, 1, 1ULL << 32, 1, 256,
					NULL, 0, "rng0", fds, &fx.d),
			 0);
	bh_vpci_config_update(fx.d, NULL, 0, 0);
	assert_int_equal(mmio_read(&fx, 0x2000, 4), 0);
	st = &fx;
	teardown(&st);
	pthread_mutex_destroy(&fx.rn.route_lock);
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static uint64_t wakes(struct fixture *fx)
{
	uint64_t n = 0;

	if (read(fx->rn.wake_fd, &n, sizeof(n)) < 0)
		return 0;
	return n;
}

static void guest_eject(struct fixture *fx, uint32_t mask)
{
	uint8_t b[4];

	memcpy(b, &mask, 4);
	bh_hotplug_mmio(&fx->rn.hotplug, BH_HOTPLUG_B0EJ, b, 4, 1);
}

/*
 * A hot removal as the runner does it: the guest is asked, an eject of
 * another slot changes nothing, the eject of the device's slot wakes the
 * main thread, which removes it: off the bus, out of the table, every
 * eventfd closed, reported to the controller. Then the slot and index take
 * a new device, with the same BAR and GSI windows.
 */
static void test_remove_and_reuse(void **state)
{
	struct fixture *fx = *state;
	int old[4], fds[4];
	uint64_t bar = fx->d->bar_lo;
	unsigned int gsi = fx->d->gsi_base;
	struct bh_vpci *d2;

	for (unsigned int q = 0; q < 2; q++) {
		old[q] = fx->d->q[q].kick_fd;
		old[2 + q] = fx->d->q[q].call_fd;
	}
	/* Memory decoding on: the kicks sit at the BAR (as far as KVM
	 * lets them here) and must be taken away again. */
	cfg_write(fx, 0x04, 2, 0x0006);
	assert_int_not_equal(fx->d->notify_base, 0);

	assert_int_equal(bh_hotplug_remove(&fx->rn.hotplug, 1), 0);
	guest_eject(fx, 1u << 2); /* not asked: ignored */
	assert_int_equal(wakes(fx), 0);
	runner_hotplug_reap(&fx->rn);
	assert_ptr_equal(fx->rn.vdevs[0], fx->d);
	assert_int_equal(fx->rn.hotplug.bad_ejects, 1);

	sending_dev = NULL; /* about to be freed */
	guest_eject(fx, 1u << 1);
	assert_int_equal(wakes(fx), 1);
	nsent = 0;
	nquiesce = 0;
	runner_hotplug_reap(&fx->rn);
	fx->d = NULL;
	assert_null(fx->rn.vdevs[0]);
	assert_int_equal(nquiesce, 1);
	assert_int_equal(nsent, 1);
	assert_int_equal(sent_types[0],
			 BH__MSG_TYPE__MSG_RUNNER_DEVICE_REMOVED);
	assert_non_null(last_removed);
	assert_int_equal(last_removed->index, 0);
	assert_int_equal(last_removed->pci_slot, 1);
	assert_true(fx->rn.removed & 1u);
	for (unsigned int i = 0; i < 4; i++)
		assert_false(fd_open(old[i]));
	/* Nothing answers at 00:01.0 any more. */
	assert_int_equal(cfg_read(fx, 0x00, 4), 0xffffffffu);
	/* A second reap finds nothing. */
	runner_hotplug_reap(&fx->rn);
	assert_int_equal(nsent, 1);

	/* The slot and the index are free again. */
	for (int i = 0; i < 4; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(bh_vpci_create(&fx->rn, 0, 4, 1, 1ULL << 32, 2, 64,
					NULL, 0, "rng1", fds, &d2),
			 0);
	fx->d = d2;
	assert_ptr_equal(fx->rn.vdevs[0], d2);
	assert_int_equal(d2->bar_lo, bar);
	assert_int_equal(d2->gsi_base, gsi);
	assert_int_equal(cfg_read(fx, 0x00, 4), 0x10441af4u);
}

static size_t pack_vpci(struct bh_vpci *d, uint8_t *out, size_t max)
{
	struct bh_vpci_state_buf buf;
	Bh__VirtioPciState st;
	size_t len;

	bh_vpci_save(d, &st, &buf);
	len = protobuf_c_message_get_packed_size(&st.base);
	assert_true(len <= max);
	return protobuf_c_message_pack(&st.base, out);
}

/*
 * Saved state: a driven device (features, queues, MSI-X, BAR, decoding)
 * saved, restored into a fresh transport of the same device in another
 * runner, and saved again gives the same bytes, and the restored one
 * answers the guest as the first did; state that does not fit the device
 * is refused and changes nothing.
 */
static void test_state_round_trip(void **state)
{
	struct fixture *fx = *state;
	static struct runner rn2;
	uint8_t config[8] = { 0x00, 0x40, 0, 0, 0, 0, 0, 0 };
	uint8_t a[2048], b[2048], c[2048];
	size_t alen, blen, clen;
	struct bh_vpci *d2, *d1;
	struct bh_vpci_state_buf buf;
	Bh__VirtioPciState st;
	Bh__VirtioPciState *un;
	int fds[4];

	negotiate(fx, 1ULL << 32);
	mmio_write(fx, 0x16, 2, 1);
	mmio_write(fx, 0x18, 2, 128);
	mmio_write(fx, 0x1a, 2, 2);
	mmio_write(fx, 0x20, 8, 0x10000);
	mmio_write(fx, 0x28, 8, 0x20000);
	mmio_write(fx, 0x30, 8, 0x30000);
	mmio_write(fx, 0x1c, 2, 1);
	mmio_write(fx, 0x10, 2, 0); /* config vector */
	mmio_write(fx, 0x4000 + 32, 4, 0xfee00000u);
	mmio_write(fx, 0x4000 + 32 + 8, 4, 0x4042);
	cfg_write(fx, 0x84 + 2, 2, 0x8000);
	cfg_write(fx, 0x04, 2, 0x0006);
	mmio_write(fx, 0x14, 1, 1 | 2 | 8 | 4);
	assert_true(fx->d->activated);
	alen = pack_vpci(fx->d, a, sizeof(a));

	memset(&rn2, 0, sizeof(rn2));
	rn2.vm = -1;
	pthread_mutex_init(&rn2.route_lock, NULL);
	bh_pci_init(&rn2.pci);
	for (int i = 0; i < 4; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(
	    bh_vpci_create(&rn2, 0, 2, 1, (1ULL << 32) | (1ULL << 9), 2, 256,
			   config, sizeof(config), "disk0", fds, &d2),
	    0);
	un = bh__virtio_pci_state__unpack(NULL, alen, a);
	assert_non_null(un);
	assert_int_equal(bh_vpci_restore(d2, un), 0);
	blen = pack_vpci(d2, b, sizeof(b));
	assert_int_equal(blen, alen);
	assert_memory_equal(a, b, alen);
	/* The guest sees the same device. */
	d1 = fx->d;
	fx->d = d2;
	assert_int_equal(mmio_read(fx, 0x14, 1), 1 | 2 | 8 | 4);
	mmio_write(fx, 0x16, 2, 1);
	assert_int_equal(mmio_read(fx, 0x18, 2), 128);
	assert_int_equal(mmio_read(fx, 0x1a, 2), 2);
	assert_int_equal(mmio_read(fx, 0x28, 8), 0x20000);
	assert_int_equal(mmio_read(fx, 0x4000 + 32 + 8, 4), 0x4042);
	assert_true(d2->notify_base != 0);
	fx->d = d1;

	/* Refused, and d2 unchanged: another slot, another device type,
	 * features the device lacks, a queue too large, bits no write
	 * makes, a queue missing. */
	bh_vpci_save(d2, &st, &buf);
	st.slot = 2;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	st.slot = 1;
	st.device_type = 4;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	st.device_type = 2;
	st.driver_features |= 1u << 3;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	st.driver_features &= ~(uint64_t)(1u << 3);
	buf.q[1].size = 512;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	buf.q[1].size = 128;
	st.command = 0xffff;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	st.command = 0x0006;
	st.status = 0x100;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	st.status = 0x0f;
	st.n_queues = 1;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	st.n_queues = 2;
	st.n_msix = 2;
	assert_int_equal(bh_vpci_restore(d2, &st), -EINVAL);
	clen = pack_vpci(d2, c, sizeof(c));
	assert_int_equal(clen, alen);
	assert_memory_equal(a, c, alen);
	bh__virtio_pci_state__free_unpacked(un, NULL);

	for (unsigned int q = 0; q < 2; q++) {
		close(d2->q[q].kick_fd);
		close(d2->q[q].call_fd);
	}
	pthread_mutex_destroy(&d2->lock);
	pthread_mutex_destroy(&d2->out_lock);
	free(d2);
}

/* A reset the worker has not confirmed is saved as done. */
static void test_state_reset_pending(void **state)
{
	struct fixture *fx = *state;
	struct bh_vpci_state_buf buf;
	Bh__VirtioPciState st;

	negotiate(fx, 1ULL << 32);
	mmio_write(fx, 0x14, 1, 1 | 2 | 8 | 4);
	mmio_write(fx, 0x14, 1, 0);
	assert_true(fx->d->reset_pending);
	bh_vpci_save(fx->d, &st, &buf);
	assert_int_equal(st.status, 0);
	assert_false(st.activated);
}

/* A busy slot or index refuses the device and closes what it was given. */
static void test_add_busy(void **state)
{
	struct fixture *fx = *state;
	struct bh_vpci *d2 = NULL;
	int fds[4];

	for (int i = 0; i < 4; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(bh_vpci_create(&fx->rn, 1, 4, 1, 1ULL << 32, 2, 64,
					NULL, 0, "rng1", fds, &d2),
			 -EBUSY);
	for (int i = 0; i < 4; i++)
		assert_false(fd_open(fds[i]));
	for (int i = 0; i < 4; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(bh_vpci_create(&fx->rn, 0, 4, 2, 1ULL << 32, 2, 64,
					NULL, 0, "rng1", fds, &d2),
			 -EINVAL);
	for (int i = 0; i < 4; i++)
		assert_false(fd_open(fds[i]));
	for (int i = 0; i < 4; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(bh_vpci_create(&fx->rn, BH_MAX_DEVICES, 4, 2,
					1ULL << 32, 2, 64, NULL, 0, "rng1", fds,
					&d2),
			 -EINVAL);
	for (int i = 0; i < 4; i++)
		assert_false(fd_open(fds[i]));
	assert_null(d2);
	assert_null(fx->rn.vdevs[1]);
	/* A removal of a device that is not there changes nothing. */
	assert_int_equal(runner_device_remove(&fx->rn, 3), -ENOENT);
	assert_int_equal(nsent, 0);
}

/* Device memory (virtio-pmem's region): where the runner lets it go, and
 * that it holds nothing of a region it could not add. */
static void test_devmem(void **state)
{
	const uint64_t M2 = 2ULL << 20, G4 = 1ULL << 32;
	Bh__SharedRegion r = BH__SHARED_REGION__INIT;
	struct runner rn;
	int fd, kvm;

	(void)state;
	memset(&rn, 0, sizeof(rn));
	rn.vm = -1;
	rn.nram = 2;
	rn.ram_gpa[0] = 0;
	rn.ram_len[0] = 3ULL << 30;
	rn.ram_gpa[1] = G4;
	rn.ram_len[1] = 1ULL << 30;

	assert_int_equal(runner_devmem_check(&rn, 0, 5 * (1ULL << 30), M2), 0);
	assert_int_equal(runner_devmem_check(&rn, 15, 8 * G4, 64 * M2), 0);
	/* Below 4 GiB: RAM or the hole. */
	assert_int_equal(runner_devmem_check(&rn, 0, 1ULL << 30, M2), -EINVAL);
	assert_int_equal(runner_devmem_check(&rn, 0, 0xe0000000ULL, M2),
			 -EINVAL);
	/* Over high RAM, or reaching into it. */
	assert_int_equal(runner_devmem_check(&rn, 0, G4, M2), -EINVAL);
	assert_int_equal(
	    runner_devmem_check(&rn, 0, G4 + (1ULL << 30) - M2, 2 * M2),
	    -EINVAL);
	/* Unaligned, empty, wrapping, a bad index. */
	assert_int_equal(runner_devmem_check(&rn, 0, 8 * G4 + 4096, M2),
			 -EINVAL);
	assert_int_equal(runner_devmem_check(&rn, 0, 8 * G4, M2 + 4096),
			 -EINVAL);
	assert_int_equal(runner_devmem_check(&rn, 0, 8 * G4, 0), -EINVAL);
	assert_int_equal(
	    runner_devmem_check(&rn, 0, UINT64_MAX - M2 + 1, 2 * M2), -EINVAL);
	assert_int_equal(runner_devmem_check(&rn, BH_MAX_DEVICES, 8 * G4, M2),
			 -EINVAL);

	/* Another device's region: no overlap, and one per device. */
	rn.devmem[3] = (struct runner_devmem){ (uint8_t *)&rn, 8 * G4, 4 * M2 };
	assert_int_equal(runner_devmem_check(&rn, 0, 8 * G4 + 2 * M2, M2),
			 -EINVAL);
	assert_int_equal(runner_devmem_check(&rn, 0, 8 * G4 - M2, 2 * M2),
			 -EINVAL);
	assert_int_equal(runner_devmem_check(&rn, 0, 8 * G4 + 4 * M2, M2), 0);
	assert_int_equal(runner_devmem_check(&rn, 3, 9 * G4, M2), -EBUSY);
	rn.devmem[3] = (struct runner_devmem){ 0 };

	/* KVM refuses the slot (no VM here): the fd is closed, nothing is
	 * kept, and removal has nothing to do. */
	fd = memfd_create("pmem", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)M2), 0);
	r.guest_phys = 8 * G4;
	r.size = M2;
	assert_int_equal(runner_devmem_add(&rn, 2, &r, fd), -EBADF);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_null(rn.devmem[2].addr);
	runner_devmem_remove(&rn, 2);
	/* A bad region: refused before anything is mapped. */
	fd = memfd_create("pmem", MFD_CLOEXEC);
	assert_true(fd >= 0);
	r.guest_phys = G4;
	assert_int_equal(runner_devmem_add(&rn, 2, &r, fd), -EINVAL);
	assert_int_equal(fcntl(fd, F_GETFD), -1);

	/* With a VM, where /dev/kvm opens (no vCPU runs): the slot is
	 * added, the guest's writes through a shared mapping reach the
	 * file, and removal deletes the slot and unmaps. */
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		fprintf(stderr,
			"test_devmem: no /dev/kvm, KVM part left out\n");
		return;
	}
	rn.vm = ioctl(kvm, KVM_CREATE_VM, 0);
	close(kvm);
	assert_true(rn.vm >= 0);
	fd = memfd_create("pmem", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)M2), 0);
	r.guest_phys = 8 * G4;
	r.private_ = 0;
	assert_int_equal(runner_devmem_add(&rn, 2, &r, dup(fd)), 0);
	assert_non_null(rn.devmem[2].addr);
	rn.devmem[2].addr[100] = 0x5a;
	{
		uint8_t b = 0;

		assert_int_equal(pread(fd, &b, 1, 100), 1);
		assert_int_equal(b, 0x5a);
	}
	/* The same slot again: refused, the first kept. */
	assert_int_equal(runner_devmem_add(&rn, 2, &r, dup(fd)), -EBUSY);
	assert_non_null(rn.devmem[2].addr);
	runner_devmem_remove(&rn, 2);
	assert_null(rn.devmem[2].addr);
	/* Private: the file stays as it was. */
	r.private_ = 1;
	assert_int_equal(runner_devmem_add(&rn, 2, &r, dup(fd)), 0);
	rn.devmem[2].addr[100] = 0x11;
	{
		uint8_t b = 0;

		assert_int_equal(pread(fd, &b, 1, 100), 1);
		assert_int_equal(b, 0x5a);
	}
	runner_devmem_remove(&rn, 2);
	assert_null(rn.devmem[2].addr);
	close(fd);
	close(rn.vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_and_caps, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_activate_and_reset, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_device_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_msix_table, setup,
						teardown),
		cmocka_unit_test(test_no_config_space),
		cmocka_unit_test_setup_teardown(test_remove_and_reuse, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_state_reset_pending, setup,
						teardown),
		cmocka_unit_test(test_devmem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
