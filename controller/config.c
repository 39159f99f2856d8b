/* Command-line parsing for bulkhead, in Cloud Hypervisor's option syntax. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/platform.h>
#include <bulkhead/util.h>

#include "api.h"
#include "config.h"

#ifndef BULKHEAD_VERSION
#define BULKHEAD_VERSION "0.1.0"
#endif

#define NAME_MAX_LEN 32
#define PAGE_SIZE_4K (4 * BH_KIB)

/* Long-only options get values above any char so they cannot collide with
 * short options; the order gives each one a slot in the "seen" table. */
enum {
	OPT_FIRST = 0x100,
	OPT_KERNEL = OPT_FIRST,
	OPT_INITRAMFS,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_SERIAL,
	OPT_NAME,
	OPT_LOG_LEVEL,
	OPT_EXIT_STATS,
	OPT_DISK,
	OPT_NET,
	OPT_VSOCK,
	OPT_PMEM,
	OPT_RNG,
	OPT_CONSOLE,
	OPT_RESTART_DEVICES,
	OPT_API_SOCKET,
	OPT_CONFIG,
	OPT_SANDBOX,
	OPT_USER,
	OPT_SELF_TEST_SECCOMP,
	OPT_CHECK_HOST,
	OPT_RESTORE,
	OPT_RESTORE_DISK,
	OPT_END,
};

static const struct option long_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initramfs", required_argument, NULL, OPT_INITRAMFS },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "exit-stats", no_argument, NULL, OPT_EXIT_STATS },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "net", required_argument, NULL, OPT_NET },
	{ "vsock", required_argument, NULL, OPT_VSOCK },
	{ "pmem", required_argument, NULL, OPT_PMEM },
	{ "rng", required_argument, NULL, OPT_RNG },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "restart-devices", required_argument, NULL, OPT_RESTART_DEVICES },
	{ "api-socket", required_argument, NULL, OPT_API_SOCKET },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "sandbox", required_argument, NULL, OPT_SANDBOX },
	{ "user", required_argument, NULL, OPT_USER },
	{ "self-test-seccomp", required_argument, NULL, OPT_SELF_TEST_SECCOMP },
	{ "check-host", optional_argument, NULL, OPT_CHECK_HOST },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "restore-disk", required_argument, NULL, OPT_RESTORE_DISK },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* '+' stops at the first non-option instead of permuting argv, so stray
 * words are reported where they stand; ':' makes a missing argument
 * distinguishable from an unknown option. */
static const char short_options[] = "+:hVv";

/* Replaces an owned string; used so that defaults can be overridden without
 * leaking them. */
static void set_string(char **dst, const char *src)
{
	free(*dst);
	*dst = bh_xstrdup(src);
}

