/*
 * Unit tests for the management API server (controller/api.c) against a fake
 * ops table: every operation in every state, operations left out, framing
 * abuse, many clients, a client that never reads, async replies into the
 * void, the socket file's rules. The server and the test's clients share one
 * thread: the test runs the event loop while it waits for a reply.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <bulkhead/frame.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "api.h"

typedef Bulkhead__Api__V1__Request Request;
typedef Bulkhead__Api__V1__Response Response;
typedef Bulkhead__Api__V1__Request__OpCase OpCase;

#define ERR(x) BULKHEAD__API__V1__ERROR_CODE__##x
#define OP(x)  BULKHEAD__API__V1__REQUEST__OP_##x
#define ST(x)  (1u << BH_API_##x)
#define ALL                                                         \
	(ST(NOT_CREATED) | ST(CREATED) | ST(RUNNING) | ST(PAUSED) | \
	 ST(SHUTDOWN))
#define HAS_VM	    (ALL & ~ST(NOT_CREATED))
#define BOOTED	    (ST(RUNNING) | ST(PAUSED))
#define WAIT_MS	    5000
#define MAX_CLIENTS 32
#define NSTATES	    5

/* The rules of the reference VMM, written out again here as the
 * specification the server's own table is checked against. */
static const struct {
	OpCase op;
	const char *name;
	size_t handler;
	uint32_t states;
} ops_spec[] = {
	{ OP(CREATE), "create", offsetof(struct bh_api_ops, create),
	  ST(NOT_CREATED) },
	{ OP(DELETE), "delete", offsetof(struct bh_api_ops, delete), ALL },
	{ OP(BOOT), "boot", offsetof(struct bh_api_ops, boot),
	  ST(CREATED) | ST(SHUTDOWN) },
	{ OP(SHUTDOWN), "shutdown", offsetof(struct bh_api_ops, shutdown),
	  BOOTED },
	{ OP(REBOOT), "reboot", offsetof(struct bh_api_ops, reboot), BOOTED },
	{ OP(POWER_BUTTON), "power-button",
	  offsetof(struct bh_api_ops, power_button), BOOTED },
	{ OP(PAUSE), "pause", offsetof(struct bh_api_ops, pause), ST(RUNNING) },
	{ OP(RESUME), "resume", offsetof(struct bh_api_ops, resume),
	  ST(PAUSED) },
	{ OP(INFO), "info", offsetof(struct bh_api_ops, info), HAS_VM },
	{ OP(COUNTERS), "counters", offsetof(struct bh_api_ops, counters),
	  BOOTED },
	{ OP(SNAPSHOT), "snapshot", offsetof(struct bh_api_ops, snapshot),
	  ST(PAUSED) },
	{ OP(RESTORE), "restore", offsetof(struct bh_api_ops, restore),
	  ST(NOT_CREATED) },
	{ OP(RESIZE), "resize", offsetof(struct bh_api_ops, resize), BOOTED },
	{ OP(RESIZE_ZONE), "resize-zone",
	  offsetof(struct bh_api_ops, resize_zone), BOOTED },
	{ OP(ADD_DEVICE), "add-device", offsetof(struct bh_api_ops, add_device),
	  BOOTED },
	{ OP(REMOVE_DEVICE), "remove-device",
	  offsetof(struct bh_api_ops, remove_device), BOOTED },
	{ OP(ADD_DISK), "add-disk", offsetof(struct bh_api_ops, add_disk),
	  BOOTED },
	{ OP(ADD_FS), "add-fs", offsetof(struct bh_api_ops, add_fs), BOOTED },
	{ OP(ADD_PMEM), "add-pmem", offsetof(struct bh_api_ops, add_pmem),
	  BOOTED },
	{ OP(ADD_NET), "add-net", offsetof(struct bh_api_ops, add_net),
	  BOOTED },
	{ OP(ADD_VSOCK), "add-vsock", offsetof(struct bh_api_ops, add_vsock),
	  BOOTED },
	{ OP(SEND_MIGRATION), "send-migration",
	  offsetof(struct bh_api_ops, send_migration), BOOTED },
	{ OP(RECEIVE_MIGRATION), "receive-migration",
	  offsetof(struct bh_api_ops, receive_migration), ST(NOT_CREATED) },
	{ OP(SHUTDOWN_VMM), "shutdown-vmm",
	  offsetof(struct bh_api_ops, shutdown_vmm), ALL },
};

static const char *const state_names[NSTATES] = {
	"NotCreated", "Created", "Running", "Paused", "Shutdown",
};

/* The fake VM behind the ops table. */
struct fake {
	enum bh_api_vm_state state;
	unsigned int calls; /* handler runs */
	OpCase last_op;
	bool hold; /* keep calls instead of answering */
	struct bh_api_call *held[64];
	unsigned int nheld;
	bool wrong_result; /* answer with another operation's result */
};

struct env {
	struct event_base *base;
	struct bh_api_server *srv;
	struct bh_api_ops ops;
	struct fake fake;
	char dir[64];
	char path[108];
};

static enum bh_api_vm_state fake_state(void *ctx)
{
	return ((struct fake *)ctx)->state;
}

static void fake_op(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct fake *f = ctx;

	f->calls++;
	f->last_op = req->op_case;
	if (f->hold) {
		assert_true(f->nheld < BH_ARRAY_SIZE(f->held));
		f->held[f->nheld++] = call;
		return;
	}
	if (f->wrong_result) {
		Bulkhead__Api__V1__PingResponse p =
		    BULKHEAD__API__V1__PING_RESPONSE__INIT;
		Response r = BULKHEAD__API__V1__RESPONSE__INIT;

		r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_PING;
		r.ping = &p;
		bh_api_reply(call, &r);
		return;
	}
	bh_api_reply_ok(call);
}

