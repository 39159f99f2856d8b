/* A device worker that breaks the protocol on purpose, for the controller's
 * tests: its --id names what it does wrong. The first worker started for an
 * id by a controller misbehaves; the workers that replace it behave. Built
 * for the tests only, never installed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "proto/internal.pb-c.h"

#define CTL BH_CHILD_FD_CONTROL

static struct bh_frame_reader rd;

static void __attribute__((noreturn)) idle(void)
{
	for (;;)
		pause();
}

static void put(const void *buf, size_t len)
{
	if (bh_write_full(CTL, buf, len) < 0)
		exit(2);
}

static void send_msg(uint16_t type, const ProtobufCMessage *m)
{
	if (bh_frame_send(CTL, type, m, NULL, 0) < 0)
		exit(2);
}

/* A frame header as given, with nfds fds of /dev/null on its bytes. */
static void send_header(uint32_t len, uint16_t type, uint8_t hdr_nfds,
			uint8_t flags, unsigned int nfds)
{
	uint8_t h[BH_FRAME_HDR_SIZE];
	char ctl[CMSG_SPACE(sizeof(int) * 64)];
	struct iovec iov = { .iov_base = h, .iov_len = sizeof(h) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[64];

	memcpy(h, &len, 4);
	memcpy(h + 4, &type, 2);
	h[6] = hdr_nfds;
	h[7] = flags;
	if (nfds > 64)
		exit(2);
	if (nfds) {
		struct cmsghdr *c;

		for (unsigned int i = 0; i < nfds; i++)
			if ((fds[i] = open("/dev/null", O_RDONLY)) < 0)
				exit(2);
		memset(ctl, 0, sizeof(ctl));
		m.msg_control = ctl;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(CTL, &m, MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		exit(2);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* MSG_ERROR "flood" as a frame, its header said to carry hdr_nfds fds. */
static void error_frame(uint8_t hdr_nfds, unsigned int nfds)
{
	Bh__Error e = BH__ERROR__INIT;
	uint8_t body[64];
	size_t n;

	e.code = EIO;
	e.message = "flood";
	n = bh__error__pack(&e, body);
	send_header((uint32_t)n, BH__MSG_TYPE__MSG_ERROR, hdr_nfds, 0, nfds);
	put(body, n);
}

/* MSG_ERROR frames without pause for about two seconds. */
static void flood(void)
{
	Bh__Error e = BH__ERROR__INIT;
	uint8_t *one, *many;
	size_t len, per = 1024;
	uint64_t end = bh_now_ns() + 2000000000ull;

	e.code = EIO;
	e.message = "flood";
	if (bh_frame_encode(BH__MSG_TYPE__MSG_ERROR, &e.base, 0, &one, &len) <
	    0)
		exit(2);
	many = malloc(len * per);
	if (!many)
		exit(2);
	for (size_t i = 0; i < per; i++)
		memcpy(many + i * len, one, len);
	while (bh_now_ns() < end)
		put(many, len * per);
	free(many);
	free(one);
}

/* What a well-behaved worker answers; quiet_* leave requests unanswered. */
static void __attribute__((noreturn))
serve(bool quiet_counters, bool quiet_reset, bool quiet_pause)
{
	uint64_t asked = 0;

	for (;;) {
		Bh__Counters cs = BH__COUNTERS__INIT;
		Bh__Counter c = BH__COUNTER__INIT;
		Bh__Counter *cp = &c;
		Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;
		struct bh_frame f;

		if (bh_frame_read_timeout(CTL, &rd, &f, 3600 * 1000) < 0)
			exit(0);
		switch (f.type) {
		case BH__MSG_TYPE__MSG_QUIT:
			exit(0);
		case BH__MSG_TYPE__MSG_COUNTERS_REQUEST:
			if (quiet_counters)
				break;
			c.name = "requests";
			c.value = ++asked;
			cs.n_counters = 1;
			cs.counters = &cp;
			send_msg(BH__MSG_TYPE__MSG_COUNTERS, &cs.base);
			break;
		case BH__MSG_TYPE__MSG_DEVICE_RESET:
			if (!quiet_reset)
				send_msg(BH__MSG_TYPE__MSG_DEVICE_RESET_DONE,
					 &ref.base);
			break;
		case BH__MSG_TYPE__MSG_DEVICE_PAUSE: {
			Bh__Empty e = BH__EMPTY__INIT;

			if (!quiet_pause)
				send_msg(BH__MSG_TYPE__MSG_DEVICE_PAUSED,
					 &e.base);
			break;
		}
		default:
			break;
		}
		bh_frame_release(&f);
	}
}

static Bh__WorkerReady *ready_msg(Bh__WorkerReady *r, Bh__VirtioDevice *d,
				  const Bh__WorkerSetup *s)
{
	static uint8_t config[8];

	bh__worker_ready__init(r);
	bh__virtio_device__init(d);
	d->device_type = 2;
	d->num_queues = s && s->blk ? s->blk->num_queues : 1;
	d->max_queue_size = s && s->blk ? s->blk->queue_size : 256;
	d->config.data = config;
	d->config.len = sizeof(config);
	r->device = d;
	return r;
}

int main(int argc, char **argv)
{
	Bh__WorkerReady ready;
	Bh__VirtioDevice dev;
	Bh__WorkerSetup *setup;
	Bh__Empty empty = BH__EMPTY__INIT;
	struct bh_frame f;
	const char *id = "";
	char path[128], mode[64], *dot;
	int fd;

	/* --id MODE.TAG: TAG tells one test run's workers from another's. */
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--id") == 0)
			id = argv[i + 1];
	snprintf(mode, sizeof(mode), "%s", id);
	dot = strrchr(mode, '.');
	if (dot)
		*dot = '\0';
	snprintf(path, sizeof(path), "/tmp/bh-hostile-%s", id);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	else
		snprintf(mode, sizeof(mode), "good");
	bh_frame_reader_init(&rd, BH_FRAME_MAX_BODY);

	if (strcmp(mode, "setup-garbage") == 0) {
		usleep(200000); /* for the test to see it first */
		put("GET / HTTP/1.0\r\n\r\n", 18);
		idle();
	}
	if (strcmp(mode, "setup-silent") == 0)
		idle();
	if (bh_hello_exchange(CTL, "dev-blk", "controller") < 0)
		exit(2);
	if (bh_frame_read_timeout(CTL, &rd, &f, 10000) < 0 ||
	    f.type != BH__MSG_TYPE__MSG_WORKER_SETUP)
		exit(2);
	setup = bh__worker_setup__unpack(NULL, f.len, f.body);
	bh_frame_release(&f);
	ready_msg(&ready, &dev, setup);
	send_msg(BH__MSG_TYPE__MSG_WORKER_READY, &ready.base);

	/* From here on the controller watches the socket in its loop. */
	if (strcmp(mode, "garbage") == 0) {
		put("GET / HTTP/1.0\r\n\r\n", 18);
	} else if (strcmp(mode, "badflags") == 0) {
		send_header(0, BH__MSG_TYPE__MSG_ERROR, 0, 0x5a, 0);
	} else if (strcmp(mode, "huge") == 0) {
		send_header(0xffffffffu, BH__MSG_TYPE__MSG_ERROR, 0, 0, 0);
	} else if (strcmp(mode, "max1") == 0) {
		send_header(BH_FRAME_MAX_BODY + 1, BH__MSG_TYPE__MSG_ERROR, 0,
			    0, 0);
	} else if (strcmp(mode, "trunc") == 0) {
		put("\x10\x00\x00", 3);
	} else if (strcmp(mode, "trunc-body") == 0) {
		send_header(100, BH__MSG_TYPE__MSG_ERROR, 0, 0, 0);
		put("\x12\x05", 2);
	} else if (strcmp(mode, "unknown") == 0) {
		send_msg(999, NULL);
	} else if (strcmp(mode, "badbody") == 0) {
		send_header(3, BH__MSG_TYPE__MSG_ERROR, 0, 0, 0);
		put("\xff\xff\xff", 3);
	} else if (strcmp(mode, "unexpected") == 0) {
		send_msg(BH__MSG_TYPE__MSG_RUNNER_SETUP, &empty.base);
	} else if (strcmp(mode, "hello2") == 0) {
		if (bh_hello_send(CTL, "dev-blk") < 0)
			exit(2);
	} else if (strcmp(mode, "ready2") == 0) {
		send_msg(BH__MSG_TYPE__MSG_WORKER_READY, &ready.base);
	} else if (strcmp(mode, "resetdone") == 0) {
		Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

		send_msg(BH__MSG_TYPE__MSG_DEVICE_RESET_DONE, &ref.base);
	} else if (strcmp(mode, "activate") == 0) {
		Bh__DeviceActivate act = BH__DEVICE_ACTIVATE__INIT;

		send_msg(BH__MSG_TYPE__MSG_DEVICE_ACTIVATE, &act.base);
	} else if (strcmp(mode, "counters") == 0) {
		Bh__Counters cs = BH__COUNTERS__INIT;

		send_msg(BH__MSG_TYPE__MSG_COUNTERS, &cs.base);
	} else if (strcmp(mode, "fds") == 0) {
		error_frame(0, 3); /* fds the header does not announce */
	} else if (strcmp(mode, "fds-hdr") == 0) {
		error_frame(3, 3); /* announced, but MSG_ERROR takes none */
	} else if (strcmp(mode, "fds64") == 0) {
		error_frame(32, 64); /* more than a frame holds: MSG_CTRUNC */
	} else if (strcmp(mode, "fewfds") == 0) {
		error_frame(4, 2);
	} else if (strcmp(mode, "close") == 0) {
		close(CTL);
		idle();
	} else if (strcmp(mode, "exit") == 0) {
		usleep(200000); /* for the test to see it first */
		exit(3);
	} else if (strcmp(mode, "deaf") == 0) {
		idle();
	} else if (strcmp(mode, "flood") == 0) {
		flood();
	} else if (strcmp(mode, "nocounters") == 0) {
		serve(true, false, false);
	} else if (strcmp(mode, "noreset") == 0) {
		serve(false, true, false);
	} else if (strcmp(mode, "nopause") == 0) {
		serve(false, false, true);
	} else if (strcmp(mode, "paused") == 0) {
		send_msg(BH__MSG_TYPE__MSG_DEVICE_PAUSED, &empty.base);
	}
	if (strcmp(mode, "good") != 0 && strcmp(mode, "flood") != 0)
		idle(); /* whatever it did, it stays until it is killed */
	serve(false, false, false);
}
