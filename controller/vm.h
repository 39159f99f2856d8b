/* One VM as the controller runs it: boot images, guest RAM, the vCPU runner
 * and its supervision, the serial console, reboot. */
#ifndef BH_CONTROLLER_VM_H
#define BH_CONTROLLER_VM_H

#include <stdbool.h>
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
 * Borrows cfg for the VM's lifetime. Without cfg->kernel there is no VM
 * yet: one comes through the API.
 */
int bh_vm_create(const struct bh_config *cfg, struct bh_vm **out, char *err,
		 size_t errlen);
/* Boots and supervises the VM until it ends; returns bulkhead's exit status. */
int bh_vm_run(struct bh_vm *vm);
/* bulkhead --check-host: starts a runner only to probe /dev/kvm (see
 * hostcheck.h) and ends it. 0 with rep filled, or -errno. */
struct bh_kvm_report;
int bh_vm_check_host(const struct bh_vm *vm, struct bh_kvm_report *rep);
/* Why the host's KVM was refused at boot, or NULL. */
const char *bh_vm_host_refusal(const struct bh_vm *vm);
void bh_vm_destroy(struct bh_vm *vm);
/*
 * fn runs inside bh_vm_run once the event loop, the signals and the API
 * socket are set up, before any child starts (to drop privileges and load
 * the seccomp filter); a non-zero return ends bh_vm_run with that status.
 */
void bh_vm_set_lockdown(struct bh_vm *vm, int (*fn)(void *arg), void *arg);
/* Where the reports of children killed by their seccomp filter look
 * (borrowed, may be NULL). */
struct bh_kmsg;
void bh_vm_set_kmsg(struct bh_vm *vm, struct bh_kmsg *k);

/* The launcher that starts the runner and the workers (borrowed; it must
 * outlive the VM). */
struct bh_launcher;
void bh_vm_set_launcher(struct bh_vm *vm, struct bh_launcher *l);

/* ---- for the management API (vmapi.c) ---------------------------------- */

struct bh_devices;

enum bh_vm_state {
	BH_VM_NONE = 0, /* no VM: bulkhead waits for one (create) */
	BH_VM_CREATED,	/* configured, not booted yet */
	BH_VM_STOPPED,	/* no runner: powered off or shut down */
	BH_VM_RUNNING,	/* a runner is booting or running the guest */
	BH_VM_PAUSED,	/* the vCPUs are parked */
};

/* How bh_vm_stop ends the runner. */
enum bh_vm_stop {
	BH_VM_STOP_SHUTDOWN, /* the VM stops; bulkhead stays */
	BH_VM_STOP_REBOOT,   /* a new boot of the same configuration */
	BH_VM_STOP_EXIT,     /* the VM stops and bulkhead exits 0 */
};

enum bh_vm_state bh_vm_state(const struct bh_vm *vm);
/* The VM's configuration, NULL without a VM; and the process's options. */
const struct bh_config *bh_vm_config(const struct bh_vm *vm);
const struct bh_config *bh_vm_process_config(const struct bh_vm *vm);
/*
 * create: takes cfg (a VM configuration; the process's own options replace
 * its name, log level and API socket) and checks it as the command line's
 * would be. On failure cfg is freed and err says why (-errno).
 */
int bh_vm_define(struct bh_vm *vm, struct bh_config *cfg, char *err,
		 size_t errlen);
/* delete: stops the VM if it runs and forgets it. 0 or -ENOENT. */
int bh_vm_delete(struct bh_vm *vm);
struct bh_devices *bh_vm_devices(struct bh_vm *vm);
/* The serial port's output: bytes written, dropped (the output did not keep
 * up, or a file was full with on_full=stop), times a file output was
 * emptied. 0, or -ENOENT without a VM or with no serial output. */
int bh_vm_serial_counters(struct bh_vm *vm, uint64_t *written,
			  uint64_t *dropped, uint64_t *truncations);
/*
 * Snapshot of the paused VM into the directory url names (file:///DIR):
 * the runner is asked for its state, and BH_VMAPI_SNAPSHOT_DONE or
 * BH_VMAPI_SNAPSHOT_FAILED (with why) follows once the files are written
 * or not. -errno with a message in err when it cannot begin: -ENOTCONN not
 * paused, -EBUSY another snapshot or an add under way, -EINVAL a URL or a
 * VM a snapshot cannot hold.
 */
