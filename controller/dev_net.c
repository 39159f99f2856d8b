/* virtio-net in the controller: the TAP queues of each --net opened and
 * configured before anything starts (controller/tap.c), and the MAC the
 * guest sees. */
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "devtype.h"
#include "tap.h"

struct net {
	const struct bh_net_config *net; /* borrowed from the config */
	uint8_t mac[6];			 /* given or made up */
	Bh__NetSetup setup;
};

static unsigned int net_count(const struct bh_config *cfg)
{
	return cfg->nnets;
}

static const char *net_id(const struct bh_config *cfg, unsigned int i)
{
	return cfg->nets[i].id;
}

/* The TAP queues; the MAC the guest sees, made up (locally administered,
 * unicast) when none was given, and kept for the VM's life. */
static int net_open(struct bh_dev *v, const struct bh_config *cfg,
		    unsigned int i, char *err, size_t errlen)
{
	struct net *p = bh_dev_priv(v);
	int fds[BH_CONFIG_MAX_NET_PAIRS], r;
	unsigned int pairs;

	p->net = &cfg->nets[i];
	pairs = bh_tap_pairs(p->net);
	if (p->net->mac_set) {
		memcpy(p->mac, p->net->mac, sizeof(p->mac));
	} else {
		if (getrandom(p->mac, sizeof(p->mac), 0) != sizeof(p->mac))
			return bh_errf(err, errlen,
				       "--net: no random bytes for a MAC");
		p->mac[0] = (uint8_t)((p->mac[0] & 0xfe) | 0x02);
	}
	r = bh_tap_open(p->net, fds, err, errlen);
	if (r < 0)
		return r;
	/* Every fd is taken, so that none is left open on failure. */
	for (unsigned int q = 0; q < pairs; q++) {
		int rq = bh_dev_add_backend(v, fds[q]);

		if (r == 0)
			r = rq;
	}
	return r;
}

/* rx and tx per pair, and the control queue */
static unsigned int net_num_queues(const struct bh_dev *v)
{
	const struct net *p = bh_dev_priv(v);

	return 2 * bh_tap_pairs(p->net) + 1;
}

static void net_setup(struct bh_dev *v, const struct bh_config *cfg,
		      Bh__WorkerSetup *s)
{
	struct net *p = bh_dev_priv(v);

	bh__net_setup__init(&p->setup);
	p->setup.mac.data = p->mac;
	p->setup.mac.len = sizeof(p->mac);
	p->setup.mtu = p->net->mtu;
	p->setup.queue_pairs = bh_tap_pairs(p->net);
	p->setup.queue_size = p->net->queue_size;
	s->net = &p->setup;
}

const struct bh_dev_type bh_dev_net = {
	.name = "net",
	.api_type = "virtio-net",
	.virtio_id = BH_VIRTIO_ID_NET,
	.backend = BH__WORKER_SETUP__BACKEND_NET,
	.launch = BH_LAUNCH_NET,
	.priv_size = sizeof(struct net),
	.count = net_count,
	.id = net_id,
	.open = net_open,
	.num_queues = net_num_queues,
	.setup = net_setup,
};
