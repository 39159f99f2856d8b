/* virtio-blk in the controller: each --disk opened in the asked mode and
 * sized before anything starts, and the worker's WORKER_SETUP. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/virtio.h>

#include "backend.h"
#include "devtype.h"

#define DISK_SECTOR 512

struct blk {
	const struct bh_disk_config *disk; /* borrowed from the config */
	uint64_t size;			   /* bytes */
	Bh__BlkSetup setup;
};

static unsigned int blk_count(const struct bh_config *cfg)
{
	return cfg->ndisks;
}

static const char *blk_id(const struct bh_config *cfg, unsigned int i)
{
	return cfg->disks[i].id;
}

static int blk_open(struct bh_dev *v, const struct bh_config *cfg,
		    unsigned int i, char *err, size_t errlen)
{
	struct blk *b = bh_dev_priv(v);
	const struct bh_disk_config *dc = &cfg->disks[i];
	int flags =
	    (dc->readonly ? O_RDONLY : O_RDWR) | (dc->direct ? O_DIRECT : 0);
	char how[48];
	uint64_t size = 0;
	struct stat st;
	int fd, r;

	b->disk = dc;
	/* Say which access was refused: readonly=on may help. */
	snprintf(how, sizeof(how), "%s%s",
		 dc->readonly ? " to read" : " to write",
		 dc->direct ? " with direct=on" : "");
	fd = bh_backend_open("--disk", dc->path, how, flags,
			     BH_BACKEND_REG | BH_BACKEND_BLK, false, &st, err,
			     errlen);
	if (fd < 0)
		return fd;
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
		r = -errno;
		snprintf(err, errlen, "--disk: cannot get the size of '%s': %s",
			 dc->path, strerror(-r));
		goto fail;
	}
	/* The guest sees whole 512-byte sectors; a tail would be lost. */
	if (size == 0 || size % DISK_SECTOR) {
		r = -EINVAL;
		snprintf(err, errlen,
			 "--disk: '%s' is %llu bytes: the size must be a "
			 "non-zero multiple of 512",
			 dc->path, (unsigned long long)size);
		goto fail;
	}
	b->size = size;
	return bh_dev_add_backend(v, fd);
fail:
	close(fd);
	return r;
}

static unsigned int blk_num_queues(const struct bh_dev *v)
{
	const struct blk *b = bh_dev_priv(v);

	return b->disk->num_queues;
}

static void blk_setup(struct bh_dev *v, const struct bh_config *cfg,
		      Bh__WorkerSetup *s)
{
	struct blk *b = bh_dev_priv(v);

	bh__blk_setup__init(&b->setup);
	b->setup.readonly = b->disk->readonly;
	b->setup.direct = b->disk->direct;
	b->setup.num_queues = b->disk->num_queues;
	b->setup.queue_size = b->disk->queue_size;
	b->setup.serial = b->disk->serial;
	b->setup.size = b->size;
	s->blk = &b->setup;
}

const struct bh_dev_type bh_dev_blk = {
	.name = "blk",
	.api_type = "virtio-blk",
	.virtio_id = BH_VIRTIO_ID_BLK,
	.backend = BH__WORKER_SETUP__BACKEND_BLK,
	.launch = BH_LAUNCH_BLK,
	.priv_size = sizeof(struct blk),
	.count = blk_count,
	.id = blk_id,
	.open = blk_open,
	.num_queues = blk_num_queues,
	.setup = blk_setup,
};
