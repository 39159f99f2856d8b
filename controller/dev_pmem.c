/* virtio-pmem in the controller: each --pmem file opened and sized before
 * anything starts, its place in guest-physical memory, the runner's mapping
 * of it and the worker's WORKER_SETUP. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "backend.h"
#include "devtype.h"
#include "layout.h"

struct pmem {
	const struct bh_pmem_config *pm; /* borrowed from the config */
	uint64_t gpa;
	int fd; /* the runner's (owned); the worker has a duplicate */
	Bh__PmemSetup setup;
};

static unsigned int pmem_count(const struct bh_config *cfg)
{
	return cfg->npmems;
}

static const char *pmem_id(const struct bh_config *cfg, unsigned int i)
{
	return cfg->pmems[i].id;
}

/* Where the i-th region of cfg goes: decided by layout.c from the
 * configuration alone, so that every device gets the same answer. */
static int pmem_place(const struct bh_config *cfg, unsigned int i,
		      uint64_t *gpa, char *err, size_t errlen)
{
	uint64_t sizes[BH_MAX_DEVICES], gpas[BH_MAX_DEVICES];
	struct bh_mem_layout l;
	int r;

	r = bh_layout_compute(cfg->memory, &l);
	if (r < 0) {
		snprintf(err, errlen, "--pmem: no memory layout for --memory");
		return r;
	}
	for (unsigned int k = 0; k < cfg->npmems; k++)
		sizes[k] = cfg->pmems[k].size;
	r = bh_layout_devmem(&l, sizes, cfg->npmems, gpas);
	if (r < 0) {
		snprintf(err, errlen,
			 "--pmem: the regions and RAM do not fit in the "
			 "guest's first %llu GiB of physical addresses",
			 (unsigned long long)(BH_LAYOUT_DEVMEM_LIMIT >> 30));
		return r;
	}
	*gpa = gpas[i];
	return 0;
}

/*
 * As Cloud Hypervisor: the guest sees size bytes from the start of the
 * file. A smaller regular file is grown (sparse) to size, unless
 * discard_writes=on keeps it read-only; a larger file or block device shows
 * its first size bytes.
 */
static int pmem_size_check(const struct bh_pmem_config *pm, int fd,
			   const struct stat *st, char *err, size_t errlen)
{
	uint64_t have = 0;

	if (S_ISREG(st->st_mode))
		have = (uint64_t)st->st_size;
	else if (ioctl(fd, BLKGETSIZE64, &have) < 0)
		return bh_errf(err, errlen,
			       "--pmem: cannot get the size of '%s': %s",
			       pm->file, strerror(errno));
	if (have >= pm->size)
		return 0;
	if (!S_ISREG(st->st_mode) || pm->discard_writes) {
		snprintf(err, errlen,
			 "--pmem: '%s' is %llu bytes, less than size=%llu%s",
			 pm->file, (unsigned long long)have,
			 (unsigned long long)pm->size,
			 S_ISREG(st->st_mode)
			     ? " (discard_writes=on does not grow it)"
			     : "");
		return -EINVAL;
	}
	if (ftruncate(fd, (off_t)pm->size) < 0) {
		int r = -errno;

		snprintf(err, errlen,
			 "--pmem: cannot grow '%s' to size=%llu: %s", pm->file,
			 (unsigned long long)pm->size, strerror(-r));
		return r;
	}
	return 0;
}

static int pmem_open(struct bh_dev *v, const struct bh_config *cfg,
		     unsigned int i, char *err, size_t errlen)
{
	struct pmem *p = bh_dev_priv(v);
	const struct bh_pmem_config *pm = &cfg->pmems[i];
	struct stat st;
	int fd, wfd, r;

	p->pm = pm;
	p->fd = -1;
	r = pmem_place(cfg, i, &p->gpa, err, errlen);
	if (r < 0)
		return r;
	/* Read-only for discard_writes=on: the runner's private mapping
	 * then cannot reach the file even by mistake. */
	fd = bh_backend_open(
	    "--pmem", pm->file, pm->discard_writes ? " to read" : " to write",
	    pm->discard_writes ? O_RDONLY : O_RDWR,
	    BH_BACKEND_REG | BH_BACKEND_BLK, false, &st, err, errlen);
	if (fd < 0)
		return fd;
	r = pmem_size_check(pm, fd, &st, err, errlen);
	if (r < 0)
		goto fail;
	wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (wfd < 0) {
		r = -errno;
		snprintf(err, errlen, "--pmem: '%s': %s", pm->file,
			 strerror(-r));
		goto fail;
	}
	p->fd = fd;
	return bh_dev_add_backend(v, wfd);
fail:
	close(fd);
	return r;
}

static void pmem_setup(struct bh_dev *v, const struct bh_config *cfg,
		       Bh__WorkerSetup *s)
{
	struct pmem *p = bh_dev_priv(v);

	(void)cfg;
	bh__pmem_setup__init(&p->setup);
	p->setup.guest_phys = p->gpa;
	p->setup.size = p->pm->size;
	p->setup.discard_writes = p->pm->discard_writes;
	s->pmem = &p->setup;
}

static int pmem_shm(const struct bh_dev *v, Bh__SharedRegion *r)
{
	const struct pmem *p = bh_dev_priv(v);

	r->guest_phys = p->gpa;
	r->size = p->pm->size;
	r->private_ = p->pm->discard_writes;
	return p->fd;
}

static void pmem_close(struct bh_dev *v)
{
	struct pmem *p = bh_dev_priv(v);

	bh_closep(&p->fd);
}

const struct bh_dev_type bh_dev_pmem = {
	.name = "pmem",
	.api_type = "virtio-pmem",
	.virtio_id = BH_VIRTIO_ID_PMEM,
	.backend = BH__WORKER_SETUP__BACKEND_PMEM,
	.launch = BH_LAUNCH_PMEM,
	.priv_size = sizeof(struct pmem),
	.count = pmem_count,
	.id = pmem_id,
	.open = pmem_open,
	.setup = pmem_setup,
	.shm = pmem_shm,
	.close = pmem_close,
};
