/* Config files: lines of options, turned into an argv for the command
 * line's parser, with errors traced back to their line. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/util.h>

#include "conffile.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/*
 * The parser acts on --help and --version (and their abbreviations) by
 * printing and asking the caller to exit, which a config file must never
 * make bulkhead do.
 */
static bool prints_and_exits(const char *name, size_t len)
{
	if (len <= strlen("help") && strncmp("help", name, len) == 0)
		return true;
	/* "v", "ve" and "ver" are ambiguous with --verbose: the parser
	 * refuses them by itself. */
	return len >= 4 && len <= strlen("version") &&
	       strncmp("version", name, len) == 0;
}

/* "conf", "confi" and "config": a file naming another file. "con" and
 * shorter are ambiguous with --console, which the parser refuses. */
static bool names_a_file(const char *name, size_t len)
{
	return len >= 4 && len <= strlen("config") &&
	       strncmp("config", name, len) == 0;
}

static void push(struct bh_conffile *f, size_t *cap, char *arg,
		 unsigned int line)
{
	if ((size_t)f->argc + 2 > *cap) {
		size_t n = *cap ? *cap * 2 : 16;
		char **argv = realloc(f->argv, n * sizeof(*argv));
		unsigned int *lines;

		if (!argv)
			abort();
		f->argv = argv;
		lines = realloc(f->lines, n * sizeof(*lines));
		if (!lines)
			abort();
		f->lines = lines;
		*cap = n;
	}
	f->argv[f->argc] = arg;
	f->lines[f->argc] = line;
	f->argc++;
	f->argv[f->argc] = NULL;
}

/* One line (NUL-terminated, without its newline) into at most one argv
 * element. */
static int parse_line(struct bh_conffile *f, size_t *cap, char *s,
		      unsigned int line, char *err, size_t errlen)
{
	char *name, *value, *end, *arg;
	size_t len;

	while (is_blank(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_blank(end[-1]))
		*--end = '\0';
	if (*s == '\0' || *s == '#')
		return 0;
	if (*s == '-')
		return bh_errf(err, errlen,
			       "%s:%u: write options without their leading "
			       "dashes ('kernel /boot/vmlinuz')",
			       f->name, line);

	name = s;
	while (is_name_char(*s))
		s++;
	len = (size_t)(s - name);
	if (len == 0 || (*s && *s != '=' && !is_blank(*s)))
		return bh_errf(err, errlen,
			       "%s:%u: '%.40s' does not start with an option "
			       "name (lower-case letters, digits and '-')",
			       f->name, line, name);
	if (prints_and_exits(name, len) || names_a_file(name, len))
		return bh_errf(err, errlen,
			       "%s:%u: '%.*s' cannot be used in a config file",
			       f->name, line, (int)len, name);

	/* NAME=VALUE may give an empty value; NAME alone gives none. */
	value = NULL;
	if (*s) {
		bool eq = *s == '=';

		*s++ = '\0';
		while (is_blank(*s))
			s++;
		if (*s || eq)
			value = s;
	}
	if (value) {
		arg = malloc(len + strlen(value) + 4);
		if (!arg)
			abort();
		sprintf(arg, "--%s=%s", name, value);
	} else {
		arg = malloc(len + 3);
		if (!arg)
			abort();
		sprintf(arg, "--%s", name);
	}
	push(f, cap, arg, line);
	return 0;
}

int bh_conffile_parse_text(const char *name, const char *text, size_t len,
			   struct bh_conffile **out, char *err, size_t errlen)
{
	struct bh_conffile *f;
	unsigned int line = 0;
	size_t cap = 0, pos = 0;
	char *buf;
	int r = 0;

	if (err && errlen > 0)
		err[0] = '\0';
	f = calloc(1, sizeof(*f));
	buf = malloc(len + 1);
	if (!f || !buf)
		abort();
	f->name = bh_xstrdup(name);
	push(f, &cap, bh_xstrdup("bulkhead"), 0);
	memcpy(buf, text, len);
	buf[len] = '\0';

	while (pos < len) {
		char *s = buf + pos, *nl;
		size_t n;

		line++;
		nl = memchr(s, '\n', len - pos);
		n = nl ? (size_t)(nl - s) : len - pos;
		s[n] = '\0';
		pos += n + 1;
		/* A NUL would cut the line short without a word. */
		if (strlen(s) != n) {
			r = bh_errf(err, errlen,
				    "%s:%u: the line holds a NUL byte", name,
				    line);
			goto err;
		}
		r = parse_line(f, &cap, s, line, err, errlen);
		if (r < 0)
			goto err;
	}
	free(buf);
	*out = f;
	return 0;

err:
	free(buf);
	bh_conffile_free(f);
	return r;
}

int bh_conffile_read(const char *path, struct bh_conffile **out, char *err,
		     size_t errlen)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	r = bh_read_file(path, BH_CONFFILE_MAX_SIZE, &data, &len);
	if (r == -EFBIG) {
		snprintf(err, errlen, "%s: larger than %d bytes", path,
			 BH_CONFFILE_MAX_SIZE);
		return r;
	}
	if (r == -EINVAL) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	r = bh_conffile_parse_text(path, (const char *)data, len, out, err,
				   errlen);
	free(data);
	return r;
}

