/* bulkhead-ctl: one management API operation per run, against a bulkhead's
 * API socket, with text or JSON output. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/client.h>
#include <bulkhead/util.h>

#include "apiconfig.h"
#include "config.h"
#include "output.h"

#ifndef BULKHEAD_VERSION
#define BULKHEAD_VERSION "0.1.0"
#endif

/* Exit statuses. */
#define EXIT_OK	       0
#define EXIT_REFUSED   1 /* the server answered with an error */
#define EXIT_USAGE     2
#define EXIT_NO_ANSWER 3 /* no connection, no reply, a broken reply */

#define DEFAULT_TIMEOUT_S 30
/* snapshot and restore copy guest RAM before they answer: a large VM's
 * takes minutes. */
#define DEFAULT_COPY_TIMEOUT_S 3600

typedef Bulkhead__Api__V1__Request Request;
typedef Bulkhead__Api__V1__Response Response;

struct ctl {
	const char *socket;
	bool json;
	int timeout_ms;
};

struct subcmd;
typedef int (*subcmd_fn)(const struct ctl *ctl, const struct subcmd *sc,
			 int argc, char **argv);

struct subcmd {
	const char *name;
	Bulkhead__Api__V1__Request__OpCase op;
	subcmd_fn run;
	const char *args; /* synopsis of the arguments */
	const char *help; /* what it does, one line */
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
							     ...)
{
	va_list ap;

	fputs("bulkhead-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'bulkhead-ctl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- calling the server ----------------------------------------------------
 */

static void print_error_json(Bulkhead__Api__V1__ErrorCode code, const char *msg)
{
	fputs("{\"error\": {\"code\": ", stdout);
	ctl_json_string(stdout,
			code == BULKHEAD__API__V1__ERROR_CODE__ERROR_NONE
			    ? "NO_ANSWER"
			    : bh_client_error_code_name(code));
	fputs(", \"message\": ", stdout);
	ctl_json_string(stdout, msg);
	fputs("}}\n", stdout);
}

/* Prints the result of a successful call. */
static void print_result(const struct ctl *ctl, const Response *resp)
{
	const ProtobufCFieldDescriptor *f;
	const ProtobufCMessage *m = NULL;

	f = protobuf_c_message_descriptor_get_field(resp->base.descriptor,
						    resp->result_case);
	if (f)
		memcpy(&m, (const char *)resp + f->offset, sizeof(m));
	if (m)
		m = ctl_unwrap(m);
	if (ctl->json) {
		if (m)
			ctl_print_json(stdout, m);
		else
			fputs("{}\n", stdout);
		return;
	}
	/* Operations that only act say nothing on success. */
	if (m && m->descriptor->n_fields > 0)
		ctl_print_text(stdout, m);
}

/* Connects, sends req, prints the outcome; returns the exit status. */
static int call(const struct ctl *ctl, const char *name, Request *req)
{
	struct bh_client *c = NULL;
	Response *resp = NULL;
	char err[256];
	int r, status;

	r = bh_client_connect(ctl->socket, ctl->timeout_ms, "bulkhead-ctl", &c,
			      err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bulkhead-ctl: %s\n", err);
		if (ctl->json)
			print_error_json(0, err);
		return EXIT_NO_ANSWER;
	}
	r = bh_client_call(c, req, ctl->timeout_ms, &resp);
	if (r < 0) {
		fprintf(stderr, "bulkhead-ctl: %s: %s\n", name,
			bh_client_last_error(c));
		if (ctl->json)
			print_error_json(0, bh_client_last_error(c));
		status = EXIT_NO_ANSWER;
		goto out;
	}
	if (bh_client_error_code(resp) !=
	    BULKHEAD__API__V1__ERROR_CODE__ERROR_NONE) {
		fprintf(stderr, "bulkhead-ctl: %s: %s\n",
			bh_client_error_code_name(bh_client_error_code(resp)),
			bh_client_error_message(resp));
		if (ctl->json)
			print_error_json(bh_client_error_code(resp),
					 bh_client_error_message(resp));
		status = EXIT_REFUSED;
		goto out;
	}
	print_result(ctl, resp);
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_NO_ANSWER;
out:
	bh_client_response_free(resp);
	bh_client_close(c);
	return status;
}

/*
 * Sets req's operation to msg; the oneof's members all sit at one offset,
 * found through the descriptor so that one function serves every
 * operation.
 */
static void set_op(Request *req, Bulkhead__Api__V1__Request__OpCase op,
		   ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field(
		&bulkhead__api__v1__request__descriptor, op);

	memcpy((char *)req + f->offset, &msg, sizeof(msg));
	req->op_case = op;
}

/* An operation without arguments: an empty request message. */
static int run_plain(const struct ctl *ctl, const struct subcmd *sc, int argc,
		     char **argv)
{
	const ProtobufCFieldDescriptor *f;
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	ProtobufCMessage *m;
	int status;

	if (argc > 1)
		return usage_error("%s takes no arguments", sc->name);
	f = protobuf_c_message_descriptor_get_field(
	    &bulkhead__api__v1__request__descriptor, sc->op);
	m = calloc(1, ((const ProtobufCMessageDescriptor *)f->descriptor)
			  ->sizeof_message);
	if (!m)
		abort();
	protobuf_c_message_init(f->descriptor, m);
	set_op(&req, sc->op, m);
	status = call(ctl, sc->name, &req);
	free(m);
	return status;
}

/* ---- key=value arguments ----------------------------------------------- */

enum kv_type { KV_STRING, KV_U32, KV_U64, KV_SIZE, KV_BOOL };

struct kv {
	const char *key;
	enum kv_type type;
	void *dst; /* char **, uint32_t *, uint64_t *, protobuf_c_boolean * */
	bool required;
	bool seen;
};

static int kv_value(const char *cmd, struct kv *k, char *v)
{
	uint64_t n;

	switch (k->type) {
	case KV_STRING:
		*(char **)k->dst = v;
		return 0;
	case KV_U32:
	case KV_U64:
		if (bh_parse_uint(v, 0,
				  k->type == KV_U32 ? UINT32_MAX : UINT64_MAX,
				  &n) < 0)
			return usage_error("%s: %s=%s is not a number", cmd,
					   k->key, v);
		if (k->type == KV_U32)
			*(uint32_t *)k->dst = (uint32_t)n;
		else
			*(uint64_t *)k->dst = n;
		return 0;
	case KV_SIZE:
		if (bh_parse_size(v, &n) < 0)
			return usage_error("%s: %s=%s is not a size (a number "
					   "with an optional K, M, G or T)",
					   cmd, k->key, v);
		*(uint64_t *)k->dst = n;
		return 0;
	case KV_BOOL:
		if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
			*(protobuf_c_boolean *)k->dst = 1;
		else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
			*(protobuf_c_boolean *)k->dst = 0;
		else
			return usage_error("%s: %s=%s is not on or off", cmd,
					   k->key, v);
		return 0;
	}
	return EXIT_USAGE;
}

/* Parses "k1=v1,k2=v2" (modified in place) into keys. 0 or EXIT_USAGE. */
static int kv_parse(const char *cmd, char *arg, struct kv *keys, size_t n)
{
	char *item, *next, *eq;
	size_t i;
	int r;

	for (item = arg; item && *item; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		eq = strchr(item, '=');
		if (!eq || eq == item)
			return usage_error("%s: '%s' is not key=value", cmd,
					   item);
		*eq = '\0';
		for (i = 0; i < n; i++)
			if (strcmp(keys[i].key, item) == 0)
				break;
		if (i == n)
			return usage_error("%s: unknown key '%s'", cmd, item);
		if (keys[i].seen)
			return usage_error("%s: %s given twice", cmd, item);
		keys[i].seen = true;
		r = kv_value(cmd, &keys[i], eq + 1);
		if (r)
			return r;
	}
	for (i = 0; i < n; i++)
		if (keys[i].required && !keys[i].seen)
			return usage_error("%s: %s= is required", cmd,
					   keys[i].key);
	return 0;
}

/* The one KEY=VALUE,... argument of an add-* operation. */
static int one_kv_arg(const struct subcmd *sc, int argc, char **argv,
		      struct kv *keys, size_t n)
{
	if (argc != 2)
		return usage_error("%s takes one argument: %s", sc->name,
				   sc->args);
	return kv_parse(sc->name, argv[1], keys, n);
}

/* ---- operations with arguments ---------------------------------------- */

static void create_usage(void)
{
	printf("Usage: bulkhead-ctl [OPTION]... create --kernel PATH "
	       "[VM OPTION]...\n"
	       "Stores a VM configuration in the VMM (boot starts it).\n"
	       "The VM options are bulkhead's own, parsed by the same "
	       "code;\n"
	       "--log-level, --verbose and --exit-stats set up the bulkhead\n"
	       "process, not the VM, and are refused here.\n\n");
	bh_config_usage(stdout);
}

static int run_create(const struct ctl *ctl, const struct subcmd *sc, int argc,
		      char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__CreateRequest cr =
	    BULKHEAD__API__V1__CREATE_REQUEST__INIT;
	Bulkhead__Api__V1__VmConfig *vc = NULL;
	struct bh_config cfg;
	char err[512];
	int i, r;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			create_usage();
			return EXIT_OK;
		}
	}
	r = bh_config_parse_args(argc, argv, &cfg, err, sizeof(err));
	if (r == BH_CONFIG_EXIT)
		return EXIT_OK;
	if (r < 0)
		return usage_error("create: %s", err);
	/* These would be silently lost on the way: the API carries the VM's
	 * configuration only. */
	if (cfg.log_level != BH_LOG_INFO || cfg.print_exit_stats) {
		bh_config_free(&cfg);
		return usage_error("create: --log-level, --verbose and "
				   "--exit-stats are options of the bulkhead "
				   "process, not of the VM");
	}
	/* The API carries no file descriptors: a TAP opened here could not
	 * reach the VMM. */
	for (unsigned int n = 0; n < cfg.nnets; n++) {
		if (cfg.nets[n].nfds) {
			bh_config_free(&cfg);
			return usage_error("create: --net fd= cannot go "
					   "through the API (it carries no "
					   "file descriptors): use tap=NAME");
		}
	}
	bh_apiconfig_to_proto(&cfg, &vc);
	bh_config_free(&cfg);
	cr.config = vc;
	set_op(&req, sc->op, &cr.base);
	r = call(ctl, sc->name, &req);
	bh_apiconfig_free_proto(vc);
	return r;
}

