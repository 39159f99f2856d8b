/* virtio-pci modern transport: what the driver programs through PCI config
 * space and BAR0, turned into ioeventfds, irqfds, MSI routes and a few
 * rare messages to the device's worker (through the controller). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/virtio.h>

#include "runner.h"
#include "virtio_pci.h"
#include <bulkhead/le.h>

/* BAR0 layout. */
#define R_COMMON    0x0000
#define R_ISR	    0x1000
#define R_DEVCFG    0x2000
#define R_NOTIFY    0x3000
#define R_MSIX	    0x4000
#define R_PBA	    0x5000
#define COMMON_LEN  0x38
#define NOTIFY_MULT 4

/* Capabilities in config space. */
#define CAP_COMMON 0x40
#define CAP_NOTIFY 0x50
#define CAP_ISR	   0x64
#define CAP_DEVCFG 0x74
#define CAP_MSIX   0x84

#define PCI_COMMAND_MEMORY 0x2
#define MSIX_ENABLE	   0x8000
#define MSIX_MASKALL	   0x4000

#define S_ACKNOWLEDGE 1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40

#define GSI_BASE 24

static uint32_t getn(const uint8_t *p, unsigned int len)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < len && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void vpci_cap(uint8_t *c, unsigned int at, unsigned int next,
		     uint8_t cfg_type, uint32_t off, uint32_t len,
		     unsigned int cap_len)
{
	c[at] = 0x09; /* vendor-specific */
	c[at + 1] = (uint8_t)next;
	c[at + 2] = (uint8_t)cap_len;
	c[at + 3] = cfg_type;
	c[at + 4] = 0; /* BAR0 */
	bh_put_le32(&c[at + 8], off);
	bh_put_le32(&c[at + 12], len);
}

static uint16_t pci_class(uint32_t type)
{
	switch (type) {
	case 1:
		return 0x0200; /* network */
	case 2:
		return 0x0180; /* mass storage */
	case 3:
		return 0x0780; /* communication */
	default:
		return 0x00ff;
	}
}

static void vpci_build_cfg(struct bh_vpci *d)
{
	uint8_t *c = d->pcicfg;

	memset(c, 0, sizeof(d->pcicfg));
	bh_put_le16(&c[0x00], 0x1af4);
	bh_put_le16(&c[0x02], (uint16_t)(0x1040 + d->type));
	bh_put_le16(&c[0x06], 0x0010); /* capabilities list */
	c[0x08] = 1;		       /* revision: modern */
	bh_put_le16(&c[0x0a], pci_class(d->type));
	bh_put_le16(&c[0x2c], 0x1af4);
	bh_put_le16(&c[0x2e], 0x0040);
	c[0x34] = CAP_COMMON;
	vpci_cap(c, CAP_COMMON, CAP_NOTIFY, 1, R_COMMON, COMMON_LEN, 16);
	vpci_cap(c, CAP_NOTIFY, CAP_ISR, 2, R_NOTIFY,
		 NOTIFY_MULT * BH_MAX_QUEUES, 20);
	bh_put_le32(&c[CAP_NOTIFY + 16], NOTIFY_MULT);
	vpci_cap(c, CAP_ISR, CAP_DEVCFG, 3, R_ISR, 4, 16);
	vpci_cap(c, CAP_DEVCFG, CAP_MSIX, 4, R_DEVCFG, BH_VIRTIO_CONFIG_MAX,
		 16);
	c[CAP_MSIX] = 0x11;
	c[CAP_MSIX + 1] = 0;
	bh_put_le32(&c[CAP_MSIX + 4], R_MSIX);
	bh_put_le32(&c[CAP_MSIX + 8], R_PBA);
}

static uint64_t bar_base(const struct bh_vpci *d)
{
	return ((uint64_t)d->bar_hi << 32) |
	       (d->bar_lo & ~(uint32_t)(BH_VPCI_BAR_SIZE - 1));
}

static unsigned int gsi_of(const struct bh_vpci *d, uint16_t vector)
{
	return d->gsi_base + vector;
}

