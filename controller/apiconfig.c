/* VmConfig <-> struct bh_config, with the command line's limits and error
 * messages that name the API's fields. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <bulkhead/platform.h>
#include <bulkhead/util.h>

#include "apiconfig.h"

/* The command line's limits that config.h does not export. */
#define NAME_MAX_LEN 32
#define PAGE_SIZE_4K 4096u

#define MODE(x) BULKHEAD__API__V1__CONSOLE_MODE__CONSOLE_MODE_##x
#define FULL(x) BULKHEAD__API__V1__OUTPUT_FULL__OUTPUT_FULL_##x

typedef Bulkhead__Api__V1__VmConfig VmConfig;

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		abort();
	return p;
}

/* The name lands in log prefixes, ids in worker arguments: both keep to
 * characters that are safe there, as on the command line. */
static int check_chars(const char *field, const char *s, char *err,
		       size_t errlen)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x80 &&
		    (isalnum(*p) || *p == '_' || *p == '.' || *p == '-'))
			continue;
		return bh_errf(
		    err, errlen,
		    "%s: '%s' contains byte 0x%02x (allowed: A-Z a-z "
		    "0-9 _ . -)",
		    field, s, *p);
	}
	return 0;
}

static int set_name(const VmConfig *vc, struct bh_config *cfg, char *err,
		    size_t errlen)
{
	const char *name = vc->name ? vc->name : "";
	int r;

	if (name[0] == '\0')
		return 0;
	if (strlen(name) > NAME_MAX_LEN)
		return bh_errf(err, errlen,
			       "name: '%s' is longer than %d characters", name,
			       NAME_MAX_LEN);
	r = check_chars("name", name, err, errlen);
	if (r < 0)
		return r;
	free(cfg->name);
	cfg->name = bh_xstrdup(name);
	return 0;
}

static int set_payload(const VmConfig *vc, struct bh_config *cfg, char *err,
		       size_t errlen)
{
	const Bulkhead__Api__V1__PayloadConfig *p = vc->payload;

	if (!p || !p->kernel || p->kernel[0] == '\0')
		return bh_errf(err, errlen, "payload.kernel: required");
	cfg->kernel = bh_xstrdup(p->kernel);
	if (p->initramfs && p->initramfs[0])
		cfg->initramfs = bh_xstrdup(p->initramfs);
	free(cfg->cmdline);
	cfg->cmdline = bh_xstrdup(p->cmdline);
	return 0;
}

static int set_cpus_memory(const VmConfig *vc, struct bh_config *cfg, char *err,
			   size_t errlen)
{
	char lim[32];
	uint64_t size;

	if (vc->cpus) {
		if (vc->cpus->boot < 1 || vc->cpus->boot > BH_MAX_VCPUS)
			return bh_errf(err, errlen,
				       "cpus.boot: %" PRIu32
				       " is out of range 1..%d",
				       vc->cpus->boot, BH_MAX_VCPUS);
		cfg->vcpus = vc->cpus->boot;
	}
	if (vc->memory) {
		size = vc->memory->size;
		if (size < BH_CONFIG_MIN_MEMORY) {
			bh_format_size(BH_CONFIG_MIN_MEMORY, lim, sizeof(lim));
			return bh_errf(err, errlen,
				       "memory.size: %" PRIu64
				       " is below the minimum %s",
				       size, lim);
		}
		if (size > BH_CONFIG_MAX_MEMORY) {
			bh_format_size(BH_CONFIG_MAX_MEMORY, lim, sizeof(lim));
			return bh_errf(err, errlen,
				       "memory.size: %" PRIu64
				       " is above the maximum %s",
				       size, lim);
		}
		/* Guest RAM is mapped and registered with KVM in whole
		 * pages. */
		if (size % PAGE_SIZE_4K)
			return bh_errf(err, errlen,
				       "memory.size: %" PRIu64
				       " is not a multiple of 4K",
				       size);
		cfg->memory = size;
	}
	return 0;
}

static const char *mode_name(Bulkhead__Api__V1__ConsoleMode m)
{
	switch (m) {
	case MODE(DEFAULT):
		return "DEFAULT";
	case MODE(OFF):
		return "OFF";
	case MODE(TTY):
		return "TTY";
	case MODE(NULL):
		return "NULL";
	case MODE(FILE):
		return "FILE";
	default:
		return NULL;
	}
}

/* A path belongs to FILE mode only: given with another mode it was meant
 * for something that would not happen. */
