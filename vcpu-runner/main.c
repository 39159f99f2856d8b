/* bulkhead-vcpu: the vCPU runner. The only process that holds /dev/kvm; it
 * builds the VM from the controller's description, sandboxes itself, runs
 * the vCPUs and reports guest events. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/hello.h>
#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "dirty.h"
#include "probe.h"
#include "runner.h"
#include "snapshot.h"

/* Partial serial lines (a shell prompt) go out after this long. */
#define SERIAL_FLUSH_MS 20

int runner_send(struct runner *rn, uint16_t type, const ProtobufCMessage *msg)
{
	int r;

	pthread_mutex_lock(&rn->send_lock);
	r = bh_frame_send(rn->ctl, type, msg, NULL, 0);
	pthread_mutex_unlock(&rn->send_lock);
	return r;
}

static int h_setup(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__RunnerSetup *s = (const Bh__RunnerSetup *)m;
	Bh__RunnerReady ready = BH__RUNNER_READY__INIT;
	struct runner *rn = ctx;
	char info[128];
	int memfd, r;

	if (s->vcpus < 1 || s->vcpus > BH_MAX_VCPUS || !s->boot_vcpu) {
		bh_err("setup: %u vCPUs or no boot state", s->vcpus);
		return -EINVAL;
	}
	memfd = bh_frame_take_fd(f, 0);
	r = runner_kvm_open(rn);
	if (r == 0)
		r = runner_kvm_map_memory(rn, memfd, s->memfd_size, s->regions,
					  s->n_regions);
	/* The mapping keeps guest RAM; the fd itself is no longer needed. */
	bh_closep(&memfd);
	if (r == 0)
		r = runner_msr_list(rn);
	if (r == 0)
		r = runner_platform_init(rn, s->serial);
	if (r == 0)
		r = runner_vcpus_create(rn, s->vcpus, s->boot_vcpu);
	if (r == 0)
		r = runner_vcpus_start_threads(rn);
	if (r < 0)
		return r;
	/* The VM and its vCPUs exist: /dev/kvm itself and the probe's VM are
	 * no longer needed. */
	bh_closep(&rn->kvm);
	runner_probe_release(rn);

	/* The VM exists: from here on the runner needs no privilege and no
	 * new file, so it gives them all up before any guest code runs. */
	r = bh_sandbox_drop_caps();
	if (r == 0)
		r = bh_sandbox_no_new_privs();
	/* Room for every device's eventfds (RUNNER_ADD_DEVICE comes later)
	 * and one frame's worth more. */
	if (r == 0)
		r = bh_sandbox_limits(BH_MAX_DEVICES * 2 * BH_MAX_QUEUES +
				      BH_FRAME_MAX_FDS);
	if (r == 0)
		r = runner_seccomp_install();
	if (r < 0) {
		bh_err("cannot enter the sandbox: %s", strerror(-r));
		return r;
	}

	snprintf(info, sizeof(info), "KVM API %d, %s, %u vCPUs",
		 KVM_API_VERSION, rn->vendor, rn->nvcpus);
	ready.vcpus = rn->nvcpus;
	ready.kvm_info = info;
	r = runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_READY, &ready.base);
	if (r == 0)
		rn->state = RS_READY;
	return r;
}

/* MSG_RUNNER_PROBE: what /dev/kvm offers and how fast guest code runs on
 * it, for the controller to judge before it sends RUNNER_SETUP. */
static int h_probe(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__RunnerProbe *q = (const Bh__RunnerProbe *)m;
	Bh__RunnerProbeResult res = BH__RUNNER_PROBE_RESULT__INIT;
	struct runner *rn = ctx;
	struct runner_probe *p;
	int32_t caps[BH_PROBE_MAX_CAPS];
	int r;

	(void)f;
	if (q->n_capabilities > BH_PROBE_MAX_CAPS) {
		bh_err("probe: %zu capabilities asked, at most %d",
		       q->n_capabilities, BH_PROBE_MAX_CAPS);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = runner_kvm_probe(rn, q->capabilities, q->n_capabilities, p);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < p->ncaps; i++)
		caps[i] = p->caps[i];
	res.open_errno = p->open_errno;
	res.api_version = p->api_version;
	res.cpu_vendor = p->vendor;
	res.n_capabilities = p->ncaps;
	res.capabilities = caps;
	res.probe_ran = p->ran;
	res.probe_error = p->error;
	res.probe_planned = p->planned;
	res.probe_done = p->done;
	res.probe_ns = p->ns;
	res.probe_deadline_ns = p->deadline_ns;
	res.probe_best_done = p->best_done;
	res.probe_best_ns = p->best_ns;
	r = runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_PROBE_RESULT, &res.base);
