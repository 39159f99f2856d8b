/* The management API for the VM bulkhead runs: each operation of api.h
 * carried out against the runner and the device workers, with the replies
 * that have to wait for them (pause, shutdown, reboot, counters). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "api.h"
#include "apiconfig.h"
#include "devices.h"
#include "migrate.h"
#include "vm.h"
#include "vmapi.h"

#define COUNTERS_TIMEOUT 2000 /* ms for every worker to answer */
/* ms remove-device waits for the guest to eject the device. A guest that
 * never does must not hold the client, nor the other operations that
 * change the VM, for ever; the removal stays asked for, and the device
 * goes when the guest ejects it or with the end of the boot. */
#ifndef REMOVE_TIMEOUT
#define REMOVE_TIMEOUT 10000
#endif

typedef Bulkhead__Api__V1__Request Request;
typedef Bulkhead__Api__V1__Response Response;

#define E_STATE	   BULKHEAD__API__V1__ERROR_CODE__INVALID_STATE
#define E_ARG	   BULKHEAD__API__V1__ERROR_CODE__INVALID_ARGUMENT
#define E_INTERNAL BULKHEAD__API__V1__ERROR_CODE__INTERNAL
#define E_HOST	   BULKHEAD__API__V1__ERROR_CODE__HOST_ERROR

struct bh_vmapi {
	struct bh_vm *vm;
	struct bh_api_server *srv;
	/* Calls answered when the VM reports back. */
	struct bh_api_call *pause_call;
	struct bh_api_call *stop_call; /* shutdown */
	struct bh_api_call *reboot_call;
	/* add-disk, add-net, add-pmem: the operation, and the device's
	 * slot index. */
	struct bh_api_call *add_call;
	Bulkhead__Api__V1__Request__OpCase add_op;
	unsigned int add_index;
	/* remove-device, the device's id, and its deadline. */
	struct bh_api_call *remove_call;
	char remove_id[BH_CONFIG_ID_MAX + 1];
	struct bh_api_call *snapshot_call;
	/* send-migration or receive-migration, until the migration ends. */
	struct bh_api_call *migration_call;
	bool migration_sender;
	struct event *remove_timer;
	struct event_base *base;
};

static enum bh_api_vm_state op_state(void *ctx)
{
	struct bh_vmapi *a = ctx;

	switch (bh_vm_state(a->vm)) {
	case BH_VM_NONE:
		return BH_API_NOT_CREATED;
	case BH_VM_CREATED:
		return BH_API_CREATED;
	case BH_VM_RUNNING:
		return BH_API_RUNNING;
	case BH_VM_PAUSED:
		return BH_API_PAUSED;
	default:
		return BH_API_SHUTDOWN;
	}
}

static void reply_errno(struct bh_api_call *call, int r)
{
	if (r == -ENOTCONN || r == -EALREADY || r == -EBUSY)
		bh_api_reply_error(call, E_STATE, "the VM cannot do that now");
	else
		bh_api_reply_error(call, E_INTERNAL, "%s", strerror(-r));
}

static void op_pause(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r = bh_vm_pause(a->vm);

	if (r < 0) {
		reply_errno(call, r);
		return;
	}
	a->pause_call = call;
}

static void op_resume(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r = bh_vm_resume(a->vm);

	if (r < 0)
		reply_errno(call, r);
	else
		bh_api_reply_ok(call);
}

static void op_power_button(void *ctx, struct bh_api_call *call,
			    const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r = bh_vm_power_button(a->vm);

	if (r < 0)
		reply_errno(call, r);
	else
		bh_api_reply_ok(call);
}

static void op_snapshot(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	char err[512];
	int r;

	r = bh_vm_snapshot(a->vm, req->snapshot->destination_url, err,
			   sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call,
				   r == -ENOTCONN || r == -EBUSY ? E_STATE
				   : r == -EINVAL		 ? E_ARG
								 : E_HOST,
				   "%s", err);
		return;
	}
	a->snapshot_call = call;
}