/* Whether the KEY=VALUE,... list arg sets key. Values hold no commas, so
 * splitting at them is exact. */
static bool has_key(const char *arg, const char *key)
{
	size_t n = strlen(key);
	const char *p;

	for (p = arg; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, key, n) == 0 && p[n] == '=')
			return true;
	return false;
}

/* add-disk takes --disk's syntax, read by bulkhead's own parser. */
static int run_add_disk(const struct ctl *ctl, const struct subcmd *sc,
			int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddDiskRequest ad =
	    BULKHEAD__API__V1__ADD_DISK_REQUEST__INIT;
	Bulkhead__Api__V1__VmConfig *vc = NULL;
	struct bh_config cfg;
	char *pargv[] = { argv[0], "--kernel=/", "--disk", NULL, NULL };
	char err[512];
	int r;

	if (argc != 2)
		return usage_error("add-disk takes one argument: %s", sc->args);
	pargv[3] = argv[1];
	r = bh_config_parse_args(4, pargv, &cfg, err, sizeof(err));
	if (r != BH_CONFIG_OK)
		return usage_error("add-disk: %s", err);
	bh_apiconfig_to_proto(&cfg, &vc);
	bh_config_free(&cfg);
	ad.disk = vc->disks[0];
	/* Without id=, the parser named the disk after its own list; the
	 * VMM names it after the VM's instead. */
	if (!has_key(argv[1], "id")) {
		free(ad.disk->id);
		ad.disk->id = strdup("");
		if (!ad.disk->id)
			abort();
	}
	set_op(&req, sc->op, &ad.base);
	r = call(ctl, sc->name, &req);
	bh_apiconfig_free_proto(vc);
	return r;
}

