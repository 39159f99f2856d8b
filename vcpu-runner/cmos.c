/* CMOS RTC: the time in BCD or binary as register B asks, never "update in
 * progress", so guests that poll it finish at once. */
#include <errno.h>
#include <string.h>

#include "cmos.h"

#define REG_SEC	    0x00
#define REG_MIN	    0x02
#define REG_HOUR    0x04
#define REG_WDAY    0x06
#define REG_MDAY    0x07
#define REG_MONTH   0x08
#define REG_YEAR    0x09
#define REG_A	    0x0a
#define REG_B	    0x0b
#define REG_C	    0x0c
#define REG_D	    0x0d
#define REG_CENTURY 0x32

#define B_24H	 0x02
#define B_BINARY 0x04
#define D_VRT	 0x80

void bh_cmos_init(struct bh_cmos *c, uint64_t ram_below_4g,
		  uint64_t ram_above_4g)
{
	uint64_t ext;

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->nvram[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	c->nvram[REG_B] = B_24H;
	c->nvram[REG_D] = D_VRT;
	/* Memory size the way PC firmware records it: KiB above 1 MiB in
	 * 0x30/0x31 (capped), 64 KiB units above 16 MiB in 0x34/0x35, and
	 * 64 KiB units above 4 GiB in 0x5b-0x5d. */
	ext = ram_below_4g > 0x100000 ? (ram_below_4g - 0x100000) >> 10 : 0;
	if (ext > 0xffff)
		ext = 0xffff;
	c->nvram[0x30] = c->nvram[0x17] = ext & 0xff;
	c->nvram[0x31] = c->nvram[0x18] = ext >> 8;
	ext = ram_below_4g > 0x1000000 ? (ram_below_4g - 0x1000000) >> 16 : 0;
	if (ext > 0xffff)
		ext = 0xffff;
	c->nvram[0x34] = ext & 0xff;
	c->nvram[0x35] = ext >> 8;
	ext = ram_above_4g >> 16;
	c->nvram[0x5b] = ext & 0xff;
	c->nvram[0x5c] = (ext >> 8) & 0xff;
	c->nvram[0x5d] = (ext >> 16) & 0xff;
}

static uint8_t to_bcd(unsigned int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/*
 * UTC calendar fields from seconds since the epoch. glibc's gmtime_r would
 * do, but it loads /etc/localtime on first use, which the sandboxed runner
 * may not open. Days to civil date after Howard Hinnant's algorithm.
 */
static void utc_from_epoch(int64_t t, struct tm *tm)
{
	int64_t days = t / 86400, rem = t % 86400, era, doe, yoe, doy, mp;
	int64_t y, m, d;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	tm->tm_hour = (int)(rem / 3600);
	tm->tm_min = (int)(rem % 3600 / 60);
	tm->tm_sec = (int)(rem % 60);
	/* 1970-01-01 was a Thursday. */
	tm->tm_wday = (int)(((days % 7) + 11) % 7);
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	tm->tm_year = (int)(y + (m <= 2) - 1900);
	tm->tm_mon = (int)(m - 1);
	tm->tm_mday = (int)d;
}

static uint8_t cmos_time_reg(struct bh_cmos *c, uint8_t reg)
{
	struct timespec ts;
	struct tm tm;
	time_t now;
	unsigned int v;

	if (c->fixed_time) {
		now = c->fixed_time;
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		now = ts.tv_sec;
	}
	now += c->offset;
	utc_from_epoch(now, &tm);
	switch (reg) {
	case REG_SEC:
		v = tm.tm_sec;
		break;
	case REG_MIN:
		v = tm.tm_min;
		break;
	case REG_HOUR:
		v = tm.tm_hour;
		if (!(c->nvram[REG_B] & B_24H)) {
			unsigned int h = v % 12 ? v % 12 : 12;
			uint8_t pm = v >= 12 ? 0x80 : 0;

			return (c->nvram[REG_B] & B_BINARY) ? (h | pm)
							    : (to_bcd(h) | pm);
		}
		break;
	case REG_WDAY:
		v = tm.tm_wday + 1;
		break;
	case REG_MDAY:
		v = tm.tm_mday;
		break;
	case REG_MONTH:
		v = tm.tm_mon + 1;
		break;
	case REG_YEAR:
		v = tm.tm_year % 100;
		break;
	default: /* REG_CENTURY */
		v = (tm.tm_year + 1900) / 100;
		break;
	}
	return (c->nvram[REG_B] & B_BINARY) ? (uint8_t)v : to_bcd(v);
}

uint8_t bh_cmos_read(struct bh_cmos *c, unsigned int off)
{
	uint8_t val;

	if (off == 0)
		return 0xff; /* the index register is write-only */
	pthread_mutex_lock(&c->lock);
	switch (c->index) {
	case REG_SEC:
	case REG_MIN:
	case REG_HOUR:
	case REG_WDAY:
	case REG_MDAY:
	case REG_MONTH:
	case REG_YEAR:
	case REG_CENTURY:
		val = cmos_time_reg(c, c->index);
		break;
	case REG_A:
		/* Update-in-progress stays clear: nothing to wait for. */
		val = c->nvram[REG_A] & 0x7f;
		break;
	case REG_C:
		/* No RTC interrupts are generated; reading clears flags. */
		val = 0;
		break;
	default:
		val = c->nvram[c->index];
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return val;
}

void bh_cmos_write(struct bh_cmos *c, unsigned int off, uint8_t val)
{
	pthread_mutex_lock(&c->lock);
	if (off == 0) {
		/* Bit 7 is the NMI mask, not part of the index. */
		c->index = val & 0x7f;
	} else {
		switch (c->index) {
		case REG_C:
		case REG_D:
			break; /* read-only */
		case REG_SEC:
		case REG_MIN:
		case REG_HOUR:
		case REG_WDAY:
		case REG_MDAY:
		case REG_MONTH:
		case REG_YEAR:
		case REG_CENTURY:
			/* The clock follows the host; setting it is accepted
			 * and ignored rather than emulated. */
			break;
		default:
			c->nvram[c->index] = val;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

void bh_cmos_save(struct bh_cmos *c, Bh__CmosState *s)
{
	bh__cmos_state__init(s);
	pthread_mutex_lock(&c->lock);
	s->index = c->index;
	s->nvram.data = c->nvram;
	s->nvram.len = sizeof(c->nvram);
	s->offset = c->offset;
	pthread_mutex_unlock(&c->lock);
}

int bh_cmos_restore(struct bh_cmos *c, const Bh__CmosState *s)
{
	/* An offset beyond a few centuries is no clock a guest set. */
	const int64_t max_offset = 1000LL * 366 * 24 * 3600;

	if (s->index > 0x7f || s->nvram.len != sizeof(c->nvram) ||
	    !s->nvram.data || s->offset > max_offset || s->offset < -max_offset)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	c->index = (uint8_t)s->index;
	memcpy(c->nvram, s->nvram.data, sizeof(c->nvram));
	c->offset = s->offset;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
