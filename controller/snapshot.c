/* A snapshot directory: its four files written in an order that leaves a
 * whole snapshot or none, and read back with every check. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "apiconfig.h"
#include "snapfile.h"
#include "snapshot.h"

#define F_CONFIG "config"
#define F_STATE	 "state"
#define F_MEMORY "memory"
#define F_MAP	 "memory.map"

/* A state holds a few KiB per vCPU and per device's records; the map a
 * range per populated stretch of RAM. */
#define STATE_MAX  (64u << 20)
#define CONFIG_MAX (1u << 20)
#define MAP_MAX	   (64u << 20)

int bh_snapshot_url(const char *url, char *path, size_t pathlen, char *err,
		    size_t errlen)
{
	const char *p = url;

	if (!url || !url[0])
		return bh_errf(err, errlen,
			       "a snapshot URL is required "
			       "(file:///DIRECTORY)");
	if (strncmp(url, "file://", 7) == 0)
		p = url + 7;
	else if (strstr(url, "://"))
		return bh_errf(err, errlen,
			       "'%s': only file:// URLs are supported", url);
	if (p[0] != '/')
		return bh_errf(err, errlen,
			       "'%s': the directory must be an absolute path "
			       "(file:///DIRECTORY)",
			       url);
	if ((size_t)snprintf(path, pathlen, "%s", p) >= pathlen)
		return bh_errf(err, errlen, "'%s': path too long", url);
	return 0;
}

static void progress(void *arg, uint64_t done, uint64_t total)
{
	const char *what = arg;

	bh_info("%s: %llu of %llu MiB", what, (unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20));
}

static void remove_all(int dirfd)
{
	static const char *const names[] = { F_STATE, F_CONFIG, F_MAP,
					     F_MEMORY };

	for (size_t i = 0; i < BH_ARRAY_SIZE(names); i++)
		unlinkat(dirfd, names[i], 0);
}

int bh_snapshot_write(const char *dir, const struct bh_config *cfg, int memfd,
		      uint64_t ram_size, const Bh__SnapshotState *st, char *err,
		      size_t errlen)
{
	static const char *const names[] = { F_STATE, F_CONFIG, F_MAP,
					     F_MEMORY };
	Bulkhead__Api__V1__VmConfig *vc = NULL;
	Bh__MemoryMap map = BH__MEMORY_MAP__INIT;
	Bh__MemoryRange *rs = NULL, **rp = NULL;
	struct bh_snapmem_range *ranges = NULL;
	size_t nranges = 0, len;
	uint8_t *buf = NULL;
	int dirfd, r;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s (the directory must exist)", dir,
			 strerror(-r));
		return r;
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(names); i++) {
		if (faccessat(dirfd, names[i], F_OK, AT_SYMLINK_NOFOLLOW) ==
		    0) {
			close(dirfd);
			snprintf(err, errlen,
				 "%s holds a snapshot already (%s): not "
				 "replacing it",
				 dir, names[i]);
			return -EEXIST;
		}
	}
	bh_info("snapshot to %s: %llu MiB of guest memory", dir,
		(unsigned long long)(ram_size >> 20));
	r = bh_snapmem_save(memfd, ram_size, dirfd, F_MEMORY, &ranges, &nranges,
			    progress, "snapshot: guest memory", err, errlen);
	if (r < 0)
		goto fail;
	rs = calloc(nranges ? nranges : 1, sizeof(*rs));
	rp = calloc(nranges ? nranges : 1, sizeof(*rp));
	if (!rs || !rp) {
		r = -ENOMEM;
		goto fail_msg;
	}
	for (size_t i = 0; i < nranges; i++) {
		bh__memory_range__init(&rs[i]);
		rs[i].offset = ranges[i].offset;
		rs[i].length = ranges[i].length;
		rs[i].hash = ranges[i].hash;
		rp[i] = &rs[i];
	}
	map.size = ram_size;
	map.n_ranges = nranges;
	map.ranges = rp;
	len = protobuf_c_message_get_packed_size(&map.base);
	buf = malloc(len ? len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto fail_msg;
	}
	protobuf_c_message_pack(&map.base, buf);
	r = bh_snapfile_write(dirfd, F_MAP, BH_SNAP_MEMMAP, buf, len, err,
			      errlen);
	free(buf);
	buf = NULL;
	if (r < 0)
		goto fail;
	r = bh_apiconfig_to_proto(cfg, &vc);
	if (r < 0)
		goto fail_msg;
	len = protobuf_c_message_get_packed_size(&vc->base);
	buf = malloc(len ? len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto fail_msg;
	}
	protobuf_c_message_pack(&vc->base, buf);
	r = bh_snapfile_write(dirfd, F_CONFIG, BH_SNAP_CONFIG, buf, len, err,
			      errlen);
	free(buf);
	buf = NULL;
	if (r < 0)
		goto fail;
	len = protobuf_c_message_get_packed_size(&st->base);
	buf = malloc(len ? len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto fail_msg;
	}
	protobuf_c_message_pack(&st->base, buf);
	/* Last: its presence marks a whole snapshot. */
	r = bh_snapfile_write(dirfd, F_STATE, BH_SNAP_STATE, buf, len, err,
			      errlen);
	if (r < 0)
		goto fail;
	if (fsync(dirfd) < 0)
		bh_warn("snapshot: %s: fsync: %s", dir, strerror(errno));
	bh_info("snapshot to %s done: %zu ranges of guest memory", dir,
		nranges);
	goto out;
