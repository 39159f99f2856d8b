/* Dirty tracking of one VM's guest RAM for live migration: which 4 KiB
 * pages were written since the last pass, by the vCPUs (KVM's dirty log,
 * through the runner) or by a device worker (its own log). One bitmap
 * memfd per writer, so that no writer can clear another's bits; see
 * docs/ARCHITECTURE.md, "Dirty tracking of the whole VM". */
#ifndef BH_CONTROLLER_DIRTY_H
#define BH_CONTROLLER_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/internal.pb-c.h"

struct bh_vm;
struct bh_devices;
struct bh_dev;

/* The end of a request: err 0, or -errno with why naming the problem
 * (valid during the call only). Called from the event loop, never from
 * within the call that made the request. */
typedef void (*bh_vm_dirty_done_fn)(void *arg, int err, const char *why);

/*
 * Turns dirty logging on for the running or paused VM: a fresh, clear
 * bitmap per writer, DEVICE_DIRTY_LOG{enable} to every device worker and
 * RUNNER_DIRTY_LOG{enable} to the runner; done once every one of them has
 * answered (a worker that dies meanwhile counts as answered: it writes no
 * more, and its replacement gets the same bitmap before it serves). On a
 * refusal done gets the first error, and logging stays on where it was
 * taken: call bh_vm_dirty_stop. From the call on, device add and remove
 * are refused (-EBUSY) and so are snapshots, until bh_vm_dirty_stop or the
 * end of the boot. 0, or -errno (logged, done is not called): -ENOTCONN
 * (no VM running), -EALREADY (logging is on), -EBUSY (earlier requests to
 * the runner still unanswered), or creating a bitmap's error (-ENOMEM,
 * -EMFILE, ...).
 */
int bh_vm_dirty_start(struct bh_vm *vm, bh_vm_dirty_done_fn done, void *arg);
/*
 * Asks the runner to OR what KVM logged since the last sync into its
 * bitmap (RUNNER_DIRTY_SYNC); done once RUNNER_DIRTY_SYNCED came, with an
 * error if the runner refused, or if a worker started in place of a dead
 * one refused the log since the last sync (its writes may be missing:
 * the migration cannot go on). 0, or -errno (logged, done is not
 * called): -ENOTCONN (no VM running), -EINVAL (logging is off), -EBUSY
 * (the start or another sync is under way).
 */
int bh_vm_dirty_sync(struct bh_vm *vm, bh_vm_dirty_done_fn done, void *arg);
/*
 * ORs every writer's bitmap into out (nwords words, page i at bit i % 64
 * of out[i / 64]; bh_vm_dirty_words gives the bitmap's length) and clears
 * what it took, word by word with an atomic exchange: a bit set meanwhile
 * is taken now or by the next take. Returns the number of pages set in out
 * (0 with logging off, out untouched). Each pass: sync, then take, then
 * copy the pages out has set.
 */
uint64_t bh_vm_dirty_take(struct bh_vm *vm, uint64_t *out, size_t nwords);
/* Words of bitmap the VM's guest RAM needs; 0 with logging off. */
size_t bh_vm_dirty_words(struct bh_vm *vm);
/* Logging off everywhere (enable=false to the runner and each worker),
 * the bitmaps unmapped and closed; a start or sync under way ends with
 * -ECANCELED. Nothing if logging is off. */
void bh_vm_dirty_stop(struct bh_vm *vm);
/* Logging is on (from bh_vm_dirty_start to bh_vm_dirty_stop, or the end of
 * the boot). */
bool bh_vm_dirty_active(struct bh_vm *vm);

/* ---- for vm.c: the runner's answers ------------------------------------ */

/* RUNNER_DIRTY_LOG_DONE, RUNNER_DIRTY_SYNCED: -EPROTO when the runner
 * owes no such answer (the runner's fault). */
int bh_dirty_runner_log_done(struct bh_devices *d);
int bh_dirty_runner_synced(struct bh_devices *d, const Bh__DirtySynced *s);
/* An ERROR from the runner: true when it answers a dirty request (the
 * oldest one the runner owes), which it then ends. */
bool bh_dirty_runner_error(struct bh_devices *d, int code, const char *msg);
/* Requests to the runner await their answer: a pause must wait, so that an
 * ERROR is not taken for the wrong request's. */
bool bh_dirty_runner_busy(const struct bh_devices *d);

/* ---- for devices.c and supervise.c ------------------------------------- */

/* DEVICE_DIRTY_LOG_DONE (err 0) or an ERROR (err, why) from v's worker:
 * -EPROTO when it owes no such answer. */
int bh_dirty_worker_answer(struct bh_dev *v, int err, const char *why);
/* v's worker owes answers: an ERROR from it is one. */
bool bh_dirty_worker_owes(const struct bh_dev *v);
/* v's worker died: what it owed counts as answered. */
void bh_dirty_worker_gone(struct bh_dev *v);
/* A new worker for v (a replacement) is READY and watched, not yet
 * activated: with logging on, it gets v's bitmap now, ahead of its
 * activation on the same socket. 0 or the send's -errno. */
int bh_dirty_worker_new(struct bh_dev *v);
/* The boot ended (bh_devices_stop): every request under way ends with
 * -ENOTCONN, the bitmaps go, logging is off. */
void bh_dirty_boot_end(struct bh_devices *d);
/* bh_devices_close: frees what bh_dirty_boot_end left. */
void bh_dirty_free(struct bh_devices *d);

#endif