/* Into a VMM without a VM: defined from the snapshot and booted from its
 * state; Paused once it is in. */
static void op_restore(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	char err[512];
	int r;

	r = bh_vm_restore(a->vm, req->restore->source_url, true, err,
			  sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call, r == -EEXIST ? E_STATE : E_ARG, "%s",
				   err);
		return;
	}
	r = bh_vm_boot(a->vm);
	if (r < 0) {
		bh_vm_delete(a->vm);
		bh_api_reply_error(call, E_HOST,
				   "the snapshot's VM did not start (see "
				   "bulkhead's log)");
		return;
	}
	bh_api_reply_ok(call);
}

static void op_create(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	struct bh_config cfg;
	char err[512];
	int r;

	r = bh_apiconfig_from_proto(req->create->config, &cfg, err,
				    sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call, E_ARG, "%s", err);
		return;
	}
	/* The host side's address needs CAP_NET_ADMIN, which the controller
	 * gave up once start-up was done. */
	for (unsigned int i = 0; i < cfg.nnets; i++) {
		if (!cfg.nets[i].ip)
			continue;
		bh_api_reply_error(
		    call, E_ARG,
		    "create: net[%u].ip: the TAP's address can only be set "
		    "at start-up (bulkhead --net ...,ip=), before privileges "
		    "drop; set it on the TAP beforehand and leave ip and mask "
		    "out",
		    i);
		bh_config_free(&cfg);
		return;
	}
	/* Files that cannot be used are the request's fault too. */
	r = bh_vm_define(a->vm, &cfg, err, sizeof(err));
	if (r < 0)
		bh_api_reply_error(call, E_ARG, "%s", err);
	else
		bh_api_reply_ok(call);
}

static void op_delete(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;

	/* delete is exclusive: no other change waits on this VM. */
	bh_vm_delete(a->vm);
	bh_api_reply_ok(call);
}

static void op_boot(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r = bh_vm_boot(a->vm);

	if (r == -EALREADY)
		reply_errno(call, r);
	else if (r < 0 && bh_vm_host_refusal(a->vm))
		bh_api_reply_error(call, E_HOST, "%s",
				   bh_vm_host_refusal(a->vm));
	else if (r < 0)
		bh_api_reply_error(call, E_HOST,
				   "the VM did not start (see bulkhead's log)");
	else
		bh_api_reply_ok(call);
}

static void op_shutdown(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r = bh_vm_stop(a->vm, BH_VM_STOP_SHUTDOWN);

	if (r < 0) {
		reply_errno(call, r);
		return;
	}
	a->stop_call = call;
}

static void op_reboot(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r = bh_vm_stop(a->vm, BH_VM_STOP_REBOOT);

	if (r < 0) {
		reply_errno(call, r);
		return;
	}
	a->reboot_call = call;
}

static void op_shutdown_vmm(void *ctx, struct bh_api_call *call,
			    const Request *req)
{
	struct bh_vmapi *a = ctx;
	int r;

	/* The answer goes out now: the process ends soon after. */
	bh_info("shutdown-vmm: stopping");
	bh_api_reply_ok(call);
	r = bh_vm_stop(a->vm, BH_VM_STOP_EXIT);
	if (r < 0)
		bh_warn("shutdown-vmm: %s", strerror(-r));
}

