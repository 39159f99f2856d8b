/* The management API server: clients, handshake, framing, state checks. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include <bulkhead/frame.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "api.h"

#ifndef BULKHEAD_VERSION
#define BULKHEAD_VERSION "0.1.0"
#endif

/* Frames handled per wake-up of one client, so that a client that pipelines
 * many requests cannot keep the others waiting. */
#define FRAMES_PER_WAKEUP  16
#define ACCEPTS_PER_WAKEUP 16
#define LISTEN_BACKLOG	   64
/* After accept(2) fails for lack of fds, wait this long before trying
 * again rather than spin on a listening socket that stays readable. */
#define ACCEPT_RETRY_MS 1000

/* Older libcs' headers lack it; the kernel has had it since 4.13. */
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "gid_t is 32 bits");

typedef Bulkhead__Api__V1__Request Request;
typedef Bulkhead__Api__V1__Response Response;
typedef Bulkhead__Api__V1__ErrorCode ErrorCode;

#define ERR(name) BULKHEAD__API__V1__ERROR_CODE__##name

struct api_client;

/* What the client's timer is counting down to. */
enum client_timer {
	TIMER_NONE,
	TIMER_HANDSHAKE, /* the client's hello */
	TIMER_FRAME,	 /* the end of a frame that has begun */
	TIMER_IDLE,	 /* the next request */
	TIMER_CLOSING,	 /* the last reply leaving */
};

/* One operation: its place in the oneof, the states in which it may run, and
 * where its handler sits in the ops table. */
struct api_op {
	Bulkhead__Api__V1__Request__OpCase op;
	const char *name;
	uint32_t states;
	/* Changes the VM: runs only while no other such call is under way. */
	bool exclusive;
	size_t handler; /* offset in struct bh_api_ops */
	/* Why the operation is refused in the states not allowed (after
	 * "no VM has been created", which covers NotCreated). */
	const char *refusal;
};

struct bh_api_call {
	TAILQ_ENTRY(bh_api_call) link;
	struct bh_api_server *srv; /* NULL once the server is freed */
	struct api_client *client; /* NULL once the client is gone */
	const struct api_op *op;   /* NULL for ping */
	Request *req;
	uint64_t id;
};

struct api_client {
	TAILQ_ENTRY(api_client) link;
	struct bh_api_server *srv;
	int fd;
	unsigned int serial; /* names the client in logs */
	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_timer;
	enum client_timer timer;
	struct bh_frame_reader reader;
	bool hello_done;
	bool closing; /* a last reply is going out; then the connection ends */
	bool dead;    /* closed; freed by the reaper */
	uint8_t *out;
	size_t out_len; /* bytes in out */
	size_t out_off; /* bytes of out already sent */
	unsigned int ncalls;
};

TAILQ_HEAD(client_list, api_client);
TAILQ_HEAD(call_list, bh_api_call);

struct bh_api_server {
	struct event_base *base;
	const struct bh_api_ops *ops;
	void *ctx;
	struct bh_api_limits lim;
	struct bh_api_access access;
	bool restricted; /* access has ids: check each client */
	int listen_fd;
	struct event *ev_listen;
	struct event *ev_accept_retry;
	/* The socket file we created, removed at the end if it is still
	 * ours. */
	char *path;
	dev_t path_dev;
	ino_t path_ino;
	struct client_list clients;
	unsigned int nclients;
	struct client_list dead;
	struct event *ev_reap;
	struct call_list calls;
	struct bh_api_call *exclusive; /* the changing call under way */
	unsigned int next_serial;
};

#define ST(s) (1u << BH_API_##s)
#define ANY_STATE                                                   \
	(ST(NOT_CREATED) | ST(CREATED) | ST(RUNNING) | ST(PAUSED) | \
	 ST(SHUTDOWN))
#define HAS_VM	(ST(CREATED) | ST(RUNNING) | ST(PAUSED) | ST(SHUTDOWN))
#define BOOTED	(ST(RUNNING) | ST(PAUSED))
#define OP(x)	BULKHEAD__API__V1__REQUEST__OP_##x
#define H(x)	offsetof(struct bh_api_ops, x)
#define NOT_RUN "the VM is not running"

/*
 * The reference VMM's rules: create and the other ways of making a VM need
 * none; boot needs a created or shut-down VM; what acts on a booted VM needs
 * it running or paused; snapshot needs it paused. shutdown-vmm is not
 * exclusive so that it can end a VMM whose boot hangs.
 */
