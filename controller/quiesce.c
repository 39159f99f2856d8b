/* Pause and resume of every device worker: the VM's pause stops the vCPUs
 * first (the runner), then has each worker finish what is in flight and go
 * quiet, and counts the confirmations; resume wakes the workers before the
 * vCPUs. See docs/ARCHITECTURE.md, "Pause". */
#include <errno.h>

#include <bulkhead/log.h>

#include "dev.h"

static void pause_one(struct bh_dev *v)
{
	Bh__Empty e = BH__EMPTY__INIT;

	if (!bh_dev_worker_ready(v))
		return;
	if (!v->pause_owed)
		v->pause_sent = bh_dev_now_ms();
	v->pause_owed++;
	/* A send that fails has failed the worker already (the dead count
	 * as quiet). */
	if (bh_dev_worker_send(v, BH__MSG_TYPE__MSG_DEVICE_PAUSE, &e.base, NULL,
			       0) == 0)
		bh_sup_watchdog_arm(v);
}

void bh_dev_pause_check(struct bh_devices *d)
{
	bh_devices_paused_fn fn = d->pause_done;

	if (!fn)
		return;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i] && d->slot[i]->pause_sent)
			return;
	d->pause_done = NULL;
	fn(d->pause_arg);
}

int bh_devices_pause(struct bh_devices *d, bh_devices_paused_fn done, void *arg)
{
	if (!d)
		return 1;
	if (d->paused)
		return -EALREADY;
	d->paused = true;
	/* A worker that fails while it is asked counts as quiet at once;
	 * nothing is answered before every worker has been asked. */
	d->pause_done = NULL;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++)
		if (d->slot[i])
			pause_one(d->slot[i]);
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		if (d->slot[i] && d->slot[i]->pause_sent) {
			d->pause_done = done;
			d->pause_arg = arg;
			return 0;
		}
	}
	return 1; /* nothing to wait for: no worker serves */
}

void bh_dev_pause_new(struct bh_dev *v)
{
	if (v->devs->paused)
		pause_one(v);
}

int bh_dev_paused(struct bh_dev *v)
{
	/* One answer per request, never one unasked; a pause the VM has
	 * resumed from meanwhile is answered all the same. */
	if (!v->pause_owed)
		return -EPROTO;
	if (--v->pause_owed == 0)
		v->pause_sent = 0;
	else
		v->pause_sent = bh_dev_now_ms();
	bh_dev_pause_check(v->devs);
	return 0;
}

void bh_devices_resume(struct bh_devices *d)
{
	Bh__Empty e = BH__EMPTY__INIT;

	if (!d || !d->paused)
		return;
	d->paused = false;
	/* A pause still collecting answers is over: nobody waits for it. */
	d->pause_done = NULL;
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		struct bh_dev *v = d->slot[i];

		if (!v)
			continue;
		if (v->replace_on_resume) {
			v->replace_on_resume = false;
			bh_sup_replace(v);
			continue;
		}
		/* In order behind the pause on the same socket, confirmed or
		 * not. */
		if (bh_dev_worker_ready(v))
			(void)bh_dev_worker_send(
			    v, BH__MSG_TYPE__MSG_DEVICE_RESUME, &e.base, NULL,
			    0);
	}
}

bool bh_devices_paused(const struct bh_devices *d)
{
	return d && d->paused;
}
