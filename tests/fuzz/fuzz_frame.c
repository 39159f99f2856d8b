/*
 * Fuzz target: the frame reader (common/frame.c) on a socketpair fed with
 * the input in chunks, optionally with fds on the first one, and every frame
 * it returns dispatched (common/dispatch.c) through a copy of one receiver's
 * table: the runner's, a worker's, the controller's for a runner or for a
 * worker, or the API server's. Handlers walk and re-pack the unpacked body.
 *
 * Input: byte 0 = table (bits 0-2), small body limit (bit 3), fds on the
 * first chunk (bits 4-5); byte 1 = receiver state; byte 2 = chunk size - 1;
 * then the byte stream.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/frame.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "proto/api.pb-c.h"
#include "proto/internal.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* What a handler may rely on: a body that unpacked is a well-formed message
 * that packs again to its packed size. */
static int h_walk(void *ctx, const ProtobufCMessage *msg, struct bh_frame *f)
{
	unsigned int *handled = ctx;
	size_t n;
	uint8_t *buf;
	int fd;

	(*handled)++;
	fd = bh_frame_take_fd(f, 0);
	if (fd >= 0)
		close(fd);
	if (!msg)
		return 0;
	assert(protobuf_c_message_check(msg));
	n = protobuf_c_message_get_packed_size(msg);
	buf = malloc(n ? n : 1);
	assert(buf);
	assert(protobuf_c_message_pack(msg, buf) == n);
	free(buf);
	return 0;
}

#define ALL 0xffffu /* states 0-15: higher ones are refused */
#define V   BH_NFDS_VARIABLE
#define E(type, nfds, desc)                                               \
	{                                                                 \
		BH__MSG_TYPE__MSG_##type, ALL, nfds, &desc, h_walk, #type \
	}

/* Copies of the receivers' tables (vcpu-runner/main.c, device-workers/lib/
 * worker.c, controller/vm.c, devices.c and dev_vsock.c): types, fds and
 * body types. */
static const struct bh_handler runner_tab[] = {
	E(HELLO, 0, bh__hello__descriptor),
	E(RUNNER_SETUP, 1, bh__runner_setup__descriptor),
	E(RUNNER_ADD_DEVICE, V, bh__runner_add_device__descriptor),
	E(VIRTIO_RESET_DONE, 0, bh__virtio_device_ref__descriptor),
	E(VIRTIO_NEEDS_RESET, 0, bh__virtio_device_ref__descriptor),
	E(VIRTIO_CONFIG_UPDATE, 0, bh__virtio_config_update__descriptor),
	E(RUNNER_START, 0, bh__runner_start__descriptor),
	E(SERIAL_IN, 0, bh__serial_data__descriptor),
	E(STATS_REQUEST, 0, bh__stats_request__descriptor),
	E(RUNNER_PAUSE, 0, bh__empty__descriptor),
	E(RUNNER_RESUME, 0, bh__empty__descriptor),
	E(POWER_BUTTON, 0, bh__empty__descriptor),
	E(QUIT, 0, bh__quit__descriptor),
};

static const struct bh_handler worker_tab[] = {
	E(HELLO, 0, bh__hello__descriptor),
	E(WORKER_SETUP, V, bh__worker_setup__descriptor),
	E(DEVICE_ACTIVATE, V, bh__device_activate__descriptor),
	E(DEVICE_RESET, 0, bh__virtio_device_ref__descriptor),
	E(DEVICE_CONFIG_WRITE, 0, bh__virtio_config_write__descriptor),
	E(COUNTERS_REQUEST, 0, bh__virtio_device_ref__descriptor),
	E(QUIT, 0, bh__quit__descriptor),
};

static const struct bh_handler ctl_runner_tab[] = {
	E(HELLO, 0, bh__hello__descriptor),
	E(RUNNER_READY, 0, bh__runner_ready__descriptor),
	E(SERIAL_OUT, 0, bh__serial_data__descriptor),
	E(GUEST_EVENT, 0, bh__guest_event__descriptor),
	E(EXIT_STATS, 0, bh__exit_stats__descriptor),
	E(VIRTIO_ACTIVATE, 0, bh__virtio_activate__descriptor),
	E(VIRTIO_RESET, 0, bh__virtio_device_ref__descriptor),
	E(VIRTIO_CONFIG_WRITE, 0, bh__virtio_config_write__descriptor),
	E(RUNNER_PAUSED, 0, bh__empty__descriptor),
	E(ERROR, 0, bh__error__descriptor),
};