static int check_mode_path(const char *dev, Bulkhead__Api__V1__ConsoleMode m,
			   const char *path, char *err, size_t errlen)
{
	bool has_path = path && path[0];

	if (m == MODE(FILE) && !has_path)
		return bh_errf(err, errlen, "%s.path: required with mode FILE",
			       dev);
	if (m != MODE(FILE) && has_path)
		return bh_errf(err, errlen,
			       "%s.path: given with mode %s (only FILE takes a "
			       "path)",
			       dev, mode_name(m));
	return 0;
}

/* max_size and on_full, which only a FILE output has. */
static int set_file_limits(const char *dev, Bulkhead__Api__V1__ConsoleMode m,
			   uint64_t max_size,
			   Bulkhead__Api__V1__OutputFull full,
			   uint64_t *max_out, enum bh_out_full *full_out,
			   char *err, size_t errlen)
{
	char lo[32], hi[32];

	if (m != MODE(FILE) && (max_size || full != FULL(DEFAULT)))
		return bh_errf(err, errlen,
			       "%s.%s: given with mode %s (only FILE takes it)",
			       dev, max_size ? "max_size" : "on_full",
			       mode_name(m));
	switch (full) {
	case FULL(DEFAULT):
	case FULL(TRUNCATE):
		*full_out = BH_OUT_FULL_TRUNCATE;
		break;
	case FULL(STOP):
		*full_out = BH_OUT_FULL_STOP;
		break;
	default:
		return bh_errf(err, errlen, "%s.on_full: %d is not a value",
			       dev, (int)full);
	}
	if (max_size == 0) {
		*max_out = BH_OUT_DEFAULT_MAX_SIZE;
		return 0;
	}
	if (max_size < BH_OUT_MIN_MAX_SIZE || max_size > BH_OUT_MAX_MAX_SIZE) {
		bh_format_size(BH_OUT_MIN_MAX_SIZE, lo, sizeof(lo));
		bh_format_size(BH_OUT_MAX_MAX_SIZE, hi, sizeof(hi));
		return bh_errf(err, errlen,
			       "%s.max_size: %" PRIu64
			       " is out of range %s..%s",
			       dev, max_size, lo, hi);
	}
	*max_out = max_size;
	return 0;
}

static int set_serial(const VmConfig *vc, struct bh_config *cfg, char *err,
		      size_t errlen)
{
	const Bulkhead__Api__V1__SerialConfig *s = vc->serial;
	int r;

	if (!s)
		return 0;
	if (!mode_name(s->mode))
		return bh_errf(err, errlen, "serial.mode: %d is not a mode",
			       (int)s->mode);
	r = check_mode_path("serial", s->mode, s->path, err, errlen);
	if (r == 0)
		r = set_file_limits("serial", s->mode, s->max_size, s->on_full,
				    &cfg->serial_max_size, &cfg->serial_on_full,
				    err, errlen);
	if (r < 0)
		return r;
	switch (s->mode) {
	case MODE(OFF):
		cfg->serial = BH_SERIAL_OFF;
		break;
	case MODE(NULL):
		cfg->serial = BH_SERIAL_NULL;
		break;
	case MODE(FILE):
		cfg->serial = BH_SERIAL_FILE;
		cfg->serial_path = bh_xstrdup(s->path);
		break;
	default:
		cfg->serial = BH_SERIAL_TTY;
		break;
	}
	return 0;
}

static int set_console(const VmConfig *vc, struct bh_config *cfg, char *err,
		       size_t errlen)
{
	const Bulkhead__Api__V1__ConsoleConfig *c = vc->console;
	int r;

	if (!c)
		return 0;
	if (!mode_name(c->mode))
		return bh_errf(err, errlen, "console.mode: %d is not a mode",
			       (int)c->mode);
	if (c->mode == MODE(NULL))
		return bh_errf(err, errlen,
			       "console.mode: NULL is not a console mode (OFF, "
			       "TTY or FILE)");
	r = check_mode_path("console", c->mode, c->path, err, errlen);
	if (r == 0)
		r = set_file_limits("console", c->mode, c->max_size, c->on_full,
				    &cfg->console_max_size,
				    &cfg->console_on_full, err, errlen);
	if (r < 0)
		return r;
	switch (c->mode) {
	case MODE(TTY):
		cfg->console = BH_CONSOLE_TTY;
		break;
	case MODE(FILE):
		cfg->console = BH_CONSOLE_FILE;
		cfg->console_path = bh_xstrdup(c->path);
		break;
	default:
		cfg->console = BH_CONSOLE_OFF;
		break;
	}
	return 0;
}

