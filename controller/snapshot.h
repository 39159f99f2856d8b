/* A snapshot directory as a whole (docs/ARCHITECTURE.md, "Snapshots"):
 *   config       the VM's configuration (the API's VmConfig), as its devices
 *                stood, hot-added ones included
 *   state        SnapshotState: the runner's state, each vCPU's, each
 *                device's (proto/state.proto)
 *   memory       guest RAM, a sparse image of the RAM's size
 *   memory.map   the ranges of memory that hold data, each with its checksum
 * each but memory with a checked header (snapfile.h). */
#ifndef BH_CONTROLLER_SNAPSHOT_H
#define BH_CONTROLLER_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto/state.pb-c.h"

/* file:///DIR or an absolute path: DIR in path. -EINVAL with a message for
 * any other form (the only transport is the local file system). */
int bh_snapshot_url(const char *url, char *path, size_t pathlen, char *err,
		    size_t errlen);

/*
 * Writes a snapshot into the directory dir, which must exist and hold no
 * snapshot: guest RAM from memfd (ram_size bytes), then the configuration,
 * then the state, last, so that a directory with a state file holds a
 * whole snapshot. On failure what was written goes again. Logs progress
 * while it copies RAM. 0 or -errno with a message in err.
 */
int bh_snapshot_write(const char *dir, const struct bh_config *cfg, int memfd,
		      uint64_t ram_size, const Bh__SnapshotState *st, char *err,
		      size_t errlen);

/* A snapshot read back and checked (but for RAM, which
 * bh_snapshot_load_memory checks as it copies it). */
struct bh_snapshot_in {
	int dirfd;
	/* A migration's guest RAM, received already (owned), or -1: the
	 * snapshot's memory file holds it. */
	int memfd;
	Bh__SnapshotState *state;
	Bh__MemoryMap *map;
	struct bh_config cfg;
	bool cfg_set;
};

/*
 * Reads dir's config, state and memory map, each checked (header, version,
 * checksum), the configuration as the API checks a create's, and the state
 * against it (RAM size, vCPU count). 0, or -errno with a message naming
 * the file and the problem; in is then empty.
 */
int bh_snapshot_read(const char *dir, struct bh_snapshot_in *in, char *err,
		     size_t errlen);
/* Copies the saved RAM into memfd, range by range, each checked. */
int bh_snapshot_load_memory(struct bh_snapshot_in *in, int memfd, char *err,
			    size_t errlen);
void bh_snapshot_in_free(struct bh_snapshot_in *in);

#endif
