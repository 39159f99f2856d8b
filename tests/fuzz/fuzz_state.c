/*
 * Fuzz target: the runner's saved-state decoders and restores (proto/
 * state.proto; vcpu-runner uart.c, cmos.c, pci.c, virtio_pci.c). The first
 * byte picks the model, the rest is its message; whatever unpacks is
 * restored into a fresh model (a virtio-blk transport of 2 queues), and a
 * restore that succeeds must save back to state that restores again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <bulkhead/log.h>

#include "cmos.h"
#include "pci.h"
#include "runner.h"
#include "uart.h"
#include "virtio_pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The transport's links to the rest of the runner, unused here. */
int runner_send(struct runner *rn, uint16_t type, const ProtobufCMessage *msg)
{
	(void)rn;
	(void)type;
	(void)msg;
	return 0;
}

void runner_vcpus_quiesce(struct runner *rn)
{
	(void)rn;
}

static struct runner rn;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	bh_log_init("fuzz-state");
	bh_log_set_level(BH_LOG_ERR);
	rn.vm = -1;
	pthread_mutex_init(&rn.route_lock, NULL);
	bh_pci_init(&rn.pci);
	return 0;
}

static void fuzz_uart_state(const Bh__UartState *s)
{
	static uint8_t buf[BH_UART_STATE_BUF];
	struct bh_uart u;
	Bh__UartState again;

	bh_uart_init(&u, NULL, NULL);
	if (bh_uart_restore(&u, s) == 0) {
		bh_uart_save(&u, &again, buf);
		if (bh_uart_restore(&u, &again) != 0)
			abort();
	}
	bh_uart_destroy(&u);
}

static void fuzz_uart(const uint8_t *data, size_t size)
{
	static uint8_t buf[BH_UART_STATE_BUF];
	Bh__UartState *s = bh__uart_state__unpack(NULL, size, data);
	struct bh_uart u;
	Bh__UartState again;

	if (!s)
		return;
	bh_uart_init(&u, NULL, NULL);
	if (bh_uart_restore(&u, s) == 0) {
		bh_uart_save(&u, &again, buf);
		if (bh_uart_restore(&u, &again) != 0)
			abort();
		for (unsigned int off = 0; off < 8; off++)
			bh_uart_read(&u, off);
	}
	bh_uart_destroy(&u);
	bh__uart_state__free_unpacked(s, NULL);
}

static void fuzz_cmos(const uint8_t *data, size_t size)
{
	Bh__CmosState *s = bh__cmos_state__unpack(NULL, size, data);
	struct bh_cmos c;
	Bh__CmosState again;

	if (!s)
		return;
	bh_cmos_init(&c, 256ULL << 20, 0);
	if (bh_cmos_restore(&c, s) == 0) {
		bh_cmos_save(&c, &again);
		if (bh_cmos_restore(&c, &again) != 0)
			abort();
		for (unsigned int reg = 0; reg < 0x80; reg++) {
			bh_cmos_write(&c, 0, (uint8_t)reg);
			bh_cmos_read(&c, 1);
		}
	}
	bh__cmos_state__free_unpacked(s, NULL);
}

static void fuzz_vpci(const uint8_t *data, size_t size)
{
	Bh__VirtioPciState *s = bh__virtio_pci_state__unpack(NULL, size, data);
	struct bh_vpci_state_buf buf;
	Bh__VirtioPciState again;
	struct bh_vpci *d;
	int fds[4];

	if (!s)
		return;
	for (int i = 0; i < 4; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bh_vpci_create(&rn, 0, 2, 1, (1ULL << 32) | (1ULL << 9), 2, 256,
			   NULL, 0, "disk0", fds, &d) < 0)
		abort();
	if (bh_vpci_restore(d, s) == 0) {
		uint8_t b[8];

		bh_vpci_save(d, &again, &buf);
		if (bh_vpci_restore(d, &again) != 0)
			abort();
		for (uint64_t off = 0; off < 0x40; off += 2)
			bh_vpci_mmio(d, off, b, 2, 0);
	}
	bh_vpci_unpublish(d);
	bh_vpci_destroy(d);
	bh__virtio_pci_state__free_unpacked(s, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 4: {
		/* A snapshot's state file and memory map, as a restore
		 * unpacks them. */
		Bh__SnapshotState *st =
		    bh__snapshot_state__unpack(NULL, size - 1, data + 1);
		Bh__MemoryMap *mm =
		    bh__memory_map__unpack(NULL, size - 1, data + 1);

		if (st && st->runner && st->runner->uart)
			fuzz_uart_state(st->runner->uart);
		if (st)
			bh__snapshot_state__free_unpacked(st, NULL);
		if (mm)
			bh__memory_map__free_unpacked(mm, NULL);
		break;
	}
	case 5: {
		/* A vCPU's state as the runner takes it: sizes checked. */
		Bh__CpuState *cs =
		    bh__cpu_state__unpack(NULL, size - 1, data + 1);

		if (cs)
			bh__cpu_state__free_unpacked(cs, NULL);
		break;
	}
	case 0:
		fuzz_uart(data + 1, size - 1);
		break;
	case 1:
		fuzz_cmos(data + 1, size - 1);
		break;
	case 2: {
		Bh__PciHostState *s =
		    bh__pci_host_state__unpack(NULL, size - 1, data + 1);

		if (s) {
			bh_pci_restore(&rn.pci, s);
			bh__pci_host_state__free_unpacked(s, NULL);
		}
		break;
	}
	default:
		fuzz_vpci(data + 1, size - 1);
		break;
	}
	return 0;
}