/* One disk, named in messages by its field (base: "disks[1]"); without an
 * id it gets defid, or none when defid is NULL. */
static int set_disk(const Bulkhead__Api__V1__DiskConfig *d, const char *base,
		    const char *defid, struct bh_disk_config *out, char *err,
		    size_t errlen)
{
	char field[32];
	int r;

	snprintf(field, sizeof(field), "%s", base);
	if (!d)
		return bh_errf(err, errlen, "%s: empty", field);
	if (!d->path || d->path[0] == '\0')
		return bh_errf(err, errlen, "%s.path: required", field);
	if (d->num_queues > BH_CONFIG_MAX_DISK_QUEUES)
		return bh_errf(err, errlen,
			       "%s.num_queues: %" PRIu32
			       " is out of range 1..%d",
			       field, d->num_queues, BH_CONFIG_MAX_DISK_QUEUES);
	if (d->queue_size != 0 &&
	    (d->queue_size < 2 || d->queue_size > BH_MAX_QUEUE_SIZE))
		return bh_errf(err, errlen,
			       "%s.queue_size: %" PRIu32
			       " is out of range 2..%d",
			       field, d->queue_size, BH_MAX_QUEUE_SIZE);
	/* The split ring's index arithmetic needs a power of two. */
	if (d->queue_size & (d->queue_size - 1))
		return bh_errf(err, errlen,
			       "%s.queue_size: %" PRIu32
			       " is not a power of two",
			       field, d->queue_size);
	if (d->serial && strlen(d->serial) > BH_CONFIG_DISK_SERIAL_MAX)
		return bh_errf(err, errlen,
			       "%s.serial: '%s' is longer than %d bytes", field,
			       d->serial, BH_CONFIG_DISK_SERIAL_MAX);
	if (d->id && d->id[0]) {
		if (strlen(d->id) > BH_CONFIG_ID_MAX)
			return bh_errf(
			    err, errlen,
			    "%s.id: '%s' is longer than %d characters", field,
			    d->id, BH_CONFIG_ID_MAX);
		snprintf(field, sizeof(field), "%s.id", base);
		r = check_chars(field, d->id, err, errlen);
		if (r < 0)
			return r;
	}
	out->path = bh_xstrdup(d->path);
	out->id = d->id && d->id[0] ? bh_xstrdup(d->id)
		  : defid	    ? bh_xstrdup(defid)
				    : NULL;
	out->serial = bh_xstrdup(d->serial);
	out->readonly = d->readonly;
	out->direct = d->direct;
	out->num_queues = d->num_queues ? d->num_queues : 1;
	out->queue_size =
	    d->queue_size ? d->queue_size : BH_CONFIG_DISK_QUEUE_SIZE;
	return 0;
}

/* An id given in the API: the command line's length and characters. */
static int check_api_id(const char *field, const char *id, char *err,
			size_t errlen)
{
	if (strlen(id) > BH_CONFIG_ID_MAX)
		return bh_errf(err, errlen,
			       "%s: '%s' is longer than %d characters", field,
			       id, BH_CONFIG_ID_MAX);
	return check_chars(field, id, err, errlen);
}