static int run_add_device(const struct ctl *ctl, const struct subcmd *sc,
			  int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddDeviceRequest a =
	    BULKHEAD__API__V1__ADD_DEVICE_REQUEST__INIT;
	Bulkhead__Api__V1__DeviceConfig d =
	    BULKHEAD__API__V1__DEVICE_CONFIG__INIT;
	struct kv keys[] = {
		{ "path", KV_STRING, &d.path, true, false },
		{ "iommu", KV_BOOL, &d.iommu, false, false },
		{ "id", KV_STRING, &d.id, false, false },
	};
	int r = one_kv_arg(sc, argc, argv, keys, BH_ARRAY_SIZE(keys));

	if (r)
		return r;
	a.device = &d;
	set_op(&req, sc->op, &a.base);
	return call(ctl, sc->name, &req);
}

static int run_add_fs(const struct ctl *ctl, const struct subcmd *sc, int argc,
		      char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddFsRequest a =
	    BULKHEAD__API__V1__ADD_FS_REQUEST__INIT;
	Bulkhead__Api__V1__FsConfig d = BULKHEAD__API__V1__FS_CONFIG__INIT;
	struct kv keys[] = {
		{ "tag", KV_STRING, &d.tag, true, false },
		{ "socket", KV_STRING, &d.socket, true, false },
		{ "num_queues", KV_U32, &d.num_queues, false, false },
		{ "queue_size", KV_U32, &d.queue_size, false, false },
		{ "id", KV_STRING, &d.id, false, false },
	};
	int r = one_kv_arg(sc, argc, argv, keys, BH_ARRAY_SIZE(keys));

	if (r)
		return r;
	a.fs = &d;
	set_op(&req, sc->op, &a.base);
	return call(ctl, sc->name, &req);
}