static const struct api_op api_ops[] = {
	{ OP(CREATE), "create", ST(NOT_CREATED), true, H(create),
	  "a VM already exists" },
	{ OP(DELETE), "delete", ANY_STATE, true, H(delete), "" },
	{ OP(BOOT), "boot", ST(CREATED) | ST(SHUTDOWN), true, H(boot),
	  "the VM is booted already" },
	{ OP(SHUTDOWN), "shutdown", BOOTED, true, H(shutdown), NOT_RUN },
	{ OP(REBOOT), "reboot", BOOTED, true, H(reboot), NOT_RUN },
	{ OP(POWER_BUTTON), "power-button", BOOTED, true, H(power_button),
	  NOT_RUN },
	{ OP(PAUSE), "pause", ST(RUNNING), true, H(pause), NOT_RUN },
	{ OP(RESUME), "resume", ST(PAUSED), true, H(resume),
	  "the VM is not paused" },
	{ OP(INFO), "info", HAS_VM, false, H(info), "" },
	{ OP(COUNTERS), "counters", BOOTED, false, H(counters), NOT_RUN },
	{ OP(SNAPSHOT), "snapshot", ST(PAUSED), true, H(snapshot),
	  "the VM is not paused (pause it first)" },
	{ OP(RESTORE), "restore", ST(NOT_CREATED), true, H(restore),
	  "a VM already exists" },
	{ OP(RESIZE), "resize", BOOTED, true, H(resize), NOT_RUN },
	{ OP(RESIZE_ZONE), "resize-zone", BOOTED, true, H(resize_zone),
	  NOT_RUN },
	{ OP(ADD_DEVICE), "add-device", BOOTED, true, H(add_device), NOT_RUN },
	{ OP(REMOVE_DEVICE), "remove-device", BOOTED, true, H(remove_device),
	  NOT_RUN },
	{ OP(ADD_DISK), "add-disk", BOOTED, true, H(add_disk), NOT_RUN },
	{ OP(ADD_FS), "add-fs", BOOTED, true, H(add_fs), NOT_RUN },
	{ OP(ADD_PMEM), "add-pmem", BOOTED, true, H(add_pmem), NOT_RUN },
	{ OP(ADD_NET), "add-net", BOOTED, true, H(add_net), NOT_RUN },
	{ OP(ADD_VSOCK), "add-vsock", BOOTED, true, H(add_vsock), NOT_RUN },
	{ OP(SEND_MIGRATION), "send-migration", BOOTED, true, H(send_migration),
	  NOT_RUN },
	{ OP(RECEIVE_MIGRATION), "receive-migration", ST(NOT_CREATED), true,
	  H(receive_migration), "a VM already exists" },
	{ OP(SHUTDOWN_VMM), "shutdown-vmm", ANY_STATE, false, H(shutdown_vmm),
	  "" },
	/* Beside a migration under way (which holds the VM), never waiting
	 * for it. */
	{ OP(MIGRATION_STATUS), "migration-status", ANY_STATE, false,
	  H(migration_status), "" },
	{ OP(ABANDON_MIGRATION), "abandon-migration", ANY_STATE, false,
	  H(abandon_migration), "" },
};

/* The request and response oneofs share their field numbers, so one number
 * names an operation in both. */
_Static_assert((int)BULKHEAD__API__V1__REQUEST__OP_ABANDON_MIGRATION ==
		   (int)BULKHEAD__API__V1__RESPONSE__RESULT_ABANDON_MIGRATION,
	       "request and response field numbers");
_Static_assert((int)BULKHEAD__API__V1__REQUEST__OP_PING ==
		   (int)BULKHEAD__API__V1__RESPONSE__RESULT_PING,
	       "request and response field numbers");

static const char *const state_names[] = {
	[BH_API_NOT_CREATED] = "NotCreated", [BH_API_CREATED] = "Created",
	[BH_API_RUNNING] = "Running",	     [BH_API_PAUSED] = "Paused",
	[BH_API_SHUTDOWN] = "Shutdown",
};

const char *bh_api_state_name(enum bh_api_vm_state state)
{
	if ((unsigned int)state >= BH_ARRAY_SIZE(state_names))
		return "Unknown";
	return state_names[state];
}

static const struct api_op *find_op(Bulkhead__Api__V1__Request__OpCase op)
{
	size_t i;

	for (i = 0; i < BH_ARRAY_SIZE(api_ops); i++)
		if (api_ops[i].op == op)
			return &api_ops[i];
	return NULL;
}

static bh_api_op_fn op_handler(const struct bh_api_server *s,
			       const struct api_op *op)
{
	bh_api_op_fn fn;

	memcpy(&fn, (const char *)s->ops + op->handler, sizeof(fn));
	return fn;
}

/* ---- clients: output, closing, reaping ------------------------------- */

static void reap_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Ends a client's connection now. The struct lives on until the reaper
 * frees it, because this may run deep inside the client's own read
 * callback (a handler replying synchronously).
 */
static void client_drop(struct api_client *c)
{
	struct bh_api_server *s = c->srv;
	struct bh_api_call *call;

	if (c->dead)
		return;
	c->dead = true;
	event_del(c->ev_read);
	event_del(c->ev_write);
	event_del(c->ev_timer);
	bh_closep(&c->fd);
	bh_frame_reader_reset(&c->reader);
	/* Calls under way are answered into the void. */
	TAILQ_FOREACH(call, &s->calls, link)
	if (call->client == c)
		call->client = NULL;
	TAILQ_REMOVE(&s->clients, c, link);
	s->nclients--;
	TAILQ_INSERT_TAIL(&s->dead, c, link);
	event_active(s->ev_reap, EV_TIMEOUT, 0);
}

static void client_free(struct api_client *c)
{
	event_free(c->ev_read);
	event_free(c->ev_write);
	event_free(c->ev_timer);
	bh_closep(&c->fd);
	bh_frame_reader_reset(&c->reader);
	free(c->out);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bh_api_server *s = arg;
	struct api_client *c;

	while ((c = TAILQ_FIRST(&s->dead))) {
		TAILQ_REMOVE(&s->dead, c, link);
		client_free(c);
	}
}

/* Sends what is queued, without blocking. 0, or -errno: the client is to
 * be dropped. */
static int client_flush(struct api_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n =
		    send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->ev_write, NULL);
			return 0;
		}
		if (n < 0)
			return -errno;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	event_del(c->ev_write);
	if (c->closing)
		return -ECONNABORTED;
	return 0;
}

/* Queues one encoded frame (taken) for the client and starts sending it. A
 * client whose unread replies pass the limit is dropped: it does not read,
 * and the server must not hold its replies forever. */