/* As set_disk, for a net (base: "net[1]"). */
static int set_net(const Bulkhead__Api__V1__NetConfig *n, const char *base,
		   const char *defid, struct bh_net_config *out, char *err,
		   size_t errlen)
{
	char field[32];
	const char *why;
	int r;

	snprintf(field, sizeof(field), "%s", base);
	if (!n)
		return bh_errf(err, errlen, "%s: empty", field);
	/* A TAP opened for us would come as fds, which the API cannot
	 * carry: the command line's fd= has no counterpart here. */
	if (!n->tap || n->tap[0] == '\0')
		return bh_errf(err, errlen,
			       "%s.tap: required (the API cannot pass file "
			       "descriptors: fd= is for the command line "
			       "only)",
			       field);
	if (bh_config_check_ifname(n->tap, &why) < 0)
		return bh_errf(err, errlen, "%s.tap: %s: %s", field, n->tap,
			       why);
	if (n->mac && n->mac[0]) {
		if (bh_config_parse_mac(n->mac, out->mac, &why) < 0)
			return bh_errf(err, errlen, "%s.mac: %s: %s", field,
				       n->mac, why);
		out->mac_set = true;
	}
	if (n->mask && n->mask[0] && !(n->ip && n->ip[0]))
		return bh_errf(err, errlen, "%s.mask: needs ip", field);
	if (n->ip && n->ip[0]) {
		if (bh_config_parse_ipv4(n->ip, false, &out->ip, &why) < 0)
			return bh_errf(err, errlen, "%s.ip: %s: %s", field,
				       n->ip, why);
		if (bh_config_parse_ipv4(n->mask && n->mask[0]
					     ? n->mask
					     : BH_CONFIG_NET_DEFAULT_MASK,
					 true, &out->mask, &why) < 0)
			return bh_errf(err, errlen, "%s.mask: %s: %s", field,
				       n->mask, why);
	}
	if (n->num_queues != 0 &&
	    (n->num_queues < 2 || n->num_queues > 2 * BH_CONFIG_MAX_NET_PAIRS))
		return bh_errf(
		    err, errlen,
		    "%s.num_queues: %" PRIu32 " is out of range 2..%d", field,
		    n->num_queues, 2 * BH_CONFIG_MAX_NET_PAIRS);
	if (n->num_queues % 2)
		return bh_errf(err, errlen,
			       "%s.num_queues: %" PRIu32
			       " is odd (a receive and a transmit queue per "
			       "pair)",
			       field, n->num_queues);
	if (n->queue_size != 0 &&
	    (n->queue_size < BH_CONFIG_NET_MIN_QUEUE_SIZE ||
	     n->queue_size > BH_CONFIG_NET_MAX_QUEUE_SIZE))
		return bh_errf(
		    err, errlen,
		    "%s.queue_size: %" PRIu32 " is out of range %d..%d", field,
		    n->queue_size, BH_CONFIG_NET_MIN_QUEUE_SIZE,
		    BH_CONFIG_NET_MAX_QUEUE_SIZE);
	/* The split ring's index arithmetic needs a power of two. */
	if (n->queue_size & (n->queue_size - 1))
		return bh_errf(err, errlen,
			       "%s.queue_size: %" PRIu32
			       " is not a power of two",
			       field, n->queue_size);
	if (n->mtu != 0 &&
	    (n->mtu < BH_CONFIG_NET_MIN_MTU || n->mtu > BH_CONFIG_NET_MAX_MTU))
		return bh_errf(err, errlen,
			       "%s.mtu: %" PRIu32 " is out of range %d..%d",
			       field, n->mtu, BH_CONFIG_NET_MIN_MTU,
			       BH_CONFIG_NET_MAX_MTU);
	if (n->id && n->id[0]) {
		snprintf(field, sizeof(field), "%s.id", base);
		r = check_api_id(field, n->id, err, errlen);
		if (r < 0)
			return r;
	}
	out->tap = bh_xstrdup(n->tap);
	out->id = n->id && n->id[0] ? bh_xstrdup(n->id)
		  : defid	    ? bh_xstrdup(defid)
				    : NULL;
	out->num_queues = n->num_queues ? n->num_queues : 2;
	out->queue_size =
	    n->queue_size ? n->queue_size : BH_CONFIG_NET_QUEUE_SIZE;
	out->mtu = n->mtu ? n->mtu : BH_CONFIG_NET_MTU;
	return 0;
}

/* Without an id the vsock gets defid, or none when defid is NULL. */
static int set_vsock(const Bulkhead__Api__V1__VsockConfig *v, const char *defid,
		     struct bh_config *cfg, char *err, size_t errlen)
{
	struct bh_vsock_config *out;
	int r;

	if (!v)
		return 0;
	if (v->cid < BH_CONFIG_VSOCK_MIN_CID ||
	    v->cid > BH_CONFIG_VSOCK_MAX_CID)
		return bh_errf(err, errlen,
			       "vsock.cid: %" PRIu64 " is out of range %d..%u",
			       v->cid, BH_CONFIG_VSOCK_MIN_CID,
			       BH_CONFIG_VSOCK_MAX_CID);
	if (!v->socket || v->socket[0] == '\0')
		return bh_errf(err, errlen, "vsock.socket: required");
	if (strlen(v->socket) > BH_CONFIG_VSOCK_SOCKET_MAX)
		return bh_errf(err, errlen,
			       "vsock.socket: '%s' is longer than %d bytes (a "
			       "unix socket's sun_path)",
			       v->socket, BH_CONFIG_VSOCK_SOCKET_MAX);
	if (v->id && v->id[0]) {
		r = check_api_id("vsock.id", v->id, err, errlen);
		if (r < 0)
			return r;
	}
	out = xcalloc(1, sizeof(*out));
	out->cid = v->cid;
	out->socket = bh_xstrdup(v->socket);
	out->id = v->id && v->id[0] ? bh_xstrdup(v->id)
		  : defid	    ? bh_xstrdup(defid)
				    : NULL;
	cfg->vsock = out;
	return 0;
}