static int run_add_pmem(const struct ctl *ctl, const struct subcmd *sc,
			int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddPmemRequest a =
	    BULKHEAD__API__V1__ADD_PMEM_REQUEST__INIT;
	Bulkhead__Api__V1__PmemConfig d = BULKHEAD__API__V1__PMEM_CONFIG__INIT;
	struct kv keys[] = {
		{ "file", KV_STRING, &d.file, true, false },
		{ "size", KV_SIZE, &d.size, false, false },
		{ "discard_writes", KV_BOOL, &d.discard_writes, false, false },
		{ "id", KV_STRING, &d.id, false, false },
	};
	int r = one_kv_arg(sc, argc, argv, keys, BH_ARRAY_SIZE(keys));

	if (r)
		return r;
	a.pmem = &d;
	set_op(&req, sc->op, &a.base);
	return call(ctl, sc->name, &req);
}

/* add-net takes --net's syntax, read by bulkhead's own parser. */
static int run_add_net(const struct ctl *ctl, const struct subcmd *sc, int argc,
		       char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddNetRequest a =
	    BULKHEAD__API__V1__ADD_NET_REQUEST__INIT;
	Bulkhead__Api__V1__VmConfig *vc = NULL;
	struct bh_config cfg;
	char *pargv[] = { argv[0], "--kernel=/", "--net", NULL, NULL };
	char err[512];
	int r;

	if (argc != 2)
		return usage_error("add-net takes one argument: %s", sc->args);
	pargv[3] = argv[1];
	r = bh_config_parse_args(4, pargv, &cfg, err, sizeof(err));
	if (r != BH_CONFIG_OK)
		return usage_error("add-net: %s", err);
	/* The API carries no file descriptors: a TAP opened here could not
	 * reach the VMM. */
	if (cfg.nets[0].nfds) {
		bh_config_free(&cfg);
		return usage_error("add-net: fd= cannot go through the API (it "
				   "carries no file descriptors): use "
				   "tap=NAME");
	}
	bh_apiconfig_to_proto(&cfg, &vc);
	bh_config_free(&cfg);
	a.net = vc->net[0];
	/* Without id=, the VMM names the device after the VM's. */
	if (!has_key(argv[1], "id")) {
		free(a.net->id);
		a.net->id = strdup("");
		if (!a.net->id)
			abort();
	}
	set_op(&req, sc->op, &a.base);
	r = call(ctl, sc->name, &req);
	bh_apiconfig_free_proto(vc);
	return r;
}

/* add-vsock takes --vsock's syntax, read by bulkhead's own parser. */
static int run_add_vsock(const struct ctl *ctl, const struct subcmd *sc,
			 int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__AddVsockRequest a =
	    BULKHEAD__API__V1__ADD_VSOCK_REQUEST__INIT;
	Bulkhead__Api__V1__VmConfig *vc = NULL;
	struct bh_config cfg;
	char *pargv[] = { argv[0], "--kernel=/", "--vsock", NULL, NULL };
	char err[512];
	int r;

	if (argc != 2)
		return usage_error("add-vsock takes one argument: %s",
				   sc->args);
	pargv[3] = argv[1];
	r = bh_config_parse_args(4, pargv, &cfg, err, sizeof(err));
	if (r != BH_CONFIG_OK)
		return usage_error("add-vsock: %s", err);
	bh_apiconfig_to_proto(&cfg, &vc);
	bh_config_free(&cfg);
	a.vsock = vc->vsock;
	if (!has_key(argv[1], "id")) {
		free(a.vsock->id);
		a.vsock->id = strdup("");
		if (!a.vsock->id)
			abort();
	}
	set_op(&req, sc->op, &a.base);
	r = call(ctl, sc->name, &req);
	bh_apiconfig_free_proto(vc);
	return r;
}