out:
	free(p);
	return r;
}

/* A request the runner refuses without ending: the controller hears why. */
static int refuse(struct runner *rn, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct runner *rn, int err, const char *fmt, ...)
{
	Bh__Error e = BH__ERROR__INIT;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bh_warn("%s", msg);
	e.code = -err;
	e.message = msg;
	return runner_send(rn, BH__MSG_TYPE__MSG_ERROR, &e.base);
}

/* The answer to a hot add: err 0 (in, the guest told) or -errno with why. */
static int hot_added(struct runner *rn, const Bh__VirtioDevice *dv, int err,
		     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int hot_added(struct runner *rn, const Bh__VirtioDevice *dv, int err,
		     const char *fmt, ...)
{
	Bh__RunnerDeviceAdded a = BH__RUNNER_DEVICE_ADDED__INIT;
	char msg[160] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		bh_warn("%s", msg);
	}
	a.index = dv->index;
	a.pci_slot = dv->pci_slot;
	a.error = -err;
	a.message = msg;
	return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_DEVICE_ADDED, &a.base);
}

/*
 * Before RUNNER_START the devices of the configuration; after it a hotplug:
 * the device is published, then the guest is told, and RUNNER_DEVICE_ADDED
 * answers. A hotplug the runner cannot do (slot or index in use, KVM
 * refusing) is answered with the error and the VM runs on; a malformed
 * description ends the runner as always.
 */
static int h_add_device(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__RunnerAddDevice *a = (const Bh__RunnerAddDevice *)m;
	const Bh__VirtioDevice *dv = a->device;
	struct runner *rn = ctx;
	int fds[2 * BH_MAX_QUEUES];
	int hot = rn->state != RS_READY;
	struct bh_vpci *d;
	int r;

	if (!dv || !dv->num_queues || dv->num_queues > BH_MAX_QUEUES ||
	    f->nfds != 2 * dv->num_queues + (dv->shm ? 1 : 0) ||
	    dv->pci_slot == 0 || dv->pci_slot >= BH_PCI_SLOTS ||
	    dv->index >= BH_MAX_DEVICES) {
		bh_err("add-device: bad description (%u fds)", f->nfds);
		return -EINVAL;
	}
	/* The memory first: the device must not be published without it.
	 * (An index in use is refused by bh_vpci_create below.) */
	if (dv->shm && !rn->vdevs[dv->index]) {
		r = runner_devmem_add(rn, dv->index, dv->shm,
				      bh_frame_take_fd(f, 2 * dv->num_queues));
		if (r < 0 && hot)
			return hot_added(rn, dv, r,
					 "add-device %s: its memory: %s",
					 dv->id, strerror(-r));
		if (r < 0)
			return r;
	}
	for (unsigned int i = 0; i < 2 * dv->num_queues; i++)
		fds[i] = bh_frame_take_fd(f, i);
	r = bh_vpci_create(rn, dv->index, dv->device_type, dv->pci_slot,
			   dv->device_features, dv->num_queues,
			   dv->max_queue_size, dv->config.data, dv->config.len,
			   dv->id, fds, &d);
	if (r < 0 && dv->shm && !rn->vdevs[dv->index])
		runner_devmem_remove(rn, dv->index);
	if (r < 0 && hot)
		return hot_added(rn, dv, r,
				 "add-device %s (index %u, slot %u): %s",
				 dv->id, dv->index, dv->pci_slot, strerror(-r));
	if (r < 0) {
		bh_err("add-device %s: %s", dv->id, strerror(-r));
		return r;
	}
	rn->removed &= ~(1u << dv->index);
	bh_debug("virtio device %s (type %u) at 00:%02x.0", dv->id,
		 dv->device_type, dv->pci_slot);
	if (hot) {
		bh_info("hotplug: %s at 00:%02x.0", dv->id, dv->pci_slot);
		bh_hotplug_add(&rn->hotplug, dv->pci_slot);
		return hot_added(rn, dv, 0, NULL);
	}
	return 0;
}

/*
 * Before RUNNER_START no guest knows the device: it goes at once. After
 * it, the guest is asked, and the device goes when the guest ejects it
 * (runner_hotplug_reap); asking again asks the guest again.
 */
static int h_remove_device(void *ctx, const ProtobufCMessage *m,
			   struct bh_frame *f)
{
	const Bh__RunnerRemoveDevice *q = (const Bh__RunnerRemoveDevice *)m;
	struct runner *rn = ctx;
	struct bh_vpci *d;