/*
 * The fields are named base.file, ...; without an id the device gets defid,
 * or none when defid is NULL. A size of 0 is refused unless size_optional
 * (add-pmem: then the file's size, read when it opens).
 */
static int set_pmem(const Bulkhead__Api__V1__PmemConfig *pm, const char *base,
		    const char *defid, bool size_optional,
		    struct bh_pmem_config *out, char *err, size_t errlen)
{
	char field[32];
	const char *why;
	int r;

	if (!pm)
		return bh_errf(err, errlen, "%s: empty", base);
	if (!pm->file || pm->file[0] == '\0')
		return bh_errf(err, errlen, "%s.file: required", base);
	if ((pm->size || !size_optional) &&
	    bh_config_check_pmem_size(pm->size, &why) < 0)
		return bh_errf(err, errlen, "%s.size: %" PRIu64 " %s", base,
			       pm->size, why);
	if (pm->id && pm->id[0]) {
		snprintf(field, sizeof(field), "%s.id", base);
		r = check_api_id(field, pm->id, err, errlen);
		if (r < 0)
			return r;
	}
	out->file = bh_xstrdup(pm->file);
	out->id = pm->id && pm->id[0] ? bh_xstrdup(pm->id)
		  : defid	      ? bh_xstrdup(defid)
				      : NULL;
	out->size = pm->size;
	out->discard_writes = pm->discard_writes;
	return 0;
}

/* One device's id, named by its field ("net[1]"). */
struct id_entry {
	char field[24];
	const char *id;
	bool defaulted; /* the id was not given: blame the other one */
};

static void add_id(struct id_entry *e, unsigned int *n, const char *list,
		   unsigned int i, const char *id, const char *prefix)
{
	char def[32];

	if (i == UINT32_MAX)
		snprintf(e[*n].field, sizeof(e[*n].field), "%s", list);
	else
		snprintf(e[*n].field, sizeof(e[*n].field), "%s[%u]", list, i);
	if (i == UINT32_MAX)
		snprintf(def, sizeof(def), "%s", prefix);
	else
		snprintf(def, sizeof(def), "%s%u", prefix, i);
	e[*n].id = id;
	e[*n].defaulted = strcmp(id, def) == 0;
	(*n)++;
}

/* Ids are how logs and the API tell devices apart: they must differ. */
static int check_ids(const struct bh_config *cfg, char *err, size_t errlen)
{
	struct id_entry e[BH_MAX_DEVICES];
	const struct id_entry *a, *b;
	unsigned int n = 0, i, j;

	/* The device count was checked first: the table holds them all. */
	for (i = 0; i < cfg->ndisks; i++)
		add_id(e, &n, "disks", i, cfg->disks[i].id, "disk");
	for (i = 0; i < cfg->nnets; i++)
		add_id(e, &n, "net", i, cfg->nets[i].id, "net");
	for (i = 0; i < cfg->npmems; i++)
		add_id(e, &n, "pmem", i, cfg->pmems[i].id, "pmem");
	if (cfg->vsock)
		add_id(e, &n, "vsock", UINT32_MAX, cfg->vsock->id,
		       BH_CONFIG_VSOCK_ID);
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(e[j].id, e[i].id) != 0)
				continue;
			a = e[i].defaulted && !e[j].defaulted ? &e[j] : &e[i];
			b = a == &e[i] ? &e[j] : &e[i];
			return bh_errf(err, errlen,
				       "%s.id: '%s' is used by %s already",
				       a->field, a->id, b->field);
		}
		if (cfg->rng_source && strcmp(e[i].id, BH_CONFIG_RNG_ID) == 0)
			return bh_errf(err, errlen,
				       "%s.id: '%s' is the rng's id",
				       e[i].field, e[i].id);
		if (cfg->console != BH_CONSOLE_OFF &&
		    strcmp(e[i].id, BH_CONFIG_CONSOLE_ID) == 0)
			return bh_errf(err, errlen,
				       "%s.id: '%s' is the console's id",
				       e[i].field, e[i].id);
	}
	return 0;
}

static int set_restart(const VmConfig *vc, struct bh_config *cfg, char *err,
		       size_t errlen)
{
	const Bulkhead__Api__V1__RestartConfig *rc = vc->restart_devices;

	if (!rc)
		return 0;
	if (rc->max > BH_CONFIG_MAX_RESTARTS)
		return bh_errf(err, errlen,
			       "restart_devices.max: %" PRIu32
			       " is out of range 1..%d",
			       rc->max, BH_CONFIG_MAX_RESTARTS);
	cfg->restart_devices = rc->enabled;
	if (rc->max)
		cfg->max_restarts = rc->max;
	return 0;
}

