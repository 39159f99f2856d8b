/* Limits that the controller, the vCPU runner and the device workers share:
 * each is checked on both sides of a socket, so it is defined here once. */
#ifndef BH_LIMITS_H
#define BH_LIMITS_H

/* virtio devices of one VM: PCI slots 1..16 on bus 0 (slot 0 is the host
 * bridge), one worker process each. Enough for the disks, nets and the
 * fixed devices a VM is given, and a bound on the processes it runs. */
#define BH_MAX_DEVICES 16

/* Queues of one device: virtio-net's seven queue pairs and its control
 * queue fit, as do 16 virtio-blk queues. MSI-X has one vector per queue and
 * one for configuration changes, so the table stays small. */
#define BH_MAX_QUEUES 16

/* Entries of one split virtqueue: the most the virtio spec allows (a 16-bit
 * index that must stay a power of two). */
#define BH_MAX_QUEUE_SIZE 32768

/* Bytes of a device's config space: virtio-net's and virtio-blk's are well
 * under it, and the runner serves it from a fixed buffer per device. */
#define BH_VIRTIO_CONFIG_MAX 256

#endif