	(void)f;
	d = q->index < BH_MAX_DEVICES ? rn->vdevs[q->index] : NULL;
	if (!d)
		return refuse(rn, -ENOENT, "remove-device: no device %u",
			      q->index);
	if (rn->state == RS_READY)
		return runner_device_remove(rn, q->index);
	bh_info("hotplug: asking the guest to eject %s at 00:%02x.0", d->id,
		d->slot);
	return bh_hotplug_remove(&rn->hotplug, d->slot);
}

/*
 * The device a message names, or NULL. A message may cross the device's
 * removal on the socket; one for a device removed is dropped (ret 0), one
 * for an index never used is the controller's error (-EINVAL).
 */
static struct bh_vpci *vdev(struct runner *rn, uint32_t index, int *ret)
{
	struct bh_vpci *d = index < BH_MAX_DEVICES ? rn->vdevs[index] : NULL;

	*ret = 0;
	if (!d && !(index < BH_MAX_DEVICES && (rn->removed & (1u << index))))
		*ret = -EINVAL;
	else if (!d)
		bh_debug("message for removed device %u dropped", index);
	return d;
}

static int h_reset_done(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__VirtioDeviceRef *ref = (const Bh__VirtioDeviceRef *)m;
	int r;
	struct bh_vpci *d = vdev(ctx, ref->index, &r);

	if (!d)
		return r;
	bh_vpci_reset_done(d);
	return 0;
}

static int h_needs_reset(void *ctx, const ProtobufCMessage *m,
			 struct bh_frame *f)
{
	const Bh__VirtioDeviceRef *ref = (const Bh__VirtioDeviceRef *)m;
	int r;
	struct bh_vpci *d = vdev(ctx, ref->index, &r);

	if (!d)
		return r;
	bh_vpci_needs_reset(d, ref->reason);
	return 0;
}

static int h_config_update(void *ctx, const ProtobufCMessage *m,
			   struct bh_frame *f)
{
	const Bh__VirtioConfigUpdate *u = (const Bh__VirtioConfigUpdate *)m;
	int r;
	struct bh_vpci *d = vdev(ctx, u->index, &r);

	if (u->config.len > BH_VIRTIO_CONFIG_MAX)
		return -EINVAL;
	if (!d)
		return r;
	bh_vpci_config_update(d, u->config.data, u->config.len, u->notify);
	return 0;
}

static int h_start(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct runner *rn = ctx;

	if (rn->restored) {
		/* A restored VM starts paused: its vCPUs park at once, and
		 * RUNNER_RESUME runs them. */
		if (rn->cpus_restored != rn->nvcpus)
			return -EPROTO;
		pthread_mutex_lock(&rn->pause_lock);
		__atomic_store_n(&rn->pause_req, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&rn->pause_lock);
		rn->state = RS_PAUSED;
	} else {
		rn->state = RS_RUNNING;
	}
	runner_vcpus_release(rn);
	return 0;
}

/* ---- snapshots ------------------------------------------------------ */

/* MSG_RUNNER_SAVE, paused: every vCPU's state in a frame of its own, then
 * the rest. A failure is answered with an error; the VM stays paused. */
static int h_save(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct runner *rn = ctx;
	Bh__RunnerSavedState st = BH__RUNNER_SAVED_STATE__INIT;
	Bh__UartState uart;
	Bh__CmosState cmos;
	Bh__PciHostState pci;
	Bh__KvmVmState kvm;
	Bh__DeviceTransportState dts[BH_MAX_DEVICES];
	Bh__DeviceTransportState *dtp[BH_MAX_DEVICES];
	Bh__VirtioPciState vps[BH_MAX_DEVICES];
	struct runner_cpu_buf *cb = malloc(sizeof(*cb));
	struct bh_vpci_state_buf *vb = malloc(BH_MAX_DEVICES * sizeof(*vb));
	struct runner_vm_buf *kb = malloc(sizeof(*kb));
	uint8_t *ub = malloc(BH_UART_STATE_BUF);
	unsigned int n = 0;
	int r = 0;

	if (!cb || !vb || !kb || !ub) {
		r = refuse(rn, -ENOMEM, "save: out of memory");
		goto out;
	}
	for (unsigned int i = 0; i < rn->nvcpus; i++) {
		Bh__CpuState cs;

		if (runner_cpu_save(&rn->vcpus[i], &cs, cb) < 0) {
			r = refuse(rn, -EIO,
				   "save: vCPU %u's state (see the "
				   "runner's log)",
				   i);
			goto out;
		}
		r = runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_SAVED_CPU,
				&cs.base);
		if (r < 0)
			goto out;
	}
	if (runner_vm_save(rn, &kvm, kb) < 0) {
		r = refuse(rn, -EIO,
			   "save: the VM's interrupt controllers "
			   "and clock (see the runner's log)");
		goto out;
	}
	st.vcpus = rn->nvcpus;
	st.kvm = &kvm;
	if (rn->have_uart) {
		/* What the guest wrote goes out first, not into the
		 * snapshot. */
		bh_uart_flush(&rn->uart);
		bh_uart_save(&rn->uart, &uart, ub);
		st.uart = &uart;
	}
	bh_cmos_save(&rn->cmos, &cmos);
	st.cmos = &cmos;
	bh_pci_save(&rn->pci, &pci);
	st.pci = &pci;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_vpci *d = rn->vdevs[i];

		if (!d)
			continue;
		bh__device_transport_state__init(&dts[n]);
		dts[n].index = i;
		bh_vpci_save(d, &vps[n], &vb[n]);
		dts[n].transport = &vps[n];
		dtp[n] = &dts[n];
		n++;
	}
	st.n_devices = n;
	st.devices = dtp;
	r = runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_SAVED, &st.base);
	if (r == 0)
		bh_info("state saved: %u vCPUs, %u devices", rn->nvcpus, n);
