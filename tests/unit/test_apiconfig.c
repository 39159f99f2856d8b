/* Unit tests for VmConfig <-> struct bh_config (controller/apiconfig.c):
 * round trips through the wire format, defaults equal to the command
 * line's, and every refused field named in the message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bulkhead/util.h>

#include "apiconfig.h"
#include "config.h"

typedef Bulkhead__Api__V1__VmConfig VmConfig;

#define MODE(x)	 BULKHEAD__API__V1__CONSOLE_MODE__CONSOLE_MODE_##x
#define MAX_ARGS 48

static int parse_list(struct bh_config *cfg, const char *const *args)
{
	char *argv[MAX_ARGS + 2];
	char err[512];
	int argc = 0, r;

	argv[argc++] = (char *)"bulkhead";
	for (; *args; args++) {
		assert_true(argc <= MAX_ARGS);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	r = bh_config_parse_args(argc, argv, cfg, err, sizeof(err));
	if (r != BH_CONFIG_OK)
		fail_msg("parse: %s", err);
	return r;
}

#define PARSE(cfg, ...) \
	parse_list((cfg), (const char *const[]){ __VA_ARGS__, NULL })

static void assert_str_or_null_equal(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Everything the API carries; log_level and print_exit_stats are the
 * bulkhead process's, not the VM's. */
static void assert_cfg_equal(const struct bh_config *a,
			     const struct bh_config *b)
{
	unsigned int i;

	assert_string_equal(a->kernel, b->kernel);
	assert_str_or_null_equal(a->initramfs, b->initramfs);
	assert_string_equal(a->cmdline, b->cmdline);
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->memory, b->memory);
	assert_int_equal(a->serial, b->serial);
	assert_str_or_null_equal(a->serial_path, b->serial_path);
	assert_int_equal(a->serial_max_size, b->serial_max_size);
	assert_int_equal(a->serial_on_full, b->serial_on_full);
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->ndisks, b->ndisks);
	for (i = 0; i < a->ndisks; i++) {
		assert_string_equal(a->disks[i].path, b->disks[i].path);
		assert_string_equal(a->disks[i].id, b->disks[i].id);
		assert_string_equal(a->disks[i].serial, b->disks[i].serial);
		assert_int_equal(a->disks[i].readonly, b->disks[i].readonly);
		assert_int_equal(a->disks[i].direct, b->disks[i].direct);
		assert_int_equal(a->disks[i].num_queues,
				 b->disks[i].num_queues);
		assert_int_equal(a->disks[i].queue_size,
				 b->disks[i].queue_size);
	}
	assert_int_equal(a->nnets, b->nnets);
	for (i = 0; i < a->nnets; i++) {
		const struct bh_net_config *x = &a->nets[i], *y = &b->nets[i];

		assert_string_equal(x->id, y->id);
		assert_str_or_null_equal(x->tap, y->tap);
		assert_int_equal(x->nfds, y->nfds);
		assert_int_equal(x->mac_set, y->mac_set);
		assert_memory_equal(x->mac, y->mac, sizeof(x->mac));
		assert_int_equal(x->ip, y->ip);
		assert_int_equal(x->mask, y->mask);
		assert_int_equal(x->num_queues, y->num_queues);
		assert_int_equal(x->queue_size, y->queue_size);
		assert_int_equal(x->mtu, y->mtu);
	}
	assert_int_equal(a->npmems, b->npmems);
	for (i = 0; i < a->npmems; i++) {
		assert_string_equal(a->pmems[i].file, b->pmems[i].file);
		assert_string_equal(a->pmems[i].id, b->pmems[i].id);
		assert_int_equal(a->pmems[i].size, b->pmems[i].size);
		assert_int_equal(a->pmems[i].discard_writes,
				 b->pmems[i].discard_writes);
	}
	if (!a->vsock || !b->vsock) {
		assert_ptr_equal(a->vsock, b->vsock);
	} else {
		assert_int_equal(a->vsock->cid, b->vsock->cid);
		assert_string_equal(a->vsock->socket, b->vsock->socket);
		assert_string_equal(a->vsock->id, b->vsock->id);
	}
	assert_str_or_null_equal(a->rng_source, b->rng_source);
	assert_int_equal(a->console, b->console);
	assert_str_or_null_equal(a->console_path, b->console_path);
	assert_int_equal(a->console_max_size, b->console_max_size);
	assert_int_equal(a->console_on_full, b->console_on_full);
	assert_int_equal(a->restart_devices, b->restart_devices);
	assert_int_equal(a->max_restarts, b->max_restarts);
}

/* cfg -> VmConfig -> bytes -> VmConfig -> cfg, which must equal cfg; and
 * the second VmConfig encodes to the same bytes as the first. */