static void op_info(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	struct bh_devices *devs = bh_vm_devices(a->vm);
	unsigned int n = bh_devices_count(devs);
	Bulkhead__Api__V1__InfoResponse ir =
	    BULKHEAD__API__V1__INFO_RESPONSE__INIT;
	Bulkhead__Api__V1__VmInfo info = BULKHEAD__API__V1__VM_INFO__INIT;
	Bulkhead__Api__V1__DeviceInfo di[BH_MAX_DEVICES];
	Bulkhead__Api__V1__DeviceInfo *dip[BH_MAX_DEVICES];
	char addr[BH_MAX_DEVICES][16];
	Response resp = BULKHEAD__API__V1__RESPONSE__INIT;
	const char *id, *type;
	unsigned int slot, k = 0;
	struct bh_config now;

	/* With the devices added and removed while it ran. */
	bh_devices_config(devs, bh_vm_config(a->vm), &now);
	if (bh_apiconfig_to_proto(&now, &info.config) < 0) {
		bh_api_reply_error(call, E_INTERNAL, "out of memory");
		return;
	}
	info.state = (Bulkhead__Api__V1__VmState)op_state(a);
	info.memory_actual_size = bh_vm_config(a->vm)->memory;
	/* By slot: an empty one is skipped. */
	for (unsigned int i = 0; i < BH_MAX_DEVICES && k < n; i++) {
		if (bh_devices_describe(devs, i, &id, &type, &slot) < 0)
			continue;
		bulkhead__api__v1__device_info__init(&di[k]);
		snprintf(addr[k], sizeof(addr[k]), "0000:00:%02x.0", slot);
		di[k].id = (char *)id;
		di[k].type = (char *)type;
		di[k].pci_address = addr[k];
		dip[k] = &di[k];
		k++;
	}
	info.n_devices = k;
	info.devices = dip;
	ir.info = &info;
	resp.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_INFO;
	resp.info = &ir;
	bh_api_reply(call, &resp);
	bh_apiconfig_free_proto(info.config);
}

/* A counters call waiting for the workers' reports. */
struct counters_req {
	struct bh_vmapi *a;
	struct bh_api_call *call;
};

/* The serial port's output counters, as one more "device" (the controller
 * writes that output itself: no worker reports it). */
static unsigned int serial_counters(struct bh_vmapi *a,
				    struct bh_device_counters *out)
{
	uint64_t v[3];

	if (bh_vm_serial_counters(a->vm, &v[0], &v[1], &v[2]) < 0)
		return 0;
	memset(out, 0, sizeof(*out));
	out->id = "serial0";
	snprintf(out->c[0].name, sizeof(out->c[0].name), "tx_bytes");
	snprintf(out->c[1].name, sizeof(out->c[1].name), "tx_dropped");
	snprintf(out->c[2].name, sizeof(out->c[2].name), "truncations");
	for (unsigned int i = 0; i < 3; i++)
		out->c[i].value = v[i];
	out->n = 3;
	return 1;
}

static void counters_done(void *arg, const struct bh_device_counters *devs,
			  unsigned int n)
{
	struct counters_req *req = arg;
	struct bh_api_call *call = req->call;
	struct bh_device_counters serial;
	Bulkhead__Api__V1__CountersResponse cr =
	    BULKHEAD__API__V1__COUNTERS_RESPONSE__INIT;
	Bulkhead__Api__V1__CountersResponse__DevicesEntry
	    de[BH_MAX_DEVICES + 1];
	Bulkhead__Api__V1__CountersResponse__DevicesEntry
	    *dep[BH_MAX_DEVICES + 1];
	Bulkhead__Api__V1__DeviceCounters dc[BH_MAX_DEVICES + 1];
	Bulkhead__Api__V1__DeviceCounters__ValuesEntry
	    ve[BH_MAX_DEVICES + 1][BH_DEVICES_MAX_COUNTERS];
	Bulkhead__Api__V1__DeviceCounters__ValuesEntry
	    *vep[BH_MAX_DEVICES + 1][BH_DEVICES_MAX_COUNTERS];
	Response resp = BULKHEAD__API__V1__RESPONSE__INIT;

	if (n > BH_MAX_DEVICES)
		n = BH_MAX_DEVICES;
	for (unsigned int i = 0; i < n; i++) {
		for (unsigned int j = 0; j < devs[i].n; j++) {
			bulkhead__api__v1__device_counters__values_entry__init(
			    &ve[i][j]);
			ve[i][j].key = (char *)devs[i].c[j].name;
			ve[i][j].value = devs[i].c[j].value;
			vep[i][j] = &ve[i][j];
		}
		bulkhead__api__v1__device_counters__init(&dc[i]);
		dc[i].n_values = devs[i].n;
		dc[i].values = vep[i];
		bulkhead__api__v1__counters_response__devices_entry__init(
		    &de[i]);
		de[i].key = (char *)devs[i].id;
		de[i].value = &dc[i];
		dep[i] = &de[i];
	}
	/* One slot more than devices: the serial port's. */
	if (serial_counters(req->a, &serial)) {
		for (unsigned int j = 0; j < serial.n; j++) {
			bulkhead__api__v1__device_counters__values_entry__init(
			    &ve[n][j]);
			ve[n][j].key = serial.c[j].name;
			ve[n][j].value = serial.c[j].value;
			vep[n][j] = &ve[n][j];
		}
		bulkhead__api__v1__device_counters__init(&dc[n]);
		dc[n].n_values = serial.n;
		dc[n].values = vep[n];
		bulkhead__api__v1__counters_response__devices_entry__init(
		    &de[n]);
		de[n].key = (char *)serial.id;
		de[n].value = &dc[n];
		dep[n] = &de[n];
		n++;
	}
	cr.n_devices = n;
	cr.devices = dep;
	resp.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_COUNTERS;
	resp.counters = &cr;
	bh_api_reply(call, &resp);
	free(req);
}

