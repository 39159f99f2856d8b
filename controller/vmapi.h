/* The management API served for the VM that bulkhead runs (--api-socket):
 * the operations of api.h carried out against the running VM. */
#ifndef BH_CONTROLLER_VMAPI_H
#define BH_CONTROLLER_VMAPI_H

#include <event2/event.h>

struct bh_vm;
struct bh_vmapi;

/* What the VM reports to the API layer about requests under way. */
enum bh_vmapi_event {
	BH_VMAPI_PAUSED,       /* the vCPUs are parked */
	BH_VMAPI_PAUSE_FAILED, /* they were not, why says why */
	BH_VMAPI_STOPPED,      /* the runner is gone (shutdown, poweroff) */
	BH_VMAPI_BOOTED,       /* a reboot's new boot runs */
	BH_VMAPI_BOOT_FAILED,  /* it did not start */
	/* The device being added is in the VM, or not (why says why). */
	BH_VMAPI_DEVICE_ADDED,
	BH_VMAPI_DEVICE_ADD_FAILED,
	BH_VMAPI_DEVICE_REMOVED, /* the guest ejected the device why names */
	BH_VMAPI_SNAPSHOT_DONE,
	BH_VMAPI_SNAPSHOT_FAILED, /* why says why */
};

/*
 * Creates the server on base and listens where vm's configuration says
 * (--api-socket). Borrows vm and base. 0 or -errno (logged).
 */
int bh_vmapi_new(struct bh_vm *vm, struct event_base *base,
		 struct bh_vmapi **out);
/* Answers what is still waiting with an error, closes the clients and the
 * socket (removing the socket file). NULL is fine. */
void bh_vmapi_free(struct bh_vmapi *a);
/* a may be NULL (no API): nothing happens. */
void bh_vmapi_event(struct bh_vmapi *a, enum bh_vmapi_event ev,
		    const char *why);

#endif
