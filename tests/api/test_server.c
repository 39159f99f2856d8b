/*
 * bh-api-test-server: the real API server (controller/api.c) over an
 * in-memory VM, for tests of other clients against it. create stores the
 * configuration, info returns it, boot takes a moment and answers later,
 * pause/resume/shutdown/reboot/power-button move the state, shutdown-vmm
 * ends the process. Snapshot, restore, resize, hot-plug and migration are
 * left out, so they answer NOT_SUPPORTED_YET.
 *
 * Usage: bh-api-test-server [--idle-ms N] [--max-clients N] SOCKET_PATH
 * (prints "ready" once listening). The options shorten the server's limits
 * (BH_API_LIMITS_DEFAULT) so that tests of them take little time.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "api.h"
#include "apiconfig.h"

/* How long the fake boot takes: long enough for a reply to come from the
 * event loop rather than from inside the handler. */
#define BOOT_MS 50

struct fakevm {
	struct event_base *base;
	enum bh_api_vm_state state;
	struct bh_config cfg; /* valid unless NOT_CREATED */
	struct bh_api_call *booting;
	struct event *boot_timer;
	uint64_t boots;
};

static enum bh_api_vm_state fake_state(void *ctx)
{
	struct fakevm *vm = ctx;

	return vm->state;
}

static void fake_create(void *ctx, struct bh_api_call *call,
			const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;
	char err[512];

	if (bh_apiconfig_from_proto(req->create->config, &vm->cfg, err,
				    sizeof(err)) < 0) {
		bh_api_reply_error(
		    call, BULKHEAD__API__V1__ERROR_CODE__INVALID_ARGUMENT, "%s",
		    err);
		return;
	}
	vm->state = BH_API_CREATED;
	bh_api_reply_ok(call);
}

static void fake_delete(void *ctx, struct bh_api_call *call,
			const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;

	if (vm->state != BH_API_NOT_CREATED)
		bh_config_free(&vm->cfg);
	vm->state = BH_API_NOT_CREATED;
	bh_api_reply_ok(call);
}

static void boot_done(evutil_socket_t fd, short what, void *arg)
{
	struct fakevm *vm = arg;
	struct bh_api_call *call = vm->booting;

	vm->booting = NULL;
	vm->state = BH_API_RUNNING;
	vm->boots++;
	bh_api_reply_ok(call);
}

static void fake_boot(void *ctx, struct bh_api_call *call,
		      const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;
	struct timeval tv = { .tv_sec = 0, .tv_usec = BOOT_MS * 1000 };

	vm->booting = call;
	evtimer_add(vm->boot_timer, &tv);
}

static void fake_to(struct fakevm *vm, struct bh_api_call *call,
		    enum bh_api_vm_state st)
{
	vm->state = st;
	bh_api_reply_ok(call);
}

static void fake_shutdown(void *ctx, struct bh_api_call *call,
			  const Bulkhead__Api__V1__Request *req)
{
	fake_to(ctx, call, BH_API_SHUTDOWN);
}

static void fake_reboot(void *ctx, struct bh_api_call *call,
			const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;

	vm->boots++;
	fake_to(ctx, call, BH_API_RUNNING);
}

/* The guest powers off when its power button is pressed. */
static void fake_power_button(void *ctx, struct bh_api_call *call,
			      const Bulkhead__Api__V1__Request *req)
{
	fake_to(ctx, call, BH_API_SHUTDOWN);
}

static void fake_pause(void *ctx, struct bh_api_call *call,
		       const Bulkhead__Api__V1__Request *req)
{
	fake_to(ctx, call, BH_API_PAUSED);
}

static void fake_resume(void *ctx, struct bh_api_call *call,
			const Bulkhead__Api__V1__Request *req)
{
	fake_to(ctx, call, BH_API_RUNNING);
}

/* Devices in slot order as the controller lays them out: disks, nets, the
 * vsock, then the rng, then the console, from PCI slot 1. */