static int run_remove_device(const struct ctl *ctl, const struct subcmd *sc,
			     int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__RemoveDeviceRequest rd =
	    BULKHEAD__API__V1__REMOVE_DEVICE_REQUEST__INIT;

	if (argc != 2 || argv[1][0] == '\0')
		return usage_error("remove-device takes one argument: %s",
				   sc->args);
	rd.id = argv[1];
	set_op(&req, sc->op, &rd.base);
	return call(ctl, sc->name, &req);
}

/* Whether argv[i] is the flag name; a flag may be given once. */
static bool flag(const char *arg, const char *name, bool *seen, int *bad)
{
	if (strcmp(arg, name) != 0)
		return false;
	if (*seen)
		*bad = usage_error("%s given twice", name);
	*seen = true;
	return true;
}

static int run_snapshot(const struct ctl *ctl, const struct subcmd *sc,
			int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__SnapshotRequest s =
	    BULKHEAD__API__V1__SNAPSHOT_REQUEST__INIT;

	if (argc != 2 || argv[1][0] == '\0')
		return usage_error("snapshot takes one argument: %s", sc->args);
	s.destination_url = argv[1];
	set_op(&req, sc->op, &s.base);
	return call(ctl, sc->name, &req);
}

static int run_restore(const struct ctl *ctl, const struct subcmd *sc, int argc,
		       char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__RestoreRequest s =
	    BULKHEAD__API__V1__RESTORE_REQUEST__INIT;
	bool prefault = false;
	int i, bad = 0;

	for (i = 1; i < argc; i++) {
		if (flag(argv[i], "--prefault", &prefault, &bad)) {
			if (bad)
				return bad;
			continue;
		}
		if (argv[i][0] == '-' || s.source_url[0])
			return usage_error("restore: unexpected '%s' (%s)",
					   argv[i], sc->args);
		s.source_url = argv[i];
	}
	if (!s.source_url[0])
		return usage_error("restore needs a source URL (%s)", sc->args);
	s.prefault = prefault;
	set_op(&req, sc->op, &s.base);
	return call(ctl, sc->name, &req);
}

/*
 * URL[,local=on|off][,downtime=MS]: the options after the URL, split off
 * from its end (a path may hold a comma, but not one followed by these).
 */
static int migration_opts(char *url, bool *local, uint32_t *downtime)
{
	char *c;

	while ((c = strrchr(url, ',')) != NULL) {
		char *kv = c + 1, *end;
		unsigned long v;

		if (strcmp(kv, "local=on") == 0) {
			*local = true;
		} else if (strcmp(kv, "local=off") == 0) {
			*local = false;
		} else if (strncmp(kv, "downtime=", 9) == 0) {
			errno = 0;
			v = strtoul(kv + 9, &end, 10);
			if (kv[9] == '\0' || *end || errno || v == 0 ||
			    v > 600000)
				return usage_error(
				    "send-migration: downtime=%s "
				    "is not a number of ms in "
				    "1..600000",
				    kv + 9);
			*downtime = (uint32_t)v;
		} else if (strncmp(kv, "local=", 6) == 0) {
			return usage_error("send-migration: %s: on or off", kv);
		} else {
			break;
		}
		*c = '\0';
	}
	return 0;
}

static int run_send_migration(const struct ctl *ctl, const struct subcmd *sc,
			      int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__SendMigrationRequest s =
	    BULKHEAD__API__V1__SEND_MIGRATION_REQUEST__INIT;
	bool local = false, local_flag = false;
	uint32_t downtime = 0;
	char *url = NULL;
	int i, bad = 0, r;

	for (i = 1; i < argc; i++) {
		if (flag(argv[i], "--local", &local_flag, &bad)) {
			if (bad)
				return bad;
			continue;
		}
		if (argv[i][0] == '-' || url)
			return usage_error("send-migration: unexpected '%s' "
					   "(%s)",
					   argv[i], sc->args);
		url = argv[i];
	}
	if (!url || !url[0])
		return usage_error("send-migration needs a destination URL "
				   "(%s)",
				   sc->args);
	if (strncmp(url, "destination_url=", 16) == 0)
		url += 16;
	r = migration_opts(url, &local, &downtime);
	if (r)
		return r;
	s.destination_url = url;
	s.local = local || local_flag;
	s.downtime_ms = downtime;
	set_op(&req, sc->op, &s.base);
	return call(ctl, sc->name, &req);
}