fail_msg:
	snprintf(err, errlen, "%s: %s", dir, strerror(-r));
fail:
	remove_all(dirfd);
out:
	bh_apiconfig_free_proto(vc);
	free(buf);
	free(rs);
	free(rp);
	free(ranges);
	close(dirfd);
	return r;
}

void bh_snapshot_in_free(struct bh_snapshot_in *in)
{
	if (in->state)
		bh__snapshot_state__free_unpacked(in->state, NULL);
	if (in->map)
		bh__memory_map__free_unpacked(in->map, NULL);
	if (in->cfg_set)
		bh_config_free(&in->cfg);
	if (in->dirfd >= 0)
		close(in->dirfd);
	if (in->memfd >= 0)
		close(in->memfd);
	memset(in, 0, sizeof(*in));
	in->dirfd = -1;
	in->memfd = -1;
}

int bh_snapshot_read(const char *dir, struct bh_snapshot_in *in, char *err,
		     size_t errlen)
{
	Bulkhead__Api__V1__VmConfig *vc = NULL;
	void *data = NULL;
	size_t len;
	char why[512];
	int r;

	memset(in, 0, sizeof(*in));
	in->memfd = -1;
	in->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (in->dirfd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(-r));
		return r;
	}
	r = bh_snapfile_read(in->dirfd, F_CONFIG, BH_SNAP_CONFIG, CONFIG_MAX,
			     &data, &len, why, sizeof(why));
	if (r == 0) {
		vc = bulkhead__api__v1__vm_config__unpack(NULL, len, data);
		if (!vc) {
			r = -EBADMSG;
			snprintf(why, sizeof(why), "%s: not a VM configuration",
				 F_CONFIG);
		}
	}
	free(data);
	data = NULL;
	if (r == 0) {
		r = bh_apiconfig_from_proto(vc, &in->cfg, why, sizeof(why));
		if (r == 0)
			in->cfg_set = true;
		else
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 " (in %s)", F_CONFIG);
	}
	if (vc)
		bulkhead__api__v1__vm_config__free_unpacked(vc, NULL);
	if (r == 0) {
		r = bh_snapfile_read(in->dirfd, F_STATE, BH_SNAP_STATE,
				     STATE_MAX, &data, &len, why, sizeof(why));
		if (r == 0) {
			in->state = bh__snapshot_state__unpack(NULL, len, data);
			if (!in->state) {
				r = -EBADMSG;
				snprintf(why, sizeof(why),
					 "%s: not a saved VM state", F_STATE);
			}
		}
		free(data);
		data = NULL;
	}
	if (r == 0) {
		r = bh_snapfile_read(in->dirfd, F_MAP, BH_SNAP_MEMMAP, MAP_MAX,
				     &data, &len, why, sizeof(why));
		if (r == 0) {
			in->map = bh__memory_map__unpack(NULL, len, data);
			if (!in->map) {
				r = -EBADMSG;
				snprintf(why, sizeof(why),
					 "%s: not a memory map", F_MAP);
			}
		}
		free(data);
	}
	/* The parts must agree with each other. */
	if (r == 0 && (in->state->ram_size != in->cfg.memory ||
		       in->map->size != in->cfg.memory)) {
		r = -EBADMSG;
		snprintf(why, sizeof(why),
			 "%s, %s and %s disagree on the size of guest memory",
			 F_CONFIG, F_STATE, F_MAP);
	}
	if (r == 0 &&
	    (!in->state->runner || in->state->runner->vcpus != in->cfg.vcpus ||
	     in->state->n_cpus != in->cfg.vcpus)) {
		r = -EBADMSG;
		snprintf(why, sizeof(why),
			 "%s: its vCPUs do not match the %u of %s", F_STATE,
			 in->cfg.vcpus, F_CONFIG);
	}
	for (size_t i = 0; r == 0 && i < in->map->n_ranges; i++)
		if (!in->map->ranges[i])
			r = -EBADMSG;
	if (r < 0) {
		snprintf(err, errlen, "snapshot %s: %s", dir, why);
		bh_snapshot_in_free(in);
	}
	return r;
}

int bh_snapshot_load_memory(struct bh_snapshot_in *in, int memfd, char *err,
			    size_t errlen)
{
	struct bh_snapmem_range *ranges;
	size_t n = in->map->n_ranges;
	int r;

	ranges = calloc(n ? n : 1, sizeof(*ranges));
	if (!ranges)
		return bh_errf(err, errlen, "out of memory");
	for (size_t i = 0; i < n; i++) {
		ranges[i].offset = in->map->ranges[i]->offset;
		ranges[i].length = in->map->ranges[i]->length;
		ranges[i].hash = in->map->ranges[i]->hash;
	}
	r = bh_snapmem_load(in->dirfd, F_MEMORY, in->map->size, ranges, n,
			    memfd, progress, "restore: guest memory", err,
			    errlen);
	free(ranges);
	return r;
}