struct fake_dev {
	char id[40];
	const char *type;
};

static unsigned int fake_devices(const struct fakevm *vm, struct fake_dev *devs)
{
	unsigned int n = 0, i;

	for (i = 0; i < vm->cfg.ndisks; i++) {
		snprintf(devs[n].id, sizeof(devs[n].id), "%s",
			 vm->cfg.disks[i].id);
		devs[n++].type = "virtio-blk";
	}
	for (i = 0; i < vm->cfg.nnets; i++) {
		snprintf(devs[n].id, sizeof(devs[n].id), "%s",
			 vm->cfg.nets[i].id);
		devs[n++].type = "virtio-net";
	}
	if (vm->cfg.vsock) {
		snprintf(devs[n].id, sizeof(devs[n].id), "%s",
			 vm->cfg.vsock->id);
		devs[n++].type = "virtio-vsock";
	}
	if (vm->cfg.rng_source) {
		snprintf(devs[n].id, sizeof(devs[n].id), "%s",
			 BH_CONFIG_RNG_ID);
		devs[n++].type = "virtio-rng";
	}
	if (vm->cfg.console != BH_CONSOLE_OFF) {
		snprintf(devs[n].id, sizeof(devs[n].id), "%s",
			 BH_CONFIG_CONSOLE_ID);
		devs[n++].type = "virtio-console";
	}
	return n;
}

static void fake_info(void *ctx, struct bh_api_call *call,
		      const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;
	struct fake_dev devs[BH_MAX_DEVICES];
	Bulkhead__Api__V1__DeviceInfo di[BH_MAX_DEVICES];
	Bulkhead__Api__V1__DeviceInfo *dip[BH_MAX_DEVICES];
	char addr[BH_MAX_DEVICES][20];
	Bulkhead__Api__V1__VmInfo info = BULKHEAD__API__V1__VM_INFO__INIT;
	Bulkhead__Api__V1__InfoResponse ir =
	    BULKHEAD__API__V1__INFO_RESPONSE__INIT;
	Bulkhead__Api__V1__Response r = BULKHEAD__API__V1__RESPONSE__INIT;
	bool booted = vm->state == BH_API_RUNNING || vm->state == BH_API_PAUSED;
	unsigned int n, i;

	n = fake_devices(vm, devs);
	for (i = 0; i < n; i++) {
		bulkhead__api__v1__device_info__init(&di[i]);
		di[i].id = devs[i].id;
		di[i].type = (char *)devs[i].type;
		snprintf(addr[i], sizeof(addr[i]), "0000:00:%02x.0", i + 1);
		di[i].pci_address = booted ? addr[i] : (char *)"";
		dip[i] = &di[i];
	}
	bh_apiconfig_to_proto(&vm->cfg, &info.config);
	info.state = (Bulkhead__Api__V1__VmState)vm->state;
	info.memory_actual_size = vm->cfg.memory;
	info.n_devices = n;
	info.devices = dip;
	ir.info = &info;
	r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_INFO;
	r.info = &ir;
	bh_api_reply(call, &r);
	bh_apiconfig_free_proto(info.config);
}