static int run_receive_migration(const struct ctl *ctl, const struct subcmd *sc,
				 int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__ReceiveMigrationRequest s =
	    BULKHEAD__API__V1__RECEIVE_MIGRATION_REQUEST__INIT;

	if (argc != 2 || argv[1][0] == '\0')
		return usage_error("receive-migration takes one argument: %s",
				   sc->args);
	s.receiver_url = argv[1];
	if (strncmp(s.receiver_url, "receiver_url=", 13) == 0)
		s.receiver_url += 13;
	set_op(&req, sc->op, &s.base);
	return call(ctl, sc->name, &req);
}

/* The value after an option of a subcommand, as "--opt VALUE". */
static int opt_size(const char *cmd, int argc, char **argv, int *i,
		    uint64_t *out)
{
	const char *opt = argv[*i];

	if (*i + 1 >= argc)
		return usage_error("%s: %s needs a value", cmd, opt);
	(*i)++;
	if (bh_parse_size(argv[*i], out) < 0)
		return usage_error("%s: %s %s is not a size (a number with an "
				   "optional K, M, G or T)",
				   cmd, opt, argv[*i]);
	return 0;
}

static int run_resize(const struct ctl *ctl, const struct subcmd *sc, int argc,
		      char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__ResizeRequest s =
	    BULKHEAD__API__V1__RESIZE_REQUEST__INIT;
	uint64_t v;
	int i, r;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cpus") == 0) {
			if (i + 1 >= argc ||
			    bh_parse_uint(argv[i + 1], 1, UINT32_MAX, &v) < 0)
				return usage_error("resize: --cpus needs a "
						   "number of vCPUs");
			i++;
			s.vcpus_case =
			    BULKHEAD__API__V1__RESIZE_REQUEST__VCPUS_DESIRED_VCPUS;
			s.desired_vcpus = (uint32_t)v;
		} else if (strcmp(argv[i], "--memory") == 0) {
			r = opt_size("resize", argc, argv, &i, &v);
			if (r)
				return r;
			s.ram_case =
			    BULKHEAD__API__V1__RESIZE_REQUEST__RAM_DESIRED_RAM;
			s.desired_ram = v;
		} else if (strcmp(argv[i], "--balloon") == 0) {
			r = opt_size("resize", argc, argv, &i, &v);
			if (r)
				return r;
			s.balloon_case =
			    BULKHEAD__API__V1__RESIZE_REQUEST__BALLOON_DESIRED_BALLOON;
			s.desired_balloon = v;
		} else {
			return usage_error("resize: unexpected '%s' (%s)",
					   argv[i], sc->args);
		}
	}
	if (argc < 2)
		return usage_error("resize needs at least one of %s", sc->args);
	set_op(&req, sc->op, &s.base);
	return call(ctl, sc->name, &req);
}

static int run_resize_zone(const struct ctl *ctl, const struct subcmd *sc,
			   int argc, char **argv)
{
	Request req = BULKHEAD__API__V1__REQUEST__INIT;
	Bulkhead__Api__V1__ResizeZoneRequest s =
	    BULKHEAD__API__V1__RESIZE_ZONE_REQUEST__INIT;

	if (argc != 3 || argv[1][0] == '\0')
		return usage_error("resize-zone takes two arguments: %s",
				   sc->args);
	if (bh_parse_size(argv[2], &s.desired_ram) < 0)
		return usage_error("resize-zone: %s is not a size (a number "
				   "with an optional K, M, G or T)",
				   argv[2]);
	s.id = argv[1];
	set_op(&req, sc->op, &s.base);
	return call(ctl, sc->name, &req);
}

#define OP(x) BULKHEAD__API__V1__REQUEST__OP_##x