out:
	free(cb);
	free(vb);
	free(kb);
	free(ub);
	return r;
}

/* MSG_RUNNER_RESTORE, before start, once every device is added: the VM's
 * state, then the vCPUs' one by one (h_restore_cpu). */
static int h_restore(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__RunnerSavedState *st = (const Bh__RunnerSavedState *)m;
	struct runner *rn = ctx;
	bool seen[BH_MAX_DEVICES] = { false };

	if (rn->restored)
		return -EPROTO;
	if (st->vcpus != rn->nvcpus || !st->kvm || !st->cmos || !st->pci ||
	    !st->uart != !rn->have_uart)
		return refuse(rn, -EINVAL,
			      "restore: the state is for %u vCPUs%s, this VM "
			      "has %u%s",
			      st->vcpus, st->uart ? " with a UART" : "",
			      rn->nvcpus, rn->have_uart ? " with a UART" : "");
	if (runner_vm_restore(rn, st->kvm) < 0)
		return refuse(rn, -EINVAL,
			      "restore: the VM's interrupt controllers and "
			      "clock were refused (see the runner's log)");
	if ((st->uart && bh_uart_restore(&rn->uart, st->uart) < 0) ||
	    bh_cmos_restore(&rn->cmos, st->cmos) < 0)
		return refuse(rn, -EINVAL,
			      "restore: the UART's or the CMOS's state does "
			      "not fit");
	bh_pci_restore(&rn->pci, st->pci);
	for (size_t i = 0; i < st->n_devices; i++) {
		const Bh__DeviceTransportState *dt = st->devices[i];
		struct bh_vpci *d =
		    dt->index < BH_MAX_DEVICES ? rn->vdevs[dt->index] : NULL;

		if (!d || seen[dt->index] || !dt->transport ||
		    bh_vpci_restore(d, dt->transport) < 0)
			return refuse(rn, -EINVAL,
				      "restore: device %u's transport does not "
				      "fit the device added",
				      dt->index);
		seen[dt->index] = true;
	}
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (rn->vdevs[i] && !seen[i])
			return refuse(rn, -EINVAL,
				      "restore: no saved state for device %u",
				      i);
	bh_vpci_update_routing(rn);
	rn->restored = 1;
	rn->cpus_restored = 0;
	return 0;
}

static int h_restore_cpu(void *ctx, const ProtobufCMessage *m,
			 struct bh_frame *f)
{
	const Bh__CpuState *cs = (const Bh__CpuState *)m;
	Bh__Empty done = BH__EMPTY__INIT;
	struct runner *rn = ctx;

	/* In order, after the VM's state, each once. */
	if (!rn->restored || rn->cpus_restored >= rn->nvcpus ||
	    cs->id != rn->cpus_restored)
		return -EPROTO;
	if (runner_cpu_restore(&rn->vcpus[cs->id], cs) < 0)
		return refuse(rn, -EINVAL,
			      "restore: vCPU %u's state was refused (see the "
			      "runner's log)",
			      cs->id);
	if (++rn->cpus_restored < rn->nvcpus)
		return 0;
	/* The workers take up the rings the driver had activated. */
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (rn->vdevs[i])
			bh_vpci_announce(rn->vdevs[i]);
	bh_info("state restored: %u vCPUs", rn->nvcpus);
	return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_RESTORED, &done.base);
}

/* ---- dirty logging (live migration) -------------------------------- */

/*
 * MSG_RUNNER_DIRTY_LOG: KVM's dirty log on (into the bitmap that came with
 * it) or off, in every RAM slot. A bitmap the runner cannot use, or KVM
 * refusing a slot, is answered with ERROR and the earlier state stands.
 */
