/* Non-blocking guest console output with a bounded buffer and a file size
 * limit: what the guest prints must never stall the process that relays
 * it, nor fill the host's disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/outbuf.h>
#include <bulkhead/util.h>

int bh_outbuf_init(struct bh_outbuf *o, const char *name, int fd,
		   uint64_t max_size, enum bh_out_full on_full)
{
	struct stat st;
	int fl, want;

	memset(o, 0, sizeof(*o));
	o->name = name;
	o->fd = -1;
	o->max_size = max_size;
	o->on_full = on_full;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	want = fl | O_NONBLOCK;
	/* Only a regular file grows on the host's disk; a terminal or a pipe
	 * has a reader that decides. */
	if (S_ISREG(st.st_mode) && max_size > 0) {
		o->limited = true;
		o->file_size = (uint64_t)st.st_size;
		want |= O_APPEND;
	}
	if (want != fl && fcntl(fd, F_SETFL, want) < 0)
		return -errno;
	o->buf = malloc(BH_OUT_BUF_SIZE);
	if (!o->buf)
		return -ENOMEM;
	o->fd = fd;
	return 0;
}

void bh_outbuf_free(struct bh_outbuf *o)
{
	free(o->buf);
	o->buf = NULL;
	o->len = 0;
	o->fd = -1;
}

/* A write failed for good (EPIPE, ENOSPC, EIO): everything from now on is
 * dropped, and said so once. */
static void ob_fail(struct bh_outbuf *o, int e)
{
	if (!o->broken)
		bh_warn("%s output: %s; discarding output from now on", o->name,
			strerror(e));
	o->broken = true;
	o->dropped += o->len;
	o->len = 0;
	o->head = 0;
}

/* Writes what the fd takes of [p, p + n) now; the bytes taken. */
static size_t ob_try(struct bh_outbuf *o, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n && !o->broken) {
		ssize_t r = write(o->fd, p + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r < 0) {
			ob_fail(o, errno);
			break;
		}
		if (r == 0)
			break;
		done += (size_t)r;
		o->written += (uint64_t)r;
	}
	return done;
}

void bh_outbuf_flush(struct bh_outbuf *o)
{
	while (o->len > 0 && !o->broken) {
		size_t first = BH_OUT_BUF_SIZE - o->head;
		size_t n;

		if (first > o->len)
			first = o->len;
		n = ob_try(o, o->buf + o->head, first);
		if (o->broken)
			break;
		o->head = (o->head + n) % BH_OUT_BUF_SIZE;
		o->len -= n;
		if (n < first)
			break;
	}
	if (o->len == 0)
		o->head = 0;
}

bool bh_outbuf_pending(const struct bh_outbuf *o)
{
	return o->len > 0 && !o->broken;
}

/* Appends to the ring what fits; the bytes kept. */
static size_t ob_queue(struct bh_outbuf *o, const uint8_t *p, size_t n)
{
	size_t room = BH_OUT_BUF_SIZE - o->len;
	size_t tail = (o->head + o->len) % BH_OUT_BUF_SIZE;
	size_t keep = n < room ? n : room;
	size_t first = BH_OUT_BUF_SIZE - tail;

	if (first > keep)
		first = keep;
	memcpy(o->buf + tail, p, first);
	memcpy(o->buf, p + first, keep - first);
	o->len += keep;
	return keep;
}

/* Hands n bytes that the file limit admits to the fd or the ring; every one
 * of them is written, queued or counted as dropped. */
static void ob_push(struct bh_outbuf *o, const uint8_t *p, size_t n)
{
	size_t taken = 0, kept;

	/* Queued bytes go first, or the output would be reordered. */
	if (o->len > 0)
		bh_outbuf_flush(o);
	if (o->len == 0)
		taken = ob_try(o, p, n);
	if (o->broken) {
		o->dropped += n - taken;
		return;
	}
	kept = ob_queue(o, p + taken, n - taken);
	o->dropped += n - taken - kept;
	o->file_size += taken + kept;
}

/* on_full=truncate: the file starts again from nothing. The fd is
 * O_APPEND, so the next write lands at offset 0 without a seek. */
static void ob_truncate(struct bh_outbuf *o)
{
	char lim[32];

	/* Bytes still queued belong to the content being thrown away. */
	o->dropped += o->len;
	o->len = 0;
	o->head = 0;
	if (ftruncate(o->fd, 0) < 0) {
		ob_fail(o, errno);
		return;
	}
	o->file_size = 0;
	o->truncations++;
	bh_format_size(o->max_size, lim, sizeof(lim));
	bh_log_ratelimited(BH_LOG_INFO,
			   "%s output reached max_size=%s: file emptied "
			   "(%" PRIu64 " times so far)",
			   o->name, lim, o->truncations);
}

size_t bh_outbuf_write(struct bh_outbuf *o, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t before = o->dropped;

	if (o->fd < 0)
		return 0;
	while (len > 0 && !o->broken) {
		size_t n = len;

		if (o->limited) {
			uint64_t room = o->file_size >= o->max_size
					    ? 0
					    : o->max_size - o->file_size;

			if (room == 0 && o->on_full == BH_OUT_FULL_STOP) {
				if (!o->stopped) {
					char lim[32];

					bh_format_size(o->max_size, lim,
						       sizeof(lim));
					bh_warn("%s output reached max_size=%s "
						"(on_full=stop): dropping "
						"what follows",
						o->name, lim);
				}
				o->stopped = true;
				break;
			}
			if (room == 0) {
				ob_truncate(o);
				continue;
			}
			if (n > room)
				n = (size_t)room;
		}
		ob_push(o, p, n);
		p += n;
		len -= n;
	}
	o->dropped += len;
	if (o->dropped > before && !o->stopped && !o->broken)
		bh_log_ratelimited(BH_LOG_WARN,
				   "%s output: its reader does not keep up; "
				   "%" PRIu64 " bytes dropped so far",
				   o->name, o->dropped);
	return (size_t)(o->dropped - before);
}

const char *bh_out_full_name(enum bh_out_full f)
{
	return f == BH_OUT_FULL_STOP ? "stop" : "truncate";
}

int bh_out_full_parse(const char *s, enum bh_out_full *out)
{
	if (strcmp(s, "truncate") == 0)
		*out = BH_OUT_FULL_TRUNCATE;
	else if (strcmp(s, "stop") == 0)
		*out = BH_OUT_FULL_STOP;
	else
		return -EINVAL;
	return 0;
}