static const struct subcmd subcmds[] = {
	{ "ping", OP(PING), run_plain, "",
	  "whether the VMM answers: version, pid, operations" },
	{ "create", OP(CREATE), run_create, "--kernel PATH [VM OPTION]...",
	  "store a VM configuration (bulkhead's options; create --help)" },
	{ "info", OP(INFO), run_plain, "",
	  "the VM's configuration, state, memory and devices" },
	{ "boot", OP(BOOT), run_plain, "", "start the created VM" },
	{ "pause", OP(PAUSE), run_plain, "", "stop the vCPUs" },
	{ "resume", OP(RESUME), run_plain, "", "run the paused vCPUs again" },
	{ "shutdown", OP(SHUTDOWN), run_plain, "",
	  "stop the VM at once, keeping its configuration" },
	{ "reboot", OP(REBOOT), run_plain, "",
	  "shut down and boot the same configuration" },
	{ "power-button", OP(POWER_BUTTON), run_plain, "",
	  "press the ACPI power button (the guest shuts down)" },
	{ "counters", OP(COUNTERS), run_plain, "", "per-device counters" },
	{ "delete", OP(DELETE), run_plain, "",
	  "shut down if needed and forget the VM" },
	{ "shutdown-vmm", OP(SHUTDOWN_VMM), run_plain, "",
	  "delete the VM and end the bulkhead process" },
	{ "snapshot", OP(SNAPSHOT), run_snapshot, "DESTINATION_URL",
	  "write the paused VM's state" },
	{ "restore", OP(RESTORE), run_restore, "SOURCE_URL [--prefault]",
	  "create the VM from a snapshot" },
	{ "resize", OP(RESIZE), run_resize,
	  "[--cpus N] [--memory SIZE] [--balloon SIZE]",
	  "change vCPUs, RAM or the balloon" },
	{ "resize-zone", OP(RESIZE_ZONE), run_resize_zone, "ID SIZE",
	  "change the RAM of a memory zone" },
	{ "add-device", OP(ADD_DEVICE), run_add_device,
	  "path=SYSFS_PATH[,iommu=on|off][,id=ID]",
	  "hot-plug a host device (VFIO)" },
	{ "remove-device", OP(REMOVE_DEVICE), run_remove_device, "ID",
	  "hot-unplug a device: the answer comes once the guest has\n"
	  "      ejected it, or after 10 s (the removal stays asked for)" },
	{ "add-disk", OP(ADD_DISK), run_add_disk,
	  "path=PATH[,readonly=on|off][,...]",
	  "hot-plug a disk (--disk's syntax)" },
	{ "add-fs", OP(ADD_FS), run_add_fs,
	  "tag=TAG,socket=PATH[,num_queues=N][,queue_size=N][,id=ID]",
	  "hot-plug a virtio-fs device" },
	{ "add-pmem", OP(ADD_PMEM), run_add_pmem,
	  "file=PATH[,size=SIZE][,discard_writes=on|off][,id=ID]",
	  "hot-plug a virtio-pmem device (--pmem's keys; without size=,\n"
	  "      the file's own size)" },
	{ "add-net", OP(ADD_NET), run_add_net,
	  "tap=IF[,mac=MAC][,num_queues=N][,queue_size=N]\n"
	  "          [,mtu=N][,id=ID]",
	  "hot-plug a virtio-net device (--net's syntax; no ip= or fd=)" },
	{ "add-vsock", OP(ADD_VSOCK), run_add_vsock,
	  "cid=CID,socket=PATH[,id=ID]",
	  "hot-plug a virtio-vsock device (--vsock's syntax; bulkhead gives\n"
	  "      a vsock device at start-up only, and refuses this)" },
	{ "send-migration", OP(SEND_MIGRATION), run_send_migration,
	  "URL[,local=on][,downtime=MS]",
	  "migrate the VM to a bulkhead receiving at URL (unix:PATH or\n"
	  "      tcp:HOST:PORT); answers once it runs there, and this\n"
	  "      bulkhead exits; local=on (unix: only) passes guest RAM as\n"
	  "      an fd; downtime= the longest pause accepted (300 ms)" },
	{ "receive-migration", OP(RECEIVE_MIGRATION), run_receive_migration,
	  "URL",
	  "listen at URL (unix:PATH or tcp:ADDRESS:PORT) for one\n"
	  "      migration and run its VM; answers once it runs" },
	{ "migration-status", OP(MIGRATION_STATUS), run_plain, "",
	  "the migration under way (pass, pages, rate, downtime), or the\n"
	  "      last one's outcome" },
	{ "abandon-migration", OP(ABANDON_MIGRATION), run_plain, "",
	  "give the migration under way up (a sending VM runs on)" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out,
		"Usage: bulkhead-ctl --api-socket PATH [--json] [--timeout S]\n"
		"                    COMMAND [ARGUMENT]...\n"
		"Carries out one operation of a bulkhead VMM through its\n"
		"management API socket.\n"
		"\n"
		"Options:\n"
		"  --api-socket PATH  the VMM's API socket (required;\n"
		"                     path=PATH is accepted too)\n"
		"  --json             print the result, or the error, as one\n"
		"                     JSON object on stdout\n"
		"  --timeout S        seconds to wait for the connection and\n"
		"                     again for the reply (default: %d, and\n"
		"                     %d for snapshot, restore and the\n"
		"                     migrations, which copy guest RAM;\n"
		"                     decimals allowed)\n"
		"  -h, --help         print this help and exit\n"
		"  -V, --version      print the version and exit\n"
		"\n"
		"Commands:\n",
		DEFAULT_TIMEOUT_S, DEFAULT_COPY_TIMEOUT_S);
	for (i = 0; i < BH_ARRAY_SIZE(subcmds); i++) {
		fprintf(out, "  %s%s%s\n", subcmds[i].name,
			subcmds[i].args[0] ? " " : "", subcmds[i].args);
		fprintf(out, "      %s\n", subcmds[i].help);
	}
	fprintf(out,
		"\n"
		"Output: the operation's result as indented 'name: value'\n"
		"lines (nothing for operations that only act), or JSON with\n"
		"--json, field names as in api.proto. Errors go to stderr as\n"
		"'bulkhead-ctl: CODE: message'. Operations the VMM does not\n"
		"carry out yet fail with NOT_SUPPORTED_YET ('ping' lists the\n"
		"ones it does).\n"
		"\n"
		"Exit status:\n"
		"  0  the operation succeeded\n"
		"  1  the VMM refused or failed it (code and message on\n"
		"     stderr)\n"
		"  2  bad usage; nothing was sent\n"
		"  3  no answer: the socket could not be reached, or the\n"
		"     VMM did not reply in time or broke the protocol\n");
}