static int h_dirty_log(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__DirtyLog *dl = (const Bh__DirtyLog *)m;
	Bh__Empty done = BH__EMPTY__INIT;
	struct runner *rn = ctx;
	const char *why;
	uint64_t *map, bytes;
	int r;

	r = bh_dirty_check_log(dl->enable, f->nfds, rn->state != RS_READY,
			       &why);
	if (r == -EPROTO) {
		bh_err("dirty log: %s", why);
		return r;
	}
	if (r < 0)
		return refuse(rn, r, "dirty log refused: %s", why);
	if (!dl->enable) {
		if (rn->dirty)
			bh_info("dirty log off");
		runner_kvm_dirty_stop(rn);
		return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG_DONE,
				   &done.base);
	}
	/* The frame keeps the fd and closes it; the mapping outlives it. */
	r = bh_dirty_map(f->fds[0], rn->ram_size, &map, &bytes);
	if (r < 0)
		return refuse(
		    rn, r,
		    "dirty log refused: %s (the bitmap needs %llu "
		    "bytes for %llu bytes of guest RAM)",
		    r == -EINVAL ? "bitmap memfd too small"
		    : r == -EOPNOTSUPP
			? "this kernel cannot check the bitmap's "
			  "size (MADV_POPULATE_WRITE, Linux 5.14)"
			: strerror(-r),
		    (unsigned long long)bh_dirty_bitmap_bytes(rn->ram_size),
		    (unsigned long long)rn->ram_size);
	r = runner_kvm_dirty_start(rn, map, bytes);
	if (r < 0) {
		bh_dirty_unmap(map, bytes);
		return refuse(rn, r,
			      "dirty log refused: KVM would not log a RAM "
			      "slot: %s",
			      strerror(-r));
	}
	bh_info("dirty log on: %llu bytes of bitmap",
		(unsigned long long)bytes);
	return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG_DONE,
			   &done.base);
}

/* MSG_RUNNER_DIRTY_SYNC: what KVM logged since the last sync goes into the
 * bitmap, and KVM's log starts again empty. */
static int h_dirty_sync(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	Bh__DirtySynced done = BH__DIRTY_SYNCED__INIT;
	struct runner *rn = ctx;
	const char *why;
	uint64_t pages = 0;
	int r;

	(void)m;
	(void)f;
	r = bh_dirty_check_sync(rn->state != RS_READY, rn->dirty != NULL, &why);
	if (r < 0)
		return refuse(rn, r, "dirty sync refused: %s", why);
	r = runner_kvm_dirty_sync(rn, &pages);
	if (r < 0)
		return refuse(rn, r,
			      "dirty sync failed: KVM_GET_DIRTY_LOG: %s "
			      "(see the runner's log)",
			      strerror(-r));
	done.pages = pages;
	return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_DIRTY_SYNCED,
			   &done.base);
}

/* vCPUs are parked within this long, or the pause is undone and refused. */
#define PAUSE_TIMEOUT_MS 2000

static int h_pause(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	Bh__Empty done = BH__EMPTY__INIT;
	struct runner *rn = ctx;
	int r;

	r = runner_vcpus_pause(rn, PAUSE_TIMEOUT_MS);
	if (r < 0) {
		Bh__Error e = BH__ERROR__INIT;

		runner_vcpus_resume(rn);
		bh_warn("pause: the vCPUs did not stop within %d ms",
			PAUSE_TIMEOUT_MS);
		e.code = -r;
		e.message = "the vCPUs did not stop in time";
		return runner_send(rn, BH__MSG_TYPE__MSG_ERROR, &e.base);
	}
	rn->state = RS_PAUSED;
	bh_debug("vCPUs paused");
	return runner_send(rn, BH__MSG_TYPE__MSG_RUNNER_PAUSED, &done.base);
}

static int h_resume(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct runner *rn = ctx;

	rn->state = RS_RUNNING;
	runner_vcpus_resume(rn);
	bh_debug("vCPUs resumed");
	return 0;
}

/* A press of the ACPI power button: an edge on the generic event device's
 * interrupt, whose _EVT method notifies the button device. */
static int h_power_button(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	struct runner *rn = ctx;
	struct kvm_irq_level irq = { .irq = BH_IRQ_GED, .level = 1 };

	if (ioctl(rn->vm, KVM_IRQ_LINE, &irq) < 0)
		return -errno;
	irq.level = 0;
	if (ioctl(rn->vm, KVM_IRQ_LINE, &irq) < 0)
		return -errno;
	bh_info("power button pressed");
	return 0;
}