static const char *long_name(int val)
{
	const struct option *o;

	for (o = long_options; o->name; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

/*
 * A key=value list such as "boot=2,max=2" or, later, "path=/x,readonly=on".
 * The caller lists the keys it accepts; kv_parse fills in each value (NULL
 * when absent) with pointers into a copy of the argument that it returns in
 * *bufp for the caller to free. Values cannot contain ',', except a list in
 * brackets ("fd=[5,6]", Cloud Hypervisor's syntax), which is kept whole,
 * brackets included; a '[' without its ']' is an ordinary character.
 */
struct kv_param {
	const char *key;
	const char *value;
};

static void kv_known(const struct kv_param *params, size_t n, char *out,
		     size_t outlen)
{
	size_t i, used = 0;
	int r;

	out[0] = '\0';
	for (i = 0; i < n && used + 1 < outlen; i++) {
		r = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "",
			     params[i].key);
		used += bh_fmt_stored(r, outlen - used);
	}
}

static int kv_parse(const char *opt, const char *arg, struct kv_param *params,
		    size_t n, char **bufp, char *err, size_t errlen)
{
	char known[128];
	char *buf, *item, *next, *eq;
	struct kv_param *p;
	size_t i;
	int ret;

	*bufp = NULL;
	for (i = 0; i < n; i++)
		params[i].value = NULL;
	kv_known(params, n, known, sizeof(known));

	if (arg[0] == '\0')
		return bh_errf(
		    err, errlen,
		    "%s: empty argument (expected key=value; known: %s)", opt,
		    known);

	buf = bh_xstrdup(arg);
	for (item = buf; item; item = next) {
		size_t keylen = strcspn(item, ",=");
		const char *close = NULL;

		if (item[keylen] == '=' && item[keylen + 1] == '[')
			close = strchr(item + keylen + 1, ']');
		next = strchr(close ? close : item, ',');
		if (next)
			*next++ = '\0';
		if (item[0] == '\0') {
			ret = bh_errf(err, errlen,
				      "%s: empty parameter in '%s'", opt, arg);
			goto err;
		}
		eq = strchr(item, '=');
		if (!eq && n == 1) {
			ret = bh_errf(err, errlen,
				      "%s: '%s' is not key=value (did you mean "
				      "%s=%s?)",
				      opt, item, params[0].key, item);
			goto err;
		}
		if (!eq) {
			ret = bh_errf(err, errlen,
				      "%s: '%s' is not key=value (known: %s)",
				      opt, item, known);
			goto err;
		}
		if (eq == item) {
			ret = bh_errf(
			    err, errlen,
			    "%s: '%s' has no parameter name (known: %s)", opt,
			    item, known);
			goto err;
		}
		*eq = '\0';
		for (p = NULL, i = 0; i < n; i++) {
			if (strcmp(params[i].key, item) == 0) {
				p = &params[i];
				break;
			}
		}
		if (!p) {
			ret = bh_errf(err, errlen,
				      "%s: unknown parameter '%s' (known: %s)",
				      opt, item, known);
			goto err;
		}
		if (p->value) {
			ret = bh_errf(err, errlen, "%s: %s given twice", opt,
				      p->key);
			goto err;
		}
		if (eq[1] == '\0') {
			ret = bh_errf(err, errlen, "%s: %s= needs a value", opt,
				      p->key);
			goto err;
		}
		p->value = eq + 1;
	}
	*bufp = buf;
	return 0;

err:
	for (i = 0; i < n; i++)
		params[i].value = NULL;
	free(buf);
	return ret;
}

/* An unsigned parameter in [min, max]. Syntax is checked apart from range so
 * that the message says which of the two is wrong. */
static int kv_uint(const char *opt, const struct kv_param *p, uint64_t min,
		   uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	uint64_t v;
	int ret;

	ret = bh_parse_uint(p->value, 0, UINT64_MAX, &v);
	if (ret == -EINVAL)
		return bh_errf(err, errlen, "%s: %s=%s is not a number", opt,
			       p->key, p->value);
	if (ret < 0 || v < min || v > max)
		return bh_errf(err, errlen,
			       "%s: %s=%s is out of range %" PRIu64
			       "..%" PRIu64,
			       opt, p->key, p->value, min, max);
	*out = v;
	return 0;
}

static int kv_size(const char *opt, const struct kv_param *p, uint64_t *out,
		   char *err, size_t errlen)
{
	size_t digits = strspn(p->value, "0123456789");
	const char *rest = p->value + digits;
	int ret;

	ret = bh_parse_size(p->value, out);
	if (ret == -ERANGE)
		return bh_errf(err, errlen, "%s: %s=%s is too large", opt,
			       p->key, p->value);
	if (ret < 0 && digits > 0 && rest[0] && !rest[1] &&
	    !strchr("KMGTkmgt", rest[0]))
		return bh_errf(err, errlen,
			       "%s: %s=%s: unknown size suffix '%c'", opt,
			       p->key, p->value, rest[0]);
	if (ret < 0)
		return bh_errf(err, errlen,
			       "%s: %s=%s is not a size (a number with an "
			       "optional K, M, G or T suffix)",
			       opt, p->key, p->value);
	return 0;
}

static int parse_cpus(const char *arg, struct bh_config *cfg, char *err,
		      size_t errlen)
{
	enum { CPUS_BOOT, CPUS_MAX };
	struct kv_param params[] = {
		[CPUS_BOOT] = { .key = "boot" },
		[CPUS_MAX] = { .key = "max" },
	};
	uint64_t boot = BH_CONFIG_DEFAULT_VCPUS, max = 0;
	char *buf;
	int ret;

	ret = kv_parse("--cpus", arg, params, BH_ARRAY_SIZE(params), &buf, err,
		       errlen);
	if (ret < 0)
		return ret;
	if (params[CPUS_BOOT].value) {
		ret = kv_uint("--cpus", &params[CPUS_BOOT], 1, BH_MAX_VCPUS,
			      &boot, err, errlen);
		if (ret < 0)
			goto out;
	}
	/* max= is accepted so that Cloud Hypervisor command lines work
	 * unchanged, but only where it asks for nothing we cannot do. */
	if (params[CPUS_MAX].value) {
		ret = kv_uint("--cpus", &params[CPUS_MAX], 1, BH_MAX_VCPUS,
			      &max, err, errlen);
		if (ret < 0)
			goto out;
		if (max != boot) {
			ret =
			    bh_errf(err, errlen,
				    "--cpus: max must equal boot: CPU hotplug "
				    "is not supported (boot=%" PRIu64
				    ", max=%" PRIu64 ")",
				    boot, max);
			goto out;
		}
	}
	cfg->vcpus = (unsigned int)boot;
out:
	free(buf);
	return ret;
}

static int parse_memory(const char *arg, struct bh_config *cfg, char *err,
			size_t errlen)
{
	enum { MEM_SIZE };
	struct kv_param params[] = {
		[MEM_SIZE] = { .key = "size" },
	};
	struct kv_param *p;
	char lim[32];
	uint64_t size;
	char *buf;
	int ret;

	ret = kv_parse("--memory", arg, params, BH_ARRAY_SIZE(params), &buf,
		       err, errlen);
	if (ret < 0)
		return ret;
	/* kv_parse accepts only size=, so a successful parse always has it. */
	p = &params[MEM_SIZE];
	ret = kv_size("--memory", p, &size, err, errlen);
	if (ret < 0)
		goto out;
	if (size < BH_CONFIG_MIN_MEMORY) {
		bh_format_size(BH_CONFIG_MIN_MEMORY, lim, sizeof(lim));
		ret = bh_errf(err, errlen,
			      "--memory: size=%s is below the minimum %s",
			      p->value, lim);
		goto out;
	}
	if (size > BH_CONFIG_MAX_MEMORY) {
		bh_format_size(BH_CONFIG_MAX_MEMORY, lim, sizeof(lim));
		ret = bh_errf(err, errlen,
			      "--memory: size=%s is above the maximum %s",
			      p->value, lim);
		goto out;
	}
	/* Guest RAM is mapped and registered with KVM in whole pages. */
	if (size % PAGE_SIZE_4K) {
		ret = bh_errf(err, errlen,
			      "--memory: size=%s is not a multiple of 4K",
			      p->value);
		goto out;
	}
	cfg->memory = size;
out:
	free(buf);
	return ret;
}

/*
 * file=PATH[,max_size=SIZE][,on_full=truncate|stop] (arg without "file="):
 * PATH may hold any character, commas included, so the parameters are
 * peeled off from the end; a trailing item that is not one of them belongs
 * to the path.
 */
static int parse_file_output(const char *opt, const char *arg, char **path,
			     uint64_t *max_size, enum bh_out_full *on_full,
			     char *err, size_t errlen)
{
	bool seen_max = false, seen_full = false;
	char *buf = bh_xstrdup(arg);
	char lo[32], hi[32];
	char *comma;
	int ret = 0;

	while ((comma = strrchr(buf, ',')) != NULL) {
		struct kv_param p = { .key = NULL, .value = NULL };
		char *item = comma + 1;

		if (strncmp(item, "max_size=", 9) == 0) {
			p.key = "max_size";
			p.value = item + 9;
			if (seen_max) {
				ret = bh_errf(err, errlen,
					      "%s: max_size given twice", opt);
				goto out;
			}
			seen_max = true;
			ret = kv_size(opt, &p, max_size, err, errlen);
			if (ret < 0)
				goto out;
			if (*max_size < BH_OUT_MIN_MAX_SIZE ||
			    *max_size > BH_OUT_MAX_MAX_SIZE) {
				bh_format_size(BH_OUT_MIN_MAX_SIZE, lo,
					       sizeof(lo));
				bh_format_size(BH_OUT_MAX_MAX_SIZE, hi,
					       sizeof(hi));
				ret = bh_errf(err, errlen,
					      "%s: max_size=%s is out of "
					      "range %s..%s",
					      opt, p.value, lo, hi);
				goto out;
			}
		} else if (strncmp(item, "on_full=", 8) == 0) {
			if (seen_full) {
				ret = bh_errf(err, errlen,
					      "%s: on_full given twice", opt);
				goto out;
			}
			seen_full = true;
			if (bh_out_full_parse(item + 8, on_full) < 0) {
				ret = bh_errf(err, errlen,
					      "%s: on_full=%s is not truncate "
					      "or stop",
					      opt, item + 8);
				goto out;
			}
		} else {
			break;
		}
		*comma = '\0';
	}
	if (buf[0] == '\0') {
		ret = bh_errf(err, errlen, "%s: file= needs a path", opt);
		goto out;
	}
	free(*path);
	*path = buf;
	buf = NULL;
out:
	free(buf);
	return ret;
}

/* Not a key=value list: a bare mode word, or file=PATH with its limits. */
static int parse_serial(const char *arg, struct bh_config *cfg, char *err,
			size_t errlen)
{
	static const struct {
		const char *word;
		enum bh_serial_mode mode;
	} modes[] = {
		{ "tty", BH_SERIAL_TTY },
		{ "off", BH_SERIAL_OFF },
		{ "null", BH_SERIAL_NULL },
	};
	size_t i;
	int ret;

	if (strncmp(arg, "file=", 5) == 0) {
		ret = parse_file_output("--serial", arg + 5, &cfg->serial_path,
					&cfg->serial_max_size,
					&cfg->serial_on_full, err, errlen);
		if (ret == 0)
			cfg->serial = BH_SERIAL_FILE;
		return ret;
	}
	for (i = 0; i < BH_ARRAY_SIZE(modes); i++) {
		if (strcmp(arg, modes[i].word) == 0) {
			cfg->serial = modes[i].mode;
			return 0;
		}
	}
	return bh_errf(err, errlen,
		       "--serial: '%s' is not one of tty, off, null, file=PATH",
		       arg);
}

/* The name lands in log prefixes and may later name per-VM files, so it is
 * kept to characters that are safe in both. */
static int parse_name(const char *arg, struct bh_config *cfg, char *err,
		      size_t errlen)
{
	size_t len = strlen(arg), i;
	unsigned char c;

	if (len == 0)
		return bh_errf(err, errlen, "--name: the name is empty");
	if (len > NAME_MAX_LEN)
		return bh_errf(err, errlen,
			       "--name: '%s' is longer than %d characters", arg,
			       NAME_MAX_LEN);
	for (i = 0; i < len; i++) {
		c = (unsigned char)arg[i];
		if (c < 0x80 &&
		    (isalnum(c) || c == '_' || c == '.' || c == '-'))
			continue;
		if (c < 0x80 && isprint(c))
			return bh_errf(err, errlen,
				       "--name: '%s' contains '%c' (allowed: "
				       "A-Z a-z 0-9 _ . -)",
				       arg, c);
		return bh_errf(err, errlen,
			       "--name: '%s' contains byte 0x%02x (allowed: "
			       "A-Z a-z 0-9 _ . -)",
			       arg, c);
	}
	set_string(&cfg->name, arg);
	return 0;
}

/* Ids name devices in logs, worker arguments and the API, so they keep to
 * the same safe characters as the VM name. */
static int check_id(const char *opt, const char *id, char *err, size_t errlen)
{
	size_t len = strlen(id), i;
	unsigned char c;

	if (len > BH_CONFIG_ID_MAX)
		return bh_errf(err, errlen,
			       "%s: id=%s is longer than %d characters", opt,
			       id, BH_CONFIG_ID_MAX);
	for (i = 0; i < len; i++) {
		c = (unsigned char)id[i];
		if (c >= 0x80 ||
		    !(isalnum(c) || c == '_' || c == '.' || c == '-'))
			return bh_errf(
			    err, errlen,
			    "%s: id=%s contains byte 0x%02x (allowed: "
			    "A-Z a-z 0-9 _ . -)",
			    opt, id, c);
	}
	return 0;
}

static int kv_bool(const char *opt, const struct kv_param *p, bool *out,
		   char *err, size_t errlen)
{
	if (strcmp(p->value, "on") == 0 || strcmp(p->value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(p->value, "off") == 0 || strcmp(p->value, "false") == 0) {
		*out = false;
		return 0;
	}
	return bh_errf(err, errlen, "%s: %s=%s is not on or off", opt, p->key,
		       p->value);
}

/* Every virtio device takes a PCI slot of the BH_MAX_DEVICES. */
static unsigned int device_count(const struct bh_config *cfg)
{
	return cfg->ndisks + cfg->nnets + cfg->npmems + (cfg->vsock ? 1 : 0) +
	       (cfg->rng_source ? 1 : 0) +
	       (cfg->console != BH_CONSOLE_OFF ? 1 : 0);
}

static int parse_disk(const char *arg, struct bh_config *cfg, char *err,
		      size_t errlen)
{
	enum { D_PATH, D_RO, D_DIRECT, D_NQ, D_QS, D_ID, D_SERIAL };
	struct kv_param params[] = {
		[D_PATH] = { .key = "path" },
		[D_RO] = { .key = "readonly" },
		[D_DIRECT] = { .key = "direct" },
		[D_NQ] = { .key = "num_queues" },
		[D_QS] = { .key = "queue_size" },
		[D_ID] = { .key = "id" },
		[D_SERIAL] = { .key = "serial" },
	};
	struct bh_disk_config d = {
		.num_queues = 1,
		.queue_size = BH_CONFIG_DISK_QUEUE_SIZE,
	};
	char defid[32];
	uint64_t v = 0;
	char *buf;
	int ret;

	ret = kv_parse("--disk", arg, params, BH_ARRAY_SIZE(params), &buf, err,
		       errlen);
	if (ret < 0)
		return ret;
	if (device_count(cfg) >= BH_MAX_DEVICES) {
		ret = bh_errf(err, errlen,
			      "--disk: more than %d virtio devices in all",
			      BH_MAX_DEVICES);
		goto out;
	}
	if (!params[D_PATH].value) {
		ret = bh_errf(err, errlen, "--disk: path= is required");
		goto out;
	}
	if (params[D_RO].value) {
		ret =
		    kv_bool("--disk", &params[D_RO], &d.readonly, err, errlen);
		if (ret < 0)
			goto out;
	}
	if (params[D_DIRECT].value) {
		ret = kv_bool("--disk", &params[D_DIRECT], &d.direct, err,
			      errlen);
		if (ret < 0)
			goto out;
	}
	if (params[D_NQ].value) {
		ret = kv_uint("--disk", &params[D_NQ], 1,
			      BH_CONFIG_MAX_DISK_QUEUES, &v, err, errlen);
		if (ret < 0)
			goto out;
		d.num_queues = (unsigned int)v;
	}
	if (params[D_QS].value) {
		ret = kv_uint("--disk", &params[D_QS], 2, BH_MAX_QUEUE_SIZE, &v,
			      err, errlen);
		if (ret < 0)
			goto out;
		/* The split ring's index arithmetic needs a power of two. */
		if (v & (v - 1)) {
			ret = bh_errf(
			    err, errlen,
			    "--disk: queue_size=%s is not a power of two",
			    params[D_QS].value);
			goto out;
		}
		d.queue_size = (unsigned int)v;
	}
	if (params[D_SERIAL].value &&
	    strlen(params[D_SERIAL].value) > BH_CONFIG_DISK_SERIAL_MAX) {
		ret = bh_errf(
		    err, errlen, "--disk: serial=%s is longer than %d bytes",
		    params[D_SERIAL].value, BH_CONFIG_DISK_SERIAL_MAX);
		goto out;
	}
	if (params[D_ID].value) {
		ret = check_id("--disk", params[D_ID].value, err, errlen);
		if (ret < 0)
			goto out;
	}
	snprintf(defid, sizeof(defid), "disk%u", cfg->ndisks);
	d.path = bh_xstrdup(params[D_PATH].value);
	d.id = bh_xstrdup(params[D_ID].value ? params[D_ID].value : defid);
	d.serial =
	    bh_xstrdup(params[D_SERIAL].value ? params[D_SERIAL].value : "");
	cfg->disks[cfg->ndisks++] = d;
out:
	free(buf);
	return ret;
}

int bh_config_check_ifname(const char *name, const char **why)
{
	size_t len = strlen(name), i;
	unsigned char c;

	if (len == 0) {
		*why = "an empty interface name";
		return -EINVAL;
	}
	if (len > BH_CONFIG_IFNAME_MAX) {
		*why = "longer than 15 bytes (IFNAMSIZ - 1)";
		return -EINVAL;
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		*why = "not an interface name ('.' and '..' are refused)";
		return -EINVAL;
	}
	/* The kernel's dev_valid_name() refuses '/', ':' and blanks; control
	 * bytes would also garble the logs the name goes into. */
	for (i = 0; i < len; i++) {
		c = (unsigned char)name[i];
		if (c == '/' || c == ':' || isspace(c) || c < 0x20 ||
		    c == 0x7f) {
			*why = "not an interface name (no '/', ':', blank or "
			       "control byte)";
			return -EINVAL;
		}
	}
	return 0;
}

int bh_config_parse_mac(const char *s, uint8_t mac[6], const char **why)
{
	static const uint8_t zero[6];
	uint8_t m[6];
	int i, hi, lo;

	*why = "not a MAC address (xx:xx:xx:xx:xx:xx)";
	if (strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		const char *p = s + 3 * i;

		if (!isxdigit((unsigned char)p[0]) ||
		    !isxdigit((unsigned char)p[1]) || (i < 5 && p[2] != ':'))
			return -EINVAL;
		hi = isdigit((unsigned char)p[0])
			 ? p[0] - '0'
			 : tolower((unsigned char)p[0]) - 'a' + 10;
		lo = isdigit((unsigned char)p[1])
			 ? p[1] - '0'
			 : tolower((unsigned char)p[1]) - 'a' + 10;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	/* A guest NIC with a group address would receive, and send from, what
	 * every member of that group gets. */
	if (m[0] & 1) {
		*why = "a multicast address (the first byte's low bit is set)";
		return -EINVAL;
	}
	if (memcmp(m, zero, sizeof(m)) == 0) {
		*why = "the all-zero address";
		return -EINVAL;
	}
	memcpy(mac, m, sizeof(m));
	*why = NULL;
	return 0;
}

int bh_config_parse_ipv4(const char *s, bool netmask, uint32_t *out,
			 const char **why)
{
	struct in_addr a;
	uint32_t h, inv;

	if (inet_pton(AF_INET, s, &a) != 1) {
		*why = netmask ? "not a netmask (a.b.c.d)"
			       : "not an IPv4 address (a.b.c.d)";
		return -EINVAL;
	}
	h = ntohl(a.s_addr);
	if (netmask) {
		/* Contiguous: the host part, inverted, is 2^n - 1. */
		inv = ~h;
		if (h == 0 || (inv & (inv + 1)) != 0) {
			*why = "not a contiguous netmask";
			return -EINVAL;
		}
	} else if (h == 0) {
		*why = "not a host address";
		return -EINVAL;
	}
	*out = a.s_addr;
	*why = NULL;
	return 0;
}

/*
 * fd=N or fd=[N,M,...]: TAP queues that our caller opened, one per queue
 * pair. Each fd may be handed to one queue only: the same fd twice would
 * make two queues read one packet stream.
 */
static int parse_net_fds(const char *value, const struct bh_config *cfg,
			 struct bh_net_config *n, char *err, size_t errlen)
{
	size_t len = strlen(value);
	char *buf, *item, *next;
	uint64_t fd;
	unsigned int i, j;
	int ret = 0;

	if (value[0] == '[') {
		if (len < 3 || value[len - 1] != ']')
			return bh_errf(err, errlen,
				       "--net: fd=%s: not a list of fds "
				       "([N,M,...])",
				       value);
		buf = bh_xstrdup(value + 1);
		buf[len - 2] = '\0';
	} else {
		buf = bh_xstrdup(value);
	}
	n->nfds = 0;
	for (item = buf; item; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (bh_parse_uint(item, 0, INT32_MAX, &fd) < 0) {
			ret = bh_errf(err, errlen,
				      "--net: fd=%s: '%s' is not a file "
				      "descriptor number",
				      value, item);
			goto out;
		}
		if (fd < 3) {
			ret = bh_errf(err, errlen,
				      "--net: fd=%s: fd %" PRIu64
				      " is a standard stream, not a TAP (3 "
				      "or more)",
				      value, fd);
			goto out;
		}
		if (n->nfds == BH_CONFIG_MAX_NET_PAIRS) {
			ret = bh_errf(err, errlen,
				      "--net: fd=%s: more than %d fds (one "
				      "per queue pair)",
				      value, BH_CONFIG_MAX_NET_PAIRS);
			goto out;
		}
		for (i = 0; i < n->nfds; i++)
			if (n->fds[i] == (int)fd) {
				ret = bh_errf(err, errlen,
					      "--net: fd=%s: fd %" PRIu64
					      " is given twice",
					      value, fd);
				goto out;
			}
		for (i = 0; i < cfg->nnets; i++)
			for (j = 0; j < cfg->nets[i].nfds; j++)
				if (cfg->nets[i].fds[j] == (int)fd) {
					ret =
					    bh_errf(err, errlen,
						    "--net: fd=%s: fd %" PRIu64
						    " is %s's already",
						    value, fd, cfg->nets[i].id);
					goto out;
				}
		n->fds[n->nfds++] = (int)fd;
	}
out:
	free(buf);
	return ret;
}

static int parse_net(const char *arg, struct bh_config *cfg, char *err,
		     size_t errlen)
{
	enum { N_TAP, N_FD, N_MAC, N_IP, N_MASK, N_NQ, N_QS, N_MTU, N_ID };
	struct kv_param params[] = {
		[N_TAP] = { .key = "tap" },
		[N_FD] = { .key = "fd" },
		[N_MAC] = { .key = "mac" },
		[N_IP] = { .key = "ip" },
		[N_MASK] = { .key = "mask" },
		[N_NQ] = { .key = "num_queues" },
		[N_QS] = { .key = "queue_size" },
		[N_MTU] = { .key = "mtu" },
		[N_ID] = { .key = "id" },
	};
	struct bh_net_config n = {
		.num_queues = 2,
		.queue_size = BH_CONFIG_NET_QUEUE_SIZE,
		.mtu = BH_CONFIG_NET_MTU,
	};
	const char *why;
	char defid[32];
	uint64_t v = 0;
	char *buf;
	int ret;

	ret = kv_parse("--net", arg, params, BH_ARRAY_SIZE(params), &buf, err,
		       errlen);
	if (ret < 0)
		return ret;
	if (device_count(cfg) >= BH_MAX_DEVICES) {
		ret = bh_errf(err, errlen,
			      "--net: more than %d virtio devices in all",
			      BH_MAX_DEVICES);
		goto out;
	}
	if (!params[N_TAP].value == !params[N_FD].value) {
		ret = bh_errf(err, errlen, "--net: %s",
			      params[N_TAP].value
				  ? "tap= and fd= exclude each other (a TAP "
				    "we open, or one opened for us)"
				  : "tap= or fd= is required");
		goto out;
	}
	if (params[N_TAP].value &&
	    bh_config_check_ifname(params[N_TAP].value, &why) < 0) {
		ret = bh_errf(err, errlen, "--net: tap=%s: %s",
			      params[N_TAP].value, why);
		goto out;
	}
	if (params[N_FD].value) {
		ret = parse_net_fds(params[N_FD].value, cfg, &n, err, errlen);
		if (ret < 0)
			goto out;
		/* Unless told otherwise, every fd handed in is used. */
		n.num_queues = 2 * n.nfds;
	}
	if (params[N_MAC].value) {
		if (bh_config_parse_mac(params[N_MAC].value, n.mac, &why) < 0) {
			ret = bh_errf(err, errlen, "--net: mac=%s: %s",
				      params[N_MAC].value, why);
			goto out;
		}
		n.mac_set = true;
	}
	/* An interface someone else opened is theirs to configure. */
	if (params[N_FD].value &&
	    (params[N_IP].value || params[N_MASK].value)) {
		ret = bh_errf(err, errlen,
			      "--net: %s= goes with tap= only: with fd= the "
			      "interface belongs to whoever opened it",
			      params[N_IP].value ? "ip" : "mask");
		goto out;
	}
	if (params[N_MASK].value && !params[N_IP].value) {
		ret = bh_errf(err, errlen, "--net: mask= needs ip=");
		goto out;
	}
	if (params[N_IP].value) {
		if (bh_config_parse_ipv4(params[N_IP].value, false, &n.ip,
					 &why) < 0) {
			ret = bh_errf(err, errlen, "--net: ip=%s: %s",
				      params[N_IP].value, why);
			goto out;
		}
		if (bh_config_parse_ipv4(params[N_MASK].value
					     ? params[N_MASK].value
					     : BH_CONFIG_NET_DEFAULT_MASK,
					 true, &n.mask, &why) < 0) {
			ret = bh_errf(err, errlen, "--net: mask=%s: %s",
				      params[N_MASK].value, why);
			goto out;
		}
	}
	if (params[N_NQ].value) {
		ret = kv_uint("--net", &params[N_NQ], 2,
			      2 * BH_CONFIG_MAX_NET_PAIRS, &v, err, errlen);
		if (ret < 0)
			goto out;
		if (v % 2) {
			ret = bh_errf(err, errlen,
				      "--net: num_queues=%s is odd (a receive "
				      "and a transmit queue per pair)",
				      params[N_NQ].value);
			goto out;
		}
		if (params[N_FD].value && v != 2 * n.nfds) {
			ret = bh_errf(err, errlen,
				      "--net: num_queues=%s needs %u fds (one "
				      "per queue pair), fd= gives %u",
				      params[N_NQ].value, (unsigned int)v / 2,
				      n.nfds);
			goto out;
		}
		n.num_queues = (unsigned int)v;
	}
	if (params[N_QS].value) {
		ret = kv_uint("--net", &params[N_QS],
			      BH_CONFIG_NET_MIN_QUEUE_SIZE,
			      BH_CONFIG_NET_MAX_QUEUE_SIZE, &v, err, errlen);
		if (ret < 0)
			goto out;
		/* The split ring's index arithmetic needs a power of two. */
		if (v & (v - 1)) {
			ret = bh_errf(
			    err, errlen,
			    "--net: queue_size=%s is not a power of two",
			    params[N_QS].value);
			goto out;
		}
		n.queue_size = (unsigned int)v;
	}
	if (params[N_MTU].value) {
		ret = kv_uint("--net", &params[N_MTU], BH_CONFIG_NET_MIN_MTU,
			      BH_CONFIG_NET_MAX_MTU, &v, err, errlen);
		if (ret < 0)
			goto out;
		n.mtu = (unsigned int)v;
	}
	if (params[N_ID].value) {
		ret = check_id("--net", params[N_ID].value, err, errlen);
		if (ret < 0)
			goto out;
	}
	snprintf(defid, sizeof(defid), "net%u", cfg->nnets);
	n.tap = params[N_TAP].value ? bh_xstrdup(params[N_TAP].value) : NULL;
	n.id = bh_xstrdup(params[N_ID].value ? params[N_ID].value : defid);
	cfg->nets[cfg->nnets++] = n;
out:
	free(buf);
	return ret;
}

/* Cloud Hypervisor's --vsock cid=N,socket=PATH[,id=ID]. */
static int parse_vsock(const char *arg, struct bh_config *cfg, char *err,
		       size_t errlen)
{
	enum { V_CID, V_SOCKET, V_ID };
	struct kv_param params[] = {
		[V_CID] = { .key = "cid" },
		[V_SOCKET] = { .key = "socket" },
		[V_ID] = { .key = "id" },
	};
	struct bh_vsock_config *vs;
	uint64_t cid = 0;
	char *buf;
	int ret;

	ret = kv_parse("--vsock", arg, params, BH_ARRAY_SIZE(params), &buf, err,
		       errlen);
	if (ret < 0)
		return ret;
	if (device_count(cfg) >= BH_MAX_DEVICES) {
		ret = bh_errf(err, errlen,
			      "--vsock: more than %d virtio devices in all",
			      BH_MAX_DEVICES);
		goto out;
	}
	if (!params[V_CID].value || !params[V_SOCKET].value) {
		ret = bh_errf(err, errlen, "--vsock: %s= is required",
			      params[V_CID].value ? "socket" : "cid");
		goto out;
	}
	ret = kv_uint("--vsock", &params[V_CID], BH_CONFIG_VSOCK_MIN_CID,
		      BH_CONFIG_VSOCK_MAX_CID, &cid, err, errlen);
	if (ret < 0)
		goto out;
	if (strlen(params[V_SOCKET].value) > BH_CONFIG_VSOCK_SOCKET_MAX) {
		ret =
		    bh_errf(err, errlen,
			    "--vsock: socket=%s is longer than %d bytes (a "
			    "unix socket's sun_path)",
			    params[V_SOCKET].value, BH_CONFIG_VSOCK_SOCKET_MAX);
		goto out;
	}
	if (params[V_ID].value) {
		ret = check_id("--vsock", params[V_ID].value, err, errlen);
		if (ret < 0)
			goto out;
	}
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		abort();
	vs->cid = cid;
	vs->socket = bh_xstrdup(params[V_SOCKET].value);
	vs->id = bh_xstrdup(params[V_ID].value ? params[V_ID].value
					       : BH_CONFIG_VSOCK_ID);
	cfg->vsock = vs;
out:
	free(buf);
	return ret;
}

/*
 * Cloud Hypervisor's --pmem file=PATH,size=SIZE[,discard_writes=on|off]
 * [,id=ID]. The size is what the guest sees, so it is required here: the
 * guest-physical layout follows from the configuration alone.
 */
static int parse_pmem(const char *arg, struct bh_config *cfg, char *err,
		      size_t errlen)
{
	enum { P_FILE, P_SIZE, P_DISCARD, P_ID };
	struct kv_param params[] = {
		[P_FILE] = { .key = "file" },
		[P_SIZE] = { .key = "size" },
		[P_DISCARD] = { .key = "discard_writes" },
		[P_ID] = { .key = "id" },
	};
	struct bh_pmem_config pm = { 0 };
	const char *why;
	char defid[32];
	char *buf;
	int ret;

	ret = kv_parse("--pmem", arg, params, BH_ARRAY_SIZE(params), &buf, err,
		       errlen);
	if (ret < 0)
		return ret;
	if (device_count(cfg) >= BH_MAX_DEVICES) {
		ret = bh_errf(err, errlen,
			      "--pmem: more than %d virtio devices in all",
			      BH_MAX_DEVICES);
		goto out;
	}
	if (!params[P_FILE].value || !params[P_SIZE].value) {
		ret = bh_errf(err, errlen, "--pmem: %s= is required",
			      params[P_SIZE].value ? "file" : "size");
		goto out;
	}
	ret = kv_size("--pmem", &params[P_SIZE], &pm.size, err, errlen);
	if (ret < 0)
		goto out;
	ret = bh_config_check_pmem_size(pm.size, &why);
	if (ret < 0) {
		ret = bh_errf(err, errlen, "--pmem: size=%s %s",
			      params[P_SIZE].value, why);
		goto out;
	}
	if (params[P_DISCARD].value) {
		ret = kv_bool("--pmem", &params[P_DISCARD], &pm.discard_writes,
			      err, errlen);
		if (ret < 0)
			goto out;
	}
	if (params[P_ID].value) {
		ret = check_id("--pmem", params[P_ID].value, err, errlen);
		if (ret < 0)
			goto out;
	}
	snprintf(defid, sizeof(defid), "pmem%u", cfg->npmems);
	pm.file = bh_xstrdup(params[P_FILE].value);
	pm.id = bh_xstrdup(params[P_ID].value ? params[P_ID].value : defid);
	cfg->pmems[cfg->npmems++] = pm;
out:
	free(buf);
	return ret;
}

int bh_config_check_pmem_size(uint64_t size, const char **why)
{
	const char *w = NULL;

	if (size == 0 || size % BH_CONFIG_PMEM_ALIGN)
		w = "is not a non-zero multiple of 2 MiB (the guest maps "
		    "the region in 2 MiB sections)";
	else if (size > BH_CONFIG_MAX_PMEM_SIZE)
		w = "is larger than 1T";
	if (why)
		*why = w;
	return w ? -EINVAL : 0;
}

/* Cloud Hypervisor's --rng src=PATH; an empty value asks for the default. */
static int parse_rng(const char *arg, struct bh_config *cfg, char *err,
		     size_t errlen)
{
	enum { R_SRC };
	struct kv_param params[] = {
		[R_SRC] = { .key = "src" },
	};
	char *buf = NULL;
	int ret = 0;

	if (device_count(cfg) >= BH_MAX_DEVICES)
		return bh_errf(err, errlen,
			       "--rng: more than %d virtio devices in all",
			       BH_MAX_DEVICES);
	if (arg[0] == '\0') {
		set_string(&cfg->rng_source, BH_CONFIG_DEFAULT_RNG_SOURCE);
		return 0;
	}
	ret = kv_parse("--rng", arg, params, BH_ARRAY_SIZE(params), &buf, err,
		       errlen);
	if (ret < 0)
		return ret;
	set_string(&cfg->rng_source, params[R_SRC].value);
	free(buf);
	return 0;
}

/* Like --serial: a mode word, or file=PATH with its limits. */
static int parse_console(const char *arg, struct bh_config *cfg, char *err,
			 size_t errlen)
{
	enum bh_console_mode mode;
	int ret;

	if (strncmp(arg, "file=", 5) == 0) {
		mode = BH_CONSOLE_FILE;
	} else if (strcmp(arg, "off") == 0) {
		mode = BH_CONSOLE_OFF;
	} else if (strcmp(arg, "tty") == 0) {
		mode = BH_CONSOLE_TTY;
	} else {
		return bh_errf(
		    err, errlen,
		    "--console: '%s' is not one of off, tty, file=PATH", arg);
	}
	if (mode != BH_CONSOLE_OFF && device_count(cfg) >= BH_MAX_DEVICES)
		return bh_errf(err, errlen,
			       "--console: more than %d virtio devices in all",
			       BH_MAX_DEVICES);
	if (mode == BH_CONSOLE_FILE) {
		ret = parse_file_output(
		    "--console", arg + 5, &cfg->console_path,
		    &cfg->console_max_size, &cfg->console_on_full, err, errlen);
		if (ret < 0)
			return ret;
	}
	cfg->console = mode;
	return 0;
}

/* source_url=URL[,prefault=on|off]: the VM comes from a snapshot. */
static int parse_restore(const char *arg, struct bh_config *cfg, char *err,
			 size_t errlen)
{
	enum { R_URL, R_PREFAULT };
	struct kv_param params[] = {
		[R_URL] = { .key = "source_url" },
		[R_PREFAULT] = { .key = "prefault" },
	};
	bool prefault = false;
	char *buf = NULL;
	int ret;

	ret = kv_parse("--restore", arg, params, BH_ARRAY_SIZE(params), &buf,
		       err, errlen);
	if (ret < 0)
		return ret;
	if (!params[R_URL].value || !params[R_URL].value[0]) {
		ret = bh_errf(err, errlen,
			      "--restore: source_url= is required "
			      "(source_url=file:///DIRECTORY)");
		goto out;
	}
	/* Accepted as Cloud Hypervisor's; RAM is read in whole anyway. */
	if (params[R_PREFAULT].value)
		ret = kv_bool("--restore", &params[R_PREFAULT], &prefault, err,
			      errlen);
	if (ret == 0)
		set_string(&cfg->restore_url, params[R_URL].value);
out:
	free(buf);
	return ret;
}

/* ID=PATH: a restored VM's disk ID comes from PATH. */
static int parse_restore_disk(const char *arg, struct bh_config *cfg, char *err,
			      size_t errlen)
{
	const char *eq = strchr(arg, '=');
	size_t idlen = eq ? (size_t)(eq - arg) : 0;

	if (!eq || idlen == 0 || idlen > BH_CONFIG_ID_MAX || !eq[1])
		return bh_errf(err, errlen,
			       "--restore-disk: '%s' is not ID=PATH", arg);
	if (eq[1] != '/')
		return bh_errf(err, errlen,
			       "--restore-disk: '%s' must be an absolute path",
			       eq + 1);
	for (unsigned int i = 0; i < cfg->nrestore_disks; i++)
		if (strlen(cfg->restore_disks[i].id) == idlen &&
		    strncmp(cfg->restore_disks[i].id, arg, idlen) == 0)
			return bh_errf(err, errlen,
				       "--restore-disk: %.*s given twice",
				       (int)idlen, arg);
	if (cfg->nrestore_disks == BH_MAX_DEVICES)
		return bh_errf(err, errlen,
			       "--restore-disk: more than %d disks",
			       BH_MAX_DEVICES);
	cfg->restore_disks[cfg->nrestore_disks].id = strndup(arg, idlen);
	cfg->restore_disks[cfg->nrestore_disks].path = bh_xstrdup(eq + 1);
	if (!cfg->restore_disks[cfg->nrestore_disks].id)
		abort();
	cfg->nrestore_disks++;
	return 0;
}

/* on[,max=N] or off: what becomes of a device whose worker died. */
static int parse_restart(const char *arg, struct bh_config *cfg, char *err,
			 size_t errlen)
{
	enum { R_MAX };
	struct kv_param params[] = {
		[R_MAX] = { .key = "max" },
	};
	char *buf = NULL;
	uint64_t max = 0;
	int ret;

	if (strcmp(arg, "off") == 0) {
		cfg->restart_devices = false;
		return 0;
	}
	if (strncmp(arg, "on", 2) != 0 || (arg[2] != '\0' && arg[2] != ','))
		return bh_errf(err, errlen,
			       "--restart-devices: '%s' is not on, off or "
			       "on,max=N",
			       arg);
	cfg->restart_devices = true;
	if (arg[2] == '\0')
		return 0;
	ret = kv_parse("--restart-devices", arg + 3, params,
		       BH_ARRAY_SIZE(params), &buf, err, errlen);
	if (ret == 0 && params[R_MAX].value) {
		ret = kv_uint("--restart-devices", &params[R_MAX], 1,
			      BH_CONFIG_MAX_RESTARTS, &max, err, errlen);
		if (ret == 0)
			cfg->max_restarts = (unsigned int)max;
	}
	free(buf);
	return ret;
}

struct dev_id {
	const char *id;
	const char *opt;
	bool fixed; /* not chosen with id=: blame the other one */
};

static bool is_default_id(const char *id, const char *prefix, unsigned int i)
{
	char def[32];

	snprintf(def, sizeof(def), "%s%u", prefix, i);
	return strcmp(id, def) == 0;
}

/* Ids are how logs and the API tell devices apart: they must differ. */
static int check_device_ids(const struct bh_config *cfg, char *err,
			    size_t errlen)
{
	struct dev_id ids[BH_MAX_DEVICES];
	unsigned int n = 0, i, j, k;
	const char *other;

	/* The parsers keep device_count() within the table. */
	for (i = 0; i < cfg->ndisks; i++)
		ids[n++] = (struct dev_id){ cfg->disks[i].id, "--disk",
					    is_default_id(cfg->disks[i].id,
							  "disk", i) };
	for (i = 0; i < cfg->nnets; i++)
		ids[n++] =
		    (struct dev_id){ cfg->nets[i].id, "--net",
				     is_default_id(cfg->nets[i].id, "net", i) };
	for (i = 0; i < cfg->npmems; i++)
		ids[n++] = (struct dev_id){ cfg->pmems[i].id, "--pmem",
					    is_default_id(cfg->pmems[i].id,
							  "pmem", i) };
	if (cfg->vsock)
		ids[n++] = (struct dev_id){ cfg->vsock->id, "--vsock",
					    strcmp(cfg->vsock->id,
						   BH_CONFIG_VSOCK_ID) == 0 };
	if (cfg->rng_source)
		ids[n++] = (struct dev_id){ BH_CONFIG_RNG_ID, "--rng", true };
	if (cfg->console != BH_CONSOLE_OFF)
		ids[n++] =
		    (struct dev_id){ BH_CONFIG_CONSOLE_ID, "--console", true };
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++) {
			if (strcmp(ids[i].id, ids[j].id) != 0)
				continue;
			k = ids[j].fixed ? i : j;
			other = ids[k == i ? j : i].opt;
			if (strcmp(other, ids[k].opt) == 0)
				return bh_errf(err, errlen,
					       "%s: id=%s is used twice",
					       ids[k].opt, ids[k].id);
			return bh_errf(err, errlen,
				       "%s: id=%s is used twice (also by %s)",
				       ids[k].opt, ids[k].id, other);
		}
	return 0;
}

/* An inherited fd serves one purpose: the API's listening socket is no
 * TAP queue. (--net checks its fds against each other as it parses.) */
static int check_net_fds(const struct bh_config *cfg, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < cfg->nnets; i++)
		for (unsigned int j = 0; j < cfg->nets[i].nfds; j++)
			if (cfg->nets[i].fds[j] == cfg->api_socket_fd)
				return bh_errf(err, errlen,
					       "--net: fd %d is the "
					       "--api-socket's already",
					       cfg->api_socket_fd);
	return 0;
}

static int parse_path(const char *opt, const char *arg, char **dst, char *err,
		      size_t errlen)
{
	if (arg[0] == '\0')
		return bh_errf(err, errlen, "%s: the path is empty", opt);
	set_string(dst, arg);
	return 0;
}

/*
 * getopt_long reports every unusable long option the same way; find out
 * which problem it was so the message can say. arg is the whole element,
 * "--name" or "--name=value".
 */
static int bad_long_option(const char *arg, char *err, size_t errlen)
{
	const char *name = arg + 2;
	size_t len = strcspn(name, "=");
	const struct option *o, *match = NULL;
	int nmatch = 0;

	for (o = long_options; o->name; o++) {
		if (strncmp(o->name, name, len) != 0)
			continue;
		if (strlen(o->name) == len) {
			match = o;
			nmatch = 1;
			break;
		}
		match = o;
		nmatch++;
	}
	if (nmatch == 0)
		return bh_errf(err, errlen, "unknown option '--%.*s'", (int)len,
			       name);
	if (nmatch > 1) {
		char list[128];
		size_t used = 0;
		int r;

		list[0] = '\0';
		for (o = long_options; o->name && used + 1 < sizeof(list);
		     o++) {
			if (strncmp(o->name, name, len) != 0)
				continue;
			r = snprintf(list + used, sizeof(list) - used, "%s--%s",
				     used ? ", " : "", o->name);
			used += bh_fmt_stored(r, sizeof(list) - used);
		}
		return bh_errf(err, errlen, "ambiguous option '--%.*s' (%s)",
			       (int)len, name, list);
	}
	if (match->has_arg == no_argument && name[len] == '=')
		return bh_errf(err, errlen, "--%s does not take a value",
			       match->name);
	return bh_errf(err, errlen, "bad option '%s'", arg);
}

static int missing_argument(const char *arg, char *err, size_t errlen)
{
	const char *name = arg + 2;
	const struct option *o;

	/* getopt_long accepts unique abbreviations; name the option in full. */
	for (o = long_options; o->name; o++)
		if (strncmp(o->name, name, strlen(name)) == 0)
			return bh_errf(err, errlen, "--%s needs an argument",
				       o->name);
	return bh_errf(err, errlen, "%s needs an argument", arg);
}

static void config_defaults(struct bh_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cmdline = bh_xstrdup("");
	cfg->vcpus = BH_CONFIG_DEFAULT_VCPUS;
	cfg->memory = BH_CONFIG_DEFAULT_MEMORY;
	cfg->serial = BH_SERIAL_TTY;
	cfg->serial_max_size = BH_OUT_DEFAULT_MAX_SIZE;
	cfg->serial_on_full = BH_OUT_FULL_TRUNCATE;
	cfg->console_max_size = BH_OUT_DEFAULT_MAX_SIZE;
	cfg->console_on_full = BH_OUT_FULL_TRUNCATE;
	cfg->log_level = BH_LOG_INFO;
	cfg->name = bh_xstrdup("vm");
	cfg->max_restarts = BH_CONFIG_DEFAULT_RESTARTS;
	cfg->api_socket_fd = -1;
}

/* USER[:GROUP], each a name or a number; resolved later (bh_user_resolve),
 * so that a config file can be checked on another host. */
static int parse_user(const char *arg, struct bh_config *cfg, char *err,
		      size_t errlen)
{
	const char *colon = strchr(arg, ':');

	if (!arg[0] || colon == arg)
		return bh_errf(err, errlen,
			       "--user: no user name or id in '%s'", arg);
	if (colon && (!colon[1] || strchr(colon + 1, ':')))
		return bh_errf(err, errlen,
			       "--user: '%s' is not USER or USER:GROUP", arg);
	if (strlen(arg) > 256)
		return bh_errf(err, errlen, "--user: longer than 256 bytes");
	set_string(&cfg->user, arg);
	return 0;
}

static int parse_self_test(const char *arg, struct bh_config *cfg, char *err,
			   size_t errlen)
{
	static const struct {
		const char *name;
		enum bh_self_test which;
	} tests[] = {
		{ "controller", BH_SELF_TEST_CONTROLLER },
		{ "vcpu", BH_SELF_TEST_VCPU },
		{ "worker", BH_SELF_TEST_WORKER },
		{ "io-uring", BH_SELF_TEST_IO_URING },
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(tests); i++) {
		if (strcmp(arg, tests[i].name) == 0) {
			cfg->self_test = tests[i].which;
			return 0;
		}
	}
	return bh_errf(err, errlen,
		       "--self-test-seccomp: '%s' is not controller, vcpu, "
		       "worker or io-uring",
		       arg);
}

static int parse_check_host(const char *arg, struct bh_config *cfg, char *err,
			    size_t errlen)
{
	if (!arg || strcmp(arg, "all") == 0)
		cfg->check_host = BH_CHECK_HOST_ALL;
	else if (strcmp(arg, "kvm") == 0)
		cfg->check_host = BH_CHECK_HOST_KVM;
	else
		return bh_errf(err, errlen,
			       "--check-host: '%s' is not all or kvm "
			       "(write --check-host=kvm)",
			       arg);
	return 0;
}

static int parse_option(int c, const char *arg, struct bh_config *cfg,
			char *err, size_t errlen)
{
	switch (c) {
	case OPT_KERNEL:
		return parse_path("--kernel", arg, &cfg->kernel, err, errlen);
	case OPT_INITRAMFS:
		return parse_path("--initramfs", arg, &cfg->initramfs, err,
				  errlen);
	case OPT_CMDLINE:
		set_string(&cfg->cmdline, arg);
		return 0;
	case OPT_CPUS:
		return parse_cpus(arg, cfg, err, errlen);
	case OPT_MEMORY:
		return parse_memory(arg, cfg, err, errlen);
	case OPT_SERIAL:
		return parse_serial(arg, cfg, err, errlen);
	case OPT_NAME:
		return parse_name(arg, cfg, err, errlen);
	case OPT_LOG_LEVEL:
		if (bh_log_parse_level(arg, &cfg->log_level) < 0)
			return bh_errf(err, errlen,
				       "--log-level: '%s' is not one of error, "
				       "warn, info, debug",
				       arg);
		return 0;
	case OPT_EXIT_STATS:
		cfg->print_exit_stats = true;
		return 0;
	case OPT_DISK:
		return parse_disk(arg, cfg, err, errlen);
	case OPT_NET:
		return parse_net(arg, cfg, err, errlen);
	case OPT_VSOCK:
		return parse_vsock(arg, cfg, err, errlen);
	case OPT_PMEM:
		return parse_pmem(arg, cfg, err, errlen);
	case OPT_RNG:
		return parse_rng(arg, cfg, err, errlen);
	case OPT_CONSOLE:
		return parse_console(arg, cfg, err, errlen);
	case OPT_RESTART_DEVICES:
		return parse_restart(arg, cfg, err, errlen);
	case OPT_SANDBOX:
		if (strcmp(arg, "strict") == 0 || strcmp(arg, "relaxed") == 0) {
			cfg->strict_sandbox = strcmp(arg, "strict") == 0;
			return 0;
		}
		return bh_errf(err, errlen,
			       "--sandbox: '%s' is not relaxed or strict", arg);
	case OPT_USER:
		return parse_user(arg, cfg, err, errlen);
	case OPT_SELF_TEST_SECCOMP:
		return parse_self_test(arg, cfg, err, errlen);
	case OPT_CHECK_HOST:
		return parse_check_host(arg, cfg, err, errlen);
	case OPT_RESTORE:
		return parse_restore(arg, cfg, err, errlen);
	case OPT_RESTORE_DISK:
		return parse_restore_disk(arg, cfg, err, errlen);
	case OPT_API_SOCKET:
		return bh_api_socket_arg_parse(arg, &cfg->api_socket_path,
					       &cfg->api_socket_fd,
					       &cfg->api_access, err, errlen);
	case OPT_CONFIG:
		/* Read before parsing (bh_config_file_arg): its options are
		 * already in argv, ahead of the command line's. */
		return parse_path("--config", arg, &cfg->config_path, err,
				  errlen);
	}
	return bh_errf(err, errlen, "internal error: option %d", c);
}

/*
 * Without --kernel there is no VM yet: bulkhead serves the API and waits for
 * one (create). Only the process's own options make sense then; a VM option
 * would be silently lost, so it is refused.
 */
static int check_no_vm(const bool *seen, const struct bh_config *cfg, char *err,
		       size_t errlen)
{
	static const int vmm_opts[] = { OPT_NAME,
					OPT_LOG_LEVEL,
					OPT_API_SOCKET,
					OPT_CONFIG,
					OPT_SANDBOX,
					OPT_USER,
					OPT_SELF_TEST_SECCOMP,
					OPT_CHECK_HOST,
					OPT_RESTORE,
					OPT_RESTORE_DISK };

	if (cfg->check_host) {
		/* Only what changes how the check runs goes with it. */
		static const int check_opts[] = { OPT_NAME, OPT_LOG_LEVEL,
						  OPT_USER, OPT_CHECK_HOST };

		for (int c = OPT_FIRST; c < OPT_END; c++) {
			bool ok = false;

			for (size_t i = 0; i < BH_ARRAY_SIZE(check_opts); i++)
				ok |= c == check_opts[i];
			if (ok || !seen[c - OPT_FIRST])
				continue;
			for (size_t i = 0; long_options[i].name; i++)
				if (long_options[i].val == c)
					return bh_errf(
					    err, errlen,
					    "--check-host goes only with "
					    "--user, --name and --log-level, "
					    "not --%s",
					    long_options[i].name);
		}
		return 0;
	}

	if (cfg->self_test == BH_SELF_TEST_VCPU ||
	    cfg->self_test == BH_SELF_TEST_WORKER)
		return bh_errf(err, errlen,
			       "--self-test-seccomp vcpu or worker needs "
			       "--kernel: the test boots a VM");
	if (!cfg->api_socket_path && cfg->api_socket_fd < 0 &&
	    !cfg->restore_url && cfg->self_test != BH_SELF_TEST_CONTROLLER &&
	    cfg->self_test != BH_SELF_TEST_IO_URING)
		return bh_errf(
		    err, errlen,
		    "--kernel is required (or --api-socket alone, to "
		    "create the VM through the API)");
	for (int c = OPT_FIRST; c < OPT_END; c++) {
		bool vmm = false;

		for (size_t i = 0; i < BH_ARRAY_SIZE(vmm_opts); i++)
			vmm |= c == vmm_opts[i];
		if (!vmm && seen[c - OPT_FIRST]) {
			for (size_t i = 0; long_options[i].name; i++)
				if (long_options[i].val == c)
					return bh_errf(
					    err, errlen,
					    "--%s needs --kernel: "
					    "without one, the VM comes "
					    "from the API (create)",
					    long_options[i].name);
		}
	}
	return 0;
}

const char *bh_config_file_arg(int argc, char *const argv[])
{
	const char *path = NULL;
	int c;

	opterr = 0;
	optind = 0;
	while (!path && (c = getopt_long(argc, argv, short_options,
					 long_options, NULL)) != -1)
		if (c == OPT_CONFIG)
			path = optarg;
	optind = 0;
	return path;
}

/*
 * Uses getopt's global state (reset here, so repeated calls work), hence not
 * thread-safe.
 */
int bh_config_parse_args(int argc, char *const argv[], struct bh_config *cfg,
			 char *err, size_t errlen)
{
	bool seen[OPT_END - OPT_FIRST] = { false };
	bool verbose = false;
	int c, cur, ret;

	if (err && errlen > 0)
		err[0] = '\0';
	config_defaults(cfg);

	opterr = 0;
	optind = 0; /* GNU: also forgets a half-read cluster like "-vx" */
	for (;;) {
		cur = optind ? optind : 1;
		c = getopt_long(argc, argv, short_options, long_options, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'h':
			bh_config_usage(stdout);
			bh_config_free(cfg);
			return BH_CONFIG_EXIT;
		case 'V':
			printf("bulkhead %s\n", BULKHEAD_VERSION);
			bh_config_free(cfg);
			return BH_CONFIG_EXIT;
		case 'v':
			verbose = true;
			break;
		case ':':
			/* Only long options take arguments. */
			ret = missing_argument(argv[optind - 1], err, errlen);
			goto err;
		case '?':
			if (cur < argc && strncmp(argv[cur], "--", 2) == 0)
				ret = bad_long_option(argv[optind - 1], err,
						      errlen);
			else if ((unsigned char)optopt < 0x80 &&
				 isprint((unsigned char)optopt))
				ret = bh_errf(err, errlen,
					      "unknown option '-%c'", optopt);
			else
				ret = bh_errf(
				    err, errlen, "unknown option byte 0x%02x",
				    (unsigned int)(unsigned char)optopt);
			goto err;
		default:
			if (c < OPT_FIRST || c >= OPT_END) {
				ret = bh_errf(err, errlen,
					      "internal error: option %d", c);
				goto err;
			}
			/* A second value for the same option is more likely a
			 * mistake in a generated command line than a wish to
			 * override, so refuse rather than guess. */
			if (seen[c - OPT_FIRST] && c != OPT_EXIT_STATS &&
			    c != OPT_DISK && c != OPT_NET && c != OPT_PMEM &&
			    c != OPT_RESTORE_DISK) {
				ret = bh_errf(err, errlen, "--%s given twice",
					      long_name(c));
				goto err;
			}
			seen[c - OPT_FIRST] = true;
			ret = parse_option(c, optarg, cfg, err, errlen);
			if (ret < 0)
				goto err;
			break;
		}
	}

	if (optind < argc) {
		ret = bh_errf(err, errlen, "unexpected argument '%s'",
			      argv[optind]);
		goto err;
	}
	if (verbose && seen[OPT_LOG_LEVEL - OPT_FIRST]) {
		ret =
		    bh_errf(err, errlen,
			    "--verbose and --log-level both set the log level");
		goto err;
	}
	if (verbose)
		cfg->log_level = BH_LOG_DEBUG;
	if (cfg->nrestore_disks && !cfg->restore_url) {
		ret =
		    bh_errf(err, errlen, "--restore-disk goes with --restore");
		goto err;
	}
	if (cfg->kernel && cfg->restore_url) {
		ret = bh_errf(err, errlen,
			      "--restore takes the VM from the snapshot: it "
			      "goes without --kernel and the other VM "
			      "options");
		goto err;
	}
	if (!cfg->kernel || cfg->check_host) {
		ret = check_no_vm(seen, cfg, err, errlen);
		if (ret < 0)
			goto err;
		return BH_CONFIG_OK;
	}
	/* Both would read the same keys and write over each other. */
	if (cfg->console == BH_CONSOLE_TTY && cfg->serial == BH_SERIAL_TTY) {
		ret = bh_errf(err, errlen,
			      "--console tty and --serial tty cannot share the "
			      "terminal (the default is --serial tty: add "
			      "--serial off, null or file=PATH)");
		goto err;
	}
	ret = check_device_ids(cfg, err, errlen);
	if (ret < 0)
		goto err;
	ret = check_net_fds(cfg, err, errlen);
	if (ret < 0)
		goto err;
	return BH_CONFIG_OK;

err:
	bh_config_free(cfg);
	return ret;
}

void bh_config_free(struct bh_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->kernel);
	free(cfg->initramfs);
	free(cfg->cmdline);
	free(cfg->serial_path);
	free(cfg->name);
	for (unsigned int i = 0; i < cfg->ndisks; i++) {
		free(cfg->disks[i].path);
		free(cfg->disks[i].id);
		free(cfg->disks[i].serial);
	}
	for (unsigned int i = 0; i < cfg->nnets; i++) {
		free(cfg->nets[i].id);
		free(cfg->nets[i].tap);
	}
	for (unsigned int i = 0; i < cfg->npmems; i++) {
		free(cfg->pmems[i].file);
		free(cfg->pmems[i].id);
	}
	if (cfg->vsock) {
		free(cfg->vsock->id);
		free(cfg->vsock->socket);
		free(cfg->vsock);
	}
	free(cfg->rng_source);
	free(cfg->console_path);
	free(cfg->api_socket_path);
	free(cfg->restore_url);
	for (unsigned int i = 0; i < cfg->nrestore_disks; i++) {
		free(cfg->restore_disks[i].id);
		free(cfg->restore_disks[i].path);
	}
	free(cfg->config_path);
	free(cfg->user);
	/* Zeroed so that a second free, or a free after a failed parse that
	 * already freed, does nothing. */
	memset(cfg, 0, sizeof(*cfg));
}