static void set_all_ops(struct bh_api_ops *ops)
{
	size_t i;
	bh_api_op_fn fn = fake_op;

	memset(ops, 0, sizeof(*ops));
	ops->state = fake_state;
	for (i = 0; i < BH_ARRAY_SIZE(ops_spec); i++)
		memcpy((char *)ops + ops_spec[i].handler, &fn, sizeof(fn));
}

static struct env *env_new(const struct bh_api_limits *lim)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->base = event_base_new();
	assert_non_null(e->base);
	set_all_ops(&e->ops);
	snprintf(e->dir, sizeof(e->dir), "/tmp/bh-test-api-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/api.sock", e->dir);
	assert_int_equal(
	    bh_api_server_new(e->base, &e->ops, &e->fake, lim, &e->srv), 0);
	assert_int_equal(bh_api_listen_path(e->srv, e->path), 0);
	return e;
}

static void env_free(struct env *e)
{
	bh_api_server_free(e->srv);
	/* The server removed its socket; the directory is empty again. */
	assert_int_equal(rmdir(e->dir), 0);
	event_base_free(e->base);
	free(e);
}

/* Runs the server's pending work without blocking. */
static void pump(struct env *e)
{
	event_base_loop(e->base, EVLOOP_NONBLOCK);
	event_base_loop(e->base, EVLOOP_NONBLOCK);
}

/* Runs the event loop for about ms milliseconds. */
static void pump_for(struct env *e, int ms)
{
	uint64_t end = bh_now_ns() + (uint64_t)ms * 1000000;

	while (bh_now_ns() < end) {
		pump(e);
		poll(NULL, 0, 1);
	}
}