static void client_queue(struct api_client *c, uint8_t *buf, size_t len)
{
	size_t pending = c->out_len - c->out_off;
	int r;

	if (c->dead || len > c->srv->lim.max_output ||
	    pending > c->srv->lim.max_output - len) {
		if (!c->dead)
			bh_log_ratelimited(BH_LOG_WARN,
					   "api: client %u does not read its "
					   "replies (%zu bytes queued); "
					   "dropping it",
					   c->serial, pending);
		free(buf);
		client_drop(c);
		return;
	}
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_off = 0;
		c->out_len = pending;
	}
	if (c->out_len == 0) {
		free(c->out);
		c->out = buf;
		c->out_len = len;
	} else {
		uint8_t *n = realloc(c->out, c->out_len + len);

		if (!n)
			abort();
		memcpy(n + c->out_len, buf, len);
		c->out = n;
		c->out_len += len;
		free(buf);
	}
	r = client_flush(c);
	if (r < 0) {
		if (r != -ECONNABORTED)
			bh_debug("api: client %u: send: %s", c->serial,
				 strerror(-r));
		client_drop(c);
	}
}

static void client_send(struct api_client *c, uint16_t type,
			const ProtobufCMessage *msg)
{
	uint8_t *buf;
	size_t len;
	int r;

	r = bh_frame_encode(type, msg, 0, &buf, &len);
	if (r < 0) {
		/* Only a reply too large for a frame gets here; the caller
		 * sends an error instead of the frame when it can. */
		bh_warn("api: client %u: cannot encode a reply: %s", c->serial,
			strerror(-r));
		client_drop(c);
		return;
	}
	client_queue(c, buf, len);
}

static void send_error(struct api_client *c, uint64_t id, ErrorCode code,
		       const char *msg)
{
	Bulkhead__Api__V1__Response resp = BULKHEAD__API__V1__RESPONSE__INIT;
	Bulkhead__Api__V1__Error err = BULKHEAD__API__V1__ERROR__INIT;

	err.code = code;
	err.message = (char *)msg;
	resp.id = id;
	resp.error = &err;
	client_send(c, BH_API_FRAME_RESPONSE, &resp.base);
}

/* (Re)starts the client's timer for what, ms from now. */
static void timer_set(struct api_client *c, enum client_timer what, int ms)
{
	struct timeval tv = {
		.tv_sec = ms / 1000,
		.tv_usec = (ms % 1000) * 1000,
	};

	c->timer = what;
	event_add(c->ev_timer, &tv);
}

/*
 * Sets the timer of a client past its hello from what it is doing: a frame
 * begun must end within frame_ms of its first byte (or of the frame before
 * it), however slowly the rest comes; a client waiting for replies is not
 * idle; otherwise the next request must come within idle_ms, restarted by
 * activity (a complete frame, a reply).
 */
static void client_timer_update(struct api_client *c, bool activity)
{
	const struct bh_api_limits *lim = &c->srv->lim;

	if (c->dead || c->closing || !c->hello_done)
		return;
	if (c->reader.hdr_got > 0) {
		if (c->timer != TIMER_FRAME || activity)
			timer_set(c, TIMER_FRAME, lim->frame_ms);
	} else if (c->ncalls > 0) {
		c->timer = TIMER_NONE;
		event_del(c->ev_timer);
	} else if (c->timer != TIMER_IDLE || activity) {
		timer_set(c, TIMER_IDLE, lim->idle_ms);
	}
}

/*
 * Answers a broken connection: the error goes out (id 0, it answers no
 * request), nothing more is read, and the connection ends once the reply
 * has left or the frame timeout passes.
 */