/*
 * The defaults are the command line's, taken from its parser so that there
 * is one place that sets them: a command line with just the required
 * --kernel, whose value is then dropped.
 */
static int set_defaults(struct bh_config *cfg, char *err, size_t errlen)
{
	char *argv[] = { "bulkhead", "--kernel=-", NULL };
	int r;

	r = bh_config_parse_args(2, argv, cfg, err, errlen);
	if (r != BH_CONFIG_OK)
		return bh_errf(err, errlen, "internal error: no defaults (%d)",
			       r);
	free(cfg->kernel);
	cfg->kernel = NULL;
	return 0;
}

int bh_apiconfig_from_proto(const VmConfig *vc, struct bh_config *cfg,
			    char *err, size_t errlen)
{
	unsigned int ndev, i;
	const char *list;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	r = set_defaults(cfg, err, errlen);
	if (r < 0)
		return r;
	if (!vc) {
		r = bh_errf(err, errlen, "config: required");
		goto err;
	}
	r = set_name(vc, cfg, err, errlen);
	if (r < 0)
		goto err;
	r = set_payload(vc, cfg, err, errlen);
	if (r < 0)
		goto err;
	r = set_cpus_memory(vc, cfg, err, errlen);
	if (r < 0)
		goto err;
	r = set_serial(vc, cfg, err, errlen);
	if (r < 0)
		goto err;
	r = set_console(vc, cfg, err, errlen);
	if (r < 0)
		goto err;
	r = set_restart(vc, cfg, err, errlen);
	if (r < 0)
		goto err;
	if (vc->rng)
		cfg->rng_source =
		    bh_xstrdup(vc->rng->src && vc->rng->src[0]
				   ? vc->rng->src
				   : BH_CONFIG_DEFAULT_RNG_SOURCE);

	r = set_vsock(vc->vsock, BH_CONFIG_VSOCK_ID, cfg, err, errlen);
	if (r < 0)
		goto err;

	/* Every virtio device takes one of the PCI slots. */
	ndev = (cfg->rng_source ? 1 : 0) +
	       (cfg->console != BH_CONSOLE_OFF ? 1 : 0) + (cfg->vsock ? 1 : 0);
	list = vc->n_net ? "net" : "disks";
	if (vc->n_disks > BH_MAX_DEVICES - ndev ||
	    vc->n_net > BH_MAX_DEVICES - ndev - vc->n_disks ||
	    vc->n_pmem > BH_MAX_DEVICES - ndev - vc->n_disks - vc->n_net) {
		r = bh_errf(err, errlen,
			    "%s: %zu disks, %zu nets, %zu pmems and %u other "
			    "virtio devices are more than %d in all",
			    vc->n_pmem ? "pmem" : list, vc->n_disks, vc->n_net,
			    vc->n_pmem, ndev, BH_MAX_DEVICES);
		goto err;
	}
	for (i = 0; i < vc->n_disks; i++) {
		char base[24], defid[24];

		snprintf(base, sizeof(base), "disks[%u]", i);
		snprintf(defid, sizeof(defid), "disk%u", i);
		r = set_disk(vc->disks[i], base, defid, &cfg->disks[i], err,
			     errlen);
		if (r < 0)
			goto err;
		cfg->ndisks++;
	}
	for (i = 0; i < vc->n_net; i++) {
		char base[24], defid[24];

		snprintf(base, sizeof(base), "net[%u]", i);
		snprintf(defid, sizeof(defid), "net%u", i);
		r = set_net(vc->net[i], base, defid, &cfg->nets[i], err,
			    errlen);
		if (r < 0)
			goto err;
		cfg->nnets++;
	}
	for (i = 0; i < vc->n_pmem; i++) {
		char base[24], defid[24];

		snprintf(base, sizeof(base), "pmem[%u]", i);
		snprintf(defid, sizeof(defid), "pmem%u", i);
		r = set_pmem(vc->pmem[i], base, defid, false, &cfg->pmems[i],
			     err, errlen);
		if (r < 0)
			goto err;
		cfg->npmems++;
	}
	r = check_ids(cfg, err, errlen);
	if (r < 0)
		goto err;
	/* Both would read the same keys and write over each other. */
	if (cfg->console == BH_CONSOLE_TTY && cfg->serial == BH_SERIAL_TTY) {
		r = bh_errf(err, errlen,
			    "console.mode: TTY cannot share the terminal with "
			    "serial.mode TTY (the default): set serial.mode to "
			    "OFF, NULL or FILE");
		goto err;
	}
	return 0;

err:
	bh_config_free(cfg);
	return r;
}