static int h_serial_in(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__SerialData *d = (const Bh__SerialData *)m;
	struct runner *rn = ctx;
	size_t n;

	if (!rn->have_uart ||
	    (rn->state != RS_RUNNING && rn->state != RS_PAUSED))
		return 0;
	n = bh_uart_receive(&rn->uart, d->data.data, d->data.len);
	if (n < d->data.len)
		bh_log_ratelimited(BH_LOG_WARN,
				   "serial input: %zu bytes dropped, the guest "
				   "is not reading",
				   d->data.len - n);
	return 0;
}

static int send_stats(struct runner *rn)
{
	Bh__ExitStats msg = BH__EXIT_STATS__INIT;
	struct bh_exitstats *all = calloc(1, sizeof(*all));
	unsigned int idx[BH_EXITSTATS_SLOTS];
	Bh__ExitCount *counts = NULL, **ptrs = NULL;
	char(*names)[48] = NULL;
	size_t n;
	int r = -ENOMEM;

	if (!all)
		return -ENOMEM;
	for (unsigned int i = 0; i < rn->nvcpus; i++)
		bh_exitstats_merge(all, &rn->vcpus[i].stats);
	n = bh_exitstats_sorted(all, idx, BH_ARRAY_SIZE(idx));
	counts = calloc(n + 1, sizeof(*counts));
	ptrs = calloc(n + 1, sizeof(*ptrs));
	names = calloc(n + 1, sizeof(*names));
	if (!counts || !ptrs || !names)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct bh_exit_slot *sl = &all->slots[idx[i]];
		unsigned int kind = (unsigned int)(sl->key >> 56);
		uint64_t addr = sl->key & ((1ULL << 56) - 1);
		const struct bh_io_range *dev = NULL;
		char what[32];

		bh_exitstats_describe(sl->key, what, sizeof(what));
		if (kind == BH_EXIT_IO_IN || kind == BH_EXIT_IO_OUT)
			dev = bh_iobus_find(&rn->iobus, (uint16_t)addr, 1);
		snprintf(names[i], sizeof(names[i]), "%s (%s)", what,
			 dev ? dev->name : "unclaimed");
		if (kind == BH_EXIT_OTHER || kind == BH_EXIT_MMIO_READ ||
		    kind == BH_EXIT_MMIO_WRITE)
			snprintf(names[i], sizeof(names[i]), "%s", what);
		bh__exit_count__init(&counts[i]);
		counts[i].what = names[i];
		counts[i].count = sl->count;
		ptrs[i] = &counts[i];
	}
	if (all->overflow) {
		bh__exit_count__init(&counts[n]);
		counts[n].what = "other (table full)";
		counts[n].count = all->overflow;
		ptrs[n] = &counts[n];
		n++;
	}
	msg.total = all->total;
	msg.n_counts = n;
	msg.counts = ptrs;
	r = runner_send(rn, BH__MSG_TYPE__MSG_EXIT_STATS, &msg.base);
out:
	free(names);
	free(ptrs);
	free(counts);
	free(all);
	return r;
}

static int h_stats(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	return send_stats(ctx);
}

static int h_quit(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct runner *rn = ctx;

	rn->quit = 1;
	return 0;
}

#define ANY_STATE                                                          \
	(BH_STATE(RS_CONFIG) | BH_STATE(RS_READY) | BH_STATE(RS_RUNNING) | \
	 BH_STATE(RS_PAUSED) | BH_STATE(RS_STOPPED))

#define VM_LIVE                                                            \
	(BH_STATE(RS_READY) | BH_STATE(RS_RUNNING) | BH_STATE(RS_PAUSED) | \
	 BH_STATE(RS_STOPPED))

