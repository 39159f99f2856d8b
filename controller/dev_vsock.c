/* virtio-vsock in the controller: the broker of the device's host sockets
 * (controller/vsock.c), opened before anything starts, accepting while a
 * boot runs; the worker's connections go through it, since the worker has
 * no socket call. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "devtype.h"
#include "vsock.h"

struct vsock {
	const struct bh_vsock_config *vsock; /* borrowed from the config */
	/* listens on socket=, connects to socket=_PORT (owned) */
	struct bh_vsock_broker *broker;
	Bh__VsockSetup setup;
};

static unsigned int vsock_count(const struct bh_config *cfg)
{
	return cfg->vsock ? 1 : 0;
}

static const char *vsock_id(const struct bh_config *cfg, unsigned int i)
{
	return cfg->vsock->id;
}

static int vsock_open(struct bh_dev *v, const struct bh_config *cfg,
		      unsigned int i, char *err, size_t errlen)
{
	struct vsock *p = bh_dev_priv(v);

	p->vsock = cfg->vsock;
	return bh_vsock_broker_open(cfg->vsock->socket, &p->broker, err,
				    errlen);
}

static void vsock_setup(struct bh_dev *v, const struct bh_config *cfg,
			Bh__WorkerSetup *s)
{
	struct vsock *p = bh_dev_priv(v);

	bh__vsock_setup__init(&p->setup);
	p->setup.cid = p->vsock->cid;
	p->setup.max_connections = BH_CONFIG_VSOCK_MAX_CONNS;
	s->vsock = &p->setup;
}

/* A host process connected to the vsock device's socket: the connection
 * goes to the worker, which reads its CONNECT line. Without a worker to take
 * it, it is closed (the peer sees EOF). */
static void on_vsock_conn(void *arg, int fd)
{
	struct bh_dev *v = arg;
	Bh__VsockHostConn msg = BH__VSOCK_HOST_CONN__INIT;

	bh_dev_worker_send(v, BH__MSG_TYPE__MSG_VSOCK_HOST_CONN, &msg.base, &fd,
			   1);
	close(fd);
}

static int vsock_start(struct bh_dev *v, struct event_base *base)
{
	struct vsock *p = bh_dev_priv(v);
	int r;

	r = bh_vsock_broker_start(p->broker, base, on_vsock_conn, v);
	if (r < 0)
		bh_err("device %s: cannot accept on its socket: %s",
		       bh_dev_id(v), strerror(-r));
	return r;
}

static void vsock_stop(struct bh_dev *v)
{
	struct vsock *p = bh_dev_priv(v);

	if (p->broker)
		bh_vsock_broker_stop(p->broker);
}

static void vsock_close(struct bh_dev *v)
{
	struct vsock *p = bh_dev_priv(v);

	bh_vsock_broker_close(p->broker);
	p->broker = NULL;
}

/* The vsock worker asks for a connection to <socket>_<port>: the controller
 * connects for it (the worker has no socket call) and hands the fd over, or
 * says why not. The port is the guest's choice; the path is ours. */
static int h_w_vsock_connect(void *ctx, const ProtobufCMessage *m,
			     struct bh_frame *f)
{
	const Bh__VsockConnect *c = (const Bh__VsockConnect *)m;
	Bh__VsockConnected out = BH__VSOCK_CONNECTED__INIT;
	struct bh_dev *v = ctx;
	struct vsock *p = bh_dev_priv(v);
	int fd = -1, r;

	if (!p->broker)
		return -EPROTO;
	r = bh_vsock_broker_connect(p->broker, c->port, &fd);
	out.token = c->token;
	out.error = r < 0 ? -r : 0;
	bh_dev_worker_send(v, BH__MSG_TYPE__MSG_VSOCK_CONNECTED, &out.base,
			   fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
	bh_closep(&fd);
	return 0;
}

static const struct bh_handler vsock_msgs[] = {
	{ BH__MSG_TYPE__MSG_VSOCK_CONNECT, BH_STATE(WK_READY), 0,
	  &bh__vsock_connect__descriptor, h_w_vsock_connect, "vsock-connect" },
};

const struct bh_dev_type bh_dev_vsock = {
	.name = "vsock",
	.api_type = "virtio-vsock",
	.virtio_id = BH_VIRTIO_ID_VSOCK,
	.backend = BH__WORKER_SETUP__BACKEND_VSOCK,
	.launch = BH_LAUNCH_VSOCK,
	.priv_size = sizeof(struct vsock),
	.count = vsock_count,
	.id = vsock_id,
	.open = vsock_open,
	.setup = vsock_setup,
	.start = vsock_start,
	.stop = vsock_stop,
	.close = vsock_close,
	.msgs = vsock_msgs,
	.nmsgs = BH_ARRAY_SIZE(vsock_msgs),
};