static void round_trip(const struct bh_config *cfg)
{
	VmConfig *vc, *back, *again;
	struct bh_config cfg2;
	uint8_t *buf, *buf2;
	size_t len, len2;
	char err[256];

	assert_int_equal(bh_apiconfig_to_proto(cfg, &vc), 0);
	len = bulkhead__api__v1__vm_config__get_packed_size(vc);
	buf = malloc(len + 1);
	assert_non_null(buf);
	bulkhead__api__v1__vm_config__pack(vc, buf);
	back = bulkhead__api__v1__vm_config__unpack(NULL, len, buf);
	assert_non_null(back);
	if (bh_apiconfig_from_proto(back, &cfg2, err, sizeof(err)) < 0)
		fail_msg("from_proto: %s", err);
	assert_cfg_equal(cfg, &cfg2);

	assert_int_equal(bh_apiconfig_to_proto(&cfg2, &again), 0);
	len2 = bulkhead__api__v1__vm_config__get_packed_size(again);
	assert_int_equal(len, len2);
	buf2 = malloc(len2 + 1);
	assert_non_null(buf2);
	bulkhead__api__v1__vm_config__pack(again, buf2);
	assert_memory_equal(buf, buf2, len);

	free(buf);
	free(buf2);
	bh_apiconfig_free_proto(vc);
	bh_apiconfig_free_proto(again);
	bulkhead__api__v1__vm_config__free_unpacked(back, NULL);
	bh_config_free(&cfg2);
}

static void test_round_trips(void **state)
{
	struct bh_config cfg;

	PARSE(&cfg, "--kernel", "/boot/vmlinuz");
	round_trip(&cfg);
	bh_config_free(&cfg);

	PARSE(&cfg, "--kernel", "/boot/vmlinuz", "--initramfs",
	      "/boot/initrd.img", "--cmdline", "console=ttyS0 \"q\" \xc3\xa9",
	      "--cpus", "boot=8", "--memory", "size=3G", "--serial",
	      "file=/var/log/a,b.log", "--name", "web-1.test_A", "--disk",
	      "path=/img/root.img,readonly=on,direct=on,num_queues=4,"
	      "queue_size=1024,id=root,serial=SER-1",
	      "--disk", "path=/img/data.img", "--rng", "src=/dev/hwrng",
	      "--console", "file=/tmp/console.log", "--restart-devices",
	      "on,max=9");
	round_trip(&cfg);
	bh_config_free(&cfg);

	PARSE(&cfg, "--kernel", "/k", "--serial", "off", "--console", "tty",
	      "--rng", "");
	round_trip(&cfg);
	bh_config_free(&cfg);

	PARSE(&cfg, "--kernel", "/k", "--serial",
	      "file=/s.log,max_size=1M,on_full=stop", "--console",
	      "file=/c,x.log,on_full=truncate,max_size=8K");
	assert_int_equal(cfg.serial_max_size, 1 << 20);
	assert_int_equal(cfg.console_max_size, 8192);
	round_trip(&cfg);
	bh_config_free(&cfg);

	PARSE(&cfg, "--kernel", "/k", "--serial", "null", "--cmdline", "",
	      "--restart-devices", "off");
	round_trip(&cfg);
	bh_config_free(&cfg);

	/* Nets with every key and with none, a vsock; ids chosen freely. */
	PARSE(&cfg, "--kernel", "/k", "--disk", "path=/d", "--net",
	      "tap=bh0,mac=52:54:00:12:34:56,ip=192.168.249.1,"
	      "mask=255.255.255.128,num_queues=4,queue_size=1024,mtu=9000,"
	      "id=lan",
	      "--net", "tap=bh1", "--net", "tap=bh2,ip=10.0.0.1", "--vsock",
	      "cid=4294967294,socket=/run/bulkhead/web1.vsock,id=vs");
	assert_int_equal(cfg.nnets, 3);
	round_trip(&cfg);
	bh_config_free(&cfg);
	PARSE(&cfg, "--kernel", "/k", "--vsock", "cid=3,socket=v.sock");
	round_trip(&cfg);
	bh_config_free(&cfg);
}

/* info shows every net and the vsock; a net handed in as fds has no tap to
 * show, and an unset mac or address stays empty. */
