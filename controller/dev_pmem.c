/* virtio-pmem in the controller: each --pmem file (or add-pmem's, while the
 * VM runs) opened and sized, its place in guest-physical memory, the
 * runner's mapping of it and the worker's WORKER_SETUP. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "backend.h"
#include "devtype.h"
#include "layout.h"

struct pmem {
	/* borrowed from the VM's configuration or the device's own */
	const struct bh_pmem_config *pm;
	uint64_t gpa; /* decided at open, kept across boots */
	int fd;	      /* the runner's (owned); the worker has a duplicate */
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

/* Where the i-th region of the VM's configuration cfg goes: decided by
 * layout.c from the configuration alone, so that every device gets the same
 * answer. */
static int pmem_place_boot(const struct bh_config *cfg, unsigned int i,
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
 * Where the region of a device added while the VM runs goes: the lowest
 * free place above RAM among the regions of every device there now, the
 * VM's own, those added before and those still being removed. Decided once,
 * when the device opens, and kept with it for the VM's life.
 */
static int pmem_place_added(const struct bh_dev *v,
			    const struct bh_pmem_config *pm, uint64_t *gpa,
			    char *err, size_t errlen)
{
	uint64_t ugpa[BH_MAX_DEVICES], usize[BH_MAX_DEVICES];
	struct bh_mem_layout l;
	unsigned int n;
	int r;

	r = bh_layout_compute(bh_dev_vm_config(v)->memory, &l);
	if (r < 0) {
		snprintf(err, errlen, "--pmem: no memory layout for the VM");
		return r;
	}
	n = bh_dev_other_regions(v, ugpa, usize, BH_MAX_DEVICES);
	r = bh_layout_devmem_fit(&l, ugpa, usize, n, pm->size, gpa);
	if (r < 0) {
		char size[32], ram[32];

		bh_format_size(pm->size, size, sizeof(size));
		bh_format_size(l.ram_size, ram, sizeof(ram));
		snprintf(err, errlen,
			 "--pmem: no room for the %s region of '%s' below "
			 "%llu GiB of guest-physical addresses (the limit), "
			 "beside the VM's %s of RAM and %u other pmem "
			 "region%s",
			 size, pm->file,
			 (unsigned long long)(BH_LAYOUT_DEVMEM_LIMIT >> 30),
			 ram, n, n == 1 ? "" : "s");
	}
	return r;
}

/* The bytes the backend holds: a regular file's size, a block device's. */
static int pmem_backend_size(const struct bh_pmem_config *pm, int fd,
			     const struct stat *st, uint64_t *have, char *err,
			     size_t errlen)
{
	*have = 0;
	if (S_ISREG(st->st_mode))
		*have = (uint64_t)st->st_size;
	else if (ioctl(fd, BLKGETSIZE64, have) < 0)
		return bh_errf(err, errlen,
			       "--pmem: cannot get the size of '%s': %s",
			       pm->file, strerror(errno));
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
	uint64_t have;
	int r;

	r = pmem_backend_size(pm, fd, st, &have, err, errlen);
	if (r < 0)
		return r;
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
		r = -errno;
		snprintf(err, errlen,
			 "--pmem: cannot grow '%s' to size=%llu: %s", pm->file,
			 (unsigned long long)pm->size, strerror(-r));
		return r;
	}
	return 0;
}

/* A device added without size=: the backend's whole size, which must be
 * one the configuration would take, written into the device's own
 * configuration (info shows it; a reboot keeps it). */
static int pmem_size_from_backend(struct bh_pmem_config *pm, int fd,
				  const struct stat *st, char *err,
				  size_t errlen)
{
	const char *why;
	uint64_t have;
	int r;

	r = pmem_backend_size(pm, fd, st, &have, err, errlen);
	if (r < 0)
		return r;
	if (bh_config_check_pmem_size(have, &why) < 0)
		return bh_errf(err, errlen,
			       "--pmem: '%s' without size=: its size, %llu "
			       "bytes, %s",
			       pm->file, (unsigned long long)have, why);
	pm->size = have;
	return 0;
}

/* The runner maps the file as the guest's memory: a file system that
 * cannot (a 9p share without its cache, some FUSE mounts) is named here,
 * not found out by the runner. */
static int pmem_map_check(const struct bh_pmem_config *pm, int fd, char *err,
			  size_t errlen)
{
	void *p = mmap(NULL, BH_CONFIG_PMEM_ALIGN,
		       pm->discard_writes ? PROT_READ : PROT_READ | PROT_WRITE,
		       pm->discard_writes ? MAP_PRIVATE : MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		int r = -errno;

		snprintf(err, errlen,
			 "--pmem: '%s' cannot be mapped%s: %s (its file system "
			 "may not allow it)",
			 pm->file, pm->discard_writes ? "" : " shared",
			 strerror(-r));
		return r;
	}
	munmap(p, BH_CONFIG_PMEM_ALIGN);
	return 0;
}

static int pmem_open(struct bh_dev *v, const struct bh_config *cfg,
		     unsigned int i, char *err, size_t errlen)
{
	struct pmem *p = bh_dev_priv(v);
	struct bh_config *own = bh_dev_own_config(v);
	const struct bh_pmem_config *pm = &cfg->pmems[i];
	struct stat st;
	int fd, wfd, r;

	p->pm = pm;
	p->fd = -1;
	/* The configuration's size is required; one added while the VM runs
	 * may leave it to the file. */
	if (pm->size == 0 && own != cfg)
		return bh_errf(err, errlen, "--pmem: '%s': size= is required",
			       pm->file);
	/* Placed before the file is touched, so that a refusal leaves it
	 * as it was (size= may grow it). */
	if (!own)
		r = pmem_place_boot(cfg, i, &p->gpa, err, errlen);
	else if (pm->size)
		r = pmem_place_added(v, pm, &p->gpa, err, errlen);
	else
		r = 0;
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
	if (pm->size == 0) {
		r = pmem_size_from_backend(&own->pmems[i], fd, &st, err,
					   errlen);
		if (r == 0)
			r = pmem_place_added(v, pm, &p->gpa, err, errlen);
	} else {
		r = pmem_size_check(pm, fd, &st, err, errlen);
	}
	if (r == 0)
		r = pmem_map_check(pm, fd, err, errlen);
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