static void op_counters(void *ctx, struct bh_api_call *call, const Request *req)
{
	struct bh_vmapi *a = ctx;
	struct counters_req *cr = malloc(sizeof(*cr));
	int r;

	if (!cr)
		abort();
	cr->a = a;
	cr->call = call;
	r = bh_devices_counters(bh_vm_devices(a->vm), COUNTERS_TIMEOUT,
				counters_done, cr);
	if (r == -ENOTCONN) {
		counters_done(cr, NULL, 0); /* no device runs: none */
	} else if (r < 0) {
		free(cr);
		reply_errno(call, r);
	}
}

static void answer(struct bh_api_call **callp, int code, const char *why)
{
	struct bh_api_call *call = *callp;

	if (!call)
		return;
	*callp = NULL;
	if (code == BULKHEAD__API__V1__ERROR_CODE__ERROR_NONE)
		bh_api_reply_ok(call);
	else
		bh_api_reply_error(call, code, "%s", why ? why : "failed");
}

/* ---- devices added and removed while the VM runs ------------------------ */

#define E_EXISTS   BULKHEAD__API__V1__ERROR_CODE__ALREADY_EXISTS
#define E_NOTFOUND BULKHEAD__API__V1__ERROR_CODE__NOT_FOUND
#define E_BUSY	   BULKHEAD__API__V1__ERROR_CODE__BUSY

/* The added device's place, as Cloud Hypervisor's PciDeviceInfo. */
static void reply_added(struct bh_vmapi *a)
{
	struct bh_api_call *call = a->add_call;
	Response resp = BULKHEAD__API__V1__RESPONSE__INIT;
	Bulkhead__Api__V1__AddDiskResponse disk =
	    BULKHEAD__API__V1__ADD_DISK_RESPONSE__INIT;
	Bulkhead__Api__V1__AddNetResponse net =
	    BULKHEAD__API__V1__ADD_NET_RESPONSE__INIT;
	Bulkhead__Api__V1__AddVsockResponse vsock =
	    BULKHEAD__API__V1__ADD_VSOCK_RESPONSE__INIT;
	Bulkhead__Api__V1__AddPmemResponse pmem =
	    BULKHEAD__API__V1__ADD_PMEM_RESPONSE__INIT;
	Bulkhead__Api__V1__DeviceInfo di = BULKHEAD__API__V1__DEVICE_INFO__INIT;
	const char *id, *type;
	unsigned int slot;
	char addr[16];

	a->add_call = NULL;
	if (bh_devices_describe(bh_vm_devices(a->vm), a->add_index, &id, &type,
				&slot) < 0) {
		bh_api_reply_error(call, E_STATE, "the device is gone again");
		return;
	}
	snprintf(addr, sizeof(addr), "0000:00:%02x.0", slot);
	di.id = (char *)id;
	di.type = (char *)type;
	di.pci_address = addr;
	disk.device = net.device = vsock.device = pmem.device = &di;
	/* The request's and the response's oneofs share their numbers. */
	resp.result_case = (Bulkhead__Api__V1__Response__ResultCase)a->add_op;
	switch (a->add_op) {
	case BULKHEAD__API__V1__REQUEST__OP_ADD_DISK:
		resp.add_disk = &disk;
		break;
	case BULKHEAD__API__V1__REQUEST__OP_ADD_NET:
		resp.add_net = &net;
		break;
	case BULKHEAD__API__V1__REQUEST__OP_ADD_PMEM:
		resp.add_pmem = &pmem;
		break;
	default:
		resp.add_vsock = &vsock;
		break;
	}
	bh_api_reply(call, &resp);
}