static void test_net_vsock_to_proto(void **state)
{
	struct bh_config cfg;
	VmConfig *vc;

	PARSE(&cfg, "--kernel", "/k", "--net",
	      "tap=bh0,mac=52:54:00:AB:cd:ef,ip=192.168.249.1,id=lan", "--net",
	      "fd=[5,6]", "--vsock", "cid=3,socket=/run/v.sock");
	assert_int_equal(bh_apiconfig_to_proto(&cfg, &vc), 0);
	assert_int_equal(vc->n_net, 2);
	assert_string_equal(vc->net[0]->tap, "bh0");
	assert_string_equal(vc->net[0]->mac, "52:54:00:ab:cd:ef");
	assert_string_equal(vc->net[0]->ip, "192.168.249.1");
	assert_string_equal(vc->net[0]->mask, "255.255.255.0");
	assert_string_equal(vc->net[0]->id, "lan");
	assert_int_equal(vc->net[0]->num_queues, 2);
	assert_int_equal(vc->net[0]->queue_size, BH_CONFIG_NET_QUEUE_SIZE);
	assert_int_equal(vc->net[0]->mtu, BH_CONFIG_NET_MTU);
	assert_string_equal(vc->net[1]->tap, "");
	assert_string_equal(vc->net[1]->mac, "");
	assert_string_equal(vc->net[1]->ip, "");
	assert_string_equal(vc->net[1]->mask, "");
	assert_string_equal(vc->net[1]->id, "net1");
	assert_int_equal(vc->net[1]->num_queues, 4);
	assert_non_null(vc->vsock);
	assert_int_equal(vc->vsock->cid, 3);
	assert_string_equal(vc->vsock->socket, "/run/v.sock");
	assert_string_equal(vc->vsock->id, "vsock0");
	bh_apiconfig_free_proto(vc);
	bh_config_free(&cfg);

	PARSE(&cfg, "--kernel", "/k");
	assert_int_equal(bh_apiconfig_to_proto(&cfg, &vc), 0);
	assert_int_equal(vc->n_net, 0);
	assert_null(vc->vsock);
	bh_apiconfig_free_proto(vc);
	bh_config_free(&cfg);
}

/* A VmConfig with only the kernel gets exactly the command line's
 * defaults. */
static void test_defaults(void **state)
{
	VmConfig vc = BULKHEAD__API__V1__VM_CONFIG__INIT;
	Bulkhead__Api__V1__PayloadConfig p =
	    BULKHEAD__API__V1__PAYLOAD_CONFIG__INIT;
	Bulkhead__Api__V1__DiskConfig d = BULKHEAD__API__V1__DISK_CONFIG__INIT;
	Bulkhead__Api__V1__DiskConfig *dp = &d;
	Bulkhead__Api__V1__RngConfig rng = BULKHEAD__API__V1__RNG_CONFIG__INIT;
	Bulkhead__Api__V1__RestartConfig rc =
	    BULKHEAD__API__V1__RESTART_CONFIG__INIT;
	Bulkhead__Api__V1__NetConfig n = BULKHEAD__API__V1__NET_CONFIG__INIT;
	Bulkhead__Api__V1__NetConfig *np = &n;
	Bulkhead__Api__V1__VsockConfig vs =
	    BULKHEAD__API__V1__VSOCK_CONFIG__INIT;
	struct bh_config want, got;
	char err[256];

	p.kernel = "/k";
	vc.payload = &p;
	PARSE(&want, "--kernel", "/k");
	assert_int_equal(bh_apiconfig_from_proto(&vc, &got, err, sizeof(err)),
			 0);
	assert_cfg_equal(&want, &got);
	assert_int_equal(got.log_level, want.log_level);
	assert_false(got.print_exit_stats);
	bh_config_free(&want);
	bh_config_free(&got);

	/* A disk with only a path, an empty rng source, restarts on
	 * without a count: 0 means the default where the field says so. */
	d.path = "/d.img";
	vc.n_disks = 1;
	vc.disks = &dp;
	vc.rng = &rng;
	rc.enabled = 1;
	vc.restart_devices = &rc;
	PARSE(&want, "--kernel", "/k", "--disk", "path=/d.img", "--rng", "",
	      "--restart-devices", "on");
	assert_int_equal(bh_apiconfig_from_proto(&vc, &got, err, sizeof(err)),
			 0);
	assert_cfg_equal(&want, &got);
	bh_config_free(&want);
	bh_config_free(&got);

	/* A net with only a tap, ip without mask; a vsock without id. */
	n.tap = "bh0";
	n.ip = "10.0.0.1";
	vc.n_net = 1;
	vc.net = &np;
	vs.cid = 7;
	vs.socket = "/run/v";
	vc.vsock = &vs;
	PARSE(&want, "--kernel", "/k", "--disk", "path=/d.img", "--rng", "",
	      "--restart-devices", "on", "--net", "tap=bh0,ip=10.0.0.1",
	      "--vsock", "cid=7,socket=/run/v");
	assert_int_equal(bh_apiconfig_from_proto(&vc, &got, err, sizeof(err)),
			 0);
	assert_cfg_equal(&want, &got);
	assert_int_equal(got.nets[0].num_queues, 2);
	assert_int_equal(got.nets[0].mtu, 1500);
	assert_string_equal(got.vsock->id, "vsock0");
	bh_config_free(&want);
	bh_config_free(&got);
}