static void fill_sun(struct sockaddr_un *sa, const char *path)
{
	assert_true(strlen(path) < sizeof(sa->sun_path));
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	fill_sun(&sa, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/*
 * Reads one frame from a test client, running the server meanwhile.
 * 1 with *f, or the reader's result: -EPIPE/-ECONNRESET when the server
 * closed the connection. Fails the test after WAIT_MS.
 */
static int recv_frame(struct env *e, int fd, struct bh_frame *f)
{
	struct bh_frame_reader r;
	uint64_t end = bh_now_ns() + (uint64_t)WAIT_MS * 1000000;
	int ret;

	bh_frame_reader_init(&r, BH_API_MAX_FRAME);
	for (;;) {
		ret = bh_frame_read(fd, &r, f);
		if (ret != 0)
			break;
		assert_true(bh_now_ns() < end);
		pump(e);
		poll(NULL, 0, 1);
	}
	bh_frame_reader_reset(&r);
	return ret;
}

static Response *recv_response(struct env *e, int fd)
{
	struct bh_frame f;
	Response *resp;

	assert_int_equal(recv_frame(e, fd, &f), 1);
	assert_int_equal(f.type, BH_API_FRAME_RESPONSE);
	assert_int_equal(f.nfds, 0);
	resp = bulkhead__api__v1__response__unpack(NULL, f.len, f.body);
	assert_non_null(resp);
	bh_frame_release(&f);
	return resp;
}

/* The connection ends (possibly after a reset, since the server may close
 * with our bytes unread). */
static void expect_closed(struct env *e, int fd)
{
	struct bh_frame f;
	int r = recv_frame(e, fd, &f);

	if (r == 1)
		bh_frame_release(&f);
	assert_true(r == -EPIPE || r == -ECONNRESET);
}

static void send_hello(int fd, uint32_t version)
{
	Bulkhead__Api__V1__Hello h = BULKHEAD__API__V1__HELLO__INIT;

	h.version = version;
	h.role = "test_api";
	assert_int_equal(
	    bh_frame_send(fd, BH_API_FRAME_HELLO, &h.base, NULL, 0), 0);
}

static void expect_server_hello(struct env *e, int fd)
{
	Bulkhead__Api__V1__Hello *h;
	struct bh_frame f;

	assert_int_equal(recv_frame(e, fd, &f), 1);
	assert_int_equal(f.type, BH_API_FRAME_HELLO);
	h = bulkhead__api__v1__hello__unpack(NULL, f.len, f.body);
	assert_non_null(h);
	assert_int_equal(h->version, 1);
	assert_string_equal(h->role, BH_API_SERVER_ROLE);
	bulkhead__api__v1__hello__free_unpacked(h, NULL);
	bh_frame_release(&f);
}

/* A connected client past the handshake. */
static int client(struct env *e)
{
	int fd = raw_connect(e->path);

	send_hello(fd, 1);
	expect_server_hello(e, fd);
	return fd;
}

/* Sends a request for op with an empty message of its type. */
static void send_op(int fd, uint64_t id, OpCase op)
{
	const ProtobufCFieldDescriptor *fd_desc;
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	ProtobufCMessage *m;

	fd_desc = protobuf_c_message_descriptor_get_field(
	    &bulkhead__api__v1__request__descriptor, op);
	assert_non_null(fd_desc);
	m = calloc(1, ((const ProtobufCMessageDescriptor *)fd_desc->descriptor)
			  ->sizeof_message);
	assert_non_null(m);
	protobuf_c_message_init(fd_desc->descriptor, m);
	memcpy((char *)&req + fd_desc->offset, &m, sizeof(m));
	req.op_case = op;
	req.id = id;
	assert_int_equal(
	    bh_frame_send(fd, BH_API_FRAME_REQUEST, &req.base, NULL, 0), 0);
	free(m);
}

static Response *call(struct env *e, int fd, uint64_t id, OpCase op)
{
	Response *r;

	send_op(fd, id, op);
	r = recv_response(e, fd);
	assert_int_equal(r->id, id);
	return r;
}

static Bulkhead__Api__V1__ErrorCode code_of(const Response *r)
{
	return r->error ? r->error->code : ERR(ERROR_NONE);
}

static const char *msg_of(const Response *r)
{
	return r->error ? r->error->message : "";
}

static void expect_error(Response *r, Bulkhead__Api__V1__ErrorCode code,
			 const char *text)
{
	if (code_of(r) != code || (text && !strstr(msg_of(r), text)))
		fail_msg("expected error %d '%s', got %d '%s'", code,
			 text ? text : "", code_of(r), msg_of(r));
	assert_int_equal(r->result_case,
			 BULKHEAD__API__V1__RESPONSE__RESULT__NOT_SET);
	bulkhead__api__v1__response__free_unpacked(r, NULL);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ---- operations and states ---------------------------------------------- */

static void test_every_op_every_state(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e);
	uint64_t id = 1;
	size_t i;
	int st;

	for (i = 0; i < BH_ARRAY_SIZE(ops_spec); i++) {
		for (st = 0; st < NSTATES; st++) {
			unsigned int before = e->fake.calls;
			char want[160];
			Response *r;

			e->fake.state = (enum bh_api_vm_state)st;
			r = call(e, fd, id++, ops_spec[i].op);
			if (ops_spec[i].states & (1u << st)) {
				if (code_of(r) != ERR(ERROR_NONE))
					fail_msg("%s in %s refused: %s",
						 ops_spec[i].name,
						 state_names[st], msg_of(r));
				assert_int_equal(e->fake.calls, before + 1);
				assert_int_equal(e->fake.last_op,
						 ops_spec[i].op);
				/* The result is the operation's own. */
				assert_int_equal(r->result_case,
						 ops_spec[i].op);
				bulkhead__api__v1__response__free_unpacked(
				    r, NULL);
				continue;
			}
			assert_int_equal(e->fake.calls, before);
			snprintf(want, sizeof(want), "%s: ", ops_spec[i].name);
			assert_true(strncmp(msg_of(r), want, strlen(want)) ==
				    0);
			snprintf(want, sizeof(want), "(state: %s)",
				 state_names[st]);
			expect_error(r, ERR(INVALID_STATE), want);
		}
	}
	/* The example of a clear message, in full. */
	e->fake.state = BH_API_CREATED;
	expect_error(call(e, fd, id++, OP(PAUSE)), ERR(INVALID_STATE),
		     "pause: the VM is not running (state: Created)");
	e->fake.state = BH_API_NOT_CREATED;
	expect_error(call(e, fd, id++, OP(INFO)), ERR(INVALID_STATE),
		     "info: no VM has been created (state: NotCreated)");
	e->fake.state = BH_API_RUNNING;
	expect_error(call(e, fd, id++, OP(CREATE)), ERR(INVALID_STATE),
		     "create: a VM already exists (state: Running)");
	close(fd);
	env_free(e);
}

static void test_ping(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e), st;
	Response *r;
	size_t i;

	for (st = 0; st < NSTATES; st++) {
		e->fake.state = (enum bh_api_vm_state)st;
		r = call(e, fd, 7, OP(PING));
		assert_int_equal(code_of(r), ERR(ERROR_NONE));
		assert_int_equal(r->result_case,
				 BULKHEAD__API__V1__RESPONSE__RESULT_PING);
		assert_int_equal(r->ping->api_version, 1);
		assert_int_equal(r->ping->pid, getpid());
		assert_true(strlen(r->ping->version) > 0);
		/* ping and every operation of the full table. */
		assert_int_equal(r->ping->n_operations,
				 BH_ARRAY_SIZE(ops_spec) + 1);
		assert_string_equal(r->ping->operations[0], "ping");
		for (i = 0; i < BH_ARRAY_SIZE(ops_spec); i++)
			assert_string_equal(r->ping->operations[i + 1],
					    ops_spec[i].name);
		bulkhead__api__v1__response__free_unpacked(r, NULL);
	}
	assert_int_equal(e->fake.calls, 0);
	close(fd);
	env_free(e);
}

static void test_null_ops_not_supported(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e), st;
	Response *r;
	size_t i, j;

	/* Only pause and info are offered. */
	memset(&e->ops, 0, sizeof(e->ops));
	e->ops.state = fake_state;
	e->ops.pause = fake_op;
	e->ops.info = fake_op;
	for (i = 0; i < BH_ARRAY_SIZE(ops_spec); i++) {
		if (ops_spec[i].op == OP(PAUSE) || ops_spec[i].op == OP(INFO))
			continue;
		for (st = 0; st < NSTATES; st++) {
			char want[96];

			e->fake.state = (enum bh_api_vm_state)st;
			snprintf(want, sizeof(want),
				 "%s: not supported by this server yet",
				 ops_spec[i].name);
			expect_error(call(e, fd, i + 1, ops_spec[i].op),
				     ERR(NOT_SUPPORTED_YET), want);
		}
	}
	assert_int_equal(e->fake.calls, 0);
	r = call(e, fd, 99, OP(PING));
	assert_int_equal(r->ping->n_operations, 3);
	for (j = 0; j < 3; j++)
		assert_non_null(
		    strstr("ping pause info", r->ping->operations[j]));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	e->fake.state = BH_API_RUNNING;
	r = call(e, fd, 100, OP(PAUSE));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(fd);
	env_free(e);
}