static void add_one(struct bh_vmapi *a, struct bh_api_call *call,
		    const Request *req,
		    const Bulkhead__Api__V1__DiskConfig *disk,
		    const Bulkhead__Api__V1__NetConfig *net,
		    const Bulkhead__Api__V1__VsockConfig *vsock,
		    const Bulkhead__Api__V1__PmemConfig *pmem)
{
	struct bh_config *one = calloc(1, sizeof(*one));
	unsigned int index;
	char err[512];
	int r;

	if (!one)
		abort();
	r = bh_apiconfig_device_from_proto(disk, net, vsock, pmem, one, err,
					   sizeof(err));
	if (r < 0) {
		free(one);
		bh_api_reply_error(call, E_ARG, "%s", err);
		return;
	}
	/* As create: the host side's address needs CAP_NET_ADMIN, which
	 * the controller gave up once start-up was done. */
	if (one->nnets && one->nets[0].ip) {
		bh_config_free(one);
		free(one);
		bh_api_reply_error(
		    call, E_ARG,
		    "net.ip: the TAP's address can only be set at start-up "
		    "(bulkhead --net ...,ip=), before privileges drop; set it "
		    "on the TAP beforehand and leave ip and mask out");
		return;
	}
	/* The call is the one addition under way: the API runs one
	 * operation that changes the VM at a time. */
	r = bh_vm_add_device(a->vm, one, &index, err, sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call,
				   r == -ENOTCONN ? E_STATE
				   : r == -EBUSY  ? E_BUSY
				   : r == -EEXIST ? E_EXISTS
				   : r == -ENOSPC ? E_STATE
				   : r == -EINVAL ? E_ARG
						  : E_HOST,
				   "%s", err);
		return;
	}
	a->add_call = call;
	a->add_op = req->op_case;
	a->add_index = index;
}

static void op_add_disk(void *ctx, struct bh_api_call *call, const Request *req)
{
	add_one(ctx, call, req, req->add_disk->disk, NULL, NULL, NULL);
}

static void op_add_net(void *ctx, struct bh_api_call *call, const Request *req)
{
	add_one(ctx, call, req, NULL, req->add_net->net, NULL, NULL);
}

/* The region goes at the lowest free place above RAM among the pmem
 * regions there now (see dev_pmem.c). */
static void op_add_pmem(void *ctx, struct bh_api_call *call, const Request *req)
{
	add_one(ctx, call, req, NULL, NULL, NULL, req->add_pmem->pmem);
}

static void op_add_vsock(void *ctx, struct bh_api_call *call,
			 const Request *req)
{
	/* Its listening socket comes from the binder (controller/binder.c),
	 * as any made after start-up. */
	add_one(ctx, call, req, NULL, NULL, req->add_vsock->vsock, NULL);
}

static void on_remove_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vmapi *a = arg;
	struct bh_api_call *call = a->remove_call;

	if (!call)
		return;
	a->remove_call = NULL;
	bh_api_reply_error(call, E_STATE,
			   "the guest did not eject %s within %d ms; the "
			   "removal stays asked for (the device goes when "
			   "the guest ejects it, or at the next reboot); "
			   "remove-device again asks again",
			   a->remove_id, REMOVE_TIMEOUT);
}