/* Parses argv[0..n) and says whether it fails with exactly msg. */
static bool fails_with(const struct bh_conffile *f, int n, const char *msg)
{
	struct bh_config cfg;
	char *saved, e[512];
	int r;

	/* The parser wants a NULL after the last element. */
	saved = f->argv[n];
	f->argv[n] = NULL;
	r = bh_config_parse_args(n, f->argv, &cfg, e, sizeof(e));
	f->argv[n] = saved;
	if (r >= 0) {
		bh_config_free(&cfg);
		return false;
	}
	return strcmp(e, msg) == 0;
}

int bh_conffile_config(const struct bh_conffile *f, struct bh_config *cfg,
		       char *err, size_t errlen)
{
	char msg[512] = "";
	int r, n;

	r = bh_config_parse_args(f->argc, f->argv, cfg, msg, sizeof(msg));
	if (r == BH_CONFIG_OK)
		return 0;
	if (r == BH_CONFIG_EXIT) {
		/* Ruled out when the file was split; never act on it. */
		return bh_errf(err, errlen, "%s: asks for help or the version",
			       f->name);
	}
	/*
	 * The parser does not say which element it stopped at. The line to
	 * blame is the first whose options, with those before it, already
	 * fail the same way. An error that even no options at all give
	 * ("--kernel is required") is the file's, not a line's.
	 */
	if (fails_with(f, 1, msg))
		return bh_errf(err, errlen, "%s: %s", f->name, msg);
	for (n = 2; n <= f->argc; n++)
		if (fails_with(f, n, msg))
			return bh_errf(err, errlen, "%s:%u: %s", f->name,
				       f->lines[n - 1], msg);
	return bh_errf(err, errlen, "%s: %s", f->name, msg);
}

void bh_conffile_free(struct bh_conffile *f)
{
	int i;

	if (!f)
		return;
	for (i = 0; i < f->argc; i++)
		free(f->argv[i]);
	free(f->argv);
	free(f->lines);
	free(f->name);
	free(f);
}

int bh_conffile_load(const char *path, struct bh_config *cfg, char *err,
		     size_t errlen)
{
	struct bh_conffile *f = NULL;
	int r;

	r = bh_conffile_read(path, &f, err, errlen);
	if (r < 0)
		return r;
	r = bh_conffile_config(f, cfg, err, errlen);
	bh_conffile_free(f);
	return r;
}

/* Parses argv[0..n) of a merged argv and says whether it fails with exactly
 * msg. */
static bool prefix_fails_with(char **argv, int n, const char *msg)
{
	struct bh_config cfg;
	char *saved, e[512];
	int r;

	saved = argv[n];
	argv[n] = NULL;
	r = bh_config_parse_args(n, argv, &cfg, e, sizeof(e));
	argv[n] = saved;
	if (r == BH_CONFIG_OK)
		bh_config_free(&cfg);
	return r < 0 && strcmp(e, msg) == 0;
}

int bh_conffile_parse_cmdline(int argc, char *const argv[],
			      struct bh_config *cfg, char *err, size_t errlen)
{
	struct bh_conffile *f = NULL;
	const char *path;
	char msg[512] = "";
	char **all;
	int r, n, nall;

	if (err && errlen > 0)
		err[0] = '\0';
	path = bh_config_file_arg(argc, argv);
	if (!path)
		return bh_config_parse_args(argc, argv, cfg, err, errlen);
	r = bh_conffile_read(path, &f, err, errlen);
	if (r < 0)
		return r;

	/* argv[0], the file's options, then the command line's. */
	nall = f->argc + (argc > 0 ? argc - 1 : 0);
	all = calloc((size_t)nall + 1, sizeof(*all));
	if (!all)
		abort();
	for (n = 0; n < f->argc; n++)
		all[n] = f->argv[n];
	for (n = 1; n < argc; n++)
		all[f->argc + n - 1] = argv[n];

	r = bh_config_parse_args(nall, all, cfg, msg, sizeof(msg));
	if (r >= 0)
		goto out;
	/*
	 * As in bh_conffile_config: the element to blame is the first whose
	 * options, with those before it, already fail the same way. Within the
	 * file that names its line; on the command line, or when nothing
	 * alone causes it, the message stands as the parser wrote it.
	 */
	bh_errf(err, errlen, "%s", msg);
	if (prefix_fails_with(all, 1, msg))
		goto out;
	for (n = 2; n <= f->argc; n++) {
		if (prefix_fails_with(all, n, msg)) {
			bh_errf(err, errlen, "%s:%u: %s", f->name,
				f->lines[n - 1], msg);
			break;
		}
	}
out:
	free(all);
	bh_conffile_free(f);
	return r;
}