static void test_to_proto_spells_out(void **state)
{
	struct bh_config cfg;
	VmConfig *vc;

	PARSE(&cfg, "--kernel", "/k", "--disk", "path=/d");
	assert_int_equal(bh_apiconfig_to_proto(&cfg, &vc), 0);
	assert_string_equal(vc->name, "vm");
	assert_string_equal(vc->payload->initramfs, "");
	assert_int_equal(vc->cpus->boot, 1);
	assert_int_equal(vc->memory->size, BH_CONFIG_DEFAULT_MEMORY);
	assert_int_equal(vc->serial->mode, MODE(TTY));
	assert_int_equal(vc->console->mode, MODE(OFF));
	assert_int_equal(vc->n_disks, 1);
	assert_string_equal(vc->disks[0]->id, "disk0");
	assert_int_equal(vc->disks[0]->num_queues, 1);
	assert_int_equal(vc->disks[0]->queue_size, BH_CONFIG_DISK_QUEUE_SIZE);
	assert_null(vc->rng);
	assert_false(vc->restart_devices->enabled);
	assert_int_equal(vc->restart_devices->max, BH_CONFIG_DEFAULT_RESTARTS);
	bh_apiconfig_free_proto(vc);
	bh_config_free(&cfg);
	bh_apiconfig_free_proto(NULL);
}

/* ---- refused fields -------------------------------------------------- */

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = strdup(s);
	assert_non_null(*dst);
}

/* A good configuration to spoil, one field per case. */
static VmConfig *good(void)
{
	struct bh_config cfg;
	VmConfig *vc;

	PARSE(&cfg, "--kernel", "/k", "--serial", "null", "--disk",
	      "path=/a.img", "--disk", "path=/b.img", "--rng", "");
	assert_int_equal(bh_apiconfig_to_proto(&cfg, &vc), 0);
	bh_config_free(&cfg);
	return vc;
}

static void expect_refused(VmConfig *vc, const char *text)
{
	struct bh_config cfg;
	char err[512];

	assert_int_equal(bh_apiconfig_from_proto(vc, &cfg, err, sizeof(err)),
			 -EINVAL);
	if (!strstr(err, text))
		fail_msg("expected '%s' in '%s'", text, err);
	/* Freed on error: a second free does nothing. */
	bh_config_free(&cfg);
	bh_apiconfig_free_proto(vc);
}

static void add_disk(VmConfig *vc, const char *path, const char *id)
{
	Bulkhead__Api__V1__DiskConfig *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	bulkhead__api__v1__disk_config__init(d);
	d->path = strdup(path);
	d->id = strdup(id);
	d->serial = strdup("");
	vc->disks = realloc(vc->disks, (vc->n_disks + 1) * sizeof(*vc->disks));
	assert_non_null(vc->disks);
	vc->disks[vc->n_disks++] = d;
}

