/* Devices in a snapshot: what the controller saves of each (its worker's
 * in-flight records, which a new worker takes up as it would a dead
 * one's), and a restored VM's devices put back in their PCI slots with
 * those records. See docs/ARCHITECTURE.md, "Snapshots". */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/log.h>

#include "dev.h"

/* The size the guest sees of a disk's or a pmem's backend: its first fd's.
 * 0 for other types. */
static uint64_t backend_size(const struct bh_dev *v)
{
	struct stat st;
	uint64_t size = 0;

	if ((v->type != &bh_dev_blk && v->type != &bh_dev_pmem) ||
	    v->nbackend < 1 || fstat(v->backend[0], &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) &&
	    ioctl(v->backend[0], BLKGETSIZE64, &size) < 0)
		return 0;
	return size;
}

void bh_devices_save_free(Bh__DeviceSnapshot **devs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!devs[i])
			continue;
		free(devs[i]->inflight.data);
		free(devs[i]);
	}
	free(devs);
}

/* What a snapshot (or a migration's state) cannot hold yet: refused,
 * named. 0 or -EINVAL with err. */
static int dev_savable(const struct bh_devices *d, const struct bh_dev *v,
		       char *err, size_t errlen)
{
	if (v->removing)
		return bh_errf(err, errlen,
			       "device %s is being removed: wait until "
			       "the guest has ejected it",
			       v->id);
	if (v->type == &bh_dev_pmem && v->own_cfg)
		return bh_errf(err, errlen,
			       "device %s is a virtio-pmem device added "
			       "while the VM ran, whose place in guest "
			       "memory a restore cannot reproduce yet",
			       v->id);
	if (v->type == &bh_dev_pmem) {
		const struct bh_config *c = d->cfg;

		for (unsigned int k = 0; k < c->npmems; k++)
			if (strcmp(c->pmems[k].id, v->id) == 0 &&
			    c->pmems[k].discard_writes)
				return bh_errf(
				    err, errlen,
				    "device %s has discard_writes=on: "
				    "the guest's writes to it are in "
				    "private pages a snapshot does "
				    "not hold",
				    v->id);
	}
	return 0;
}

int bh_devices_check_savable(const struct bh_devices *d, char *err,
			     size_t errlen)
{
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		int r =
		    d->slot[i] ? dev_savable(d, d->slot[i], err, errlen) : 0;

		if (r < 0)
			return r;
	}
	return 0;
}

int bh_devices_save(struct bh_devices *d, Bh__DeviceSnapshot ***out,
		    size_t *nout, char *err, size_t errlen)
{
	Bh__DeviceSnapshot **devs = calloc(BH_MAX_DEVICES, sizeof(*devs));
	size_t n = 0;
	int r = 0;

	*out = NULL;
	*nout = 0;
	if (!devs)
		return -ENOMEM;
	for (unsigned int i = 0; i < BH_MAX_DEVICES && r == 0; i++) {
		struct bh_dev *v = d->slot[i];
		Bh__DeviceSnapshot *s;

		if (!v)
			continue;
		r = dev_savable(d, v, err, errlen);
		if (r < 0)
			break;
		s = calloc(1, sizeof(*s));
		if (!s) {
			r = -ENOMEM;
			break;
		}
		bh__device_snapshot__init(s);
		devs[n++] = s;
		s->id = v->id;
		s->index = v->index;
		s->type = (char *)v->type->api_type;
		s->active = v->active;
		s->failed = v->failed;
		s->backend_size = backend_size(v);
		if (v->active && v->inflight >= 0 && v->inflight_size) {
			s->inflight.data = malloc(v->inflight_size);
			if (!s->inflight.data) {
				r = -ENOMEM;
				break;
			}
			s->inflight.len = v->inflight_size;
			if (pread(v->inflight, s->inflight.data,
				  v->inflight_size,
				  0) != (ssize_t)v->inflight_size) {
				r = bh_errf(err, errlen,
					    "device %s: cannot read its "
					    "in-flight records",
					    v->id);
				break;
			}
		}
	}
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		bh_devices_save_free(devs, n);
		return r;
	}
	*out = devs;
	*nout = n;
	return 0;
}

/* Moves v to slot index, swapping with what is there. */
static void dev_place(struct bh_devices *d, struct bh_dev *v,
		      unsigned int index)
{
	struct bh_dev *other = d->slot[index];
	unsigned int from = v->index;

	if (from == index)
		return;
	d->slot[index] = v;
	v->index = index;
	d->slot[from] = other;
	if (other)
		other->index = from;
}

int bh_devices_restore(struct bh_devices *d, Bh__DeviceSnapshot *const *devs,
		       size_t n, char *err, size_t errlen)
{
	bool matched[BH_MAX_DEVICES] = { false };

	if (n != d->n)
		return bh_errf(
		    err, errlen,
		    "the snapshot has %zu devices, its configuration "
		    "%u",
		    n, d->n);
	/* Each device back in the PCI slot the guest knows it in. */
	for (size_t i = 0; i < n; i++) {
		const Bh__DeviceSnapshot *s = devs[i];
		struct bh_dev *v = NULL;

		for (unsigned int k = 0; k < BH_MAX_DEVICES && !v; k++)
			if (d->slot[k] && s->id &&
			    strcmp(d->slot[k]->id, s->id) == 0)
				v = d->slot[k];
		if (!v || s->index >= BH_MAX_DEVICES || matched[s->index])
			return bh_errf(err, errlen,
				       "device '%.64s' of the state is not one "
				       "of the configuration's, or twice in "
				       "one slot",
				       s->id ? s->id : "");
		if (!s->type || strcmp(s->type, v->type->api_type) != 0)
			return bh_errf(err, errlen,
				       "device %s is a %s in the configuration "
				       "but a %.32s in the state",
				       v->id, v->type->api_type,
				       s->type ? s->type : "nothing");
		if (s->backend_size != backend_size(v))
			return bh_errf(err, errlen,
				       "device %s: its backend has %llu bytes, "
				       "the snapshot was taken with %llu",
				       v->id,
				       (unsigned long long)backend_size(v),
				       (unsigned long long)s->backend_size);
		dev_place(d, v, s->index);
		matched[s->index] = true;
	}
	for (size_t i = 0; i < n; i++) {
		const Bh__DeviceSnapshot *s = devs[i];
		struct bh_dev *v = d->slot[s->index];

		free(v->restore_records);
		v->restore_records = NULL;
		v->restore_len = 0;
		v->restore_failed = s->failed;
		if (!s->active || !s->inflight.len)
			continue;
		v->restore_records = malloc(s->inflight.len);
		if (!v->restore_records)
			return bh_errf(err, errlen, "out of memory");
		memcpy(v->restore_records, s->inflight.data, s->inflight.len);
		v->restore_len = s->inflight.len;
	}
	return 0;
}

int bh_dev_restore_records(struct bh_dev *v)
{
	int r = 0;

	if (!v->restore_records)
		return 0;
	/* Made for the same device: the same queues, the same size. */
	if (v->restore_len != v->inflight_size)
		r = -EINVAL;
	else if (pwrite(v->inflight, v->restore_records, v->restore_len, 0) !=
		 (ssize_t)v->restore_len)
		r = errno ? -errno : -EIO;
	if (r < 0)
		bh_err("device %s: the snapshot's in-flight records (%zu "
		       "bytes) do not fit the device (%llu): it starts reset",
		       v->id, v->restore_len,
		       (unsigned long long)v->inflight_size);
	free(v->restore_records);
	v->restore_records = NULL;
	v->restore_len = 0;
	v->failed = v->restore_failed;
	return r < 0 ? r : 1;
}