static void test_request_without_op(void **state)
{
	struct env *e = env_new(NULL);
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	/* Request{id=9} followed by field 250 (length-delimited, empty): an
	 * operation from a newer API. */
	uint8_t newer[] = { 0x08, 0x09, 0xd2, 0x0f, 0x00 };
	uint8_t hdr[BH_FRAME_HDR_SIZE];
	uint32_t len = sizeof(newer);
	uint16_t type = BH_API_FRAME_REQUEST;
	Response *r;
	int fd = client(e);

	req.id = 8;
	assert_int_equal(
	    bh_frame_send(fd, BH_API_FRAME_REQUEST, &req.base, NULL, 0), 0);
	r = recv_response(e, fd);
	assert_int_equal(r->id, 8);
	expect_error(r, ERR(INVALID_ARGUMENT), "names no operation");

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, &len, 4);
	memcpy(hdr + 4, &type, 2);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(fd, newer, sizeof(newer)), sizeof(newer));
	r = recv_response(e, fd);
	assert_int_equal(r->id, 9);
	expect_error(r, ERR(NOT_SUPPORTED_YET), NULL);

	/* A body that is no Request: answered, and the connection goes on. */
	assert_int_equal(bh_frame_send(fd, BH_API_FRAME_REQUEST, NULL, 0, 0),
			 0);
	len = 3;
	memcpy(hdr, &len, 4);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(fd, "\xff\xff\xff", 3), 3);
	r = recv_response(e, fd); /* the empty body: a request without op */
	expect_error(r, ERR(INVALID_ARGUMENT), NULL);
	r = recv_response(e, fd);
	assert_int_equal(r->id, 0);
	expect_error(r, ERR(PROTOCOL), "does not unpack");
	r = call(e, fd, 10, OP(PING));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(fd);
	env_free(e);
}

static void test_wrong_result_is_internal(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e);

	e->fake.state = BH_API_RUNNING;
	e->fake.wrong_result = true;
	expect_error(call(e, fd, 1, OP(PAUSE)), ERR(INTERNAL),
		     "pause: internal error");
	close(fd);
	env_free(e);
}

/* ---- asynchronous replies -------------------------------------------- */

static void test_async_reply(void **state)
{
	struct env *e = env_new(NULL);
	int a = client(e), b = client(e);
	Response *r;

	e->fake.state = BH_API_CREATED;
	e->fake.hold = true;
	send_op(a, 1, OP(BOOT));
	pump_for(e, 20);
	assert_int_equal(e->fake.nheld, 1);
	assert_true(bh_api_call_client_connected(e->fake.held[0]));
	assert_string_equal(bh_api_call_op_name(e->fake.held[0]), "boot");

	/* While boot is under way, what changes the VM is BUSY; ping and
	 * info are not held up. */
	expect_error(call(e, b, 2, OP(DELETE)), ERR(BUSY),
		     "delete: busy with boot");
	e->fake.hold = false;
	r = call(e, b, 3, OP(INFO));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	r = call(e, b, 4, OP(PING));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);

	e->fake.state = BH_API_RUNNING;
	bh_api_reply_ok(e->fake.held[0]);
	e->fake.nheld = 0;
	r = recv_response(e, a);
	assert_int_equal(r->id, 1);
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	assert_int_equal(r->result_case,
			 BULKHEAD__API__V1__RESPONSE__RESULT_BOOT);
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	/* Now another change may run. */
	r = call(e, b, 5, OP(PAUSE));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(a);
	close(b);
	env_free(e);
}

static void test_reply_after_client_left(void **state)
{
	struct env *e = env_new(NULL);
	int a = client(e), b;
	Response *r;

	e->fake.state = BH_API_CREATED;
	e->fake.hold = true;
	send_op(a, 1, OP(BOOT));
	pump_for(e, 20);
	assert_int_equal(e->fake.nheld, 1);
	close(a);
	pump_for(e, 20);
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	assert_false(bh_api_call_client_connected(e->fake.held[0]));
	/* Into the void, safely; and the exclusive slot is free again. */
	bh_api_reply_error(e->fake.held[0], ERR(INTERNAL), "too late: %d", 1);
	e->fake.nheld = 0;
	e->fake.hold = false;
	b = client(e);
	r = call(e, b, 2, OP(BOOT));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(b);
	env_free(e);
}

static void test_reply_after_server_freed(void **state)
{
	struct env *e = env_new(NULL);
	int a = client(e);
	struct bh_api_call *held;

	e->fake.state = BH_API_RUNNING;
	e->fake.hold = true;
	send_op(a, 1, OP(SHUTDOWN));
	pump_for(e, 20);
	assert_int_equal(e->fake.nheld, 1);
	held = e->fake.held[0];
	bh_api_server_free(e->srv);
	e->srv = NULL;
	assert_false(bh_api_call_client_connected(held));
	bh_api_reply_ok(held);
	expect_closed(e, a);
	close(a);
	env_free(e);
}

static void test_calls_per_client_limit(void **state)
{
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	struct env *e;
	int fd;
	unsigned int i;

	lim.max_calls = 3;
	e = env_new(&lim);
	fd = client(e);
	e->fake.state = BH_API_RUNNING;
	e->fake.hold = true;
	for (i = 0; i < 3; i++)
		send_op(fd, i + 1, OP(INFO));
	pump_for(e, 20);
	assert_int_equal(e->fake.nheld, 3);
	expect_error(call(e, fd, 4, OP(INFO)), ERR(BUSY), "too many requests");
	for (i = 0; i < 3; i++) {
		Response *r;

		bh_api_reply_ok(e->fake.held[i]);
		r = recv_response(e, fd);
		assert_int_equal(r->id, i + 1);
		bulkhead__api__v1__response__free_unpacked(r, NULL);
	}
	close(fd);
	env_free(e);
}

/* ---- framing abuse ------------------------------------------------------- */

static void send_bytes(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_header(int fd, uint32_t len, uint16_t type, uint8_t nfds,
			uint8_t flags)
{
	uint8_t h[BH_FRAME_HDR_SIZE];

	memcpy(h, &len, 4);
	memcpy(h + 4, &type, 2);
	h[6] = nfds;
	h[7] = flags;
	send_bytes(fd, h, sizeof(h));
}

/* The error that answers a broken connection, then the end of it. */
static void expect_dropped(struct env *e, int fd,
			   Bulkhead__Api__V1__ErrorCode code, const char *text)
{
	Response *r = recv_response(e, fd);

	assert_int_equal(r->id, 0);
	expect_error(r, code, text);
	expect_closed(e, fd);
	close(fd);
}

/* The server still serves: a new client gets its ping answered. */
static void expect_serving(struct env *e)
{
	int fd = client(e);
	Response *r = call(e, fd, 1, OP(PING));

	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(fd);
	pump_for(e, 5);
}

static void test_garbage_header(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e);

	send_bytes(fd, "GARBAGE!GARBAGE!", 16);
	expect_dropped(e, fd, ERR(PROTOCOL), NULL);
	fd = client(e);
	send_header(fd, 0, BH_API_FRAME_REQUEST, 0, 0x80);
	expect_dropped(e, fd, ERR(PROTOCOL), "bad frame header");
	expect_serving(e);
	env_free(e);
}

