/* A stand-in for bulkhead-vcpu that stops reading its socket: it does the
 * handshake and the set-up exchange like the real runner, without KVM, then
 * misbehaves as its --name says:
 *   flood  sends VIRTIO_RESET for device 0 without pause, reads nothing
 *   deaf   sends nothing, reads nothing
 * test_runner_stuck.py puts it beside a copy of bulkhead as bulkhead-vcpu. */
#include <errno.h>
#include <poll.h>
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

static int set_up(int sock)
{
	Bh__RunnerReady ready = BH__RUNNER_READY__INIT;
	struct bh_frame_reader r;
	struct bh_frame f;
	uint16_t type;
	int n;

	if (bh_hello_exchange(sock, "vcpu-runner", "controller") < 0)
		return -1;
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	if (standin_answer_probe(sock, &r, 10000) < 0)
		return -1;
	n = read_frame(sock, &r, &f);
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
		bh_frame_release(&f);
	} while (type == BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE);
	return type == BH__MSG_TYPE__MSG_RUNNER_START ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *mode = "";
	int sock = BH_CHILD_FD_CONTROL;

	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--name") == 0)
			mode = argv[i + 1];
	if (set_up(sock) < 0) {
		fprintf(stderr, "stand-in runner: set-up failed\n");
		return 1;
	}
	fprintf(stderr, "stand-in runner: started, now %s\n", mode);
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