static void op_remove_device(void *ctx, struct bh_api_call *call,
			     const Request *req)
{
	struct bh_vmapi *a = ctx;
	const char *id = req->remove_device->id;
	struct timeval tv = { REMOVE_TIMEOUT / 1000,
			      (REMOVE_TIMEOUT % 1000) * 1000 };
	char err[256];
	int r;

	if (!id || !id[0]) {
		bh_api_reply_error(call, E_ARG, "id: required");
		return;
	}
	if (strlen(id) > BH_CONFIG_ID_MAX ||
	    bh_devices_find(bh_vm_devices(a->vm), id) < 0) {
		bh_api_reply_error(call, E_NOTFOUND,
				   "no device has the id '%.*s'",
				   BH_CONFIG_ID_MAX, id);
		return;
	}
	if (!a->remove_timer)
		a->remove_timer = evtimer_new(a->base, on_remove_timeout, a);
	if (!a->remove_timer) {
		bh_api_reply_error(call, E_INTERNAL, "out of memory");
		return;
	}
	r = bh_vm_remove_device(a->vm, id, err, sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call,
				   r == -ENOENT	    ? E_NOTFOUND
				   : r == -EBUSY    ? E_BUSY
				   : r == -ENOTCONN ? E_STATE
						    : E_INTERNAL,
				   "%s", err);
		return;
	}
	snprintf(a->remove_id, sizeof(a->remove_id), "%s", id);
	a->remove_call = call;
	evtimer_add(a->remove_timer, &tv);
}

/* A remove-device waiting while the device left: answered. */
static void remove_done(struct bh_vmapi *a)
{
	if (!a->remove_call)
		return;
	if (a->remove_timer)
		evtimer_del(a->remove_timer);
	answer(&a->remove_call, 0, NULL);
}

/* ---- live migration ------------------------------------------------------ */

/* The migration ended: its call is answered, and bulkhead ends when the VM
 * went (a success sending it away) or did not come (a failure receiving
 * it). */
static void status_proto(Bulkhead__Api__V1__MigrationStatus *ms,
			 struct bh_mig_status *st)
{
	bh_migrate_status(st);
	ms->role = (char *)st->role;
	ms->phase = (char *)st->phase;
	ms->local = st->local;
	ms->pass = st->pass;
	ms->pages_sent = st->pages_sent;
	ms->bytes_sent = st->bytes_sent;
	ms->pages_dirty = st->pages_dirty;
	ms->bytes_per_second = st->bytes_per_second;
	ms->expected_downtime_ms = st->expected_downtime_ms;
	ms->downtime_ms = st->downtime_ms;
	ms->elapsed_ms = st->elapsed_ms;
	ms->downtime_limit_ms = st->downtime_limit_ms;
	ms->error = st->error;
}

static void migration_done(void *arg, int r, const char *why)
{
	struct bh_vmapi *a = arg;
	bool sender = a->migration_sender;

	if (sender && r == 0 && a->migration_call) {
		Bulkhead__Api__V1__SendMigrationResponse sr =
		    BULKHEAD__API__V1__SEND_MIGRATION_RESPONSE__INIT;
		Bulkhead__Api__V1__MigrationStatus ms =
		    BULKHEAD__API__V1__MIGRATION_STATUS__INIT;
		Response resp = BULKHEAD__API__V1__RESPONSE__INIT;
		struct bh_mig_status st;

		status_proto(&ms, &st);
		sr.status = &ms;
		resp.result_case =
		    BULKHEAD__API__V1__RESPONSE__RESULT_SEND_MIGRATION;
		resp.send_migration = &sr;
		bh_api_reply(a->migration_call, &resp);
		a->migration_call = NULL;
	}
	answer(&a->migration_call, r == 0 ? 0 : E_HOST, why);
	if (sender && r == 0)
		bh_vm_exit(a->vm, 0);
	else if (!sender && r < 0)
		bh_vm_exit(a->vm, 1);
}