static void test_truncated_then_close(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e);

	send_header(fd, 100, BH_API_FRAME_REQUEST, 0, 0);
	send_bytes(fd, "abc", 3);
	pump_for(e, 10);
	close(fd);
	pump_for(e, 10);
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	/* Half a header, then gone. */
	fd = client(e);
	send_bytes(fd, "\x01\x02\x03", 3);
	close(fd);
	pump_for(e, 10);
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	expect_serving(e);
	env_free(e);
}

static void test_oversized(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e);

	send_header(fd, BH_API_MAX_FRAME + 1, BH_API_FRAME_REQUEST, 0, 0);
	expect_dropped(e, fd, ERR(PROTOCOL), "larger than the limit");
	fd = client(e);
	send_header(fd, UINT32_MAX, BH_API_FRAME_REQUEST, 0, 0);
	expect_dropped(e, fd, ERR(PROTOCOL), "larger than the limit");
	expect_serving(e);
	env_free(e);
}

static void test_unknown_type(void **state)
{
	struct env *e = env_new(NULL);
	int fd = client(e);

	send_header(fd, 0, 999, 0, 0);
	expect_dropped(e, fd, ERR(PROTOCOL), "frame type 999");
	/* A response frame from a client is no better. */
	fd = client(e);
	send_header(fd, 0, BH_API_FRAME_RESPONSE, 0, 0);
	expect_dropped(e, fd, ERR(PROTOCOL), "is not a request");
	/* Nor a second hello. */
	fd = client(e);
	send_hello(fd, 1);
	expect_dropped(e, fd, ERR(PROTOCOL), NULL);
	expect_serving(e);
	env_free(e);
}

static void send_with_fds(int sock, const void *data, size_t len,
			  const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	m.msg_control = ctl.buf;
	m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	assert_int_equal(sendmsg(sock, &m, MSG_NOSIGNAL), (ssize_t)len);
}

static void test_fds_refused(void **state)
{
	struct env *e = env_new(NULL);
	uint8_t h[BH_FRAME_HDR_SIZE] = { 0 };
	uint16_t type = BH_API_FRAME_REQUEST;
	int fd, p[2], before;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	memcpy(h + 4, &type, 2);
	before = count_fds();
	/* The header announces the fd: a well-formed frame, refused. */
	fd = client(e);
	h[6] = 1;
	send_with_fds(fd, h, sizeof(h), &p[0], 1);
	expect_dropped(e, fd, ERR(PROTOCOL), "file descriptors");
	/* The header does not: a lie, refused too. */
	fd = client(e);
	h[6] = 0;
	send_with_fds(fd, h, sizeof(h), p, 2);
	expect_dropped(e, fd, ERR(PROTOCOL), "file descriptors");
	/* With the hello. */
	fd = raw_connect(e->path);
	{
		Bulkhead__Api__V1__Hello hello = BULKHEAD__API__V1__HELLO__INIT;
		uint8_t *buf;
		size_t len;

		hello.version = 1;
		assert_int_equal(bh_frame_encode(BH_API_FRAME_HELLO,
						 &hello.base, 1, &buf, &len),
				 0);
		send_with_fds(fd, buf, len, &p[1], 1);
		free(buf);
	}
	expect_server_hello(e, fd);
	expect_dropped(e, fd, ERR(PROTOCOL), "file descriptors");
	pump_for(e, 5);
	/* Every fd that arrived was closed by the server. */
	assert_int_equal(count_fds(), before);
	close(p[0]);
	close(p[1]);
	expect_serving(e);
	env_free(e);
}

static void test_handshake_rules(void **state)
{
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	struct env *e;
	int fd;

	lim.handshake_ms = 100;
	lim.frame_ms = 100;
	e = env_new(&lim);
	/* A request before the hello. */
	fd = raw_connect(e->path);
	expect_server_hello(e, fd);
	send_op(fd, 1, OP(PING));
	expect_dropped(e, fd, ERR(PROTOCOL), "expected a hello");
	/* Another version. */
	fd = raw_connect(e->path);
	send_hello(fd, 2);
	expect_server_hello(e, fd);
	expect_dropped(e, fd, ERR(UNSUPPORTED_VERSION),
		       "API version 2 is not supported");
	/* A hello that does not unpack. */
	fd = raw_connect(e->path);
	send_header(fd, 2, BH_API_FRAME_HELLO, 0, 0);
	send_bytes(fd, "\xff\xff", 2);
	expect_server_hello(e, fd);
	expect_dropped(e, fd, ERR(PROTOCOL), "hello");
	/* No hello at all: dropped after handshake_ms. */
	fd = raw_connect(e->path);
	expect_server_hello(e, fd);
	expect_closed(e, fd);
	close(fd);
	/* Half a frame that never ends: dropped after frame_ms. */
	fd = client(e);
	send_header(fd, 10, BH_API_FRAME_REQUEST, 0, 0);
	send_bytes(fd, "x", 1);
	expect_closed(e, fd);
	close(fd);
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	expect_serving(e);
	env_free(e);
}

