/* --exit-stats: the runner's VM-exit counts, formatted for stderr. */
#include <inttypes.h>
#include <stdio.h>

#include <bulkhead/util.h>

#include "exitlog.h"

size_t bh_exitlog_line(char *line, size_t size, uint64_t count,
		       const char *what)
{
	size_t n;
	int r;

	/* One byte is kept back for the newline. snprintf returns what it
	 * wanted to write, which a long name makes larger than the line:
	 * only what it stored may reach the log. */
	r = snprintf(line, size - 1, "%10" PRIu64 "  %s", count,
		     what ? what : "");
	n = bh_fmt_stored(r, size - 1);
	/* A control byte in the runner's text could forge log lines or drive
	 * the operator's terminal. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] >= 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	line[n] = '\0';
	return n;
}

int bh_exitlog_write(int fd, const Bh__ExitStats *s, unsigned int boot)
{
	char line[BH_EXITLOG_LINE_MAX + 1];
	size_t n;
	int r;

	r = snprintf(line, sizeof(line),
		     "VM exits to userspace, boot %u: %" PRIu64 "\n", boot,
		     (uint64_t)s->total);
	n = bh_fmt_stored(r, sizeof(line));
	r = bh_write_full(fd, line, n);
	for (size_t i = 0; r == 0 && i < s->n_counts; i++) {
		n = bh_exitlog_line(line, sizeof(line), s->counts[i]->count,
				    s->counts[i]->what);
		r = bh_write_full(fd, line, n);
	}
	return r;
}