static void op_send_migration(void *ctx, struct bh_api_call *call,
			      const Request *req)
{
	const Bulkhead__Api__V1__SendMigrationRequest *sm = req->send_migration;
	struct bh_mig_send_opts o = { 0 };
	struct bh_vmapi *a = ctx;
	char err[512];
	int r;

	o.url = sm->destination_url ? sm->destination_url : "";
	o.local = sm->local;
	o.downtime_ms = sm->downtime_ms;
	a->migration_sender = true;
	r = bh_migrate_send(a->vm, a->base, &o, migration_done, a, err,
			    sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call,
				   r == -EINVAL			   ? E_ARG
				   : r == -EBUSY || r == -ENOTCONN ? E_STATE
								   : E_HOST,
				   "%s", err);
		return;
	}
	a->migration_call = call;
}

static void op_receive_migration(void *ctx, struct bh_api_call *call,
				 const Request *req)
{
	const Bulkhead__Api__V1__ReceiveMigrationRequest *rm =
	    req->receive_migration;
	struct bh_vmapi *a = ctx;
	char err[512];
	int r;

	a->migration_sender = false;
	r = bh_migrate_receive(a->vm, a->base,
			       rm->receiver_url ? rm->receiver_url : "",
			       migration_done, a, err, sizeof(err));
	if (r < 0) {
		bh_api_reply_error(call,
				   r == -EINVAL || r == -ENAMETOOLONG ? E_ARG
				   : r == -EBUSY		      ? E_STATE
								      : E_HOST,
				   "%s", err);
		return;
	}
	a->migration_call = call;
}

static void op_migration_status(void *ctx, struct bh_api_call *call,
				const Request *req)
{
	Bulkhead__Api__V1__MigrationStatusResponse mr =
	    BULKHEAD__API__V1__MIGRATION_STATUS_RESPONSE__INIT;
	Bulkhead__Api__V1__MigrationStatus ms =
	    BULKHEAD__API__V1__MIGRATION_STATUS__INIT;
	Response resp = BULKHEAD__API__V1__RESPONSE__INIT;
	struct bh_mig_status st;

	status_proto(&ms, &st);
	mr.status = &ms;
	resp.result_case = BULKHEAD__API__V1__RESPONSE__RESULT_MIGRATION_STATUS;
	resp.migration_status = &mr;
	bh_api_reply(call, &resp);
}

static void op_abandon_migration(void *ctx, struct bh_api_call *call,
				 const Request *req)
{
	if (bh_migrate_abandon("abandoned through the API") < 0) {
		bh_api_reply_error(call,
				   BULKHEAD__API__V1__ERROR_CODE__NOT_FOUND,
				   "no migration is under way");
		return;
	}
	bh_api_reply_ok(call);
}

static const struct bh_api_ops vm_ops = {
	.state = op_state,
	.create = op_create,
	.delete = op_delete,
	.boot = op_boot,
	.shutdown = op_shutdown,
	.reboot = op_reboot,
	.power_button = op_power_button,
	.pause = op_pause,
	.resume = op_resume,
	.info = op_info,
	.counters = op_counters,
	.snapshot = op_snapshot,
	.restore = op_restore,
	.add_disk = op_add_disk,
	.add_net = op_add_net,
	.add_pmem = op_add_pmem,
	.add_vsock = op_add_vsock,
	.remove_device = op_remove_device,
	.shutdown_vmm = op_shutdown_vmm,
	.send_migration = op_send_migration,
	.receive_migration = op_receive_migration,
	.migration_status = op_migration_status,
	.abandon_migration = op_abandon_migration,
};