/* A client that sends one byte at a time is slow, not wrong. */
static void test_slow_client(void **state)
{
	struct env *e = env_new(NULL);
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__PingRequest ping =
	    BULKHEAD__API__V1__PING_REQUEST__INIT;
	int fd = client(e);
	uint8_t *buf;
	size_t len, i;
	Response *r;

	req.id = 42;
	req.op_case = OP(PING);
	req.ping = &ping;
	assert_int_equal(
	    bh_frame_encode(BH_API_FRAME_REQUEST, &req.base, 0, &buf, &len), 0);
	for (i = 0; i < len; i++) {
		send_bytes(fd, buf + i, 1);
		pump_for(e, 2);
	}
	free(buf);
	r = recv_response(e, fd);
	assert_int_equal(r->id, 42);
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(fd);
	env_free(e);
}

/* ---- many clients, a client that never reads -------------------------- */

static void test_many_clients(void **state)
{
	struct env *e = env_new(NULL);
	int fds[40], i;

	for (i = 0; i < 40; i++) {
		fds[i] = raw_connect(e->path);
		send_hello(fds[i], 1);
	}
	pump_for(e, 50);
	assert_int_equal(bh_api_server_clients(e->srv), MAX_CLIENTS);
	for (i = 0; i < 40; i++) {
		Response *r;

		expect_server_hello(e, fds[i]);
		if (i >= MAX_CLIENTS) {
			expect_dropped(e, fds[i], ERR(BUSY),
				       "too many clients (32)");
			continue;
		}
		r = call(e, fds[i], (uint64_t)i + 1, OP(PING));
		assert_int_equal(code_of(r), ERR(ERROR_NONE));
		bulkhead__api__v1__response__free_unpacked(r, NULL);
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		close(fds[i]);
	pump_for(e, 20);
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	expect_serving(e);
	env_free(e);
}

static uint64_t ms_since(uint64_t t0)
{
	return (bh_now_ns() - t0) / 1000000;
}

/* Asserts that fd is still open: nothing to read, no end of file. */
static void expect_open(int fd)
{
	char b;

	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK), -1);
	assert_int_equal(errno, EAGAIN);
}

/* A client that sends nothing after its hello goes after idle_ms; one that
 * sends requests, waits for a reply or is in the middle of a frame stays. */
static void test_idle_clients(void **state)
{
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__PingRequest ping =
	    BULKHEAD__API__V1__PING_REQUEST__INIT;
	struct env *e;
	int idle, busy, held, slow, i;
	uint64_t t0;
	uint8_t *buf;
	size_t len;
	Response *r;

	lim.idle_ms = 300;
	lim.frame_ms = 3000;
	e = env_new(&lim);
	t0 = bh_now_ns();
	idle = client(e);
	expect_closed(e, idle);
	close(idle);
	assert_true(ms_since(t0) >= 280);

	/* Requests keep a client: a ping every 100 ms for 1.2 s. */
	busy = client(e);
	for (i = 0; i < 12; i++) {
		r = call(e, busy, (uint64_t)i + 1, OP(PING));
		assert_int_equal(code_of(r), ERR(ERROR_NONE));
		bulkhead__api__v1__response__free_unpacked(r, NULL);
		pump_for(e, 100);
	}
	expect_open(busy);

	/* A call under way for 1 s: the client waits, it is not idle. */
	held = client(e);
	e->fake.state = BH_API_CREATED;
	e->fake.hold = true;
	send_op(held, 1, OP(BOOT));
	pump_for(e, 1000);
	expect_open(held);
	assert_int_equal(e->fake.nheld, 1);
	e->fake.hold = false;
	e->fake.state = BH_API_RUNNING;
	bh_api_reply_ok(e->fake.held[0]);
	e->fake.nheld = 0;
	r = recv_response(e, held);
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	/* Its reply out, its idle time starts. */
	t0 = bh_now_ns();
	expect_closed(e, held);
	close(held);
	assert_true(ms_since(t0) >= 280);

	/* Half a frame for 1 s: frame_ms, not idle_ms, bounds it. */
	slow = client(e);
	req.id = 7;
	req.op_case = OP(PING);
	req.ping = &ping;
	assert_int_equal(
	    bh_frame_encode(BH_API_FRAME_REQUEST, &req.base, 0, &buf, &len), 0);
	send_bytes(slow, buf, len - 1);
	pump_for(e, 1000);
	expect_open(slow);
	send_bytes(slow, buf + len - 1, 1);
	free(buf);
	r = recv_response(e, slow);
	assert_int_equal(r->id, 7);
	bulkhead__api__v1__response__free_unpacked(r, NULL);

	close(slow);
	pump_for(e, 350);
	/* busy went idle too. */
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	close(busy);
	env_free(e);
}

/* Clients that fill every place with a hello and nothing more are gone
 * after idle_ms, and the next one gets in. */
static void test_idle_clients_free_their_places(void **state)
{
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	int fds[MAX_CLIENTS], extra, i;
	struct env *e;
	Response *r;

	lim.idle_ms = 500;
	e = env_new(&lim);
	for (i = 0; i < MAX_CLIENTS; i++)
		fds[i] = client(e);
	extra = raw_connect(e->path);
	send_hello(extra, 1);
	expect_server_hello(e, extra);
	expect_dropped(e, extra, ERR(BUSY), "too many clients (32)");
	for (i = 0; i < MAX_CLIENTS; i++) {
		expect_closed(e, fds[i]);
		close(fds[i]);
	}
	assert_int_equal(bh_api_server_clients(e->srv), 0);
	extra = client(e);
	r = call(e, extra, 1, OP(PING));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(extra);
	env_free(e);
}

/* Sends a whole buffer from a non-blocking socket, running the server
 * while the socket is full. false if the server closed the connection. */
static bool send_all_pumped(struct env *e, int fd, const uint8_t *buf,
			    size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w =
		    send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return false;
		if (w < 0) {
			assert_int_equal(errno, EAGAIN);
			pump(e);
			continue;
		}
		off += (size_t)w;
	}
	return true;
}