static const struct bh_handler ctl_worker_tab[] = {
	E(HELLO, 0, bh__hello__descriptor),
	E(WORKER_READY, 0, bh__worker_ready__descriptor),
	E(DEVICE_RESET_DONE, 0, bh__virtio_device_ref__descriptor),
	E(DEVICE_CONFIG_UPDATE, 0, bh__virtio_config_update__descriptor),
	E(DEVICE_NEEDS_RESET, 0, bh__virtio_device_ref__descriptor),
	E(COUNTERS, 0, bh__counters__descriptor),
	E(ERROR, 0, bh__error__descriptor),
};

static const struct bh_handler api_tab[] = {
	{ BULKHEAD__API__V1__FRAME_TYPE__FRAME_HELLO, ALL, 0,
	  &bulkhead__api__v1__hello__descriptor, h_walk, "hello" },
	{ BULKHEAD__API__V1__FRAME_TYPE__FRAME_REQUEST, ALL, 0,
	  &bulkhead__api__v1__request__descriptor, h_walk, "request" },
};

static const struct {
	const struct bh_handler *tab;
	size_t n;
} tables[] = {
	{ runner_tab, BH_ARRAY_SIZE(runner_tab) },
	{ worker_tab, BH_ARRAY_SIZE(worker_tab) },
	{ ctl_runner_tab, BH_ARRAY_SIZE(ctl_runner_tab) },
	{ ctl_worker_tab, BH_ARRAY_SIZE(ctl_worker_tab) },
	{ api_tab, BH_ARRAY_SIZE(api_tab) },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-frame");
	bh_log_set_level(BH_LOG_ERR);
	return 0;
}

/* Sends buf with nfds descriptors of /dev/null; bytes sent or -errno. */
static ssize_t send_chunk(int sock, const uint8_t *buf, size_t len,
			  unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[3] = { -1, -1, -1 };
	ssize_t n;
	unsigned int i;

	if (nfds) {
		struct cmsghdr *c;

		for (i = 0; i < nfds; i++)
			fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		n = -errno;
	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return n;
}

/* Reads and dispatches frames until the socket has none (0), or until the
 * reader gives up on the connection (<0). */
static int drain(int sock, struct bh_frame_reader *r, unsigned int t,
		 unsigned int state, unsigned int *handled)
{
	struct bh_frame f;
	int ret;

	for (;;) {
		ret = bh_frame_read(sock, r, &f);
		if (ret <= 0)
			return ret;
		bh_dispatch(tables[t].tab, tables[t].n, state, &f, handled,
			    NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bh_frame_reader r;
	unsigned int t, state, nfds, handled = 0;
	size_t chunk, off = 0;
	int sv[2], ret = 0;

	if (size < 3)
		return 0;
	t = (data[0] & 7u) % BH_ARRAY_SIZE(tables);
	nfds = (data[0] >> 4) & 3u;
	state = data[1] % 40u;
	chunk = (size_t)data[2] + 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		abort();
	bh_frame_reader_init(&r, data[0] & 8u ? 64 : BH_FRAME_MAX_BODY);
	data += 3;
	size -= 3;
	while (off < size && ret >= 0) {
		size_t len = size - off < chunk ? size - off : chunk;
		ssize_t n = send_chunk(sv[1], data + off, len, nfds);

		nfds = 0;
		if (n > 0)
			off += (size_t)n;
		ret = drain(sv[0], &r, t, state, &handled);
	}
	shutdown(sv[1], SHUT_WR);
	while (ret >= 0) {
		ret = drain(sv[0], &r, t, state, &handled);
		/* A stream without its end is not over yet. */
		assert(ret != 0);
	}
	bh_frame_reader_reset(&r);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
