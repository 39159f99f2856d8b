/* A stand-in for bulkhead-vcpu: it does the handshake and the set-up
 * exchange like the real runner, without KVM, then does as its --name says:
 *   flood    sends VIRTIO_RESET for device 0 without pause, reads nothing
 *   deaf     sends nothing, reads nothing
 *   hotplug  the runner's side of PCI hotplug with a guest that ejects at
 *            once: RUNNER_ADD_DEVICE is taken (refused with ERROR, as the
 *            runner does, for a busy index or slot, or an id that begins
 *            with "refuse"), STATS_REQUEST is answered, RUNNER_REMOVE_DEVICE
 *            is answered with RUNNER_DEVICE_REMOVED (never for an id that
 *            begins with "stuck": that guest does not eject), pause and
 *            quit work.
 * test_runner_stuck.py and test_hotplug_api.py put it beside a copy of
 * bulkhead as bulkhead-vcpu. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/spawn.h>

#include "proto/internal.pb-c.h"

#include "standin_probe.h"

/* The next frame from the controller, waiting as long as it takes. */
static int read_frame(int sock, struct bh_frame_reader *r, struct bh_frame *f)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int n = bh_frame_read(sock, r, f);

		if (n != 0)
			return n < 0 ? n : 0;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

/* What the hotplug mode knows of its devices, by index. */
#define STANDIN_MAX_DEVICES 16
static struct {
	bool used;
	unsigned int slot;
	char id[64];
} devs[STANDIN_MAX_DEVICES];

/* RUNNER_ADD_DEVICE: 0, or -1 when it refuses it. After start, answered
 * with RUNNER_DEVICE_ADDED as the runner does; before it, a refusal is an
 * ERROR. */
static int add_device(int sock, const struct bh_frame *f, bool running)
{
	Bh__RunnerDeviceAdded ack = BH__RUNNER_DEVICE_ADDED__INIT;
	Bh__Error e = BH__ERROR__INIT;
	Bh__RunnerAddDevice *a;
	const Bh__VirtioDevice *d;
	char msg[160];
	int r = 0;

	a = bh__runner_add_device__unpack(NULL, f->len, f->body);
	if (!a || !a->device)
		return -1;
	d = a->device;
	snprintf(msg, sizeof(msg), "add-device %s (index %u, slot %u): ", d->id,
		 d->index, d->pci_slot);
	if (d->index >= STANDIN_MAX_DEVICES || devs[d->index].used) {
		r = -EBUSY;
	} else if (running && strncmp(d->id, "refuse", 6) == 0) {
		r = -EIO;
	} else {
		for (unsigned int i = 0; i < STANDIN_MAX_DEVICES; i++)
			if (devs[i].used && devs[i].slot == d->pci_slot)
				r = -EBUSY;
	}
	if (r == 0) {
		devs[d->index].used = true;
		devs[d->index].slot = d->pci_slot;
		snprintf(devs[d->index].id, sizeof(devs[d->index].id), "%s",
			 d->id);
	}
	ack.index = d->index;
	ack.pci_slot = d->pci_slot;
	bh__runner_add_device__free_unpacked(a, NULL);
	if (r < 0)
		strncat(msg, strerror(-r), sizeof(msg) - strlen(msg) - 1);
	if (running) {
		ack.error = -r;
		ack.message = r < 0 ? msg : (char *)"";
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_DEVICE_ADDED,
			      &ack.base, NULL, 0);
		return r < 0 ? -1 : 0;
	}
	if (r == 0)
		return 0;
	e.code = -r;
	e.message = msg;
	bh_frame_send(sock, BH__MSG_TYPE__MSG_ERROR, &e.base, NULL, 0);
	return -1;
}