static const struct bh_handler runner_handlers[] = {
	{ BH__MSG_TYPE__MSG_RUNNER_SETUP, BH_STATE(RS_CONFIG), 1,
	  &bh__runner_setup__descriptor, h_setup, "runner-setup" },
	{ BH__MSG_TYPE__MSG_RUNNER_PROBE, BH_STATE(RS_CONFIG), 0,
	  &bh__runner_probe__descriptor, h_probe, "runner-probe" },
	{ BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE,
	  BH_STATE(RS_READY) | BH_STATE(RS_RUNNING) | BH_STATE(RS_PAUSED),
	  BH_NFDS_VARIABLE, &bh__runner_add_device__descriptor, h_add_device,
	  "runner-add-device" },
	{ BH__MSG_TYPE__MSG_RUNNER_REMOVE_DEVICE,
	  BH_STATE(RS_READY) | BH_STATE(RS_RUNNING) | BH_STATE(RS_PAUSED), 0,
	  &bh__runner_remove_device__descriptor, h_remove_device,
	  "runner-remove-device" },
	{ BH__MSG_TYPE__MSG_VIRTIO_RESET_DONE, VM_LIVE, 0,
	  &bh__virtio_device_ref__descriptor, h_reset_done,
	  "virtio-reset-done" },
	{ BH__MSG_TYPE__MSG_VIRTIO_NEEDS_RESET, VM_LIVE, 0,
	  &bh__virtio_device_ref__descriptor, h_needs_reset,
	  "virtio-needs-reset" },
	{ BH__MSG_TYPE__MSG_VIRTIO_CONFIG_UPDATE, VM_LIVE, 0,
	  &bh__virtio_config_update__descriptor, h_config_update,
	  "virtio-config-update" },
	{ BH__MSG_TYPE__MSG_RUNNER_START, BH_STATE(RS_READY), 0,
	  &bh__runner_start__descriptor, h_start, "runner-start" },
	{ BH__MSG_TYPE__MSG_RUNNER_SAVE, BH_STATE(RS_PAUSED), 0,
	  &bh__empty__descriptor, h_save, "runner-save" },
	{ BH__MSG_TYPE__MSG_RUNNER_RESTORE, BH_STATE(RS_READY), 0,
	  &bh__runner_saved_state__descriptor, h_restore, "runner-restore" },
	{ BH__MSG_TYPE__MSG_RUNNER_RESTORE_CPU, BH_STATE(RS_READY), 0,
	  &bh__cpu_state__descriptor, h_restore_cpu, "runner-restore-cpu" },
	{ BH__MSG_TYPE__MSG_SERIAL_IN,
	  BH_STATE(RS_RUNNING) | BH_STATE(RS_PAUSED) | BH_STATE(RS_STOPPED), 0,
	  &bh__serial_data__descriptor, h_serial_in, "serial-in" },
	{ BH__MSG_TYPE__MSG_STATS_REQUEST, VM_LIVE, 0,
	  &bh__stats_request__descriptor, h_stats, "stats-request" },
	{ BH__MSG_TYPE__MSG_RUNNER_PAUSE, BH_STATE(RS_RUNNING), 0,
	  &bh__empty__descriptor, h_pause, "runner-pause" },
	{ BH__MSG_TYPE__MSG_RUNNER_RESUME, BH_STATE(RS_PAUSED), 0,
	  &bh__empty__descriptor, h_resume, "runner-resume" },
	{ BH__MSG_TYPE__MSG_POWER_BUTTON,
	  BH_STATE(RS_RUNNING) | BH_STATE(RS_PAUSED), 0, &bh__empty__descriptor,
	  h_power_button, "power-button" },
	/* Refused with ERROR in READY, before the vCPUs start. */
	{ BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG, VM_LIVE, BH_NFDS_VARIABLE,
	  &bh__dirty_log__descriptor, h_dirty_log, "runner-dirty-log" },
	{ BH__MSG_TYPE__MSG_RUNNER_DIRTY_SYNC, VM_LIVE, 0,
	  &bh__empty__descriptor, h_dirty_sync, "runner-dirty-sync" },
	{ BH__MSG_TYPE__MSG_QUIT, ANY_STATE, 0, &bh__quit__descriptor, h_quit,
	  "quit" },
};

static void usage(void)
{
	fprintf(stderr, "usage: bulkhead-vcpu [--name NAME] [--log-level "
			"LEVEL]\n"
			"       bulkhead-vcpu --print-policy\n"
			"Started by bulkhead with its control socket on fd "
			"3; not meant to be run by hand.\n"
			"--print-policy prints the seccomp allow-list and "
			"exits.\n"
			"--self-test-seccomp is a self-test of the sandbox: "
			"the runner enters it at once,\n"
			"without KVM, and opens a file, which must get it "
			"killed by its seccomp filter.\n");
}

/*
 * --self-test-seccomp: the sandbox of h_setup without a VM, then a call the
 * filter refuses. Only the command line turns it on, never a message: a
 * controller asks for it with bulkhead --self-test-seccomp vcpu.
 */
static int self_test_seccomp(void)
{
	int r, fd;

	r = bh_sandbox_drop_caps();
	if (r == 0)
		r = bh_sandbox_no_new_privs();
	if (r == 0)
		r = runner_seccomp_install();
	if (r < 0) {
		bh_err("self-test: cannot enter the sandbox: %s", strerror(-r));
		return 1;
	}
	fd = open("/", O_RDONLY | O_CLOEXEC);
	bh_err("self-test: open(/) returned %d: the sandbox is not in force",
	       fd);
	return 1;
}