void bh_config_usage(FILE *out)
{
	char def_mem[32], min_mem[32], max_mem[32], def_out[32];

	bh_format_size(BH_CONFIG_DEFAULT_MEMORY, def_mem, sizeof(def_mem));
	bh_format_size(BH_CONFIG_MIN_MEMORY, min_mem, sizeof(min_mem));
	bh_format_size(BH_CONFIG_MAX_MEMORY, max_mem, sizeof(max_mem));
	bh_format_size(BH_OUT_DEFAULT_MAX_SIZE, def_out, sizeof(def_out));

	/* One literal per output line, each short enough to stay whole; one
	 * call per section keeps the arguments next to their lines. */
	fprintf(out,
		"Usage: bulkhead --kernel PATH [OPTION]...\n"
		"Run one KVM virtual machine, each part in its own\n"
		"sandboxed process.\n"
		"\n"
		"Guest:\n"
		"  --kernel PATH       Linux bzImage to boot (required)\n"
		"  --initramfs PATH    initial RAM disk (default: none)\n"
		"  --cmdline STRING    kernel command line (default: empty)\n"
		"  --cpus boot=N       vCPUs, 1..%d (default: boot=%d);\n"
		"                      max=N only if equal to boot\n"
		"                      (CPU hotplug is not supported)\n"
		"  --memory size=SIZE  guest RAM, %s..%s, a multiple of 4K;\n"
		"                      suffix K, M, G or T (default: size=%s)\n"
		"  --serial MODE       the 16550 UART, guest ttyS0\n"
		"                      (default: tty):\n"
		"                        tty        console on this terminal\n"
		"                        off        no UART at all\n"
		"                        null       output discarded\n"
		"                        file=PATH[,max_size=SIZE]\n"
		"                             [,on_full=truncate|stop]\n"
		"                                   output written to PATH\n"
		"                                   (created or truncated,\n"
		"                                   a regular file or a\n"
		"                                   character device); once\n"
		"                                   it holds max_size\n"
		"                                   (4K..1T, default %s)\n"
		"                                   it is emptied (truncate,\n"
		"                                   the default) or the rest\n"
		"                                   is dropped (stop)\n"
		"                      output that the terminal or pipe does\n"
		"                      not take at once is held up to %uK,\n"
		"                      then dropped (never waited for)\n"
		"\n"
		"Devices (virtio-pci, each served by its own process;\n"
		"at most %d in all):\n"
		"  --disk path=PATH[,readonly=on|off][,direct=on|off]\n"
		"         [,num_queues=N][,queue_size=N][,id=ID][,serial=S]\n"
		"                      a raw disk image or block device;\n"
		"                      repeatable (defaults: readonly=off,\n"
		"                      direct=off, num_queues=1 (1..%d),\n"
		"                      queue_size=%d (a power of two,\n"
		"                      2..%d), id=diskN, serial empty)\n",
		BH_MAX_VCPUS, BH_CONFIG_DEFAULT_VCPUS, min_mem, max_mem,
		def_mem, def_out, (unsigned int)(BH_OUT_BUF_SIZE / 1024),
		BH_MAX_DEVICES, BH_CONFIG_MAX_DISK_QUEUES,
		BH_CONFIG_DISK_QUEUE_SIZE, BH_MAX_QUEUE_SIZE);
	fprintf(out,
		"  --net tap=NAME|fd=N|fd=[N,M,...][,mac=MAC][,ip=IP]\n"
		"        [,mask=MASK][,num_queues=N][,queue_size=N]\n"
		"        [,mtu=N][,id=ID]\n"
		"                      virtio-net on a TAP interface;\n"
		"                      repeatable. tap=NAME (1..%d bytes)\n"
		"                      is opened by bulkhead, fd= are TAP\n"
		"                      queues opened by the caller, one\n"
		"                      per queue pair. ip=, mask= (tap=\n"
		"                      only): the host side's IPv4 address\n"
		"                      (mask default %s).\n"
		"                      Defaults: mac random (locally\n"
		"                      administered), num_queues=2 (even,\n"
		"                      2..%d; with fd=, 2 per fd),\n"
		"                      queue_size=%d (a power of two,\n"
		"                      %d..%d), mtu=%d (%d..%d),\n"
		"                      id=netN\n"
		"  --vsock cid=CID,socket=PATH[,id=ID]\n"
		"                      virtio-vsock: the guest's context id\n"
		"                      CID (%d..%u); the host connects\n"
		"                      through the unix socket PATH (at most\n"
		"                      %d bytes), the guest's connections\n"
		"                      to port P reach PATH_P\n"
		"                      (default: id=%s)\n",
		BH_CONFIG_IFNAME_MAX, BH_CONFIG_NET_DEFAULT_MASK,
		2 * BH_CONFIG_MAX_NET_PAIRS, BH_CONFIG_NET_QUEUE_SIZE,
		BH_CONFIG_NET_MIN_QUEUE_SIZE, BH_CONFIG_NET_MAX_QUEUE_SIZE,
		BH_CONFIG_NET_MTU, BH_CONFIG_NET_MIN_MTU, BH_CONFIG_NET_MAX_MTU,
		BH_CONFIG_VSOCK_MIN_CID, BH_CONFIG_VSOCK_MAX_CID,
		BH_CONFIG_VSOCK_SOCKET_MAX, BH_CONFIG_VSOCK_ID);
	fprintf(out,
		"  --pmem file=PATH,size=SIZE[,discard_writes=on|off]\n"
		"        [,id=ID]\n"
		"                      virtio-pmem: PATH (a regular file or\n"
		"                      block device) mapped into the guest\n"
		"                      as /dev/pmemN of SIZE (a multiple of\n"
		"                      2M, at most 1T); a smaller regular\n"
		"                      file is grown to SIZE, a larger one\n"
		"                      shows its first SIZE bytes;\n"
		"                      discard_writes=on opens it read-only\n"
		"                      and the guest's writes are dropped;\n"
		"                      repeatable (defaults: discard_writes=\n"
		"                      off, id=pmemN)\n");
	fprintf(out,
		"  --rng src=PATH      virtio-rng fed from PATH\n"
		"                      (an empty value: src=%s)\n"
		"  --console MODE      virtio-console, guest hvc0\n"
		"                      (default: off): off, tty (this\n"
		"                      terminal; needs --serial other than\n"
		"                      tty) or file=PATH[,max_size=SIZE]\n"
		"                      [,on_full=truncate|stop] (output\n"
		"                      only; as for --serial)\n"
		"  --restart-devices on[,max=N]|off\n"
		"                      when a device's process dies: on\n"
		"                      starts a fresh one that finishes\n"
		"                      the requests in flight, at most N\n"
		"                      times a minute per device (1..%d,\n"
		"                      default %d); off (default) or past\n"
		"                      N, the device fails every request\n"
		"                      with an I/O error until the VM\n"
		"                      reboots\n"
		"\n"
		"Controller:\n"
		"  --name NAME         VM name for log prefixes: 1-%d of\n"
		"                      A-Z a-z 0-9 _ . - (default: vm)\n"
		"  --log-level LEVEL   error, warn, info or debug\n"
		"                      (default: info)\n"
		"  -v, --verbose       same as --log-level debug\n"
		"  --exit-stats        print VM-exit counts when the VM ends\n"
		"  --api-socket path=PATH|fd=N[,allow-uid=U[:U...]]\n"
		"               [,allow-gid=G[:G...]]\n"
		"                      serve the management API on a unix\n"
		"                      socket created at PATH (mode 0600),\n"
		"                      or on an inherited listening socket\n"
		"                      N; the VM boots at once, and bulkhead\n"
		"                      stays up after it stops until\n"
		"                      shutdown-vmm or a signal. allow-uid\n"
		"                      and allow-gid (numeric ids): only\n"
		"                      clients of those users, or in those\n"
		"                      groups, besides root and bulkhead's\n"
		"                      own user, may use it; others get\n"
		"                      PERMISSION_DENIED\n"
		"  --restore source_url=file:///DIR[,prefault=on|off]\n"
		"                      the VM from the snapshot in DIR\n"
		"                      (bulkhead-ctl snapshot), instead of\n"
		"                      --kernel and the other VM options;\n"
		"                      it starts paused with --api-socket\n"
		"                      (resume it there), running without\n"
		"  --restore-disk ID=PATH\n"
		"                      with --restore: open the snapshot's\n"
		"                      disk ID at PATH (a copy) instead;\n"
		"                      repeatable\n"
		"  --config FILE       read options from FILE first: one\n"
		"                      long option per line without its\n"
		"                      dashes ('memory size=1G'), '#'\n"
		"                      comments; the command line's own\n"
		"                      come after them\n"
		"  --sandbox relaxed|strict\n"
		"                      where the host refuses a device\n"
		"                      worker a namespace, the empty root\n"
		"                      or Landlock: relaxed (default) warns\n"
		"                      and runs, strict refuses to start\n"
		"  --user USER[:GROUP]\n"
		"                      started as root: once the backends\n"
		"                      are open, become USER (name or id)\n"
		"                      with its groups, or GROUP, with no\n"
		"                      capability; the runner and workers\n"
		"                      run as USER too (it needs /dev/kvm)\n"
		"  --check-host[=kvm]  check that a VM can run here, print a\n"
		"                      report (KVM, its speed, sandbox\n"
		"                      features) and exit: 0 if it can;\n"
		"                      =kvm checks /dev/kvm alone\n"
		"                      (given alone, or with --user)\n"
		"  --print-policy PROCESS\n"
		"                      print the seccomp allow-list of\n"
		"                      controller, launcher, binder, vcpu,\n"
		"                      blk, console, rng, net, vsock, pmem\n"
		"                      or all, and exit\n"
		"                      (given alone)\n"
		"  -h, --help          print this help and exit\n"
		"  -V, --version       print the version and exit\n"
		"\n"
		"Test option:\n"
		"  --self-test-seccomp controller|vcpu|worker|io-uring\n"
		"                      once sandboxed, the process makes a\n"
		"                      system call its seccomp filter\n"
		"                      refuses and must be killed for it\n"
		"                      (vcpu and worker need a VM config;\n"
		"                      io-uring: the controller, with\n"
		"                      io_uring_setup)\n"
		"\n"
		"Options may be written --option=VALUE too. An option\n"
		"that takes a value may be given only once.\n"
		"\n"
		"Exit status:\n"
		"  0  the guest powered off (with --api-socket:\n"
		"     shutdown-vmm)\n"
		"  1  the guest crashed or the VMM failed (the message\n"
		"     names the cause)\n"
		"  2  a bad option, an unusable kernel, initramfs or\n"
		"     device backend, or a host whose KVM cannot run\n"
		"     a stock guest at hardware speed; nothing of the\n"
		"     guest ran\n"
		"With --check-host: 0 a VM can run here, 1 it cannot.\n",
		BH_CONFIG_DEFAULT_RNG_SOURCE, BH_CONFIG_MAX_RESTARTS,
		BH_CONFIG_DEFAULT_RESTARTS, NAME_MAX_LEN);
}
