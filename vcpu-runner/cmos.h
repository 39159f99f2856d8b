/* MC146818 CMOS RTC and NVRAM, reading the host's clock. */
#ifndef BH_RUNNER_CMOS_H
#define BH_RUNNER_CMOS_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "proto/state.pb-c.h"

struct bh_cmos {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t nvram[128];
	/* Seconds added to the host clock (guest wrote the time). */
	int64_t offset;
	/* For tests: a fixed clock instead of CLOCK_REALTIME when nonzero. */
	time_t fixed_time;
};

void bh_cmos_init(struct bh_cmos *c, uint64_t ram_below_4g,
		  uint64_t ram_above_4g);
/* Port offset 0 = index (0x70), 1 = data (0x71). */
uint8_t bh_cmos_read(struct bh_cmos *c, unsigned int off);
void bh_cmos_write(struct bh_cmos *c, unsigned int off, uint8_t val);

/* Saved state (proto/state.proto): s's nvram points into c, read it before
 * c changes. bh_cmos_restore checks s (-EINVAL, c unchanged). */
void bh_cmos_save(struct bh_cmos *c, Bh__CmosState *s);
int bh_cmos_restore(struct bh_cmos *c, const Bh__CmosState *s);

#endif
