/* virtio-rng in the controller: the entropy source (--rng) opened before
 * anything starts; its worker needs nothing more. */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <bulkhead/virtio.h>

#include "backend.h"
#include "devtype.h"

struct rng {
	Bh__RngSetup setup;
};

static unsigned int rng_count(const struct bh_config *cfg)
{
	return cfg->rng_source ? 1 : 0;
}

static const char *rng_id(const struct bh_config *cfg, unsigned int i)
{
	return BH_CONFIG_RNG_ID;
}

/* An entropy source is read as a stream: a character device such as
 * /dev/urandom or /dev/hwrng, or a regular file (tests). A FIFO would tie
 * the guest's entropy to whoever writes it and hold up the open. */
static int rng_open(struct bh_dev *v, const struct bh_config *cfg,
		    unsigned int i, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	fd = bh_backend_open("--rng", cfg->rng_source, NULL, O_RDONLY,
			     BH_BACKEND_CHR | BH_BACKEND_REG, false, &st, err,
			     errlen);
	if (fd < 0)
		return fd;
	return bh_dev_add_backend(v, fd);
}

static void rng_setup(struct bh_dev *v, const struct bh_config *cfg,
		      Bh__WorkerSetup *s)
{
	struct rng *p = bh_dev_priv(v);

	bh__rng_setup__init(&p->setup);
	s->rng = &p->setup;
}

const struct bh_dev_type bh_dev_rng = {
	.name = "rng",
	.api_type = "virtio-rng",
	.virtio_id = BH_VIRTIO_ID_RNG,
	.backend = BH__WORKER_SETUP__BACKEND_RNG,
	.launch = BH_LAUNCH_RNG,
	.priv_size = sizeof(struct rng),
	.count = rng_count,
	.id = rng_id,
	.open = rng_open,
	.setup = rng_setup,
};
