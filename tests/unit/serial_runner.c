/* A stand-in vCPU runner for the controller's serial output tests: it
 * answers the set-up like the real runner, then sends 4 MiB of guest serial
 * output as fast as the controller reads it, and powers off when the power
 * button is pressed. Built for the tests only, never installed. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/spawn.h>

#include "proto/internal.pb-c.h"

#include "standin_probe.h"

#define CTL	   BH_CHILD_FD_CONTROL
#define TOTAL	   (4u * 1024 * 1024)
#define CHUNK	   4096
#define WAIT_SETUP 10000

static struct bh_frame_reader rd;

static void send_msg(uint16_t type, const ProtobufCMessage *m)
{
	if (bh_frame_send(CTL, type, m, NULL, 0) < 0)
		exit(0); /* the controller is gone */
}

/* Waits for a frame of type want, skipping others; exits on a QUIT. */
static void expect(uint16_t want)
{
	struct bh_frame f;

	for (;;) {
		uint16_t type;

		if (bh_frame_read_timeout(CTL, &rd, &f, WAIT_SETUP) < 0)
			exit(2);
		type = f.type;
		bh_frame_release(&f);
		if (type == BH__MSG_TYPE__MSG_QUIT)
			exit(0);
		if (type == want)
			return;
	}
}

/* Answers what the controller sent while we were writing. */
static void serve_one(void)
{
	Bh__GuestEvent ev = BH__GUEST_EVENT__INIT;
	struct bh_frame f;
	uint16_t type;

	if (bh_frame_read_timeout(CTL, &rd, &f, WAIT_SETUP) < 0)
		exit(0);
	type = f.type;
	bh_frame_release(&f);
	if (type == BH__MSG_TYPE__MSG_QUIT)
		exit(0);
	if (type == BH__MSG_TYPE__MSG_POWER_BUTTON) {
		ev.kind = BH__GUEST_EVENT__KIND__POWEROFF;
		ev.reason = "power button";
		send_msg(BH__MSG_TYPE__MSG_GUEST_EVENT, &ev.base);
	}
}

int main(void)
{
	Bh__RunnerReady ready = BH__RUNNER_READY__INIT;
	Bh__SerialData d = BH__SERIAL_DATA__INIT;
	uint8_t line[CHUNK];
	unsigned int sent = 0;

	bh_frame_reader_init(&rd, BH_FRAME_MAX_BODY);
	if (bh_hello_exchange(CTL, "vcpu-runner", "controller") < 0)
		return 2;
	if (standin_answer_probe(CTL, &rd, WAIT_SETUP) < 0)
		return 2;
	expect(BH__MSG_TYPE__MSG_RUNNER_SETUP);
	ready.vcpus = 1;
	ready.kvm_info = "stand-in";
	send_msg(BH__MSG_TYPE__MSG_RUNNER_READY, &ready.base);
	expect(BH__MSG_TYPE__MSG_RUNNER_START);

	for (size_t i = 0; i < sizeof(line); i++)
		line[i] = (i % 64 == 63) ? '\n' : (uint8_t)('a' + i % 26);
	d.data.data = line;
	d.data.len = sizeof(line);
	for (;;) {
		struct pollfd p = { .fd = CTL, .events = POLLIN };

		if (sent < TOTAL)
			p.events |= POLLOUT;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return 2;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			serve_one();
			continue;
		}
		if (p.revents & POLLOUT) {
			send_msg(BH__MSG_TYPE__MSG_SERIAL_OUT, &d.base);
			sent += CHUNK;
		}
	}
}