static int parse_timeout(const char *s, int *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 ||
	    v > 24 * 3600)
		return -EINVAL;
	*ms = (int)(v * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_SOCKET = 0x100, OPT_JSON, OPT_TIMEOUT };
	static const struct option opts[] = {
		{ "api-socket", required_argument, NULL, OPT_SOCKET },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl ctl = { .timeout_ms = DEFAULT_TIMEOUT_S * 1000 };
	bool timeout_set = false;
	const char *cmd;
	size_t i;
	int c;

	opterr = 0;
	/* '+': the options before the command are ours, the rest its own. */
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			if (strncmp(optarg, "path=", 5) == 0)
				optarg += 5;
			if (optarg[0] == '\0')
				return usage_error("--api-socket: the path is "
						   "empty");
			ctl.socket = optarg;
			break;
		case OPT_JSON:
			ctl.json = true;
			break;
		case OPT_TIMEOUT:
			if (parse_timeout(optarg, &ctl.timeout_ms) < 0)
				return usage_error("--timeout: '%s' is not a "
						   "number of seconds above 0",
						   optarg);
			timeout_set = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("bulkhead-ctl %s (API version %d)\n",
			       BULKHEAD_VERSION, BH_CLIENT_API_VERSION);
			return EXIT_OK;
		case ':':
			return usage_error("%s needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	cmd = argv[optind];
	for (i = 0; i < BH_ARRAY_SIZE(subcmds); i++)
		if (strcmp(subcmds[i].name, cmd) == 0)
			break;
	if (i == BH_ARRAY_SIZE(subcmds))
		return usage_error("unknown command '%s'", cmd);
	if (!timeout_set &&
	    (subcmds[i].op == OP(SNAPSHOT) || subcmds[i].op == OP(RESTORE) ||
	     subcmds[i].op == OP(SEND_MIGRATION) ||
	     subcmds[i].op == OP(RECEIVE_MIGRATION)))
		ctl.timeout_ms = DEFAULT_COPY_TIMEOUT_S * 1000;
	if (!ctl.socket) {
		int j;

		/* create --help needs no socket. */
		for (j = optind + 1; subcmds[i].op == OP(CREATE) && j < argc;
		     j++)
			if (strcmp(argv[j], "-h") == 0 ||
			    strcmp(argv[j], "--help") == 0) {
				create_usage();
				return EXIT_OK;
			}
		return usage_error("--api-socket is required");
	}
	return subcmds[i].run(&ctl, &subcmds[i], argc - optind, argv + optind);
}
