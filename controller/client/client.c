/* libbulkhead-client: connect, handshake, and calls with time limits. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/util.h>

#include "bulkhead/client.h"

#define FRAME_HELLO    BULKHEAD__API__V1__FRAME_TYPE__FRAME_HELLO
#define FRAME_REQUEST  BULKHEAD__API__V1__FRAME_TYPE__FRAME_REQUEST
#define FRAME_RESPONSE BULKHEAD__API__V1__FRAME_TYPE__FRAME_RESPONSE
/* The server's limit on a frame body, which is ours for its replies. */
#define MAX_FRAME (1024u * 1024u)

struct bh_client {
	int fd;
	struct bh_frame_reader reader;
	uint32_t server_version;
	uint64_t next_id;
	bool broken; /* the stream is out of step: no more calls */
	char last_error[256];
};

__attribute__((format(printf, 3, 4))) static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Milliseconds left until deadline (ns, 0: none), for poll(2): -1 for no
 * limit, 0 once it has passed. */
static int remaining_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == 0)
		return -1;
	now = bh_now_ns();
	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000);
}

static uint64_t deadline_of(int timeout_ms)
{
	if (timeout_ms < 0)
		return 0;
	return bh_now_ns() + (uint64_t)timeout_ms * 1000000 + 1;
}

/* Waits for events on fd until deadline: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int ms = remaining_ms(deadline), n;

		if (ms == 0)
			return 0;
		n = poll(&p, 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 1;
	}
}

/* Sends a whole frame before deadline. 0, -ETIMEDOUT with *sent < len, or
 * -errno. */