static void client_fail(struct api_client *c, ErrorCode code, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
static void client_fail(struct api_client *c, ErrorCode code, const char *fmt,
			...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bh_log_ratelimited(BH_LOG_WARN, "api: client %u: %s", c->serial, msg);
	if (c->dead)
		return;
	c->closing = true;
	event_del(c->ev_read);
	timer_set(c, TIMER_CLOSING, c->srv->lim.frame_ms);
	send_error(c, 0, code, msg);
	if (!c->dead && c->out_len == c->out_off)
		client_drop(c);
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_client *c = arg;
	int r;

	r = client_flush(c);
	if (r < 0) {
		if (r != -ECONNABORTED)
			bh_debug("api: client %u: send: %s", c->serial,
				 strerror(-r));
		client_drop(c);
	}
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_client *c = arg;

	switch (c->timer) {
	case TIMER_CLOSING:
		bh_debug("api: client %u does not take its last reply",
			 c->serial);
		break;
	case TIMER_HANDSHAKE:
		bh_log_ratelimited(BH_LOG_WARN,
				   "api: client %u sent no hello within %d ms; "
				   "dropping it",
				   c->serial, c->srv->lim.handshake_ms);
		break;
	case TIMER_FRAME:
		bh_log_ratelimited(BH_LOG_WARN,
				   "api: client %u left a frame unfinished for "
				   "%d ms; dropping it",
				   c->serial, c->srv->lim.frame_ms);
		break;
	case TIMER_IDLE:
	case TIMER_NONE:
		/* The normal end of a forgotten connection, not a fault:
		 * no warning. */
		bh_log_ratelimited(BH_LOG_INFO,
				   "api: client %u sent no request for %d ms; "
				   "dropping it",
				   c->serial, c->srv->lim.idle_ms);
		break;
	}
	client_drop(c);
}

/* ---- calls ------------------------------------------------------------- */

static struct bh_api_call *call_new(struct api_client *c,
				    const struct api_op *op, Request *req)
{
	struct bh_api_call *call = calloc(1, sizeof(*call));

	if (!call)
		abort();
	call->srv = c->srv;
	call->client = c;
	call->op = op;
	call->req = req;
	call->id = req->id;
	TAILQ_INSERT_TAIL(&c->srv->calls, call, link);
	c->ncalls++;
	return call;
}

const char *bh_api_call_op_name(const struct bh_api_call *call)
{
	return call->op ? call->op->name : "ping";
}

bool bh_api_call_client_connected(const struct bh_api_call *call)
{
	return call->client != NULL;
}

/* Points resp's result at a new empty message of the operation's result
 * type, found through the descriptor so that one function serves all. */
static ProtobufCMessage *set_empty_result(Response *resp, unsigned int number)
{
	const ProtobufCFieldDescriptor *f;
	ProtobufCMessage *m;

	f = protobuf_c_message_descriptor_get_field(
	    &bulkhead__api__v1__response__descriptor, number);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	m = calloc(1, ((const ProtobufCMessageDescriptor *)f->descriptor)
			  ->sizeof_message);
	if (!m)
		abort();
	protobuf_c_message_init(f->descriptor, m);
	memcpy((char *)resp + f->offset, &m, sizeof(m));
	resp->result_case = (Bulkhead__Api__V1__Response__ResultCase)number;
	return m;
}

void bh_api_reply(struct bh_api_call *call, const Response *resp)
{
	Bulkhead__Api__V1__Error err = BULKHEAD__API__V1__ERROR__INIT;
	struct api_client *c = call->client;
	unsigned int number =
	    call->op ? (unsigned int)call->op->op : (unsigned int)OP(PING);
	ProtobufCMessage *empty = NULL;
	Response r = *resp;
	uint8_t *buf;
	size_t len;
	char msg[160];
	int ret;

	if (call->srv) {
		TAILQ_REMOVE(&call->srv->calls, call, link);
		if (call->srv->exclusive == call)
			call->srv->exclusive = NULL;
	}
	if (!c || c->dead)
		goto out;
	c->ncalls--;

	r.id = call->id;
	if (r.error && r.error->code != ERR(ERROR_NONE)) {
		r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT__NOT_SET;
	} else if (r.result_case ==
		   BULKHEAD__API__V1__RESPONSE__RESULT__NOT_SET) {
		empty = set_empty_result(&r, number);
	} else if ((unsigned int)r.result_case != number) {
		bh_err("api: %s answered with the result of another operation "
		       "(field %d)",
		       bh_api_call_op_name(call), (int)r.result_case);
		snprintf(msg, sizeof(msg), "%s: internal error: wrong result",
			 bh_api_call_op_name(call));
		err.code = ERR(INTERNAL);
		err.message = msg;
		r.error = &err;
		r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT__NOT_SET;
	}

	ret = bh_frame_encode(BH_API_FRAME_RESPONSE, &r.base, 0, &buf, &len);
	if (ret == -EMSGSIZE) {
		bh_err("api: the reply to %s does not fit in a frame",
		       bh_api_call_op_name(call));
		snprintf(msg, sizeof(msg), "%s: the reply is too large",
			 bh_api_call_op_name(call));
		send_error(c, call->id, ERR(INTERNAL), msg);
	} else if (ret < 0) {
		bh_err("api: encoding the reply to %s: %s",
		       bh_api_call_op_name(call), strerror(-ret));
		client_drop(c);
	} else {
		client_queue(c, buf, len);
	}
	/* Its last reply out, a client starts to count as idle. */
	client_timer_update(c, true);
out:
	free(empty);
	bulkhead__api__v1__request__free_unpacked(call->req, NULL);
	free(call);
}

void bh_api_reply_ok(struct bh_api_call *call)
{
	Response r = BULKHEAD__API__V1__RESPONSE__INIT;

	bh_api_reply(call, &r);
}

void bh_api_reply_error(struct bh_api_call *call, ErrorCode code,
			const char *fmt, ...)
{
	Response r = BULKHEAD__API__V1__RESPONSE__INIT;
	Bulkhead__Api__V1__Error err = BULKHEAD__API__V1__ERROR__INIT;
	const char *name = bh_api_call_op_name(call);
	char msg[512];
	size_t n;
	va_list ap;

	snprintf(msg, sizeof(msg), "%s: ", name);
	n = strlen(msg);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	/* An error reply without a code would read as success. */
	err.code = code != ERR(ERROR_NONE) ? code : ERR(INTERNAL);
	err.message = msg;
	r.error = &err;
	bh_api_reply(call, &r);
}

/* ping is the server's own: it says what the ops table offers. */
static void do_ping(struct bh_api_server *s, struct bh_api_call *call)
{
	const char *names[BH_ARRAY_SIZE(api_ops) + 1];
	Bulkhead__Api__V1__PingResponse ping =
	    BULKHEAD__API__V1__PING_RESPONSE__INIT;
	Response r = BULKHEAD__API__V1__RESPONSE__INIT;
	size_t i, n = 0;

	names[n++] = "ping";
	for (i = 0; i < BH_ARRAY_SIZE(api_ops); i++)
		if (op_handler(s, &api_ops[i]))
			names[n++] = api_ops[i].name;
	ping.version = (char *)BULKHEAD_VERSION;
	ping.api_version = BH_API_VERSION;
	ping.pid = (int64_t)getpid();
	ping.n_operations = n;
	ping.operations = (char **)names;
	r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_PING;
	r.ping = &ping;
	bh_api_reply(call, &r);
}

/* Checks a request against the table and the VM's state, then runs it.
 * Takes req. */
static void handle_request(struct api_client *c, Request *req)
{
	struct bh_api_server *s = c->srv;
	const struct api_op *op = NULL;
	struct bh_api_call *call;
	enum bh_api_vm_state st;
	bh_api_op_fn fn = NULL;
	const char *name;
	char msg[256];

	if (req->op_case == OP(PING)) {
		name = "ping";
	} else {
		op = find_op(req->op_case);
		if (!op) {
			/* A newer client's operation arrives as an unknown
			 * field; an empty request has none at all. */
			if (req->base.n_unknown_fields > 0)
				send_error(c, req->id, ERR(NOT_SUPPORTED_YET),
					   "the request's operation is not "
					   "known to this server");
			else
				send_error(c, req->id, ERR(INVALID_ARGUMENT),
					   "the request names no operation");
			goto free_req;
		}
		name = op->name;
		fn = op_handler(s, op);
	}

	if (c->ncalls >= s->lim.max_calls) {
		snprintf(msg, sizeof(msg),
			 "%s: too many requests under way on this connection "
			 "(%u); wait for their replies",
			 name, s->lim.max_calls);
		send_error(c, req->id, ERR(BUSY), msg);
		goto free_req;
	}
	if (op && !fn) {
		snprintf(msg, sizeof(msg),
			 "%s: not supported by this server yet", name);
		send_error(c, req->id, ERR(NOT_SUPPORTED_YET), msg);
		goto free_req;
	}
	if (op) {
		st = s->ops->state(s->ctx);
		/* A state the table does not know is refused like any
		 * other state that is not allowed. */
		if ((unsigned int)st > BH_API_SHUTDOWN ||
		    !(op->states & (1u << st))) {
			snprintf(msg, sizeof(msg), "%s: %s (state: %s)", name,
				 st == BH_API_NOT_CREATED
				     ? "no VM has been created"
				     : op->refusal,
				 bh_api_state_name(st));
			send_error(c, req->id, ERR(INVALID_STATE), msg);
			goto free_req;
		}
		if (op->exclusive && s->exclusive) {
			snprintf(msg, sizeof(msg),
				 "%s: busy with %s; try again when it has "
				 "finished",
				 name, s->exclusive->op->name);
			send_error(c, req->id, ERR(BUSY), msg);
			goto free_req;
		}
	}

	call = call_new(c, op, req);
	if (!op) {
		do_ping(s, call);
		return;
	}
	if (op->exclusive) {
		s->exclusive = call;
		bh_info("api: client %u: %s", c->serial, name);
	} else {
		bh_debug("api: client %u: %s", c->serial, name);
	}
	/* The handler may answer at once, which may drop the client. */
	fn(s->ctx, call, call->req);
	return;

free_req:
	bulkhead__api__v1__request__free_unpacked(req, NULL);
}

/* ---- frames -------------------------------------------------------------- */

static void handle_hello(struct api_client *c, const struct bh_frame *f)
{
	Bulkhead__Api__V1__Hello *h;

	if (f->type != BH_API_FRAME_HELLO) {
		client_fail(c, ERR(PROTOCOL),
			    "expected a hello (frame type %d) first, got "
			    "frame type %u",
			    BH_API_FRAME_HELLO, f->type);
		return;
	}
	h = bulkhead__api__v1__hello__unpack(NULL, f->len, f->body);
	if (!h) {
		client_fail(c, ERR(PROTOCOL), "the hello does not unpack");
		return;
	}
	if (h->version != BH_API_VERSION) {
		client_fail(c, ERR(UNSUPPORTED_VERSION),
			    "API version %" PRIu32
			    " is not supported (this server speaks %d)",
			    h->version, BH_API_VERSION);
		bulkhead__api__v1__hello__free_unpacked(h, NULL);
		return;
	}
	bh_debug("api: client %u is %.64s", c->serial, h->role);
	bulkhead__api__v1__hello__free_unpacked(h, NULL);
	c->hello_done = true;
	c->timer = TIMER_NONE;
	event_del(c->ev_timer);
}

/* Handles one complete frame; always releases it. */
static void handle_frame(struct api_client *c, struct bh_frame *f)
{
	Request *req;

	if (f->nfds > 0) {
		client_fail(c, ERR(PROTOCOL),
			    "file descriptors are not accepted on the API "
			    "socket");
		goto out;
	}
	if (!c->hello_done) {
		handle_hello(c, f);
		goto out;
	}
	if (f->type != BH_API_FRAME_REQUEST) {
		client_fail(c, ERR(PROTOCOL),
			    "frame type %u is not a request (%d)", f->type,
			    BH_API_FRAME_REQUEST);
		goto out;
	}
	req = bulkhead__api__v1__request__unpack(NULL, f->len, f->body);
	if (!req) {
		/* The framing is intact, so the connection can go on. */
		send_error(c, 0, ERR(PROTOCOL),
			   "the request does not unpack as a Request");
		goto out;
	}
	handle_request(c, req);
out:
	bh_frame_release(f);
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_client *c = arg;
	bool activity = false;
	struct bh_frame f;
	int i, r = 0;

	for (i = 0; i < FRAMES_PER_WAKEUP && !c->dead && !c->closing; i++) {
		r = bh_frame_read(c->fd, &c->reader, &f);
		if (r == 0)
			break;
		if (r == 1) {
			activity = true;
			handle_frame(c, &f);
			continue;
		}
		switch (r) {
		case -EPIPE:
			bh_debug("api: client %u disconnected", c->serial);
			client_drop(c);
			break;
		case -ECONNRESET:
			bh_log_ratelimited(BH_LOG_WARN,
					   "api: client %u went away in the "
					   "middle of a frame",
					   c->serial);
			client_drop(c);
			break;
		case -EMSGSIZE:
			client_fail(c, ERR(PROTOCOL),
				    "frame larger than the limit of %u bytes",
				    BH_API_MAX_FRAME);
			break;
		case -EBADMSG:
			client_fail(c, ERR(PROTOCOL), "bad frame header");
			break;
		case -EPROTO:
			client_fail(c, ERR(PROTOCOL),
				    "file descriptors are not accepted on the "
				    "API socket");
			break;
		default:
			bh_debug("api: client %u: read: %s", c->serial,
				 strerror(-r));
			client_drop(c);
			break;
		}
	}
	client_timer_update(c, activity);
}

/* ---- accepting ------------------------------------------------------------
 */

static void send_hello(struct api_client *c)
{
	Bulkhead__Api__V1__Hello h = BULKHEAD__API__V1__HELLO__INIT;

	h.version = BH_API_VERSION;
	h.role = (char *)BH_API_SERVER_ROLE;
	client_send(c, BH_API_FRAME_HELLO, &h.base);
}

/* A client refused at once gets the server's hello and an error (id 0),
 * sent without blocking into the empty socket buffer, and is closed. */
static void refuse_client(int fd, ErrorCode code, const char *msg)
{
	Bulkhead__Api__V1__Hello h = BULKHEAD__API__V1__HELLO__INIT;
	Response resp = BULKHEAD__API__V1__RESPONSE__INIT;
	Bulkhead__Api__V1__Error err = BULKHEAD__API__V1__ERROR__INIT;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t l1, l2;

	h.version = BH_API_VERSION;
	h.role = (char *)BH_API_SERVER_ROLE;
	err.code = code;
	err.message = (char *)msg;
	resp.error = &err;
	if (bh_frame_encode(BH_API_FRAME_HELLO, &h.base, 0, &b1, &l1) == 0 &&
	    bh_frame_encode(BH_API_FRAME_RESPONSE, &resp.base, 0, &b2, &l2) ==
		0) {
		/* Best effort: a fresh socket has room for both. */
		if (send(fd, b1, l1, MSG_DONTWAIT | MSG_NOSIGNAL) ==
		    (ssize_t)l1)
			(void)!send(fd, b2, l2, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	free(b1);
	free(b2);
	close(fd);
}

bool bh_api_access_allows(const struct bh_api_access *a, uint32_t self,
			  uint32_t uid, const uint32_t *groups, size_t n)
{
	if (uid == 0 || uid == self)
		return true;
	if (!a || (a->nuids == 0 && a->ngids == 0))
		return true;
	for (unsigned int i = 0; i < a->nuids; i++)
		if (a->uids[i] == uid)
			return true;
	for (unsigned int i = 0; i < a->ngids; i++)
		for (size_t j = 0; j < n; j++)
			if (a->gids[i] == groups[j])
				return true;
	return false;
}

/*
 * The connecting process's gid, then its supplementary groups, as the
 * kernel recorded them at connect(2); *n of them, malloc'd. A kernel
 * without SO_PEERGROUPS gives the gid alone.
 */
static uint32_t *peer_groups(int fd, gid_t gid, size_t *n)
{
	socklen_t len = 64 * sizeof(gid_t), got;
	uint32_t *g = NULL;

	for (;;) {
		uint32_t *ng = realloc(g, len + sizeof(*g));

		if (!ng)
			abort();
		g = ng;
		got = len;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g + 1, &got) ==
		    0) {
			*n = 1 + got / sizeof(*g);
			break;
		}
		/* ERANGE says how much room the list needs. */
		if (errno == ERANGE && got > len) {
			len = got;
			continue;
		}
		*n = 1;
		break;
	}
	g[0] = gid;
	return g;
}

/* Whether the client on fd, of cred, may use the server; logs a refusal. */
static bool client_allowed(struct bh_api_server *s, int fd,
			   const struct ucred *cred, bool known)
{
	uint32_t *groups;
	size_t n;
	bool ok;

	if (!s->restricted)
		return true;
	if (!known) {
		bh_log_ratelimited(BH_LOG_WARN,
				   "api: refused a client whose credentials "
				   "cannot be read (SO_PEERCRED: %s)",
				   strerror(errno));
		return false;
	}
	groups = peer_groups(fd, cred->gid, &n);
	ok = bh_api_access_allows(&s->access, geteuid(), cred->uid, groups, n);
	free(groups);
	if (!ok)
		bh_log_ratelimited(BH_LOG_WARN,
				   "api: refused a client of uid %lu, gid %lu "
				   "(pid %ld): not in --api-socket allow-uid "
				   "or allow-gid",
				   (unsigned long)cred->uid,
				   (unsigned long)cred->gid, (long)cred->pid);
	return ok;
}

static void add_client(struct bh_api_server *s, int fd)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t clen = sizeof(cred);
	unsigned int limit = s->lim.max_clients;
	struct api_client *c;
	char msg[160];
	bool owner, known;

	known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0;
	if (!known)
		cred.uid = (uid_t)-1;
	/* Before the limit: a refused user must not learn whether the
	 * server is busy, nor take a place. */
	if (!client_allowed(s, fd, &cred, known)) {
		snprintf(msg, sizeof(msg),
			 "uid %lu may not use this API (the server accepts "
			 "only the users and groups it was given)",
			 (unsigned long)cred.uid);
		refuse_client(fd, ERR(PERMISSION_DENIED), msg);
		return;
	}
	/* Asked at each connection: with --user the server's uid changes
	 * after the socket is set up. */
	owner = cred.uid == 0 || cred.uid == geteuid();
	/* The last slot is the owner's, so that other users' connections,
	 * idle or not, cannot keep the owner out. */
	if (!owner && limit > 1)
		limit--;
	if (s->nclients >= limit) {
		bh_log_ratelimited(BH_LOG_WARN,
				   "api: %u clients connected already; "
				   "refusing another (pid %ld, uid %ld)",
				   s->nclients, (long)cred.pid,
				   (long)(int)cred.uid);
		if (limit < s->lim.max_clients)
			snprintf(msg, sizeof(msg),
				 "too many clients (%u, and the last place is "
				 "kept for the server's own user and root); "
				 "try again later",
				 limit);
		else
			snprintf(msg, sizeof(msg),
				 "too many clients (%u); try again later",
				 limit);
		refuse_client(fd, ERR(BUSY), msg);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->srv = s;
	c->fd = fd;
	c->serial = ++s->next_serial;
	bh_frame_reader_init(&c->reader, BH_API_MAX_FRAME);
	c->ev_read =
	    event_new(s->base, fd, EV_READ | EV_PERSIST, client_read_cb, c);
	c->ev_write =
	    event_new(s->base, fd, EV_WRITE | EV_PERSIST, client_write_cb, c);
	c->ev_timer = evtimer_new(s->base, client_timer_cb, c);
	if (!c->ev_read || !c->ev_write || !c->ev_timer)
		abort();
	TAILQ_INSERT_TAIL(&s->clients, c, link);
	s->nclients++;
	bh_debug("api: client %u connected (pid %ld, uid %ld)", c->serial,
		 (long)cred.pid, (long)(int)cred.uid);
	event_add(c->ev_read, NULL);
	timer_set(c, TIMER_HANDSHAKE, s->lim.handshake_ms);
	send_hello(c);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bh_api_server *s = arg;

	event_add(s->ev_listen, NULL);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct bh_api_server *s = arg;
	struct timeval tv = { .tv_sec = ACCEPT_RETRY_MS / 1000,
			      .tv_usec = (ACCEPT_RETRY_MS % 1000) * 1000 };
	int i, fd;

	for (i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		fd = accept4(s->listen_fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			add_client(s, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		bh_log_ratelimited(BH_LOG_WARN, "api: accept: %s",
				   strerror(errno));
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			event_del(s->ev_listen);
			event_add(s->ev_accept_retry, &tv);
		}
		return;
	}
}

/* ---- the server -------------------------------------------------------- */

int bh_api_server_new(struct event_base *base, const struct bh_api_ops *ops,
		      void *ctx, const struct bh_api_limits *limits,
		      struct bh_api_server **out)
{
	static const struct bh_api_limits defaults = BH_API_LIMITS_DEFAULT;
	struct bh_api_server *s;

	if (!base || !ops || !ops->state)
		return -EINVAL;
	if (!limits)
		limits = &defaults;
	if (limits->max_clients == 0 || limits->max_output == 0 ||
	    limits->max_calls == 0 || limits->handshake_ms <= 0 ||
	    limits->frame_ms <= 0 || limits->idle_ms <= 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->ops = ops;
	s->ctx = ctx;
	s->lim = *limits;
	s->listen_fd = -1;
	TAILQ_INIT(&s->clients);
	TAILQ_INIT(&s->dead);
	TAILQ_INIT(&s->calls);
	s->ev_reap = event_new(base, -1, 0, reap_cb, s);
	s->ev_accept_retry = evtimer_new(base, accept_retry_cb, s);
	if (!s->ev_reap || !s->ev_accept_retry) {
		if (s->ev_reap)
			event_free(s->ev_reap);
		if (s->ev_accept_retry)
			event_free(s->ev_accept_retry);
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

/* Removes the socket file if it is still the one we created: another
 * server may have replaced it since. */
static void unlink_ours(struct bh_api_server *s)
{
	struct stat st;

	if (!s->path)
		return;
	if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == s->path_dev && st.st_ino == s->path_ino)
		unlink(s->path);
	free(s->path);
	s->path = NULL;
}

void bh_api_server_free(struct bh_api_server *s)
{
	struct bh_api_call *call;
	struct api_client *c;

	if (!s)
		return;
	/* Replies under way keep their calls; they just go nowhere. */
	while ((call = TAILQ_FIRST(&s->calls))) {
		TAILQ_REMOVE(&s->calls, call, link);
		call->srv = NULL;
		call->client = NULL;
	}
	while ((c = TAILQ_FIRST(&s->clients))) {
		/* A last chance for replies already queued, e.g. the answer
		 * to shutdown-vmm. */
		if (c->out_len > c->out_off)
			(void)!send(c->fd, c->out + c->out_off,
				    c->out_len - c->out_off,
				    MSG_DONTWAIT | MSG_NOSIGNAL);
		client_drop(c);
	}
	reap_cb(-1, 0, s);
	if (s->ev_listen)
		event_free(s->ev_listen);
	event_free(s->ev_accept_retry);
	event_free(s->ev_reap);
	bh_closep(&s->listen_fd);
	unlink_ours(s);
	free(s);
}

void bh_api_server_set_access(struct bh_api_server *s,
			      const struct bh_api_access *a)
{
	memset(&s->access, 0, sizeof(s->access));
	if (a)
		s->access = *a;
	if (s->access.nuids > BH_API_MAX_ALLOW)
		s->access.nuids = BH_API_MAX_ALLOW;
	if (s->access.ngids > BH_API_MAX_ALLOW)
		s->access.ngids = BH_API_MAX_ALLOW;
	s->restricted = s->access.nuids > 0 || s->access.ngids > 0;
}

unsigned int bh_api_server_clients(const struct bh_api_server *s)
{
	return s->nclients;
}

static int start_listening(struct bh_api_server *s, int fd)
{
	s->ev_listen =
	    event_new(s->base, fd, EV_READ | EV_PERSIST, accept_cb, s);
	if (!s->ev_listen)
		return -ENOMEM;
	if (event_add(s->ev_listen, NULL) < 0) {
		event_free(s->ev_listen);
		s->ev_listen = NULL;
		return -EIO;
	}
	s->listen_fd = fd;
	return 0;
}

int bh_api_listen_fd(struct bh_api_server *s, int fd)
{
	int type = 0, domain = 0, acc = 0, fl;
	socklen_t len = sizeof(int);

	if (s->listen_fd >= 0)
		return -EALREADY;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return errno == EBADF ? -EBADF : -ENOTSOCK;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM || domain != AF_UNIX || !acc)
		return -ENOTSOCK;
	/* An inherited fd carries whatever flags its creator gave it. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return start_listening(s, fd);
}

/* Whether a server answers on the socket at path: connect(2) succeeds or
 * its backlog is full. A stale file gets ECONNREFUSED. */
static int socket_is_live(const struct sockaddr_un *sa)
{
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (r == 0 || errno == EAGAIN || errno == EINPROGRESS)
		r = 1;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		r = 0;
	else
		r = -errno;
	close(fd);
	return r;
}

int bh_api_listen_path(struct bh_api_server *s, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_mask;
	int fd = -1, r;

	if (s->listen_fd >= 0)
		return -EALREADY;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			bh_err("api: %s exists and is not a socket", path);
			return -EEXIST;
		}
		r = socket_is_live(&sa);
		if (r < 0)
			return r;
		if (r > 0) {
			bh_err("api: a server answers on %s already", path);
			return -EADDRINUSE;
		}
		bh_info("api: replacing the stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	} else if (errno != ENOENT) {
		return -errno;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* The socket file is created with mode 0600 from the start: a chmod
	 * afterwards would leave a window in which others could connect. */
	old_mask = umask(0177);
	r = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (r < 0) {
		r = -errno;
		goto err_close;
	}
	if (lstat(path, &st) < 0) {
		r = -errno;
		goto err_close;
	}
	s->path = strdup(path);
	if (!s->path) {
		r = -ENOMEM;
		goto err_unlink;
	}
	s->path_dev = st.st_dev;
	s->path_ino = st.st_ino;
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		r = -errno;
		goto err_path;
	}
	r = start_listening(s, fd);
	if (r < 0)
		goto err_path;
	return 0;

err_path:
	free(s->path);
	s->path = NULL;
err_unlink:
	unlink(path);
err_close:
	close(fd);
	return r;
}

/* "1000:1001" into ids; the message names key. */
static int parse_ids(const char *key, const char *list, uint32_t *ids,
		     unsigned int *n, char *err, size_t errlen)
{
	const char *p = list, *end;
	char num[16];
	uint64_t v;
	size_t len;

	*n = 0;
	for (;;) {
		end = strchr(p, ':');
		len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || len >= sizeof(num))
			goto bad;
		memcpy(num, p, len);
		num[len] = '\0';
		/* (uint32_t)-1 is no id: it means "unchanged" to chown(2). */
		if (bh_parse_uint(num, 0, UINT32_MAX - 1, &v) < 0)
			goto bad;
		if (*n == BH_API_MAX_ALLOW)
			return bh_errf(err, errlen,
				       "--api-socket: %s= lists more than %d "
				       "ids",
				       key, BH_API_MAX_ALLOW);
		ids[(*n)++] = (uint32_t)v;
		if (!end)
			return 0;
		p = end + 1;
	}
bad:
	return bh_errf(err, errlen,
		       "--api-socket: %s=%s: '%.*s' is not a numeric id "
		       "(ids are separated by ':')",
		       key, list, (int)len, p);
}

static int set_path(const char *arg, char **path, char *err, size_t errlen)
{
	if (arg[0] == '\0')
		return bh_errf(err, errlen, "--api-socket: the path is empty");
	if (strlen(arg) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return bh_errf(
		    err, errlen,
		    "--api-socket: the path is longer than %zu bytes",
		    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	*path = bh_xstrdup(arg);
	return 0;
}

int bh_api_socket_arg_parse(const char *arg, char **path, int *fd,
			    struct bh_api_access *access, char *err,
			    size_t errlen)
{
	static const char known[] = "known: path, fd, allow-uid, allow-gid";
	bool have_uid = false, have_gid = false;
	char *buf, *item, *next, *eq;
	uint64_t v;
	int r = 0;

	*path = NULL;
	*fd = -1;
	memset(access, 0, sizeof(*access));
	/* A bare path is taken whole, so that it may hold commas. */
	if (strncmp(arg, "fd=", 3) != 0 && strncmp(arg, "path=", 5) != 0)
		return set_path(arg, path, err, errlen);

	buf = bh_xstrdup(arg);
	for (item = buf; item && r == 0; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		eq = strchr(item, '=');
		if (!eq) {
			r = bh_errf(err, errlen,
				    "--api-socket: '%s' is not key=value (%s; "
				    "a path with a comma is given alone, "
				    "without path=)",
				    item, known);
			break;
		}
		*eq++ = '\0';
		if (strcmp(item, "path") == 0 || strcmp(item, "fd") == 0) {
			if (*path || *fd >= 0) {
				r = bh_errf(err, errlen,
					    "--api-socket: give one of path= "
					    "and fd=, once");
			} else if (item[0] == 'p') {
				r = set_path(eq, path, err, errlen);
			} else if (bh_parse_uint(eq, 0, INT32_MAX, &v) < 0) {
				r = bh_errf(err, errlen,
					    "--api-socket: fd=%s is not a file "
					    "descriptor number",
					    eq);
			} else {
				*fd = (int)v;
			}
		} else if (strcmp(item, "allow-uid") == 0) {
			r = have_uid ? bh_errf(err, errlen,
					       "--api-socket: allow-uid given "
					       "twice")
				     : parse_ids(item, eq, access->uids,
						 &access->nuids, err, errlen);
			have_uid = true;
		} else if (strcmp(item, "allow-gid") == 0) {
			r = have_gid ? bh_errf(err, errlen,
					       "--api-socket: allow-gid given "
					       "twice")
				     : parse_ids(item, eq, access->gids,
						 &access->ngids, err, errlen);
			have_gid = true;
		} else {
			r = bh_errf(err, errlen,
				    "--api-socket: unknown parameter '%s' (%s)",
				    item, known);
		}
	}
	free(buf);
	if (r < 0) {
		free(*path);
		*path = NULL;
		*fd = -1;
		memset(access, 0, sizeof(*access));
	}
	return r;
}