int bh_vm_snapshot(struct bh_vm *vm, const char *url, char *err, size_t errlen);
/*
 * Defines the VM from the snapshot url names, every file checked, the
 * devices placed as the state says; its next boot (bh_vm_boot, or
 * bh_vm_run's) restores the saved state instead of loading the kernel,
 * and the VM is Paused once it is in. late: the controller's sandbox is
 * closed, and what only start-up can open is refused. -errno with a
 * message naming the file and the problem; nothing is left of the VM
 * then.
 */
int bh_vm_restore(struct bh_vm *vm, const char *url, bool late, char *err,
		  size_t errlen);

/* Asks the runner to park the vCPUs; bh_vmapi_event(BH_VMAPI_PAUSED or
 * BH_VMAPI_PAUSE_FAILED) follows. 0 or -errno. */
int bh_vm_pause(struct bh_vm *vm);
int bh_vm_resume(struct bh_vm *vm);
int bh_vm_power_button(struct bh_vm *vm);
/*
 * add-disk, add-net, add-vsock: adds the one device one describes (taken;
 * see bh_devices_add) to the running or paused VM. 0 with *index its slot
 * index: BH_VMAPI_DEVICE_ADDED follows once the runner has it, or
 * BH_VMAPI_DEVICE_ADD_FAILED (then the device is gone again). -errno with
 * a message in err: -ENOTCONN (no runner), -EBUSY (an addition is under
 * way), or bh_devices_add's.
 */
int bh_vm_add_device(struct bh_vm *vm, struct bh_config *one,
		     unsigned int *index, char *err, size_t errlen);
/* remove-device: asks the guest to eject it (bh_devices_remove);
 * BH_VMAPI_DEVICE_REMOVED follows once it has. -EBUSY for a device still
 * being added. */
int bh_vm_remove_device(struct bh_vm *vm, const char *id, char *err,
			size_t errlen);
/* Boots a stopped VM again. 0 or -errno (logged). */
int bh_vm_boot(struct bh_vm *vm);
/* Asks the runner to quit; BH_VMAPI_STOPPED (then BH_VMAPI_BOOTED or
 * BH_VMAPI_BOOT_FAILED for a reboot) follows. Without a runner,
 * BH_VM_STOP_EXIT ends the event loop at once; else -ENOTCONN. */
int bh_vm_stop(struct bh_vm *vm, enum bh_vm_stop how);

/* ---- for live migration (migrate.c) ------------------------------------ */

#include "proto/state.pb-c.h"

/* An asynchronous step's outcome: r 0, or -errno with why. */
typedef void (*bh_vm_done_fn)(void *arg, int r, const char *why);
/* The VM's state, gathered (valid during the call only), or NULL with why. */
typedef void (*bh_vm_state_fn)(void *arg, const Bh__SnapshotState *st,
			       const char *why);

/* Pauses as bh_vm_pause does; done follows once every worker confirmed
 * (instead of the API's event). 0 or -errno. */
int bh_vm_pause_then(struct bh_vm *vm, bh_vm_done_fn done, void *arg);
bool bh_vm_paused(const struct bh_vm *vm);
/* The paused VM's state, as a snapshot saves it: done follows. 0 or -errno
 * with err (-EBUSY a snapshot under way, -ENOTCONN not paused). */
int bh_vm_save_state(struct bh_vm *vm, bh_vm_state_fn done, void *arg,
		     char *err, size_t errlen);
/* Called once when the runner goes (NULL: no longer). */
void bh_vm_on_gone(struct bh_vm *vm, void (*fn)(void *arg), void *arg);
/* Guest RAM: the memfd (-1 without a runner) and its size. */
int bh_vm_memfd(const struct bh_vm *vm);
uint64_t bh_vm_ram_size(const struct bh_vm *vm);
/* The VM's configuration as its devices stand now (hot-added included):
 * fills out (borrowing from the VM; not to be freed). */
void bh_vm_current_config(const struct bh_vm *vm, struct bh_config *out);
/* Whether the VM's state can be saved: not with a TAP given as fd=, which
 * opener ("a restore", "the destination") could not open again, nor with
 * what bh_devices_check_savable refuses. 0 or -EINVAL with err. */
int bh_vm_check_savable(const struct bh_vm *vm, const char *opener, char *err,
			size_t errlen);
/*
 * The receiving side: state (taken) and guest RAM in memfd (taken) become
 * what the defined VM's next boot restores, after the checks a snapshot's
 * state gets (RAM size, vCPUs, every device's record). 0, or -errno with
 * err; both are freed then.
 */
int bh_vm_set_incoming(struct bh_vm *vm, Bh__SnapshotState *state, int memfd,
		       char *err, size_t errlen);
/* Ends bulkhead with code: at once without a runner, else once it quit. */
void bh_vm_exit(struct bh_vm *vm, int code);

#endif