static void test_refused(void **state)
{
	struct bh_config cfg;
	char err[256], name33[34];
	VmConfig *vc;
	unsigned int i;

	assert_int_equal(bh_apiconfig_from_proto(NULL, &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "config: required");

	vc = good();
	bulkhead__api__v1__payload_config__free_unpacked(vc->payload, NULL);
	vc->payload = NULL;
	expect_refused(vc, "payload.kernel: required");
	vc = good();
	set_str(&vc->payload->kernel, "");
	expect_refused(vc, "payload.kernel: required");

	memset(name33, 'n', 33);
	name33[33] = '\0';
	vc = good();
	set_str(&vc->name, name33);
	expect_refused(vc, "name: 'nnn");
	vc = good();
	set_str(&vc->name, "a b");
	expect_refused(vc, "name: 'a b' contains byte 0x20");

	vc = good();
	vc->cpus->boot = 0;
	expect_refused(vc, "cpus.boot: 0 is out of range 1..254");
	vc = good();
	vc->cpus->boot = 255;
	expect_refused(vc, "cpus.boot: 255 is out of range 1..254");

	vc = good();
	vc->memory->size = 1000;
	expect_refused(vc, "memory.size: 1000 is below the minimum 64M");
	vc = good();
	vc->memory->size = 2ULL << 40;
	expect_refused(vc, "is above the maximum 1T");
	vc = good();
	vc->memory->size = (64ULL << 20) + 512;
	expect_refused(vc, "memory.size: 67109376 is not a multiple of 4K");

	vc = good();
	vc->serial->mode = 99;
	expect_refused(vc, "serial.mode: 99 is not a mode");
	vc = good();
	vc->serial->mode = MODE(FILE);
	expect_refused(vc, "serial.path: required with mode FILE");
	vc = good();
	set_str(&vc->serial->path, "/x");
	expect_refused(vc, "serial.path: given with mode NULL");
	vc = good();
	vc->serial->max_size = 1 << 20;
	expect_refused(vc, "serial.max_size: given with mode NULL (only FILE "
			   "takes it)");
	vc = good();
	vc->serial->on_full = BULKHEAD__API__V1__OUTPUT_FULL__OUTPUT_FULL_STOP;
	expect_refused(vc, "serial.on_full: given with mode NULL");
	vc = good();
	vc->serial->mode = MODE(FILE);
	set_str(&vc->serial->path, "/x");
	vc->serial->max_size = 4095;
	expect_refused(vc, "serial.max_size: 4095 is out of range 4K..1T");
	vc = good();
	vc->serial->mode = MODE(FILE);
	set_str(&vc->serial->path, "/x");
	vc->serial->on_full = 9;
	expect_refused(vc, "serial.on_full: 9 is not a value");

	vc = good();
	vc->console->mode = MODE(NULL);
	expect_refused(vc, "console.mode: NULL is not a console mode");
	vc = good();
	vc->console->mode = MODE(TTY);
	vc->serial->mode = MODE(TTY);
	expect_refused(vc, "console.mode: TTY cannot share the terminal");
	vc = good();
	vc->console->mode = MODE(FILE);
	expect_refused(vc, "console.path: required with mode FILE");

	vc = good();
	set_str(&vc->disks[1]->path, "");
	expect_refused(vc, "disks[1].path: required");
	vc = good();
	vc->disks[0]->num_queues = 17;
	expect_refused(vc, "disks[0].num_queues: 17 is out of range 1..16");
	vc = good();
	vc->disks[0]->queue_size = 1;
	expect_refused(vc, "disks[0].queue_size: 1 is out of range 2..32768");
	vc = good();
	vc->disks[0]->queue_size = 65536;
	expect_refused(vc, "disks[0].queue_size: 65536 is out of range");
	vc = good();
	vc->disks[1]->queue_size = 1000;
	expect_refused(vc, "disks[1].queue_size: 1000 is not a power of two");
	vc = good();
	set_str(&vc->disks[0]->serial, "123456789012345678901");
	expect_refused(vc, "disks[0].serial: '123456789012345678901' is "
			   "longer than 20 bytes");
	vc = good();
	set_str(&vc->disks[0]->id, "a/b");
	expect_refused(vc, "disks[0].id: 'a/b' contains byte 0x2f");
	vc = good();
	set_str(&vc->disks[0]->id, name33);
	expect_refused(vc, "disks[0].id: 'nnn");
	vc = good();
	set_str(&vc->disks[1]->id, "disk0");
	expect_refused(vc, "disks[1].id: 'disk0' is used by disks[0] already");
	vc = good();
	set_str(&vc->disks[0]->id, "rng0");
	expect_refused(vc, "disks[0].id: 'rng0' is the rng's id");
	vc = good();
	vc->console->mode = MODE(FILE);
	set_str(&vc->console->path, "/c.log");
	set_str(&vc->disks[1]->id, "console0");
	expect_refused(vc, "disks[1].id: 'console0' is the console's id");

	/* 2 disks and the rng, then 14 more disks: 17 devices. */
	vc = good();
	for (i = 0; i < 14; i++) {
		char id[16];

		snprintf(id, sizeof(id), "x%u", i);
		add_disk(vc, "/x.img", id);
	}
	expect_refused(vc, "disks: 16 disks, 0 nets, 0 pmems and 1 other "
			   "virtio devices are more than 16 in all");
	/* One less fits. */
	vc = good();
	for (i = 0; i < 13; i++) {
		char id[16];

		snprintf(id, sizeof(id), "x%u", i);
		add_disk(vc, "/x.img", id);
	}
	assert_int_equal(bh_apiconfig_from_proto(vc, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.ndisks, 15);
	bh_config_free(&cfg);
	bh_apiconfig_free_proto(vc);

	vc = good();
	vc->restart_devices->max = 101;
	expect_refused(vc, "restart_devices.max: 101 is out of range 1..100");
}

/* A good configuration with two nets and a vsock, to spoil. */
static VmConfig *good_net(void)
{
	struct bh_config cfg;
	VmConfig *vc;

	PARSE(&cfg, "--kernel", "/k", "--disk", "path=/a.img", "--net",
	      "tap=bh0,ip=10.0.0.1", "--net", "tap=bh1", "--vsock",
	      "cid=3,socket=/v", "--rng", "");
	assert_int_equal(bh_apiconfig_to_proto(&cfg, &vc), 0);
	bh_config_free(&cfg);
	return vc;
}

static void test_net_vsock_refused(void **state)
{
	struct bh_config cfg;
	char err[256], sock[120];
	VmConfig *vc;
	unsigned int i;

	/* The spoiled copy is good before it is spoiled. */
	vc = good_net();
	assert_int_equal(bh_apiconfig_from_proto(vc, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.nnets, 2);
	bh_config_free(&cfg);
	bh_apiconfig_free_proto(vc);

	vc = good_net();
	set_str(&vc->net[1]->tap, "");
	expect_refused(vc, "net[1].tap: required (the API cannot pass file "
			   "descriptors: fd= is for the command line only)");
	vc = good_net();
	bulkhead__api__v1__net_config__free_unpacked(vc->net[1], NULL);
	vc->net[1] = NULL;
	expect_refused(vc, "net[1]: empty");
	vc = good_net();
	set_str(&vc->net[0]->tap, "0123456789abcdef");
	expect_refused(vc, "net[0].tap: 0123456789abcdef: longer than 15 "
			   "bytes (IFNAMSIZ - 1)");
	vc = good_net();
	set_str(&vc->net[0]->tap, "a/b");
	expect_refused(vc, "net[0].tap: a/b: not an interface name");
	vc = good_net();
	set_str(&vc->net[0]->tap, "..");
	expect_refused(vc, "net[0].tap: ..: not an interface name");
	vc = good_net();
	set_str(&vc->net[0]->mac, "52:54:00:zz:34:56");
	expect_refused(vc, "net[0].mac: 52:54:00:zz:34:56: not a MAC address "
			   "(xx:xx:xx:xx:xx:xx)");
	vc = good_net();
	set_str(&vc->net[0]->mac, "03:54:00:12:34:56");
	expect_refused(vc, "net[0].mac: 03:54:00:12:34:56: a multicast "
			   "address");
	vc = good_net();
	set_str(&vc->net[0]->mac, "00:00:00:00:00:00");
	expect_refused(vc, "net[0].mac: 00:00:00:00:00:00: the all-zero "
			   "address");
	vc = good_net();
	set_str(&vc->net[0]->ip, "10.0.0");
	expect_refused(vc, "net[0].ip: 10.0.0: not an IPv4 address (a.b.c.d)");
	vc = good_net();
	set_str(&vc->net[0]->ip, "0.0.0.0");
	expect_refused(vc, "net[0].ip: 0.0.0.0: not a host address");
	vc = good_net();
	set_str(&vc->net[0]->mask, "255.255.0.255");
	expect_refused(vc, "net[0].mask: 255.255.0.255: not a contiguous "
			   "netmask");
	vc = good_net();
	set_str(&vc->net[1]->mask, "255.255.255.0");
	expect_refused(vc, "net[1].mask: needs ip");
	vc = good_net();
	vc->net[0]->num_queues = 3;
	expect_refused(vc, "net[0].num_queues: 3 is odd");
	vc = good_net();
	vc->net[0]->num_queues = 16;
	expect_refused(vc, "net[0].num_queues: 16 is out of range 2..14");
	vc = good_net();
	vc->net[0]->queue_size = 32;
	expect_refused(vc, "net[0].queue_size: 32 is out of range 64..4096");
	vc = good_net();
	vc->net[0]->queue_size = 8192;
	expect_refused(vc, "net[0].queue_size: 8192 is out of range 64..4096");
	vc = good_net();
	vc->net[0]->queue_size = 96;
	expect_refused(vc, "net[0].queue_size: 96 is not a power of two");
	vc = good_net();
	vc->net[0]->mtu = 67;
	expect_refused(vc, "net[0].mtu: 67 is out of range 68..65535");
	vc = good_net();
	vc->net[0]->mtu = 65536;
	expect_refused(vc, "net[0].mtu: 65536 is out of range 68..65535");
	vc = good_net();
	set_str(&vc->net[0]->id, "a b");
	expect_refused(vc, "net[0].id: 'a b' contains byte 0x20");
	vc = good_net();
	set_str(&vc->net[0]->id, "012345678901234567890123456789012");
	expect_refused(vc, "net[0].id: '012345678901234567890123456789012' is "
			   "longer than 32 characters");
	vc = good_net();
	set_str(&vc->net[1]->id, "net0");
	expect_refused(vc, "net[1].id: 'net0' is used by net[0] already");
	/* The id that was given is the one to blame. */
	vc = good_net();
	set_str(&vc->disks[0]->id, "net1");
	expect_refused(vc, "disks[0].id: 'net1' is used by net[1] already");
	vc = good_net();
	set_str(&vc->net[0]->id, "disk0");
	expect_refused(vc, "net[0].id: 'disk0' is used by disks[0] already");
	vc = good_net();
	set_str(&vc->net[0]->id, "vsock0");
	expect_refused(vc, "net[0].id: 'vsock0' is used by vsock already");
	vc = good_net();
	set_str(&vc->net[0]->id, "rng0");
	expect_refused(vc, "net[0].id: 'rng0' is the rng's id");
	vc = good_net();
	set_str(&vc->vsock->id, "rng0");
	expect_refused(vc, "vsock.id: 'rng0' is the rng's id");
	vc = good_net();
	set_str(&vc->vsock->id, "a/b");
	expect_refused(vc, "vsock.id: 'a/b' contains byte 0x2f");

	vc = good_net();
	vc->vsock->cid = 2;
	expect_refused(vc, "vsock.cid: 2 is out of range 3..4294967294");
	vc = good_net();
	vc->vsock->cid = 0xffffffff;
	expect_refused(vc, "vsock.cid: 4294967295 is out of range");
	vc = good_net();
	vc->vsock->cid = 1ULL << 32;
	expect_refused(vc, "vsock.cid: 4294967296 is out of range");
	vc = good_net();
	set_str(&vc->vsock->socket, "");
	expect_refused(vc, "vsock.socket: required");
	memset(sock, 's', 108);
	sock[108] = '\0';
	vc = good_net();
	set_str(&vc->vsock->socket, sock);
	expect_refused(vc, "is longer than 107 bytes");
	sock[107] = '\0';
	vc = good_net();
	set_str(&vc->vsock->socket, sock);
	assert_int_equal(bh_apiconfig_from_proto(vc, &cfg, err, sizeof(err)),
			 0);
	bh_config_free(&cfg);
	bh_apiconfig_free_proto(vc);

	/* A disk, two nets, the vsock and the rng, then 12 more nets. */
	vc = good_net();
	for (i = 0; i < 12; i++) {
		Bulkhead__Api__V1__NetConfig *n = calloc(1, sizeof(*n));
		char tap[16];

		assert_non_null(n);
		bulkhead__api__v1__net_config__init(n);
		snprintf(tap, sizeof(tap), "t%u", i);
		n->tap = strdup(tap);
		vc->net = realloc(vc->net, (vc->n_net + 1) * sizeof(*vc->net));
		assert_non_null(vc->net);
		vc->net[vc->n_net++] = n;
	}
	expect_refused(vc, "net: 1 disks, 14 nets, 0 pmems and 2 other "
			   "virtio devices are more than 16 in all");
}

static void add_pmem(VmConfig *vc, const char *file, uint64_t size,
		     const char *id)
{
	Bulkhead__Api__V1__PmemConfig *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	bulkhead__api__v1__pmem_config__init(p);
	p->file = strdup(file);
	p->size = size;
	p->id = strdup(id);
	vc->pmem = realloc(vc->pmem, (vc->n_pmem + 1) * sizeof(*vc->pmem));
	assert_non_null(vc->pmem);
	vc->pmem[vc->n_pmem++] = p;
}

/* virtio-pmem in the API: the command line's limits and ids. */
static void test_pmem(void **state)
{
	struct bh_config cfg;
	VmConfig *vc;

	(void)state;
	PARSE(&cfg, "--kernel", "/k", "--pmem", "file=/p0,size=2M", "--pmem",
	      "file=/p1,size=1G,discard_writes=on,id=ro");
	assert_int_equal(bh_apiconfig_to_proto(&cfg, &vc), 0);
	assert_int_equal(vc->n_pmem, 2);
	assert_string_equal(vc->pmem[0]->file, "/p0");
	assert_int_equal(vc->pmem[0]->size, 2ULL << 20);
	assert_false(vc->pmem[0]->discard_writes);
	assert_string_equal(vc->pmem[0]->id, "pmem0");
	assert_true(vc->pmem[1]->discard_writes);
	assert_string_equal(vc->pmem[1]->id, "ro");
	bh_apiconfig_free_proto(vc);
	round_trip(&cfg);
	bh_config_free(&cfg);

	vc = good();
	add_pmem(vc, "", 2ULL << 20, "");
	expect_refused(vc, "pmem[0].file: required");
	vc = good();
	add_pmem(vc, "/p", 0, "");
	expect_refused(vc, "pmem[0].size: 0 is not a non-zero multiple of "
			   "2 MiB");
	vc = good();
	add_pmem(vc, "/p", (2ULL << 20) + 4096, "");
	expect_refused(vc, "pmem[0].size: 2101248 is not a non-zero multiple");
	vc = good();
	add_pmem(vc, "/p", 2ULL << 40, "");
	expect_refused(vc, "pmem[0].size: 2199023255552 is larger than 1T");
	vc = good();
	add_pmem(vc, "/p", 2ULL << 20, "disk1");
	expect_refused(vc, "pmem[0].id: 'disk1' is used by disks[1] already");
	vc = good();
	add_pmem(vc, "/p", 2ULL << 20, "");
	add_pmem(vc, "/q", 2ULL << 20, "pmem0");
	expect_refused(vc, "pmem[1].id: 'pmem0' is used by pmem[0] already");
	vc = good();
	add_pmem(vc, "/p", 2ULL << 20, "a b");
	expect_refused(vc, "pmem[0].id: 'a b' contains byte 0x20");
	/* Two disks and the rng: 13 more are too many. */
	vc = good();
	for (unsigned int i = 0; i < 14; i++)
		add_pmem(vc, "/p", 2ULL << 20, "");
	expect_refused(vc, "pmem: 2 disks, 0 nets, 14 pmems and 1 other "
			   "virtio devices are more than 16 in all");
}

/* add-disk, add-net, add-vsock, add-pmem: one device, checked as in a
 * VmConfig, its fields named without an index, and no id made up. */
static void test_one_device(void **state)
{
	Bulkhead__Api__V1__DiskConfig disk =
	    BULKHEAD__API__V1__DISK_CONFIG__INIT;
	Bulkhead__Api__V1__NetConfig net = BULKHEAD__API__V1__NET_CONFIG__INIT;
	Bulkhead__Api__V1__VsockConfig vsock =
	    BULKHEAD__API__V1__VSOCK_CONFIG__INIT;
	Bulkhead__Api__V1__PmemConfig pmem =
	    BULKHEAD__API__V1__PMEM_CONFIG__INIT;
	struct bh_config cfg;
	char err[512];

	(void)state;
	disk.path = (char *)"/d.img";
	disk.readonly = 1;
	assert_int_equal(bh_apiconfig_device_from_proto(&disk, NULL, NULL, NULL,
							&cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.ndisks, 1);
	assert_int_equal(cfg.nnets, 0);
	assert_null(cfg.vsock);
	assert_string_equal(cfg.disks[0].path, "/d.img");
	assert_null(cfg.disks[0].id);
	assert_true(cfg.disks[0].readonly);
	assert_int_equal(cfg.disks[0].num_queues, 1);
	assert_int_equal(cfg.disks[0].queue_size, BH_CONFIG_DISK_QUEUE_SIZE);
	bh_config_free(&cfg);

	disk.id = (char *)"data";
	assert_int_equal(bh_apiconfig_device_from_proto(&disk, NULL, NULL, NULL,
							&cfg, err, sizeof(err)),
			 0);
	assert_string_equal(cfg.disks[0].id, "data");
	bh_config_free(&cfg);

	disk.queue_size = 100;
	assert_int_equal(bh_apiconfig_device_from_proto(&disk, NULL, NULL, NULL,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "disk.queue_size: 100 is not a power of two");
	disk.queue_size = 0;
	disk.path = (char *)"";
	assert_int_equal(bh_apiconfig_device_from_proto(&disk, NULL, NULL, NULL,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "disk.path: required");

	net.tap = (char *)"tap7";
	net.mac = (char *)"52:54:00:12:34:56";
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, &net, NULL, NULL,
							&cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.nnets, 1);
	assert_string_equal(cfg.nets[0].tap, "tap7");
	assert_true(cfg.nets[0].mac_set);
	assert_null(cfg.nets[0].id);
	bh_config_free(&cfg);
	net.tap = (char *)"";
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, &net, NULL, NULL,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "net.tap: required"));

	vsock.cid = 2;
	vsock.socket = (char *)"/run/v.sock";
	assert_int_equal(bh_apiconfig_device_from_proto(
			     NULL, NULL, &vsock, NULL, &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "vsock.cid: 2 is out of range"));
	vsock.cid = 3;
	assert_int_equal(bh_apiconfig_device_from_proto(
			     NULL, NULL, &vsock, NULL, &cfg, err, sizeof(err)),
			 0);
	assert_non_null(cfg.vsock);
	assert_null(cfg.vsock->id);
	bh_config_free(&cfg);

	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, NULL,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "the device's configuration: required");
	disk.path = (char *)"/d.img";
	assert_int_equal(bh_apiconfig_device_from_proto(
			     &disk, NULL, &vsock, NULL, &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "one device at a time");
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, &net, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "one device at a time");

	/* add-pmem: the size may be left to the file (0), or given as in a
	 * VmConfig. */
	pmem.file = (char *)"/p.img";
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.npmems, 1);
	assert_int_equal(cfg.ndisks + cfg.nnets, 0);
	assert_null(cfg.vsock);
	assert_string_equal(cfg.pmems[0].file, "/p.img");
	assert_int_equal(cfg.pmems[0].size, 0);
	assert_false(cfg.pmems[0].discard_writes);
	assert_null(cfg.pmems[0].id);
	bh_config_free(&cfg);
	pmem.size = 64ULL << 20;
	pmem.discard_writes = 1;
	pmem.id = (char *)"data";
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.pmems[0].size, 64ULL << 20);
	assert_true(cfg.pmems[0].discard_writes);
	assert_string_equal(cfg.pmems[0].id, "data");
	bh_config_free(&cfg);
	pmem.size = (2ULL << 20) + 4096;
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "pmem.size: 2101248 is not a non-zero "
				 "multiple of 2 MiB (the guest maps the "
				 "region in 2 MiB sections)");
	pmem.size = 2ULL << 40;
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "pmem.size: 2199023255552 is larger than 1T");
	pmem.size = 0;
	pmem.id = (char *)"a/b";
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "pmem.id: 'a/b'"));
	pmem.id = NULL;
	pmem.file = (char *)"";
	assert_int_equal(bh_apiconfig_device_from_proto(NULL, NULL, NULL, &pmem,
							&cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "pmem.file: required");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_to_proto_spells_out),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_net_vsock_to_proto),
		cmocka_unit_test(test_net_vsock_refused),
		cmocka_unit_test(test_one_device),
		cmocka_unit_test(test_pmem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