static int ioeventfd(struct bh_vpci *d, uint64_t base, unsigned int q,
		     int deassign)
{
	struct kvm_ioeventfd io = {
		.addr = base + R_NOTIFY + NOTIFY_MULT * q,
		.len = 0, /* any width */
		.fd = d->q[q].kick_fd,
		.flags = deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0,
	};

	return ioctl(d->rn->vm, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

/* Keeps the kick ioeventfds where BAR0 is, or nowhere while decoding is
 * off. Called with the device lock held. */
static void vpci_update_notify(struct bh_vpci *d)
{
	uint64_t want = (d->command & PCI_COMMAND_MEMORY) ? bar_base(d) : 0;

	if (want == d->notify_base)
		return;
	for (unsigned int q = 0; q < d->nq; q++) {
		if (d->notify_base)
			ioeventfd(d, d->notify_base, q, 1);
		if (want && ioeventfd(d, want, q, 0) < 0)
			bh_log_ratelimited(BH_LOG_ERR,
					   "%s: cannot place queue %u's "
					   "notification at 0x%llx",
					   d->id, q, (unsigned long long)want);
	}
	d->notify_base = want;
}

static int irqfd(struct bh_vpci *d, unsigned int q, unsigned int gsi,
		 int deassign)
{
	struct kvm_irqfd f = {
		.fd = (uint32_t)d->q[q].call_fd,
		.gsi = gsi,
		.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0,
	};

	return ioctl(d->rn->vm, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

static void queue_irqfd_off(struct bh_vpci *d, unsigned int q)
{
	if (d->q[q].irqfd_gsi >= 0) {
		irqfd(d, q, (unsigned int)d->q[q].irqfd_gsi, 1);
		d->q[q].irqfd_gsi = -1;
	}
}

/* The queue's call eventfd raises its MSI-X vector directly in KVM. */
static void queue_irqfd_on(struct bh_vpci *d, unsigned int q)
{
	uint16_t v = d->q[q].vector; /* guest-controlled */

	queue_irqfd_off(d, q);
	if (v == BH_VPCI_NO_VECTOR || v >= d->nvec)
		return;
	if (irqfd(d, q, gsi_of(d, v), 0) < 0) {
		bh_log_ratelimited(BH_LOG_ERR, "%s: irqfd for queue %u: %s",
				   d->id, q, strerror(errno));
		return;
	}
	d->q[q].irqfd_gsi = (int)gsi_of(d, v);
}

int bh_vpci_update_routing(struct runner *rn)
{
	struct kvm_irq_routing *rt;
	unsigned int n = 0,
		     max = 24 + 16 + BH_MAX_DEVICES * BH_VPCI_MAX_VECTORS;
	int r = 0;

	rt = calloc(1, sizeof(*rt) + max * sizeof(rt->entries[0]));
	if (!rt)
		return -ENOMEM;
	pthread_mutex_lock(&rn->route_lock);
	/* KVM's default routes, which a new table replaces. */
	for (unsigned int gsi = 0; gsi < 24; gsi++) {
		rt->entries[n].gsi = gsi;
		rt->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		rt->entries[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		rt->entries[n].u.irqchip.pin = gsi;
		n++;
		if (gsi < 16) {
			rt->entries[n].gsi = gsi;
			rt->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			rt->entries[n].u.irqchip.irqchip =
			    gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
				    : KVM_IRQCHIP_PIC_SLAVE;
			rt->entries[n].u.irqchip.pin = gsi % 8;
			n++;
		}
	}
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		const struct bh_vpci *d =
		    __atomic_load_n(&rn->vdevs[i], __ATOMIC_ACQUIRE);

		if (!d)
			continue;
		/* Read without the device's lock: a torn entry is rewritten
		 * by the guest's next table write, which routes again. */
		if (!(d->msix_ctrl & MSIX_ENABLE))
			continue;
		for (unsigned int v = 0; v < d->nvec; v++) {
			const struct bh_vpci_msix *m = &d->msix[v];

			if (!m->addr_lo && !m->addr_hi)
				continue;
			rt->entries[n].gsi = gsi_of(d, (uint16_t)v);
			rt->entries[n].type = KVM_IRQ_ROUTING_MSI;
			rt->entries[n].u.msi.address_lo = m->addr_lo;
			rt->entries[n].u.msi.address_hi = m->addr_hi;
			rt->entries[n].u.msi.data = m->data;
			n++;
		}
	}
	rt->nr = n;
	if (ioctl(rn->vm, KVM_SET_GSI_ROUTING, rt) < 0) {
		r = -errno;
		bh_log_ratelimited(BH_LOG_ERR, "KVM_SET_GSI_ROUTING: %s",
				   strerror(errno));
	}
	pthread_mutex_unlock(&rn->route_lock);
	free(rt);
	return r;
}

/* Config-change interrupt. Called with the device lock held. */
static void vpci_config_irq(struct bh_vpci *d)
{
	const struct bh_vpci_msix *m;
	struct kvm_msi msi = { 0 };

	d->isr |= 2;
	if (!(d->msix_ctrl & MSIX_ENABLE) || d->msix_config >= d->nvec)
		return;
	m = &d->msix[d->msix_config];
	msi.address_lo = m->addr_lo;
	msi.address_hi = m->addr_hi;
	msi.data = m->data;
	if (ioctl(d->rn->vm, KVM_SIGNAL_MSI, &msi) < 0)
		bh_log_ratelimited(BH_LOG_WARN, "%s: KVM_SIGNAL_MSI: %s", d->id,
				   strerror(errno));
}

/* ---- PCI configuration space --------------------------------------- */

static uint32_t vpci_cfg_read(void *opaque, unsigned int reg, unsigned int size)
{
	struct bh_vpci *d = opaque;
	uint8_t b[4];

	pthread_mutex_lock(&d->lock);
	memcpy(b, &d->pcicfg[reg & ~3u], 4);
	switch (reg & ~3u) {
	case 0x04:
		bh_put_le16(b, d->command);
		break;
	case 0x10: /* BAR0: 64-bit memory; sizing reads back the mask */
		bh_put_le32(b, (d->bar_lo & ~(uint32_t)(BH_VPCI_BAR_SIZE - 1)) |
				   0x4);
		break;
	case 0x14:
		bh_put_le32(b, d->bar_hi);
		break;
	case CAP_MSIX:
		bh_put_le16(b + 2, (uint16_t)((d->nvec - 1) | d->msix_ctrl));
		break;
	}
	pthread_mutex_unlock(&d->lock);
	return getn(b + (reg & 3), size);
}

static void vpci_cfg_write(void *opaque, unsigned int reg, unsigned int size,
			   uint32_t val)
{
	struct bh_vpci *d = opaque;
	int reroute = 0;
	uint8_t b[4];

	pthread_mutex_lock(&d->lock);
	/* Merge the access into the dword it lands in. */
	bh_put_le32(b, 0);
	switch (reg & ~3u) {
	case 0x04:
		bh_put_le16(b, d->command);
		break;
	case 0x10:
		bh_put_le32(b, d->bar_lo);
		break;
	case 0x14:
		bh_put_le32(b, d->bar_hi);
		break;
	case CAP_MSIX:
		bh_put_le16(b + 2, d->msix_ctrl);
		break;
	default:
		pthread_mutex_unlock(&d->lock);
		return; /* everything else is read-only */
	}
	for (unsigned int i = 0; i < size; i++)
		b[(reg & 3) + i] = (uint8_t)(val >> (8 * i));
	switch (reg & ~3u) {
	case 0x04:
		d->command = (uint16_t)(getn(b, 2) & 0x0406);
		break;
	case 0x10:
		d->bar_lo = getn(b, 4);
		break;
	case 0x14:
		d->bar_hi = getn(b, 4);
		break;
	case CAP_MSIX:
		d->msix_ctrl =
		    (uint16_t)(getn(b + 2, 2) & (MSIX_ENABLE | MSIX_MASKALL));
		reroute = 1;
		break;
	}
	vpci_update_notify(d);
	pthread_mutex_unlock(&d->lock);
	if (reroute)
		bh_vpci_update_routing(d->rn);
}

static const struct bh_pci_fn_ops vpci_fn_ops = {
	.cfg_read = vpci_cfg_read,
	.cfg_write = vpci_cfg_write,
};

/* ---- BAR0 ----------------------------------------------------------- */

/*
 * A message for the controller, built under the device lock and sent once
 * it is released: a send may wait for the controller, and the main thread
 * needs the lock meanwhile to handle the controller's messages (reset done,
 * config updates). The sender holds out_lock from before it takes the lock
 * until the send is done, so that the device's messages keep their order.
 */
struct vpci_msg {
	uint16_t type; /* 0: nothing to send */
	Bh__VirtioDeviceRef ref;
	Bh__VirtioActivate act;
	Bh__VirtQueue qs[BH_MAX_QUEUES];
	Bh__VirtQueue *qp[BH_MAX_QUEUES];
	Bh__VirtioConfigWrite cw;
	uint8_t data[8];
};

static void vpci_msg_send(struct bh_vpci *d, struct vpci_msg *m)
{
	const ProtobufCMessage *body;

	switch (m->type) {
	case BH__MSG_TYPE__MSG_VIRTIO_RESET:
		body = &m->ref.base;
		break;
	case BH__MSG_TYPE__MSG_VIRTIO_ACTIVATE:
		body = &m->act.base;
		break;
	case BH__MSG_TYPE__MSG_VIRTIO_CONFIG_WRITE:
		body = &m->cw.base;
		break;
	default:
		return;
	}
	if (runner_send(d->rn, m->type, body) < 0)
		bh_log_ratelimited(BH_LOG_ERR,
				   "%s: cannot reach the controller", d->id);
}

static void vpci_activate(struct bh_vpci *d, struct vpci_msg *m)
{
	Bh__VirtioActivate *act = &m->act;
	Bh__VirtQueue *qs = m->qs, **qp = m->qp;

	bh__virtio_activate__init(act);
	for (unsigned int q = 0; q < d->nq; q++) {
		bh__virt_queue__init(&qs[q]);
		qs[q].index = q;
		qs[q].size = d->q[q].size;
		qs[q].desc = d->q[q].desc;
		qs[q].avail = d->q[q].avail;
		qs[q].used = d->q[q].used;
		qs[q].enabled = d->q[q].enable != 0;
		qp[q] = &qs[q];
		if (d->q[q].enable)
			queue_irqfd_on(d, q);
	}
	act->index = d->index;
	act->driver_features = d->drv_features;
	act->n_queues = d->nq;
	act->queues = qp;
	d->activated = 1;
	m->type = BH__MSG_TYPE__MSG_VIRTIO_ACTIVATE;
}

/* m may be NULL for a device that was never activated (at creation). */
static void vpci_reset(struct bh_vpci *d, struct vpci_msg *m)
{
	for (unsigned int q = 0; q < d->nq; q++) {
		queue_irqfd_off(d, q);
		d->q[q].size = d->max_qsize;
		d->q[q].vector = BH_VPCI_NO_VECTOR;
		d->q[q].enable = 0;
		d->q[q].desc = d->q[q].avail = d->q[q].used = 0;
	}
	d->drv_features = 0;
	d->dfsel = d->gfsel = 0;
	d->qsel = 0;
	d->msix_config = BH_VPCI_NO_VECTOR;
	d->isr = 0;
	d->needs_reset = 0;
	if (d->activated && m) {
		/* The worker must stop touching the old rings before the
		 * driver sees status 0 and reuses their memory. */
		d->activated = 0;
		d->reset_pending = 1;
		bh__virtio_device_ref__init(&m->ref);
		m->ref.index = d->index;
		m->type = BH__MSG_TYPE__MSG_VIRTIO_RESET;
	} else {
		d->status = 0;
	}
}

static void common_read(struct bh_vpci *d, unsigned int off, uint8_t *data,
			unsigned int len)
{
	uint8_t c[COMMON_LEN] = { 0 };
	const struct bh_vpci_queue *q = d->qsel < d->nq ? &d->q[d->qsel] : NULL;

	bh_put_le32(&c[0x00], d->dfsel);
	bh_put_le32(
	    &c[0x04],
	    d->dfsel < 2 ? (uint32_t)(d->dev_features >> (32 * d->dfsel)) : 0);
	bh_put_le32(&c[0x08], d->gfsel);
	bh_put_le32(
	    &c[0x0c],
	    d->gfsel < 2 ? (uint32_t)(d->drv_features >> (32 * d->gfsel)) : 0);
	bh_put_le16(&c[0x10], d->msix_config);
	bh_put_le16(&c[0x12], d->nq);
	c[0x14] = d->status | (d->needs_reset ? S_NEEDS_RESET : 0);
	c[0x15] = d->cfg_gen;
	bh_put_le16(&c[0x16], d->qsel);
	if (q) {
		bh_put_le16(&c[0x18], q->size);
		bh_put_le16(&c[0x1a], q->vector);
		bh_put_le16(&c[0x1c], q->enable);
		bh_put_le16(&c[0x1e],
			    d->qsel); /* notify offset, in multipliers */
		bh_put_le64(&c[0x20], q->desc);
		bh_put_le64(&c[0x28], q->avail);
		bh_put_le64(&c[0x30], q->used);
	}
	if (off < COMMON_LEN && off + len <= COMMON_LEN)
		memcpy(data, &c[off], len);
}

static void set_half(uint64_t *v, unsigned int off, unsigned int len,
		     uint64_t val)
{
	if (len == 8)
		*v = val;
	else if (off & 4)
		*v = (*v & 0xffffffffULL) | (val << 32);
	else
		*v = (*v & ~0xffffffffULL) | (val & 0xffffffffULL);
}

static void status_write(struct bh_vpci *d, uint8_t v, struct vpci_msg *m)
{
	if (v == 0) {
		vpci_reset(d, m);
		return;
	}
	if (d->reset_pending)
		return; /* the driver must wait for 0 first */
	if ((v & S_FEATURES_OK) && !(d->status & S_FEATURES_OK) &&
	    ((d->drv_features & ~d->dev_features) ||
	     !(d->drv_features & (1ULL << BH_VIRTIO_F_VERSION_1))))
		v &= (uint8_t)~S_FEATURES_OK; /* refused: the driver checks */
	if ((v & S_DRIVER_OK) && !(d->status & S_DRIVER_OK) &&
	    (v & S_FEATURES_OK)) {
		d->status = v;
		vpci_activate(d, m);
		return;
	}
	d->status = v;
}

static void common_write(struct bh_vpci *d, unsigned int off, unsigned int len,
			 uint64_t val, struct vpci_msg *m)
{
	struct bh_vpci_queue *q = d->qsel < d->nq ? &d->q[d->qsel] : NULL;
	/* Queue registers only take effect before the driver goes live. */
	int live = (d->status & S_DRIVER_OK) != 0;

	switch (off) {
	case 0x00:
		d->dfsel = (uint32_t)val;
		break;
	case 0x08:
		d->gfsel = (uint32_t)val;
		break;
	case 0x0c:
		if (!(d->status & S_FEATURES_OK) && d->gfsel < 2)
			set_half(&d->drv_features, d->gfsel ? 4 : 0, 4, val);
		break;
	case 0x10:
		d->msix_config = (uint16_t)val;
		break;
	case 0x14:
		status_write(d, (uint8_t)val, m);
		break;
	case 0x16:
		d->qsel = (uint16_t)val;
		break;
	case 0x18:
		if (q && !live)
			q->size = (uint16_t)val;
		break;
	case 0x1a:
		if (q) {
			q->vector = (uint16_t)val;
			if (live && q->enable)
				queue_irqfd_on(d, d->qsel);
		}
		break;
	case 0x1c:
		if (q && !live)
			q->enable = val & 1;
		break;
	case 0x20:
	case 0x24:
		if (q && !live)
			set_half(&q->desc, off, len, val);
		break;
	case 0x28:
	case 0x2c:
		if (q && !live)
			set_half(&q->avail, off, len, val);
		break;
	case 0x30:
	case 0x34:
		if (q && !live)
			set_half(&q->used, off, len, val);
		break;
	default:
		break; /* read-only or not a register */
	}
}

void bh_vpci_mmio(struct bh_vpci *d, uint64_t off, uint8_t *data,
		  unsigned int len, int is_write)
{
	/* Writes to the common and device config regions may send. */
	int may_send =
	    is_write && (off < R_ISR || (off >= R_DEVCFG && off < R_NOTIFY));
	struct vpci_msg msg;
	uint64_t val = 0;
	int reroute = 0;

	if (len > 8)
		return;
	for (unsigned int i = 0; is_write && i < len; i++)
		val |= (uint64_t)data[i] << (8 * i);
	if (!is_write)
		memset(data, 0, len);
	msg.type = 0;
	if (may_send)
		pthread_mutex_lock(&d->out_lock);
	pthread_mutex_lock(&d->lock);
	if (off < R_ISR) {
		if (is_write)
			common_write(d, (unsigned int)off, len, val, &msg);
		else
			common_read(d, (unsigned int)off, data, len);
	} else if (off < R_DEVCFG) {
		if (!is_write && off == R_ISR) {
			data[0] = d->isr; /* reading acknowledges */
			d->isr = 0;
		}
	} else if (off < R_NOTIFY) {
		uint64_t c = off - R_DEVCFG;

		if (c + len <= d->config_len) {
			if (!is_write) {
				memcpy(data, &d->config[c], len);
			} else {
				bh__virtio_config_write__init(&msg.cw);
				memcpy(msg.data, data, len);
				msg.cw.index = d->index;
				msg.cw.offset = (uint32_t)c;
				msg.cw.data.data = msg.data;
				msg.cw.data.len = len;
				msg.type =
				    BH__MSG_TYPE__MSG_VIRTIO_CONFIG_WRITE;
			}
		}
	} else if (off < R_MSIX) {
		/* A notify that missed the ioeventfd (odd width, or before
		 * decoding was on): pass it on by hand. */
		uint64_t q = (off - R_NOTIFY) / NOTIFY_MULT;
		uint64_t one = 1;

		if (is_write && q < d->nq &&
		    write(d->q[q].kick_fd, &one, sizeof(one)) < 0)
			bh_log_ratelimited(BH_LOG_WARN, "%s: kick lost", d->id);
	} else if (off < R_PBA) {
		uint64_t e = (off - R_MSIX) / 16, f = (off - R_MSIX) % 16;

		if (e < d->nvec && (f % 4) == 0 && (len == 4 || len == 8)) {
			uint32_t *w = &d->msix[e].addr_lo + f / 4;

			if (is_write) {
				w[0] = (uint32_t)val;
				if (len == 8 && f < 12)
					w[1] = (uint32_t)(val >> 32);
				reroute = 1;
			} else {
				bh_put_le32(data, w[0]);
				if (len == 8 && f < 12)
					bh_put_le32(data + 4, w[1]);
			}
		}
	}
	/* PBA: nothing is ever pending (interrupts are not held back). */
	pthread_mutex_unlock(&d->lock);
	if (may_send) {
		vpci_msg_send(d, &msg);
		pthread_mutex_unlock(&d->out_lock);
	}
	if (reroute)
		bh_vpci_update_routing(d->rn);
}

int bh_vpci_claims(struct bh_vpci *d, uint64_t gpa, uint64_t *off)
{
	uint64_t base;

	if (!(__atomic_load_n(&d->command, __ATOMIC_RELAXED) &
	      PCI_COMMAND_MEMORY))
		return 0;
	base = bar_base(d);
	if (gpa < base || gpa - base >= BH_VPCI_BAR_SIZE)
		return 0;
	*off = gpa - base;
	return 1;
}

void bh_vpci_reset_done(struct bh_vpci *d)
{
	pthread_mutex_lock(&d->lock);
	d->reset_pending = 0;
	d->status = 0;
	pthread_mutex_unlock(&d->lock);
}

void bh_vpci_config_update(struct bh_vpci *d, const uint8_t *config, size_t len,
			   int notify)
{
	pthread_mutex_lock(&d->lock);
	if (len > BH_VIRTIO_CONFIG_MAX)
		len = BH_VIRTIO_CONFIG_MAX;
	if (len) /* config may be NULL when len is 0 */
		memcpy(d->config, config, len);
	d->config_len = (uint32_t)len;
	d->cfg_gen++;
	if (notify)
		vpci_config_irq(d);
	pthread_mutex_unlock(&d->lock);
}

void bh_vpci_needs_reset(struct bh_vpci *d, const char *reason)
{
	pthread_mutex_lock(&d->lock);
	bh_log_ratelimited(BH_LOG_WARN, "%s: device needs reset: %s", d->id,
			   reason && reason[0] ? reason : "worker failed");
	d->needs_reset = 1;
	vpci_config_irq(d);
	pthread_mutex_unlock(&d->lock);
}

int bh_vpci_create(struct runner *rn, uint32_t index, uint32_t type,
		   uint32_t slot, uint64_t features, unsigned int nq,
		   unsigned int max_qsize, const uint8_t *config,
		   size_t config_len, const char *id, const int *fds,
		   struct bh_vpci **out)
{
	struct bh_vpci *d;
	int r;

	if (!nq || nq > BH_MAX_QUEUES || config_len > BH_VIRTIO_CONFIG_MAX ||
	    !max_qsize || max_qsize > BH_MAX_QUEUE_SIZE ||
	    index >= BH_MAX_DEVICES || rn->vdevs[index]) {
		for (unsigned int i = 0; i < 2 * nq && i < 2 * BH_MAX_QUEUES;
		     i++)
			close(fds[i]);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		abort();
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->out_lock, NULL);
	d->rn = rn;
	d->index = index;
	d->type = type;
	d->slot = slot;
	snprintf(d->id, sizeof(d->id), "%s", id && id[0] ? id : "virtio");
	d->dev_features = features;
	d->nq = (uint16_t)nq;
	d->max_qsize =
	    (uint16_t)(max_qsize > BH_MAX_QUEUE_SIZE ? BH_MAX_QUEUE_SIZE
						     : max_qsize);
	if (config_len) /* NULL for a device without config space */
		memcpy(d->config, config, config_len);
	d->config_len = (uint32_t)config_len;
	d->nvec = nq + 1;
	/* GSIs by index and the BAR by slot: each a fixed window, so what a
	 * removed device held is free again without any bookkeeping. */
	d->gsi_base = GSI_BASE + index * BH_VPCI_MAX_VECTORS;
	for (unsigned int q = 0; q < nq; q++) {
		d->q[q].kick_fd = fds[q];
		d->q[q].call_fd = fds[nq + q];
		d->q[q].irqfd_gsi = -1;
	}
	vpci_reset(d, NULL);
	/* Firmware-style BAR placement, in the 32-bit window; Linux keeps
	 * it. */
	d->bar_lo = (uint32_t)(BH_PCI_MMIO32_START +
			       (uint64_t)slot * BH_VPCI_BAR_SIZE * 2);
	d->bar_hi = 0;
	vpci_build_cfg(d);
	r = bh_pci_register(&rn->pci, slot, &vpci_fn_ops, d);
	if (r < 0) {
		for (unsigned int q = 0; q < nq; q++) {
			close(d->q[q].kick_fd);
			close(d->q[q].call_fd);
		}
		free(d);
		return r;
	}
	/* Published last, complete: vCPU threads may find it from here on. */
	__atomic_store_n(&rn->vdevs[index], d, __ATOMIC_RELEASE);
	*out = d;
	return 0;
}

void bh_vpci_unpublish(struct bh_vpci *d)
{
	struct runner *rn = d->rn;

	bh_pci_unregister(&rn->pci, d->slot);
	__atomic_store_n(&rn->vdevs[d->index], NULL, __ATOMIC_SEQ_CST);
}

void bh_vpci_destroy(struct bh_vpci *d)
{
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->nq; q++) {
		queue_irqfd_off(d, q);
		/* KVM holds its own reference to an ioeventfd's eventfd until
		 * it is deassigned: closing the fd alone would leave the
		 * notify address signalling a file nobody reads. */
		if (d->notify_base && ioeventfd(d, d->notify_base, q, 1) < 0)
			bh_warn("%s: cannot remove queue %u's notification: %s",
				d->id, q, strerror(errno));
		close(d->q[q].kick_fd);
		close(d->q[q].call_fd);
		d->q[q].kick_fd = d->q[q].call_fd = -1;
	}
	d->notify_base = 0;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->out_lock);
	free(d);
}

/* ---- saved state ---------------------------------------------------- */

void bh_vpci_save(struct bh_vpci *d, Bh__VirtioPciState *s,
		  struct bh_vpci_state_buf *buf)
{
	bh__virtio_pci_state__init(s);
	pthread_mutex_lock(&d->lock);
	s->slot = d->slot;
	s->device_type = d->type;
	s->device_features = d->dev_features;
	s->driver_features = d->drv_features;
	s->dfsel = d->dfsel;
	s->gfsel = d->gfsel;
	s->qsel = d->qsel;
	s->msix_config = d->msix_config;
	/* A reset under way ends in status 0 with the device idle: the
	 * restored one starts there. */
	s->status = d->reset_pending ? 0 : d->status;
	s->activated = d->activated && !d->reset_pending;
	s->config_generation = d->cfg_gen;
	s->isr = d->isr;
	s->needs_reset = d->needs_reset != 0;
	for (unsigned int q = 0; q < d->nq; q++) {
		Bh__VirtioPciQueueState *qs = &buf->q[q];

		bh__virtio_pci_queue_state__init(qs);
		qs->size = d->q[q].size;
		qs->vector = d->q[q].vector;
		qs->enable = d->q[q].enable != 0;
		qs->desc = d->q[q].desc;
		qs->avail = d->q[q].avail;
		qs->used = d->q[q].used;
		buf->qp[q] = qs;
	}
	s->n_queues = d->nq;
	s->queues = buf->qp;
	s->bar_lo = d->bar_lo;
	s->bar_hi = d->bar_hi;
	s->command = d->command;
	s->msix_control = d->msix_ctrl;
	for (unsigned int v = 0; v < d->nvec; v++) {
		Bh__MsixEntryState *m = &buf->m[v];

		bh__msix_entry_state__init(m);
		m->addr_lo = d->msix[v].addr_lo;
		m->addr_hi = d->msix[v].addr_hi;
		m->data = d->msix[v].data;
		m->ctrl = d->msix[v].ctrl;
		buf->mp[v] = m;
	}
	s->n_msix = d->nvec;
	s->msix = buf->mp;
	pthread_mutex_unlock(&d->lock);
}

/* What the saved state may hold: the device it was saved from, and values
 * the guest could have written (the writes' masks). */
static bool vpci_state_fits(const struct bh_vpci *d,
			    const Bh__VirtioPciState *s)
{
	if (s->slot != d->slot || s->device_type != d->type ||
	    s->device_features != d->dev_features || s->n_queues != d->nq ||
	    s->n_msix != d->nvec || !s->queues || !s->msix)
		return false;
	/* Features the driver acks are a subset of the device's. */
	if (s->driver_features & ~d->dev_features)
		return false;
	if (s->qsel > 0xffff || s->msix_config > 0xffff || s->status > 0xff ||
	    s->config_generation > 0xff || s->isr > 0xff ||
	    (s->command & ~(uint32_t)0x0406) ||
	    (s->msix_control & ~(uint32_t)(MSIX_ENABLE | MSIX_MASKALL)))
		return false;
	for (unsigned int q = 0; q < d->nq; q++) {
		const Bh__VirtioPciQueueState *qs = s->queues[q];

		if (!qs || qs->size > d->max_qsize || qs->vector > 0xffff)
			return false;
	}
	for (unsigned int v = 0; v < d->nvec; v++)
		if (!s->msix[v])
			return false;
	return true;
}

int bh_vpci_restore(struct bh_vpci *d, const Bh__VirtioPciState *s)
{
	if (!vpci_state_fits(d, s))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->nq; q++)
		queue_irqfd_off(d, q);
	d->drv_features = s->driver_features;
	d->dfsel = s->dfsel;
	d->gfsel = s->gfsel;
	d->qsel = (uint16_t)s->qsel;
	d->msix_config = (uint16_t)s->msix_config;
	d->status = (uint8_t)s->status;
	d->cfg_gen = (uint8_t)s->config_generation;
	d->isr = (uint8_t)s->isr;
	d->activated = s->activated;
	d->reset_pending = 0;
	d->needs_reset = s->needs_reset;
	for (unsigned int q = 0; q < d->nq; q++) {
		const Bh__VirtioPciQueueState *qs = s->queues[q];

		d->q[q].size = (uint16_t)qs->size;
		d->q[q].vector = (uint16_t)qs->vector;
		d->q[q].enable = qs->enable;
		d->q[q].desc = qs->desc;
		d->q[q].avail = qs->avail;
		d->q[q].used = qs->used;
	}
	d->bar_lo = s->bar_lo;
	d->bar_hi = s->bar_hi;
	d->command = (uint16_t)s->command;
	d->msix_ctrl = (uint16_t)s->msix_control;
	for (unsigned int v = 0; v < d->nvec; v++) {
		d->msix[v].addr_lo = s->msix[v]->addr_lo;
		d->msix[v].addr_hi = s->msix[v]->addr_hi;
		d->msix[v].data = s->msix[v]->data;
		d->msix[v].ctrl = s->msix[v]->ctrl;
	}
	vpci_update_notify(d);
	if (d->activated)
		for (unsigned int q = 0; q < d->nq; q++)
			if (d->q[q].enable)
				queue_irqfd_on(d, q);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void bh_vpci_announce(struct bh_vpci *d)
{
	struct vpci_msg m = { .type = 0 };

	pthread_mutex_lock(&d->out_lock);
	pthread_mutex_lock(&d->lock);
	if (d->activated)
		vpci_activate(d, &m);
	pthread_mutex_unlock(&d->lock);
	vpci_msg_send(d, &m);
	pthread_mutex_unlock(&d->out_lock);
}