int bh_apiconfig_device_from_proto(const Bulkhead__Api__V1__DiskConfig *disk,
				   const Bulkhead__Api__V1__NetConfig *net,
				   const Bulkhead__Api__V1__VsockConfig *vsock,
				   const Bulkhead__Api__V1__PmemConfig *pmem,
				   struct bh_config *cfg, char *err,
				   size_t errlen)
{
	int n = !!disk + !!net + !!vsock + !!pmem;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	if (n != 1)
		return bh_errf(err, errlen, "%s",
			       n == 0 ? "the device's configuration: required"
				      : "one device at a time");
	r = set_defaults(cfg, err, errlen);
	if (r < 0)
		return r;
	/* Without an id the VMM names the device once it knows the VM's. */
	if (disk) {
		r = set_disk(disk, "disk", NULL, &cfg->disks[0], err, errlen);
		if (r == 0)
			cfg->ndisks = 1;
	} else if (net) {
		r = set_net(net, "net", NULL, &cfg->nets[0], err, errlen);
		if (r == 0)
			cfg->nnets = 1;
	} else if (pmem) {
		r = set_pmem(pmem, "pmem", NULL, true, &cfg->pmems[0], err,
			     errlen);
		if (r == 0)
			cfg->npmems = 1;
	} else {
		r = set_vsock(vsock, NULL, cfg, err, errlen);
	}
	if (r < 0)
		bh_config_free(cfg);
	return r;
}

static Bulkhead__Api__V1__ConsoleMode serial_mode(enum bh_serial_mode m)
{
	switch (m) {
	case BH_SERIAL_OFF:
		return MODE(OFF);
	case BH_SERIAL_NULL:
		return MODE(NULL);
	case BH_SERIAL_FILE:
		return MODE(FILE);
	default:
		return MODE(TTY);
	}
}

static Bulkhead__Api__V1__ConsoleMode console_mode(enum bh_console_mode m)
{
	switch (m) {
	case BH_CONSOLE_TTY:
		return MODE(TTY);
	case BH_CONSOLE_FILE:
		return MODE(FILE);
	default:
		return MODE(OFF);
	}
}

static Bulkhead__Api__V1__OutputFull full_proto(enum bh_out_full f)
{
	return f == BH_OUT_FULL_STOP ? FULL(STOP) : FULL(TRUNCATE);
}

/* An address in network byte order as a.b.c.d, or "" for 0 (not set). */
static char *ipv4_string(uint32_t addr)
{
	char s[INET_ADDRSTRLEN] = "";
	struct in_addr a = { .s_addr = addr };

	if (addr && !inet_ntop(AF_INET, &a, s, sizeof(s)))
		s[0] = '\0';
	return bh_xstrdup(s);
}

/* A net whose TAP came as fds has no tap name to report (the API carries
 * no fds), nor an address (with fd= we leave the interface alone). */
static Bulkhead__Api__V1__NetConfig *net_proto(const struct bh_net_config *n)
{
	Bulkhead__Api__V1__NetConfig *p = xcalloc(1, sizeof(*p));
	char mac[18] = "";

	bulkhead__api__v1__net_config__init(p);
	if (n->mac_set)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x",
			 n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4],
			 n->mac[5]);
	p->tap = bh_xstrdup(n->tap);
	p->ip = ipv4_string(n->ip);
	p->mask = ipv4_string(n->ip ? n->mask : 0);
	p->mac = bh_xstrdup(mac);
	p->num_queues = n->num_queues;
	p->queue_size = n->queue_size;
	p->id = bh_xstrdup(n->id);
	p->mtu = n->mtu;
	return p;
}

/*
 * Every string is malloc'd, even the empty ones, so that
 * protobuf_c_message_free_unpacked frees the message like an unpacked one.
 */
