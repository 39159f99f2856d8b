/* One VM as the controller runs it: boot images, guest RAM, the vCPU runner
 * and its supervision, the serial console, reboot. */
#ifndef BH_CONTROLLER_VM_H
#define BH_CONTROLLER_VM_H

#include <stddef.h>
#include <stdint.h>

#include "bzimage.h"
#include "config.h"

/* Exit statuses of bulkhead. */
#define BH_EXIT_POWEROFF 0
#define BH_EXIT_FAILURE	 1
#define BH_EXIT_USAGE	 2

struct bh_vm;

/*
 * Checks everything that can be checked before a process starts: reads and
 * checks the kernel and initramfs, the command-line length, the console
 * output, and that the images fit in the configured RAM. On failure returns
 * -errno with a message in err (the caller exits with BH_EXIT_USAGE).
 * Borrows cfg for the VM's lifetime.
 */
int bh_vm_create(const struct bh_config *cfg, struct bh_vm **out, char *err,
		 size_t errlen);
/* Boots and supervises the VM until it ends; returns bulkhead's exit status. */
int bh_vm_run(struct bh_vm *vm);
void bh_vm_destroy(struct bh_vm *vm);

#endif