static int send_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline,
		    size_t *sent)
{
	int r;

	*sent = 0;
	while (*sent < len) {
		ssize_t n = send(fd, buf + *sent, len - *sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0) {
			*sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Reads one frame before deadline. 0 with *f, -ETIMEDOUT, or the reader's
 * errors. */
static int read_frame(struct bh_client *c, struct bh_frame *f,
		      uint64_t deadline)
{
	int r;

	for (;;) {
		r = bh_frame_read(c->fd, &c->reader, f);
		if (r == 1)
			return 0;
		if (r < 0)
			return r;
		r = wait_fd(c->fd, POLLIN, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			return -ETIMEDOUT;
	}
}

static int connect_path(const char *path, uint64_t deadline, int *out,
			char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		set_err(err, errlen, "%s: path too long for a unix socket",
			path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		set_err(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	/* A listener whose backlog is full makes a non-blocking connect(2)
	 * fail with EAGAIN, and poll(2) does not say when room appears:
	 * try again every few milliseconds until the deadline. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			r = -errno;
			goto err;
		}
		if (remaining_ms(deadline) == 0) {
			r = -ETIMEDOUT;
			goto err;
		}
		poll(NULL, 0, 5);
	}
	*out = fd;
	return 0;

err:
	set_err(err, errlen, "connect %s: %s", path, strerror(-r));
	close(fd);
	return r;
}

static int handshake(struct bh_client *c, const char *role, uint64_t deadline,
		     char *err, size_t errlen)
{
	Bulkhead__Api__V1__Hello h = BULKHEAD__API__V1__HELLO__INIT;
	Bulkhead__Api__V1__Hello *peer;
	struct bh_frame f;
	uint8_t *buf;
	size_t len, sent;
	int r;

	h.version = BH_CLIENT_API_VERSION;
	h.role = (char *)(role ? role : "libbulkhead-client");
	r = bh_frame_encode(FRAME_HELLO, &h.base, 0, &buf, &len);
	if (r < 0) {
		set_err(err, errlen, "hello: %s", strerror(-r));
		return r;
	}
	r = send_all(c->fd, buf, len, deadline, &sent);
	free(buf);
	/* A server that refuses us may have closed already; its hello and
	 * its reason are still to be read. */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
		set_err(err, errlen, "sending hello: %s", strerror(-r));
		return r;
	}

	r = read_frame(c, &f, deadline);
	if (r == -ETIMEDOUT) {
		set_err(err, errlen, "no hello from the server in time");
		return r;
	}
	if (r < 0) {
		set_err(err, errlen, "reading the server's hello: %s",
			strerror(-r));
		return r == -EPIPE ? -ECONNRESET : r;
	}
	if (f.type != FRAME_HELLO || f.nfds != 0) {
		bh_frame_release(&f);
		set_err(err, errlen,
			"the server's first frame is not a hello (type %u)",
			f.type);
		return -EPROTO;
	}
	peer = bulkhead__api__v1__hello__unpack(NULL, f.len, f.body);
	bh_frame_release(&f);
	if (!peer) {
		set_err(err, errlen, "the server's hello does not unpack");
		return -EPROTO;
	}
	c->server_version = peer->version;
	bulkhead__api__v1__hello__free_unpacked(peer, NULL);
	if (c->server_version != BH_CLIENT_API_VERSION) {
		set_err(err, errlen,
			"the server speaks API version %" PRIu32
			", this client %d",
			c->server_version, BH_CLIENT_API_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

int bh_client_connect(const char *path, int timeout_ms, const char *role,
		      struct bh_client **out, char *err, size_t errlen)
{
	uint64_t deadline = deadline_of(timeout_ms);
	struct bh_client *c;
	int r;

	set_err(err, errlen, "%s", "");
	c = calloc(1, sizeof(*c));
	if (!c) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->fd = -1;
	bh_frame_reader_init(&c->reader, MAX_FRAME);
	r = connect_path(path, deadline, &c->fd, err, errlen);
	if (r < 0)
		goto err;
	r = handshake(c, role, deadline, err, errlen);
	if (r < 0)
		goto err;
	*out = c;
	return 0;

err:
	bh_client_close(c);
	return r;
}

void bh_client_close(struct bh_client *c)
{
	if (!c)
		return;
	bh_frame_reader_reset(&c->reader);
	bh_closep(&c->fd);
	free(c);
}

uint32_t bh_client_server_version(const struct bh_client *c)
{
	return c->server_version;
}

const char *bh_client_last_error(const struct bh_client *c)
{
	return c->last_error;
}

/* Marks the connection unusable and says why. Returns r. */
__attribute__((format(printf, 3, 4))) static int
broken(struct bh_client *c, int r, const char *fmt, ...)
{
	va_list ap;

	c->broken = true;
	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	return r;
}

/* Reads replies until the one with id (or id 0) arrives. */
static int wait_reply(struct bh_client *c, uint64_t id, uint64_t deadline,
		      Bulkhead__Api__V1__Response **resp)
{
	Bulkhead__Api__V1__Response *r;
	struct bh_frame f;
	int ret;

	for (;;) {
		ret = read_frame(c, &f, deadline);
		if (ret == -ETIMEDOUT) {
			snprintf(c->last_error, sizeof(c->last_error),
				 "no reply from the server in time");
			return ret;
		}
		if (ret == -EPIPE || ret == -ECONNRESET)
			return broken(c, -EPIPE,
				      "the server closed the connection");
		if (ret < 0)
			return broken(c, ret == -EMSGSIZE ? -EPROTO : ret,
				      "reading the reply: %s", strerror(-ret));
		if (f.type != FRAME_RESPONSE || f.nfds != 0) {
			bh_frame_release(&f);
			return broken(c, -EPROTO,
				      "the server sent frame type %u instead "
				      "of a reply",
				      f.type);
		}
		r = bulkhead__api__v1__response__unpack(NULL, f.len, f.body);
		bh_frame_release(&f);
		if (!r)
			return broken(c, -EPROTO,
				      "the server's reply does not unpack");
		if (r->id == id || r->id == 0) {
			*resp = r;
			return 0;
		}
		/* The late reply to a call that timed out. */
		bulkhead__api__v1__response__free_unpacked(r, NULL);
	}
}

int bh_client_call(struct bh_client *c, Bulkhead__Api__V1__Request *req,
		   int timeout_ms, Bulkhead__Api__V1__Response **resp)
{
	uint64_t deadline = deadline_of(timeout_ms);
	uint8_t *buf;
	size_t len, sent;
	int r;

	*resp = NULL;
	c->last_error[0] = '\0';
	if (c->broken) {
		snprintf(c->last_error, sizeof(c->last_error),
			 "the connection is closed after an earlier error");
		return -ENOTCONN;
	}
	req->id = ++c->next_id;
	r = bh_frame_encode(FRAME_REQUEST, &req->base, 0, &buf, &len);
	if (r < 0) {
		snprintf(c->last_error, sizeof(c->last_error),
			 "encoding the request: %s", strerror(-r));
		return r;
	}
	r = send_all(c->fd, buf, len, deadline, &sent);
	free(buf);
	if (r == -ETIMEDOUT && sent > 0)
		return broken(c, r,
			      "the server did not take the request in "
			      "time");
	if (r == -ETIMEDOUT) {
		snprintf(c->last_error, sizeof(c->last_error),
			 "the server did not take the request in time");
		return r;
	}
	if (r < 0) {
		/* The server may have said why before it closed: a refused
		 * connection gets a reply with id 0. */
		if ((r == -EPIPE || r == -ECONNRESET) &&
		    wait_reply(c, req->id, bh_now_ns(), resp) == 0)
			return 0;
		return broken(c, r == -ECONNRESET ? -EPIPE : r,
			      "sending the request: %s", strerror(-r));
	}
	return wait_reply(c, req->id, deadline, resp);
}

int bh_client_add_disk(struct bh_client *c,
		       const Bulkhead__Api__V1__DiskConfig *disk,
		       int timeout_ms, Bulkhead__Api__V1__Response **resp)
{
	Bulkhead__Api__V1__Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddDiskRequest a =
	    BULKHEAD__API__V1__ADD_DISK_REQUEST__INIT;

	a.disk = (Bulkhead__Api__V1__DiskConfig *)disk;
	req.op_case = BULKHEAD__API__V1__REQUEST__OP_ADD_DISK;
	req.add_disk = &a;
	return bh_client_call(c, &req, timeout_ms, resp);
}

int bh_client_add_net(struct bh_client *c,
		      const Bulkhead__Api__V1__NetConfig *net, int timeout_ms,
		      Bulkhead__Api__V1__Response **resp)
{
	Bulkhead__Api__V1__Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddNetRequest a =
	    BULKHEAD__API__V1__ADD_NET_REQUEST__INIT;

	a.net = (Bulkhead__Api__V1__NetConfig *)net;
	req.op_case = BULKHEAD__API__V1__REQUEST__OP_ADD_NET;
	req.add_net = &a;
	return bh_client_call(c, &req, timeout_ms, resp);
}

int bh_client_add_vsock(struct bh_client *c,
			const Bulkhead__Api__V1__VsockConfig *vsock,
			int timeout_ms, Bulkhead__Api__V1__Response **resp)
{
	Bulkhead__Api__V1__Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddVsockRequest a =
	    BULKHEAD__API__V1__ADD_VSOCK_REQUEST__INIT;

	a.vsock = (Bulkhead__Api__V1__VsockConfig *)vsock;
	req.op_case = BULKHEAD__API__V1__REQUEST__OP_ADD_VSOCK;
	req.add_vsock = &a;
	return bh_client_call(c, &req, timeout_ms, resp);
}

int bh_client_add_pmem(struct bh_client *c,
		       const Bulkhead__Api__V1__PmemConfig *pmem,
		       int timeout_ms, Bulkhead__Api__V1__Response **resp)
{
	Bulkhead__Api__V1__Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddPmemRequest a =
	    BULKHEAD__API__V1__ADD_PMEM_REQUEST__INIT;

	a.pmem = (Bulkhead__Api__V1__PmemConfig *)pmem;
	req.op_case = BULKHEAD__API__V1__REQUEST__OP_ADD_PMEM;
	req.add_pmem = &a;
	return bh_client_call(c, &req, timeout_ms, resp);
}

int bh_client_remove_device(struct bh_client *c, const char *id, int timeout_ms,
			    Bulkhead__Api__V1__Response **resp)
{
	Bulkhead__Api__V1__Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__RemoveDeviceRequest a =
	    BULKHEAD__API__V1__REMOVE_DEVICE_REQUEST__INIT;

	a.id = (char *)id;
	req.op_case = BULKHEAD__API__V1__REQUEST__OP_REMOVE_DEVICE;
	req.remove_device = &a;
	return bh_client_call(c, &req, timeout_ms, resp);
}

const Bulkhead__Api__V1__DeviceInfo *
bh_client_device_info(const Bulkhead__Api__V1__Response *resp)
{
	if (!resp || bh_client_error_code(resp) !=
			 BULKHEAD__API__V1__ERROR_CODE__ERROR_NONE)
		return NULL;
	switch (resp->result_case) {
	case BULKHEAD__API__V1__RESPONSE__RESULT_ADD_DISK:
		return resp->add_disk ? resp->add_disk->device : NULL;
	case BULKHEAD__API__V1__RESPONSE__RESULT_ADD_NET:
		return resp->add_net ? resp->add_net->device : NULL;
	case BULKHEAD__API__V1__RESPONSE__RESULT_ADD_VSOCK:
		return resp->add_vsock ? resp->add_vsock->device : NULL;
	case BULKHEAD__API__V1__RESPONSE__RESULT_ADD_PMEM:
		return resp->add_pmem ? resp->add_pmem->device : NULL;
	case BULKHEAD__API__V1__RESPONSE__RESULT_ADD_FS:
		return resp->add_fs ? resp->add_fs->device : NULL;
	case BULKHEAD__API__V1__RESPONSE__RESULT_ADD_DEVICE:
		return resp->add_device ? resp->add_device->device : NULL;
	default:
		return NULL;
	}
}

void bh_client_response_free(Bulkhead__Api__V1__Response *resp)
{
	if (resp)
		bulkhead__api__v1__response__free_unpacked(resp, NULL);
}

Bulkhead__Api__V1__ErrorCode
bh_client_error_code(const Bulkhead__Api__V1__Response *resp)
{
	if (!resp || !resp->error)
		return BULKHEAD__API__V1__ERROR_CODE__ERROR_NONE;
	return resp->error->code;
}

const char *bh_client_error_message(const Bulkhead__Api__V1__Response *resp)
{
	if (!resp || !resp->error || !resp->error->message)
		return "";
	return resp->error->message;
}

const char *bh_client_error_code_name(Bulkhead__Api__V1__ErrorCode code)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &bulkhead__api__v1__error_code__descriptor, (int)code);

	return v ? v->name : "UNKNOWN";
}
