/*
 * Fuzz target: the management API server (controller/api.c) with a fake
 * VM layer that answers at once. Each input is what one client sends after
 * a valid hello (the hello itself is fuzzed by the frame target); the event
 * loop runs until the server has answered and closed the connection.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include <bulkhead/frame.h>
#include <bulkhead/log.h>

#include "api.h"
#include "apiconfig.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fakevm {
	enum bh_api_vm_state state;
	struct bh_config cfg; /* valid unless NOT_CREATED */
};

static struct event_base *base;
static struct bh_api_server *srv;
static struct sockaddr_un addr;
static socklen_t addrlen;
static struct fakevm vm;

static enum bh_api_vm_state fake_state(void *ctx)
{
	return vm.state;
}

static void fake_create(void *ctx, struct bh_api_call *call,
			const Bulkhead__Api__V1__Request *req)
{
	char err[256];

	if (bh_apiconfig_from_proto(req->create->config, &vm.cfg, err,
				    sizeof(err)) < 0) {
		bh_api_reply_error(
		    call, BULKHEAD__API__V1__ERROR_CODE__INVALID_ARGUMENT, "%s",
		    err);
		return;
	}
	vm.state = BH_API_CREATED;
	bh_api_reply_ok(call);
}

static void fake_delete(void *ctx, struct bh_api_call *call,
			const Bulkhead__Api__V1__Request *req)
{
	if (vm.state != BH_API_NOT_CREATED)
		bh_config_free(&vm.cfg);
	vm.state = BH_API_NOT_CREATED;
	bh_api_reply_ok(call);
}

#define FAKE_TO(op, st)                                              \
	static void fake_##op(void *ctx, struct bh_api_call *call,   \
			      const Bulkhead__Api__V1__Request *req) \
	{                                                            \
		vm.state = st;                                       \
		bh_api_reply_ok(call);                               \
	}
FAKE_TO(boot, BH_API_RUNNING)
FAKE_TO(reboot, BH_API_RUNNING)
FAKE_TO(resume, BH_API_RUNNING)
FAKE_TO(pause, BH_API_PAUSED)
FAKE_TO(shutdown, BH_API_SHUTDOWN)
FAKE_TO(power_button, BH_API_SHUTDOWN)

static void fake_info(void *ctx, struct bh_api_call *call,
		      const Bulkhead__Api__V1__Request *req)
{
	Bulkhead__Api__V1__VmInfo info = BULKHEAD__API__V1__VM_INFO__INIT;
	Bulkhead__Api__V1__InfoResponse ir =
	    BULKHEAD__API__V1__INFO_RESPONSE__INIT;
	Bulkhead__Api__V1__Response r = BULKHEAD__API__V1__RESPONSE__INIT;

	if (vm.state != BH_API_NOT_CREATED &&
	    bh_apiconfig_to_proto(&vm.cfg, &info.config) < 0)
		abort();
	info.state = (Bulkhead__Api__V1__VmState)vm.state;
	ir.info = &info;
	r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_INFO;
	r.info = &ir;
	bh_api_reply(call, &r);
	bh_apiconfig_free_proto(info.config);
}

static void fake_ok(void *ctx, struct bh_api_call *call,
		    const Bulkhead__Api__V1__Request *req)
{
	bh_api_reply_ok(call);
}

/* Snapshot, restore, resize, hot-plug and migration are left out: they
 * answer NOT_SUPPORTED_YET. */
static const struct bh_api_ops fake_ops = {
	.state = fake_state,
	.create = fake_create,
	.delete = fake_delete,
	.boot = fake_boot,
	.shutdown = fake_shutdown,
	.reboot = fake_reboot,
	.power_button = fake_power_button,
	.pause = fake_pause,
	.resume = fake_resume,
	.info = fake_info,
	.counters = fake_ok,
	.shutdown_vmm = fake_ok,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd;

	bh_log_init("fuzz-api");
	bh_log_set_level(BH_LOG_ERR);
	base = event_base_new();
	if (!base || bh_api_server_new(base, &fake_ops, NULL, NULL, &srv) < 0)
		abort();
	/* An abstract socket: nothing to clean up on the file system. */
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1,
		 "bulkhead-fuzz-api-%d", (int)getpid());
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			      strlen(addr.sun_path + 1));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, addrlen) < 0 ||
	    listen(fd, 8) < 0 || bh_api_listen_fd(srv, fd) < 0)
		abort();
	return 0;
}

/* Runs the loop once and reads what the server sent; false once the server
 * closed the connection. */
static int pump(int c)
{
	char buf[4096];
	ssize_t n;

	event_base_loop(base, EVLOOP_NONBLOCK);
	do
		n = read(c, buf, sizeof(buf));
	while (n > 0);
	return n < 0 && (errno == EAGAIN || errno == EINTR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Bulkhead__Api__V1__Hello h = BULKHEAD__API__V1__HELLO__INIT;
	uint8_t *hello;
	size_t hlen, off = 0;
	unsigned int i;
	int c;

	h.version = BH_API_VERSION;
	h.role = (char *)"fuzz";
	if (bh_frame_encode(BH_API_FRAME_HELLO, &h.base, 0, &hello, &hlen) < 0)
		abort();
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&addr, addrlen) < 0)
		abort();
	if (write(c, hello, hlen) != (ssize_t)hlen)
		abort();
	free(hello);
	/* Bounded: the server reads at least a byte per round while it
	 * keeps the connection. */
	for (i = 0; off < size && i < 100000; i++) {
		ssize_t n = write(c, data + off, size - off);

		if (n > 0)
			off += (size_t)n;
		if (!pump(c))
			break;
	}
	shutdown(c, SHUT_WR);
	for (i = 0; i < 1000 && pump(c); i++)
		;
	close(c);
	for (i = 0; i < 100 && bh_api_server_clients(srv) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	if (vm.state != BH_API_NOT_CREATED)
		bh_config_free(&vm.cfg);
	vm.state = BH_API_NOT_CREATED;
	return 0;
}
