/* Logging: a per-process prefix, level filtering, one write(2) per line. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bulkhead/log.h"
#include "bulkhead/util.h"

#define BH_LOG_PREFIX_MAX 64
#define BH_LOG_LINE_MAX	  1024

/* The only mutable globals Bulkhead allows: the logger's. */
static char log_prefix[BH_LOG_PREFIX_MAX] = "bulkhead";
static atomic_int log_level = BH_LOG_INFO;
static pthread_mutex_t ratelimit_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
	[BH_LOG_ERR] = "error",
	[BH_LOG_WARN] = "warn",
	[BH_LOG_INFO] = "info",
	[BH_LOG_DEBUG] = "debug",
};

void bh_log_init(const char *prefix)
{
	/* Called once at start-up, before any thread logs. */
	snprintf(log_prefix, sizeof(log_prefix), "%s", prefix ? prefix : "");
}

void bh_log_set_level(enum bh_log_level level)
{
	if (level > BH_LOG_DEBUG)
		level = BH_LOG_DEBUG;
	atomic_store(&log_level, (int)level);
}

enum bh_log_level bh_log_get_level(void)
{
	return (enum bh_log_level)atomic_load(&log_level);
}

int bh_log_parse_level(const char *s, enum bh_log_level *out)
{
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < BH_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum bh_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *bh_log_level_name(enum bh_log_level level)
{
	if ((unsigned int)level >= BH_ARRAY_SIZE(level_names))
		return "unknown";
	return level_names[level];
}

void bh_log(enum bh_log_level level, const char *fmt, ...)
{
	char line[BH_LOG_LINE_MAX + 1];
	int saved_errno = errno;
	size_t len;
	va_list ap;
	int n;

	if ((int)level > atomic_load(&log_level))
		return;

	n = snprintf(line, sizeof(line), "%s: %s: ", log_prefix,
		     bh_log_level_name(level));
	len = n < 0 ? 0 : (size_t)n;
	if (len > sizeof(line) - 1)
		len = sizeof(line) - 1;

	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n;
	/* Truncated lines still end in a newline. */
	if (len > BH_LOG_LINE_MAX - 1)
		len = BH_LOG_LINE_MAX - 1;
	line[len++] = '\n';

	/* One write so that concurrent lines never interleave; a failed log
	 * line has nowhere else to go. */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* ignored */
	}
	errno = saved_errno;
}

bool bh_ratelimit_ok(struct bh_ratelimit *rl)
{
	const uint64_t interval = BH_RATELIMIT_INTERVAL_S * 1000000000ULL;
	uint64_t now = bh_now_ns();
	unsigned int suppressed = 0;
	bool ok;

	pthread_mutex_lock(&ratelimit_lock);
	if (rl->window_start_ns == 0 || now - rl->window_start_ns >= interval) {
		suppressed = rl->suppressed;
		rl->window_start_ns = now;
		rl->used = 0;
		rl->suppressed = 0;
	}
	ok = rl->used < BH_RATELIMIT_BURST;
	if (ok)
		rl->used++;
	else
		rl->suppressed++;
	pthread_mutex_unlock(&ratelimit_lock);

	/* Logged outside the lock: the count belongs to the window that just
	 * ended and nobody else will report it. */
	if (suppressed)
		bh_log(BH_LOG_WARN, "%u similar messages suppressed",
		       suppressed);
	return ok;
}
