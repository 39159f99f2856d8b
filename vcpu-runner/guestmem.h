/* How the runner asks the host kernel to treat its mapping of guest RAM. */
#ifndef BH_RUNNER_GUESTMEM_H
#define BH_RUNNER_GUESTMEM_H

#include <stddef.h>

/* What bh_guestmem_advise got from the kernel, one bit per advice taken. */
#define BH_GUESTMEM_DONTDUMP 0x1
#define BH_GUESTMEM_DONTFORK 0x2
#define BH_GUESTMEM_HUGEPAGE 0x4

/*
 * Advises the kernel on the runner's shared mapping of guest RAM (borrowed,
 * page-aligned): no core dump, not inherited, and transparent huge pages.
 * Guest RAM is a memfd (shmem), which gets huge pages only where the host
 * allows them for shmem (/sys/kernel/mm/transparent_hugepage/shmem_enabled
 * "advise" honours this advice; "always" and "within_size" need none;
 * "never", the default, refuses). Backed by huge pages, KVM maps guest RAM
 * 2 MiB at a time, and the guest's first touch of each 4 KiB page stops
 * costing a nested page fault exit. Every advice is best effort; returns
 * the mask of those the kernel took.
 */
unsigned int bh_guestmem_advise(void *addr, size_t len);

#endif
