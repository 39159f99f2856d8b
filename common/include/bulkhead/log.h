/* One logging API for every Bulkhead process: levels, a per-process prefix,
 * stderr. */
#ifndef BULKHEAD_LOG_H
#define BULKHEAD_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum bh_log_level {
	BH_LOG_ERR = 0,
	BH_LOG_WARN = 1,
	BH_LOG_INFO = 2,
	BH_LOG_DEBUG = 3,
};

/*
 * Sets the prefix printed before every line, e.g. "bulkhead/web1" or
 * "vcpu/web1". The string is copied (truncated to 63 bytes).
 */
void bh_log_init(const char *prefix);
void bh_log_set_level(enum bh_log_level level);
enum bh_log_level bh_log_get_level(void);
/* "error", "warn", "info", "debug" -> level; 0 or -EINVAL. */
int bh_log_parse_level(const char *s, enum bh_log_level *out);
const char *bh_log_level_name(enum bh_log_level level);

/*
 * Writes "<prefix>: <level>: <message>\n" to stderr with a single write(2)
 * so that lines from several threads or processes never interleave.
 * Thread-safe. Lines longer than 1 KiB are truncated.
 */
void bh_log(enum bh_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define bh_err(...)   bh_log(BH_LOG_ERR, __VA_ARGS__)
#define bh_warn(...)  bh_log(BH_LOG_WARN, __VA_ARGS__)
#define bh_info(...)  bh_log(BH_LOG_INFO, __VA_ARGS__)
#define bh_debug(...) bh_log(BH_LOG_DEBUG, __VA_ARGS__)

/*
 * Rate limit for messages the guest or a peer can trigger: at most
 * BH_RATELIMIT_BURST lines per BH_RATELIMIT_INTERVAL_S seconds per call site.
 * When a window ends with lines suppressed, the next allowed line is preceded
 * by "N similar messages suppressed". Thread-safe.
 */
#define BH_RATELIMIT_BURST	10
#define BH_RATELIMIT_INTERVAL_S 5
struct bh_ratelimit {
	uint64_t window_start_ns;
	unsigned int used;
	unsigned int suppressed;
};
bool bh_ratelimit_ok(struct bh_ratelimit *rl);

#define bh_log_ratelimited(level, ...)              \
	do {                                        \
		static struct bh_ratelimit bh_rl_;  \
		if (bh_ratelimit_ok(&bh_rl_))       \
			bh_log(level, __VA_ARGS__); \
	} while (0)

#endif
