/* The API's VmConfig message and struct bh_config, converted both ways with
 * the command line's checks. */
#ifndef BH_CONTROLLER_APICONFIG_H
#define BH_CONTROLLER_APICONFIG_H

#include <stddef.h>

#include "config.h"
#include "proto/api.pb-c.h"

/*
 * Fills cfg from vc: defaults first (as bh_config_parse_args), then every
 * field of vc, each checked against the same limits as the command line.
 * On a bad field returns -EINVAL with a message naming it in err
 * ("disks[1].queue_size: 1000 is not a power of two"); cfg is freed then.
 * vc == NULL is refused ("config: required"). log_level and
 * print_exit_stats, which are not part of a VM's configuration, keep their
 * defaults.
 */
int bh_apiconfig_from_proto(const Bulkhead__Api__V1__VmConfig *vc,
			    struct bh_config *cfg, char *err, size_t errlen);

/*
 * For add-disk, add-net, add-vsock and add-pmem: fills cfg with the
 * defaults and the one device given (the others NULL), checked as in a
 * VmConfig, with fields named "disk.path", "net.tap", "vsock.cid",
 * "pmem.size". An id left empty stays NULL (the VMM picks one). A pmem's
 * size may be 0 here: the file's own size, which the VMM reads and checks
 * when it opens the file. -EINVAL with the message in err; cfg is freed
 * then.
 */
int bh_apiconfig_device_from_proto(const Bulkhead__Api__V1__DiskConfig *disk,
				   const Bulkhead__Api__V1__NetConfig *net,
				   const Bulkhead__Api__V1__VsockConfig *vsock,
				   const Bulkhead__Api__V1__PmemConfig *pmem,
				   struct bh_config *cfg, char *err,
				   size_t errlen);

/*
 * Builds a VmConfig from cfg with every default spelled out (modes never
 * CONSOLE_MODE_DEFAULT, disk and net queues and mtu never 0). What the
 * configuration leaves to the devices stays empty: a net's unset mac, and
 * the tap of a net given as fd= (the API carries no fds). 0 with *out set
 * (free it with bh_apiconfig_free_proto), or -ENOMEM.
 */
int bh_apiconfig_to_proto(const struct bh_config *cfg,
			  Bulkhead__Api__V1__VmConfig **out);

/* Frees a VmConfig from bh_apiconfig_to_proto; NULL is fine. */
void bh_apiconfig_free_proto(Bulkhead__Api__V1__VmConfig *vc);

#endif