static void test_client_never_reads(void **state)
{
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__PingRequest ping =
	    BULKHEAD__API__V1__PING_REQUEST__INIT;
	unsigned int served = 0;
	struct env *e;
	int greedy, polite, n;
	bool dropped = false;
	uint8_t *buf;
	size_t len;

	lim.max_output = 64 * 1024;
	e = env_new(&lim);
	greedy = client(e);
	polite = client(e);
	req.op_case = OP(PING);
	req.ping = &ping;
	req.id = 1;
	assert_int_equal(
	    bh_frame_encode(BH_API_FRAME_REQUEST, &req.base, 0, &buf, &len), 0);
	/* Pings without ever reading a reply, until the server gives up on
	 * this client; the other one is served all along. */
	for (n = 0; n < 200000 && !dropped; n++) {
		if (!send_all_pumped(e, greedy, buf, len))
			dropped = true;
		pump(e);
		if (n % 256 == 0) {
			Response *r =
			    call(e, polite, (uint64_t)n + 1, OP(PING));

			assert_int_equal(code_of(r), ERR(ERROR_NONE));
			bulkhead__api__v1__response__free_unpacked(r, NULL);
			served++;
		}
		if (bh_api_server_clients(e->srv) == 1)
			dropped = true;
	}
	free(buf);
	assert_true(dropped);
	assert_true(served > 1);
	pump_for(e, 10);
	assert_int_equal(bh_api_server_clients(e->srv), 1);
	{
		Response *r = call(e, polite, 1, OP(PING));

		assert_int_equal(code_of(r), ERR(ERROR_NONE));
		bulkhead__api__v1__response__free_unpacked(r, NULL);
	}
	close(greedy);
	close(polite);
	env_free(e);
}

/* ---- the socket file -------------------------------------------------------
 */