int bh_apiconfig_to_proto(const struct bh_config *cfg, VmConfig **out)
{
	static const Bulkhead__Api__V1__DiskConfig disk_init =
	    BULKHEAD__API__V1__DISK_CONFIG__INIT;
	VmConfig *vc = xcalloc(1, sizeof(*vc));
	unsigned int i;

	bulkhead__api__v1__vm_config__init(vc);
	vc->name = bh_xstrdup(cfg->name);
	vc->payload = xcalloc(1, sizeof(*vc->payload));
	bulkhead__api__v1__payload_config__init(vc->payload);
	vc->payload->kernel = bh_xstrdup(cfg->kernel);
	vc->payload->initramfs = bh_xstrdup(cfg->initramfs);
	vc->payload->cmdline = bh_xstrdup(cfg->cmdline);
	vc->cpus = xcalloc(1, sizeof(*vc->cpus));
	bulkhead__api__v1__cpus_config__init(vc->cpus);
	vc->cpus->boot = cfg->vcpus;
	vc->memory = xcalloc(1, sizeof(*vc->memory));
	bulkhead__api__v1__memory_config__init(vc->memory);
	vc->memory->size = cfg->memory;
	vc->serial = xcalloc(1, sizeof(*vc->serial));
	bulkhead__api__v1__serial_config__init(vc->serial);
	vc->serial->mode = serial_mode(cfg->serial);
	vc->serial->path =
	    bh_xstrdup(cfg->serial == BH_SERIAL_FILE ? cfg->serial_path : NULL);
	vc->console = xcalloc(1, sizeof(*vc->console));
	bulkhead__api__v1__console_config__init(vc->console);
	vc->console->mode = console_mode(cfg->console);
	vc->console->path = bh_xstrdup(
	    cfg->console == BH_CONSOLE_FILE ? cfg->console_path : NULL);
	if (cfg->serial == BH_SERIAL_FILE) {
		vc->serial->max_size = cfg->serial_max_size;
		vc->serial->on_full = full_proto(cfg->serial_on_full);
	}
	if (cfg->console == BH_CONSOLE_FILE) {
		vc->console->max_size = cfg->console_max_size;
		vc->console->on_full = full_proto(cfg->console_on_full);
	}

	vc->n_disks = cfg->ndisks;
	if (cfg->ndisks > 0)
		vc->disks = xcalloc(cfg->ndisks, sizeof(*vc->disks));
	for (i = 0; i < cfg->ndisks; i++) {
		const struct bh_disk_config *d = &cfg->disks[i];
		Bulkhead__Api__V1__DiskConfig *p;

		p = xcalloc(1, sizeof(*p));
		*p = disk_init;
		p->path = bh_xstrdup(d->path);
		p->readonly = d->readonly;
		p->direct = d->direct;
		p->num_queues = d->num_queues;
		p->queue_size = d->queue_size;
		p->id = bh_xstrdup(d->id);
		p->serial = bh_xstrdup(d->serial);
		vc->disks[i] = p;
	}
	vc->n_net = cfg->nnets;
	if (cfg->nnets > 0)
		vc->net = xcalloc(cfg->nnets, sizeof(*vc->net));
	for (i = 0; i < cfg->nnets; i++)
		vc->net[i] = net_proto(&cfg->nets[i]);
	vc->n_pmem = cfg->npmems;
	if (cfg->npmems > 0)
		vc->pmem = xcalloc(cfg->npmems, sizeof(*vc->pmem));
	for (i = 0; i < cfg->npmems; i++) {
		const struct bh_pmem_config *pm = &cfg->pmems[i];
		Bulkhead__Api__V1__PmemConfig *p = xcalloc(1, sizeof(*p));

		bulkhead__api__v1__pmem_config__init(p);
		p->file = bh_xstrdup(pm->file);
		p->size = pm->size;
		p->discard_writes = pm->discard_writes;
		p->id = bh_xstrdup(pm->id);
		vc->pmem[i] = p;
	}
	if (cfg->vsock) {
		vc->vsock = xcalloc(1, sizeof(*vc->vsock));
		bulkhead__api__v1__vsock_config__init(vc->vsock);
		vc->vsock->cid = cfg->vsock->cid;
		vc->vsock->socket = bh_xstrdup(cfg->vsock->socket);
		vc->vsock->id = bh_xstrdup(cfg->vsock->id);
	}
	vc->restart_devices = xcalloc(1, sizeof(*vc->restart_devices));
	bulkhead__api__v1__restart_config__init(vc->restart_devices);
	vc->restart_devices->enabled = cfg->restart_devices;
	vc->restart_devices->max = cfg->max_restarts;
	if (cfg->rng_source) {
		vc->rng = xcalloc(1, sizeof(*vc->rng));
		bulkhead__api__v1__rng_config__init(vc->rng);
		vc->rng->src = bh_xstrdup(cfg->rng_source);
	}
	*out = vc;
	return 0;
}

void bh_apiconfig_free_proto(VmConfig *vc)
{
	if (vc)
		protobuf_c_message_free_unpacked(&vc->base, NULL);
}
