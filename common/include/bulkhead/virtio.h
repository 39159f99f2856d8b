/* virtio constants from the specification that several processes use: the
 * device ids the controller checks and the runner shows on PCI, and the
 * feature bits common to every device type. */
#ifndef BH_VIRTIO_H
#define BH_VIRTIO_H

/* Device ids (virtio 1.2, 5 "Device Types"); the PCI device id is 0x1040
 * plus this. Prefixed so as not to meet <linux/virtio_ids.h>. */
#define BH_VIRTIO_ID_NET     1
#define BH_VIRTIO_ID_BLK     2
#define BH_VIRTIO_ID_CONSOLE 3
#define BH_VIRTIO_ID_RNG     4
#define BH_VIRTIO_ID_VSOCK   19
#define BH_VIRTIO_ID_PMEM    27

/* Feature bit numbers (virtio 1.2, 6 "Reserved Feature Bits"): every worker
 * offers them through the worker library, and the runner's transport
 * refuses a driver without VERSION_1 (modern devices only). */
#define BH_VIRTIO_F_INDIRECT_DESC 28
#define BH_VIRTIO_F_EVENT_IDX	  29
#define BH_VIRTIO_F_VERSION_1	  32

#endif