static void test_listen_path_rules(void **state)
{
	struct env *e = env_new(NULL);
	struct bh_api_server *s2;
	char path[128];
	struct stat st;
	int fd;

	assert_int_equal(stat(e->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(bh_api_listen_path(e->srv, e->path), -EALREADY);

	assert_int_equal(
	    bh_api_server_new(e->base, &e->ops, &e->fake, NULL, &s2), 0);
	/* A live server answers on it: refused, and left alone. */
	assert_int_equal(bh_api_listen_path(s2, e->path), -EADDRINUSE);
	assert_int_equal(stat(e->path, &st), 0);
	/* Not a socket: refused, left alone. */
	snprintf(path, sizeof(path), "%s/file", e->dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(bh_api_listen_path(s2, path), -EEXIST);
	assert_int_equal(unlink(path), 0);
	/* Too long for sun_path. */
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(bh_api_listen_path(s2, path), -ENAMETOOLONG);
	bh_api_server_free(s2);

	/* A stale socket (its server gone without removing it) is
	 * replaced. */
	snprintf(path, sizeof(path), "%s/stale.sock", e->dir);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		fill_sun(&sa, path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		close(fd);
	}
	assert_int_equal(
	    bh_api_server_new(e->base, &e->ops, &e->fake, NULL, &s2), 0);
	assert_int_equal(bh_api_listen_path(s2, path), 0);
	bh_api_server_free(s2);
	/* Freeing the server removed its socket. */
	assert_int_equal(stat(path, &st), -1);
	env_free(e);
}

static void test_listen_fd(void **state)
{
	struct env *e = env_new(NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct bh_api_server *s2;
	char path[128];
	Response *r;
	int lfd, p[2], c;

	assert_int_equal(
	    bh_api_server_new(e->base, &e->ops, &e->fake, NULL, &s2), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(bh_api_listen_fd(s2, p[0]), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	/* A socket that does not listen. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bh_api_listen_fd(s2, lfd), -ENOTSOCK);
	snprintf(path, sizeof(path), "%s/inherited.sock", e->dir);
	fill_sun(&sa, path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(bh_api_listen_fd(s2, lfd), 0);
	assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);

	c = raw_connect(path);
	send_hello(c, 1);
	expect_server_hello(e, c);
	r = call(e, c, 1, OP(PING));
	assert_int_equal(code_of(r), ERR(ERROR_NONE));
	bulkhead__api__v1__response__free_unpacked(r, NULL);
	close(c);
	bh_api_server_free(s2);
	/* An inherited socket's file is its creator's to remove. */
	assert_int_equal(unlink(path), 0);
	env_free(e);
}

#define ARG(s) bh_api_socket_arg_parse(s, &path, &fd, &acc, err, sizeof(err))

static void test_socket_arg(void **state)
{
	struct bh_api_access acc;
	char err[256], *path;
	int fd;

	assert_int_equal(ARG("fd=3"), 0);
	assert_null(path);
	assert_int_equal(fd, 3);
	assert_int_equal(acc.nuids + acc.ngids, 0);
	assert_int_equal(ARG("path=/run/a.sock"), 0);
	assert_string_equal(path, "/run/a.sock");
	assert_int_equal(fd, -1);
	free(path);
	assert_int_equal(ARG("/run/b.sock"), 0);
	assert_string_equal(path, "/run/b.sock");
	free(path);
	/* A bare path is taken whole, commas and "allow-uid=" included. */
	assert_int_equal(ARG("/run/c,allow-uid=5.sock"), 0);
	assert_string_equal(path, "/run/c,allow-uid=5.sock");
	assert_int_equal(acc.nuids, 0);
	free(path);
	assert_int_equal(ARG("fd=x"), -EINVAL);
	assert_non_null(strstr(err, "fd=x"));
	assert_int_equal(ARG("path="), -EINVAL);
	assert_non_null(strstr(err, "the path is empty"));

	assert_int_equal(ARG("path=/run/d.sock,allow-uid=1000:1001:0,"
			     "allow-gid=100"),
			 0);
	assert_string_equal(path, "/run/d.sock");
	free(path);
	assert_int_equal(acc.nuids, 3);
	assert_int_equal(acc.uids[0], 1000);
	assert_int_equal(acc.uids[1], 1001);
	assert_int_equal(acc.uids[2], 0);
	assert_int_equal(acc.ngids, 1);
	assert_int_equal(acc.gids[0], 100);
	assert_int_equal(ARG("fd=3,allow-gid=4294967294"), 0);
	assert_int_equal(fd, 3);
	assert_int_equal(acc.nuids, 0);
	assert_int_equal(acc.gids[0], 4294967294u);

	assert_int_equal(ARG("fd=3,allow-uid=bob"), -EINVAL);
	assert_non_null(strstr(err, "--api-socket: allow-uid=bob: 'bob' is "
				    "not a numeric id"));
	assert_int_equal(fd, -1);
	assert_int_equal(ARG("fd=3,allow-uid=1::2"), -EINVAL);
	assert_non_null(strstr(err, "'' is not a numeric id"));
	assert_int_equal(ARG("fd=3,allow-uid="), -EINVAL);
	assert_int_equal(ARG("fd=3,allow-gid=4294967295"), -EINVAL);
	assert_int_equal(ARG("fd=3,allow-uid=1,allow-uid=2"), -EINVAL);
	assert_non_null(strstr(err, "allow-uid given twice"));
	assert_int_equal(ARG("path=/a,fd=3"), -EINVAL);
	assert_non_null(strstr(err, "give one of path= and fd=, once"));
	assert_null(path);
	assert_int_equal(ARG("path=/a,b"), -EINVAL);
	assert_non_null(strstr(err, "'b' is not key=value"));
	assert_null(path);
	assert_int_equal(ARG("fd=3,allow-user=1"), -EINVAL);
	assert_non_null(strstr(err, "unknown parameter 'allow-user'"));
	assert_int_equal(ARG("fd=3,allow-uid=0:1:2:3:4:5:6:7:8:9:10:11:12:13:"
			     "14:15:16:17:18:19:20:21:22:23:24:25:26:27:28:"
			     "29:30:31"),
			 0);
	assert_int_equal(acc.nuids, BH_API_MAX_ALLOW);
	assert_int_equal(ARG("fd=3,allow-uid=0:1:2:3:4:5:6:7:8:9:10:11:12:13:"
			     "14:15:16:17:18:19:20:21:22:23:24:25:26:27:28:"
			     "29:30:31:32"),
			 -EINVAL);
	assert_non_null(strstr(err, "lists more than 32 ids"));
}

#undef ARG

/* Root and the server's own uid always; with lists, only what they name
 * (the uid, or the gid or any supplementary group); without, anyone. */
static void test_access_allows(void **state)
{
	struct bh_api_access a = { 0 };
	const uint32_t g_plain[] = { 1000 }, g_sup[] = { 1000, 27, 100 };

	assert_true(bh_api_access_allows(NULL, 500, 1000, g_plain, 1));
	assert_true(bh_api_access_allows(&a, 500, 1000, g_plain, 1));
	a.uids[a.nuids++] = 1001;
	assert_false(bh_api_access_allows(&a, 500, 1000, g_plain, 1));
	assert_true(bh_api_access_allows(&a, 500, 1001, g_plain, 1));
	assert_true(bh_api_access_allows(&a, 500, 0, NULL, 0));
	assert_true(bh_api_access_allows(&a, 500, 500, NULL, 0));
	/* Unknown credentials read as uid (uint32_t)-1: never let in. */
	assert_false(bh_api_access_allows(&a, 500, UINT32_MAX, NULL, 0));
	a.gids[a.ngids++] = 100;
	assert_false(bh_api_access_allows(&a, 500, 1000, g_plain, 1));
	assert_true(bh_api_access_allows(&a, 500, 1000, g_sup, 3));
	a.nuids = 0;
	assert_true(bh_api_access_allows(&a, 500, 1002, g_sup, 3));
	assert_false(bh_api_access_allows(&a, 500, 1002, g_sup, 2));
}

static void test_server_new_checks(void **state)
{
	struct event_base *base = event_base_new();
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	struct bh_api_ops ops = { 0 };
	struct bh_api_server *s;

	assert_int_equal(bh_api_server_new(base, &ops, NULL, NULL, &s),
			 -EINVAL);
	ops.state = fake_state;
	lim.max_clients = 0;
	assert_int_equal(bh_api_server_new(base, &ops, NULL, &lim, &s),
			 -EINVAL);
	lim.max_clients = 1;
	lim.idle_ms = 0;
	assert_int_equal(bh_api_server_new(base, &ops, NULL, &lim, &s),
			 -EINVAL);
	assert_string_equal(bh_api_state_name(BH_API_PAUSED), "Paused");
	assert_string_equal(bh_api_state_name((enum bh_api_vm_state)9),
			    "Unknown");
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_op_every_state),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_null_ops_not_supported),
		cmocka_unit_test(test_request_without_op),
		cmocka_unit_test(test_wrong_result_is_internal),
		cmocka_unit_test(test_async_reply),
		cmocka_unit_test(test_reply_after_client_left),
		cmocka_unit_test(test_reply_after_server_freed),
		cmocka_unit_test(test_calls_per_client_limit),
		cmocka_unit_test(test_garbage_header),
		cmocka_unit_test(test_truncated_then_close),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_fds_refused),
		cmocka_unit_test(test_handshake_rules),
		cmocka_unit_test(test_slow_client),
		cmocka_unit_test(test_many_clients),
		cmocka_unit_test(test_idle_clients),
		cmocka_unit_test(test_idle_clients_free_their_places),
		cmocka_unit_test(test_client_never_reads),
		cmocka_unit_test(test_listen_path_rules),
		cmocka_unit_test(test_listen_fd),
		cmocka_unit_test(test_socket_arg),
		cmocka_unit_test(test_access_allows),
		cmocka_unit_test(test_server_new_checks),
	};

	/* The server's warnings about the abuse below are expected. */
	bh_log_init("test_api");
	bh_log_set_level(BH_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