static void fake_counters(void *ctx, struct bh_api_call *call,
			  const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;
	struct fake_dev devs[BH_MAX_DEVICES];
	Bulkhead__Api__V1__CountersResponse cr =
	    BULKHEAD__API__V1__COUNTERS_RESPONSE__INIT;
	Bulkhead__Api__V1__CountersResponse__DevicesEntry de[BH_MAX_DEVICES];
	Bulkhead__Api__V1__CountersResponse__DevicesEntry *dep[BH_MAX_DEVICES];
	Bulkhead__Api__V1__DeviceCounters dc[BH_MAX_DEVICES];
	Bulkhead__Api__V1__DeviceCounters__ValuesEntry ve[2];
	Bulkhead__Api__V1__DeviceCounters__ValuesEntry *vep[2] = { &ve[0],
								   &ve[1] };
	Bulkhead__Api__V1__Response r = BULKHEAD__API__V1__RESPONSE__INIT;
	unsigned int n, i;

	/* Every device reports the same two counters: how many boots it
	 * has seen and a constant, enough to check the map's shape. */
	bulkhead__api__v1__device_counters__values_entry__init(&ve[0]);
	ve[0].key = "boots";
	ve[0].value = vm->boots;
	bulkhead__api__v1__device_counters__values_entry__init(&ve[1]);
	ve[1].key = "answer";
	ve[1].value = 42;
	n = fake_devices(vm, devs);
	for (i = 0; i < n; i++) {
		bulkhead__api__v1__device_counters__init(&dc[i]);
		dc[i].n_values = 2;
		dc[i].values = vep;
		bulkhead__api__v1__counters_response__devices_entry__init(
		    &de[i]);
		de[i].key = devs[i].id;
		de[i].value = &dc[i];
		dep[i] = &de[i];
	}
	cr.n_devices = n;
	cr.devices = dep;
	r.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_COUNTERS;
	r.counters = &cr;
	bh_api_reply(call, &r);
}

static void fake_shutdown_vmm(void *ctx, struct bh_api_call *call,
			      const Bulkhead__Api__V1__Request *req)
{
	struct fakevm *vm = ctx;

	bh_api_reply_ok(call);
	event_base_loopexit(vm->base, NULL);
}

static const struct bh_api_ops fake_ops = {
	.state = fake_state,
	.create = fake_create,
	.delete = fake_delete,
	.boot = fake_boot,
	.shutdown = fake_shutdown,
	.reboot = fake_reboot,
	.power_button = fake_power_button,
	.pause = fake_pause,
	.resume = fake_resume,
	.info = fake_info,
	.counters = fake_counters,
	.shutdown_vmm = fake_shutdown_vmm,
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "max-clients", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct bh_api_limits lim = BH_API_LIMITS_DEFAULT;
	struct fakevm vm = { .state = BH_API_NOT_CREATED };
	struct bh_api_server *srv = NULL;
	struct event *sigterm = NULL, *sigint = NULL;
	const char *path;
	uint64_t v;
	int c, r, status = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((c != 'i' && c != 'm') ||
		    bh_parse_uint(optarg, 1, INT32_MAX, &v) < 0)
			goto usage;
		if (c == 'i')
			lim.idle_ms = (int)v;
		else
			lim.max_clients = (unsigned int)v;
	}
	if (optind != argc - 1)
		goto usage;
	path = argv[optind];
	bh_log_init("bh-api-test-server");
	bh_log_set_level(BH_LOG_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	vm.base = event_base_new();
	if (!vm.base)
		return 1;
	vm.boot_timer = evtimer_new(vm.base, boot_done, &vm);
	sigterm = evsignal_new(vm.base, SIGTERM, on_signal, vm.base);
	sigint = evsignal_new(vm.base, SIGINT, on_signal, vm.base);
	if (!vm.boot_timer || !sigterm || !sigint)
		goto out;
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	r = bh_api_server_new(vm.base, &fake_ops, &vm, &lim, &srv);
	if (r == 0)
		r = bh_api_listen_path(srv, path);
	if (r < 0) {
		fprintf(stderr, "bh-api-test-server: %s: %s\n", path,
			strerror(-r));
		goto out;
	}
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(vm.base);
	status = 0;
out:
	bh_api_server_free(srv);
	if (vm.booting)
		bh_api_reply_ok(vm.booting);
	if (vm.state != BH_API_NOT_CREATED)
		bh_config_free(&vm.cfg);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (vm.boot_timer)
		event_free(vm.boot_timer);
	event_base_free(vm.base);
	return status;

usage:
	fprintf(stderr, "usage: bh-api-test-server [--idle-ms N] "
			"[--max-clients N] SOCKET_PATH\n");
	return 2;
}