static int set_up(int sock, struct bh_frame_reader *rp)
{
	Bh__RunnerReady ready = BH__RUNNER_READY__INIT;
	struct bh_frame_reader r;
	struct bh_frame f;
	uint16_t type;
	int n;

	if (bh_hello_exchange(sock, "vcpu-runner", "controller") < 0)
		return -1;
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	/* The host is probed at the first boot only. */
	n = read_frame(sock, &r, &f);
	if (n == 0 && f.type == BH__MSG_TYPE__MSG_RUNNER_PROBE) {
		if (standin_answer_probe_frame(sock, &f) < 0)
			return -1;
		n = read_frame(sock, &r, &f);
	}
	if (n < 0 || f.type != BH__MSG_TYPE__MSG_RUNNER_SETUP)
		return -1;
	bh_frame_release(&f); /* guest RAM: not needed */
	ready.vcpus = 1;
	ready.kvm_info = "stand-in runner";
	if (bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_READY, &ready.base,
			  NULL, 0) < 0)
		return -1;
	/* The devices, then the start. */
	do {
		n = read_frame(sock, &r, &f);
		if (n < 0)
			return -1;
		type = f.type;
		if (type == BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE &&
		    add_device(sock, &f, false) < 0)
			return -1;
		bh_frame_release(&f);
	} while (type == BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE);
	*rp = r;
	return type == BH__MSG_TYPE__MSG_RUNNER_START ? 0 : -1;
}

/* The hotplug mode's loop, until QUIT. */
static int serve_hotplug(int sock, struct bh_frame_reader *r)
{
	Bh__RunnerDeviceRemoved done = BH__RUNNER_DEVICE_REMOVED__INIT;
	Bh__ExitStats stats = BH__EXIT_STATS__INIT;
	Bh__Empty empty = BH__EMPTY__INIT;
	Bh__RunnerRemoveDevice *rm;
	struct bh_frame f;
	int n;

	for (;;) {
		n = read_frame(sock, r, &f);
		if (n < 0)
			return 1;
		switch (f.type) {
		case BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE:
			add_device(sock, &f, true);
			break;
		case BH__MSG_TYPE__MSG_STATS_REQUEST:
			bh_frame_send(sock, BH__MSG_TYPE__MSG_EXIT_STATS,
				      &stats.base, NULL, 0);
			break;
		case BH__MSG_TYPE__MSG_RUNNER_REMOVE_DEVICE:
			rm = bh__runner_remove_device__unpack(NULL, f.len,
							      f.body);
			if (!rm || rm->index >= STANDIN_MAX_DEVICES ||
			    !devs[rm->index].used)
				return 1;
			fprintf(stderr, "stand-in runner: remove %s\n",
				devs[rm->index].id);
			if (strncmp(devs[rm->index].id, "stuck", 5) != 0) {
				done.index = rm->index;
				done.pci_slot = devs[rm->index].slot;
				devs[rm->index].used = false;
				bh_frame_send(
				    sock,
				    BH__MSG_TYPE__MSG_RUNNER_DEVICE_REMOVED,
				    &done.base, NULL, 0);
			}
			bh__runner_remove_device__free_unpacked(rm, NULL);
			break;
		case BH__MSG_TYPE__MSG_RUNNER_PAUSE:
			bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_PAUSED,
				      &empty.base, NULL, 0);
			break;
		case BH__MSG_TYPE__MSG_QUIT:
			bh_frame_release(&f);
			return 0;
		default:
			break;
		}
		bh_frame_release(&f);
	}
}

int main(int argc, char **argv)
{
	const char *mode = "";
	int sock = BH_CHILD_FD_CONTROL;
	struct bh_frame_reader r;

	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--name") == 0)
			mode = argv[i + 1];
	if (set_up(sock, &r) < 0) {
		fprintf(stderr, "stand-in runner: set-up failed\n");
		return 1;
	}
	fprintf(stderr, "stand-in runner: started, now %s\n", mode);
	if (strcmp(mode, "hotplug") == 0)
		return serve_hotplug(sock, &r);
	if (strcmp(mode, "flood") == 0) {
		Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

		ref.index = 0;
		while (bh_frame_send(sock, BH__MSG_TYPE__MSG_VIRTIO_RESET,
				     &ref.base, NULL, 0) == 0)
			;
		return 1;
	}
	/* deaf: the controller's SIGKILL ends it (or its parent-death
	 * signal); poll, because the controller's filter has no pause. */
	for (;;)
		poll(NULL, 0, -1);
}