void bh_vmapi_event(struct bh_vmapi *a, enum bh_vmapi_event ev, const char *why)
{
	if (!a)
		return;
	switch (ev) {
	case BH_VMAPI_PAUSED:
		answer(&a->pause_call, 0, NULL);
		break;
	case BH_VMAPI_PAUSE_FAILED:
		answer(&a->pause_call, E_INTERNAL, why);
		break;
	case BH_VMAPI_STOPPED:
		answer(&a->pause_call, E_STATE, "the VM stopped");
		answer(&a->stop_call, 0, NULL);
		/* A reboot waits for the boot that follows; if the VM stopped
		 * for good instead, runner_gone says so with BOOT_FAILED or
		 * not at all: then the VM is off. */
		if (bh_vm_state(a->vm) == BH_VM_STOPPED && a->reboot_call &&
		    why)
			answer(&a->reboot_call, E_STATE, why);
		break;
	case BH_VMAPI_BOOTED:
		answer(&a->reboot_call, 0, NULL);
		break;
	case BH_VMAPI_BOOT_FAILED:
		answer(&a->reboot_call, E_HOST, why);
		break;
	case BH_VMAPI_DEVICE_ADDED:
		if (a->add_call)
			reply_added(a);
		break;
	case BH_VMAPI_DEVICE_ADD_FAILED:
		answer(&a->add_call, E_HOST, why);
		break;
	case BH_VMAPI_DEVICE_REMOVED:
		if (why && strcmp(why, a->remove_id) == 0)
			remove_done(a);
		break;
	case BH_VMAPI_SNAPSHOT_DONE:
		answer(&a->snapshot_call, 0, NULL);
		break;
	case BH_VMAPI_SNAPSHOT_FAILED:
		answer(&a->snapshot_call, E_HOST, why);
		break;
	}
	/* With the boot's end, a device whose removal was asked for is
	 * gone. */
	if (ev == BH_VMAPI_STOPPED && a->remove_call &&
	    bh_devices_find(bh_vm_devices(a->vm), a->remove_id) < 0)
		remove_done(a);
}

int bh_vmapi_new(struct bh_vm *vm, struct event_base *base,
		 struct bh_vmapi **out)
{
	const struct bh_config *cfg = bh_vm_process_config(vm);
	struct bh_vmapi *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	a->vm = vm;
	a->base = base;
	r = bh_api_server_new(base, &vm_ops, a, NULL, &a->srv);
	if (r < 0) {
		bh_err("cannot create the API server: %s", strerror(-r));
		goto fail;
	}
	bh_api_server_set_access(a->srv, &cfg->api_access);
	if (cfg->api_access.nuids || cfg->api_access.ngids)
		bh_info("api: only root, our own user and %u listed users and "
			"%u listed groups may use the API",
			cfg->api_access.nuids, cfg->api_access.ngids);
	if (cfg->api_socket_path) {
		r = bh_api_listen_path(a->srv, cfg->api_socket_path);
		if (r < 0)
			bh_err("--api-socket: cannot listen on '%s': %s",
			       cfg->api_socket_path,
			       r == -EEXIST ? "it exists and is not a socket"
			       : r == -EADDRINUSE
				   ? "another server answers there"
				   : strerror(-r));
	} else {
		r = bh_api_listen_fd(a->srv, cfg->api_socket_fd);
		if (r < 0) {
			bh_err("--api-socket: fd=%d: %s", cfg->api_socket_fd,
			       r == -ENOTSOCK
				   ? "not a listening unix stream socket"
				   : strerror(-r));
			close(cfg->api_socket_fd);
		}
	}
	if (r < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	bh_vmapi_free(a);
	return r;
}

void bh_vmapi_free(struct bh_vmapi *a)
{
	if (!a)
		return;
	answer(&a->pause_call, E_STATE, "bulkhead is exiting");
	answer(&a->stop_call, E_STATE, "bulkhead is exiting");
	answer(&a->reboot_call, E_STATE, "bulkhead is exiting");
	answer(&a->add_call, E_STATE, "bulkhead is exiting");
	answer(&a->remove_call, E_STATE, "bulkhead is exiting");
	answer(&a->snapshot_call, E_STATE, "bulkhead is exiting");
	answer(&a->migration_call, E_STATE, "bulkhead is exiting");
	if (a->remove_timer)
		event_free(a->remove_timer);
	if (a->srv)
		bh_api_server_free(a->srv);
	free(a);
}