static int parse_args(int argc, char **argv, bool *self_test)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "print-policy", no_argument, NULL, 'p' },
		{ "self-test-seccomp", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	char prefix[64];
	enum bh_log_level level;
	int c;

	bh_log_init("vcpu");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			snprintf(prefix, sizeof(prefix), "vcpu/%s", optarg);
			bh_log_init(prefix);
			break;
		case 'l':
			if (bh_log_parse_level(optarg, &level) < 0) {
				usage();
				return -EINVAL;
			}
			bh_log_set_level(level);
			break;
		case 'p':
			runner_seccomp_print(stdout);
			exit(0);
		case 's':
			*self_test = true;
			break;
		default:
			usage();
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage();
		return -EINVAL;
	}
	return 0;
}

static int serve(struct runner *rn)
{
	struct bh_frame_reader reader;
	struct bh_frame frame;
	uint64_t flush_at = 0; /* when to send a partial line, 0: nothing */
	int r = 0;

	bh_frame_reader_init(&reader, BH_FRAME_MAX_BODY);
	while (!rn->quit) {
		struct pollfd pfds[2] = {
			{ .fd = rn->ctl, .events = POLLIN },
			{ .fd = rn->wake_fd, .events = POLLIN },
		};
		uint64_t now = bh_now_ns(), wakes;
		int timeout = -1;
		const char *name = NULL;
		uint16_t type;

		if (flush_at)
			timeout = flush_at > now
				      ? (int)((flush_at - now) / 1000000) + 1
				      : 0;
		if (poll(pfds, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (pfds[1].revents & POLLIN) {
			/* Output just started: give it time to become a line
			 * (which the vCPU sends itself) before sending what
			 * there is. */
			if (read(rn->wake_fd, &wakes, sizeof(wakes)) < 0 &&
			    errno != EAGAIN)
				bh_warn("wake-up eventfd: %s", strerror(errno));
			/* Or a vCPU saw the guest eject a device. */
			runner_hotplug_reap(rn);
			if (!flush_at)
				flush_at =
				    bh_now_ns() + SERIAL_FLUSH_MS * 1000000ULL;
		}
		if (flush_at && bh_now_ns() >= flush_at) {
			flush_at = 0;
			if (rn->have_uart)
				bh_uart_flush(&rn->uart);
		}
		if (!(pfds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = bh_frame_read(rn->ctl, &reader, &frame);
		if (r == 0)
			continue;
		if (r < 0) {
			if (r != -EPIPE)
				bh_err("control socket: %s", strerror(-r));
			break;
		}
		if (__atomic_load_n(&rn->event_sent, __ATOMIC_ACQUIRE) &&
		    rn->state == RS_RUNNING)
			rn->state = RS_STOPPED;
		type = frame.type;
		r = bh_dispatch(runner_handlers, BH_ARRAY_SIZE(runner_handlers),
				rn->state, &frame, rn, &name);
		if (r < 0) {
			bh_err("message %s (type %u) failed: %s",
			       name ? name : "?", type, strerror(-r));
			break;
		}
	}
	bh_frame_reader_reset(&reader);
	return r;
}

int main(int argc, char **argv)
{
	struct runner rn;
	struct stat st;
	bool self_test = false;
	int r;

	memset(&rn, 0, sizeof(rn));
	rn.start_ns = bh_now_ns();
	rn.ctl = BH_CHILD_FD_CONTROL;
	rn.kvm = rn.vm = rn.probe_vm = -1;
	rn.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rn.wake_fd < 0) {
		bh_err("eventfd: %s", strerror(errno));
		return 1;
	}
	pthread_mutex_init(&rn.send_lock, NULL);
	pthread_mutex_init(&rn.route_lock, NULL);
	pthread_mutex_init(&rn.pause_lock, NULL);
	pthread_cond_init(&rn.pause_cond, NULL);
	bh_hotplug_init(&rn.hotplug, &runner_hotplug_ops, &rn);
	signal(SIGPIPE, SIG_IGN);

	if (parse_args(argc, argv, &self_test) < 0)
		return 2;
	if (self_test)
		return self_test_seccomp();
	if (fstat(rn.ctl, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		bh_err("fd %d is not the control socket", rn.ctl);
		return 2;
	}
	r = bh_hello_exchange(rn.ctl, "vcpu-runner", "controller");
	if (r < 0) {
		bh_err("handshake with the controller failed: %s",
		       strerror(-r));
		return 1;
	}
	r = serve(&rn);
	if (rn.quit) {
		runner_vcpus_stop(&rn);
		runner_vcpus_log_state(&rn);
		if (rn.have_uart)
			bh_uart_flush(&rn.uart);
		send_stats(&rn);
	}
	/* vCPU threads may still sit in KVM_RUN or at the start barrier:
	 * end the whole process at once rather than unwinding them. */
	_exit(r < 0 && r != -EPIPE ? 1 : 0);
}
