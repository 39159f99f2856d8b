/*
 * Per-instance config files (/etc/bulkhead/web1.conf): one long option of
 * bulkhead per line without its leading dashes, read by the command line's
 * own parser.
 *
 *   # web1: the front end
 *   kernel /boot/vmlinuz
 *   cmdline console=ttyS0 root=/dev/vda
 *   memory size=1G
 *   disk path=/var/lib/vm/root.img,readonly=on
 *
 * A line is NAME, NAME VALUE or NAME=VALUE, NAME an option written in full.
 * The value is the rest of the line with the blanks around it removed, taken
 * literally (no quoting: it may hold spaces, '#' and quotes); "NAME=" gives
 * an empty value. Lines whose first non-blank is '#' and blank lines are
 * skipped. help and version are refused.
 */
#ifndef BH_CONTROLLER_CONFFILE_H
#define BH_CONTROLLER_CONFFILE_H

#include <stddef.h>

#include "config.h"

/* Largest config file read. */
#define BH_CONFFILE_MAX_SIZE (64 * 1024)

/* A config file turned into an argv for bh_config_parse_args(). */
struct bh_conffile {
	char *name;	     /* the file's path, for messages */
	int argc;	     /* argv[0] is "bulkhead" */
	char **argv;	     /* "--NAME" or "--NAME=VALUE"; NULL-terminated */
	unsigned int *lines; /* lines[i]: file line of argv[i]; lines[0] 0 */
};

/*
 * Reads the file at path (a regular file of at most BH_CONFFILE_MAX_SIZE
 * bytes) and splits it into options. 0, or -errno with a message in err that
 * names the file ("web1.conf: No such file or directory") and, for a line
 * that is not an option, its number ("web1.conf:7: ...").
 */
int bh_conffile_read(const char *path, struct bh_conffile **out, char *err,
		     size_t errlen);

/* As bh_conffile_read, from text in memory; name is used in messages. */
int bh_conffile_parse_text(const char *name, const char *text, size_t len,
			   struct bh_conffile **out, char *err, size_t errlen);

/*
 * Parses the file's options into cfg with bh_config_parse_args. On error
 * returns -EINVAL with the parser's message prefixed by the file and the
 * line that caused it ("web1.conf:3: --memory: size=12Q: unknown size
 * suffix 'Q'"), or by the file alone for what no single line causes
 * ("web1.conf: --kernel is required"); cfg is freed then.
 */
int bh_conffile_config(const struct bh_conffile *f, struct bh_config *cfg,
		       char *err, size_t errlen);

void bh_conffile_free(struct bh_conffile *f);

/* bh_conffile_read, then bh_conffile_config. */
int bh_conffile_load(const char *path, struct bh_config *cfg, char *err,
		     size_t errlen);

/*
 * The command line, with --config FILE: the file's options first, then the
 * command line's, parsed by one bh_config_parse_args call (so an option in
 * both is "given twice", as on one command line). Without --config, just
 * bh_config_parse_args. Returns its BH_CONFIG_OK or BH_CONFIG_EXIT, or
 * -errno with a message in err; one caused by a line of the file names it
 * ("web1.conf:3: --memory: ..."), as does one reading the file.
 */
int bh_conffile_parse_cmdline(int argc, char *const argv[],
			      struct bh_config *cfg, char *err, size_t errlen);

#endif
