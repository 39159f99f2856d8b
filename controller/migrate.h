/* Live migration between two bulkhead processes (docs/ARCHITECTURE.md,
 * "Live migration"): the sending side streams the VM's configuration, its
 * guest RAM in passes over the pages dirtied meanwhile, then pauses it and
 * sends the last pages and the state; the receiving side builds the VM
 * from them in fresh processes. One migration at a time per process. */
#ifndef BH_CONTROLLER_MIGRATE_H
#define BH_CONTROLLER_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct bh_vm;
struct bh_binder;

/* Dirty passes before the migration gives up ("did not converge"). */
#define BH_MIG_MAX_PASSES 5
/* The downtime accepted when the request names none, ms. */
#define BH_MIG_DEFAULT_DOWNTIME_MS 300
#define BH_MIG_MAX_DOWNTIME_MS	   600000
/* ms the peer may stay silent (or its socket full) before the migration
 * fails. */
#define BH_MIG_IO_TIMEOUT_MS 60000

/* Where listening and TCP sockets come from (borrowed). */
void bh_migrate_set_binder(struct bh_binder *b);

/* The outcome, once: r 0, or -errno with why. */
typedef void (*bh_migrate_done_fn)(void *arg, int r, const char *why);

struct bh_mig_send_opts {
	const char *url;      /* unix:/PATH or tcp:HOST:PORT */
	bool local;	      /* unix only: guest RAM passed as its memfd */
	uint32_t downtime_ms; /* 0: BH_MIG_DEFAULT_DOWNTIME_MS */
};

/*
 * Starts sending the running or paused VM. done follows once the
 * destination runs it (bulkhead then exits 0: the caller answers and calls
 * bh_vm_exit) or the migration failed (the VM runs on here, as it was,
 * unless the failure came after COMPLETE was sent: then it stays paused,
 * and why says so). 0, or -errno with err when it cannot begin.
 */
int bh_migrate_send(struct bh_vm *vm, struct event_base *base,
		    const struct bh_mig_send_opts *o, bh_migrate_done_fn done,
		    void *arg, char *err, size_t errlen);
/*
 * Listens at url for one sending bulkhead and builds the VM from what it
 * sends. done follows once the VM runs here (or is paused, as it was on
 * the other side), or the migration failed: nothing of the VM is left and
 * the caller ends bulkhead with a failure status. 0, or -errno with err.
 */
int bh_migrate_receive(struct bh_vm *vm, struct event_base *base,
		       const char *url, bh_migrate_done_fn done, void *arg,
		       char *err, size_t errlen);

/* Whether a migration is under way. */
bool bh_migrate_active(void);
/* Gives the one under way up (why for the log and the other side); the
 * done callback follows at once. -ENOENT without one. */
int bh_migrate_abandon(const char *why);

/* What migration-status reports: of the one under way, or the last. */
struct bh_mig_status {
	const char *role;  /* "send", "receive", "" (none yet) */
	const char *phase; /* see docs/API.md */
	bool local;
	unsigned int pass;
	uint64_t pages_sent, bytes_sent, pages_dirty;
	uint64_t bytes_per_second;
	uint64_t expected_downtime_ms, downtime_ms, elapsed_ms;
	uint32_t downtime_limit_ms;
	char error[512];
};
void bh_migrate_status(struct bh_mig_status *st);

/* Drops what a migration holds (at exit). */
void bh_migrate_cleanup(void);

#endif
