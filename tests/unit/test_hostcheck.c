/* Unit tests of the host check's verdict (controller/hostcheck.c): made-up
 * probe results for a KVM that runs guest code at speed, one that emulates
 * it, none at all, and the ways in between. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "hostcheck.h"

static const struct bh_host_facts amd = { "kvm_amd", false, true };
static const struct bh_host_facts intel = { "kvm_intel", true, false };
static const struct bh_host_facts pvm = { "kvm_pvm", false, false };
static const struct bh_host_facts unknown = { "", false, false };

/* What a VMX/SVM host's runner reports: every capability, and the probe's
 * 4 million instructions in 1.5 ms. */
static struct bh_kvm_report fast(void)
{
	struct bh_kvm_report r;

	memset(&r, 0, sizeof(r));
	r.api_version = KVM_API_VERSION;
	snprintf(r.vendor, sizeof(r.vendor), "AuthenticAMD");
	for (size_t i = 0; i < bh_kvm_ncaps; i++)
		r.caps[i] = 1;
	r.ncaps = bh_kvm_ncaps;
	r.probe_ran = true;
	r.probe_planned = 4000000;
	r.probe_done = 4000000;
	r.probe_ns = 1500000;
	r.probe_deadline_ns = 700000000;
	r.probe_best_done = 400000;
	r.probe_best_ns = 100000;
	return r;
}

/* kvm_pvm on a CPU without VMX/SVM: the emulator ran 10,920 instructions
 * by the 700 ms deadline (15,600 a second, as measured on such a host). */
static struct bh_kvm_report emulated(void)
{
	struct bh_kvm_report r = fast();

	r.probe_done = 10920;
	r.probe_ns = 700000000;
	r.probe_best_done = 10920;
	r.probe_best_ns = 700000000;
	return r;
}

static enum bh_kvm_verdict judge(const struct bh_host_facts *f,
				 const struct bh_kvm_report *r, char *msg,
				 size_t len)
{
	enum bh_kvm_verdict v = bh_kvm_judge(f, r, msg, len);

	/* Every verdict but "fast" explains itself. */
	if (v == BH_KVM_FAST)
		assert_string_equal(msg, "");
	else
		assert_true(strlen(msg) > 20);
	return v;
}

static void test_fast(void **state)
{
	struct bh_kvm_report r = fast();
	char msg[768];

	(void)state;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_FAST);
	assert_int_equal(judge(&intel, &r, msg, sizeof(msg)), BH_KVM_FAST);
	/* The speed decides, not the module's name: a PVM host that ran the
	 * probe at speed (a PVM guest kernel, or VMX underneath) passes. */
	assert_int_equal(judge(&pvm, &r, msg, sizeof(msg)), BH_KVM_FAST);
	/* The fastest chunk decides, not the whole run. */
	assert_int_equal(bh_kvm_probe_ips(&r), 4000000000ULL);
	/* A vCPU preempted for most of the run (the whole at 8 million a
	 * second) but with one chunk at speed is not an emulator. */
	r.probe_ns = 500000000;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_FAST);
	/* Just at the threshold still counts; a missing capability that only
	 * later features need does not matter yet. */
	r.probe_best_done = BH_KVM_MIN_IPS / 100;
	r.probe_best_ns = 10000000;
	for (size_t i = 0; i < bh_kvm_ncaps; i++)
		if (bh_kvm_caps[i].need == BH_CAP_LATER)
			r.caps[i] = 0;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_FAST);
}

static void test_emulated_pvm(void **state)
{
	struct bh_kvm_report r = emulated();
	char msg[768];

	(void)state;
	assert_int_equal(judge(&pvm, &r, msg, sizeof(msg)), BH_KVM_EMULATED);
	assert_non_null(strstr(msg, "kvm_pvm"));
	assert_non_null(strstr(msg, "without VMX or SVM"));
	assert_non_null(strstr(msg, "instruction emulation"));
	assert_non_null(strstr(msg, "15600 instructions a second"));
	assert_non_null(strstr(msg, "kvm-host"));
}

static void test_emulated_other(void **state)
{
	struct bh_kvm_report r = emulated();
	char msg[768];

	(void)state;
	/* Under another name, and even with VMX in the CPU flags: what the
	 * probe measured decides. */
	assert_int_equal(judge(&unknown, &r, msg, sizeof(msg)),
			 BH_KVM_EMULATED);
	assert_non_null(strstr(msg, "an unknown module"));
	assert_non_null(strstr(msg, "emulation"));
	assert_int_equal(judge(&intel, &r, msg, sizeof(msg)), BH_KVM_EMULATED);
	assert_non_null(strstr(msg, "kvm_intel"));
	/* Just below the threshold. */
	r = fast();
	r.probe_best_done = BH_KVM_MIN_IPS / 100 - 1;
	r.probe_best_ns = 10000000;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_EMULATED);
}

static void test_no_kvm(void **state)
{
	struct bh_kvm_report r;
	char msg[768];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.open_errno = ENOENT;
	assert_int_equal(judge(&unknown, &r, msg, sizeof(msg)), BH_KVM_MISSING);
	assert_non_null(strstr(msg, "cannot open /dev/kvm"));
	assert_non_null(strstr(msg, "VMX or SVM"));
	r.open_errno = EACCES;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_MISSING);
	assert_non_null(strstr(msg, "kvm group"));
}

static void test_unusable(void **state)
{
	struct bh_kvm_report r = fast();
	char msg[768];
	size_t irqfd = bh_kvm_ncaps;

	(void)state;
	for (size_t i = 0; i < bh_kvm_ncaps; i++)
		if (bh_kvm_caps[i].num == KVM_CAP_IRQFD)
			irqfd = i;
	assert_true(irqfd < bh_kvm_ncaps);
	r.caps[irqfd] = 0;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_UNUSABLE);
	assert_non_null(strstr(msg, "KVM_CAP_IRQFD"));
	/* Fewer answers than capabilities: the missing ones are missing. */
	r = fast();
	r.ncaps = 2;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_UNUSABLE);
	r = fast();
	r.api_version = 11;
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_UNUSABLE);
	assert_non_null(strstr(msg, "API version 11"));
	r = fast();
	r.probe_ran = false;
	snprintf(r.probe_error, sizeof(r.probe_error),
		 "KVM_CREATE_VM: Cannot allocate memory");
	assert_int_equal(judge(&amd, &r, msg, sizeof(msg)), BH_KVM_UNUSABLE);
	assert_non_null(strstr(msg, "KVM_CREATE_VM"));
	/* A short buffer is cut, still terminated. */
	r = emulated();
	assert_int_equal(bh_kvm_judge(&pvm, &r, msg, 16), BH_KVM_EMULATED);
	assert_int_equal(strlen(msg), 15);
}

/* The report: one FAIL line for an emulating KVM, none for a fast one. */
static void test_report(void **state)
{
	struct bh_kvm_report r = emulated();
	struct bh_check_report rep = { 0 };
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	rep.out = open_memstream(&buf, &len);
	assert_non_null(rep.out);
	bh_check_kvm(&rep, &pvm, &r);
	fclose(rep.out);
	assert_int_equal(rep.fails, 1);
	assert_non_null(strstr(buf, "FAIL  kvm-speed"));
	assert_non_null(
	    strstr(buf, "warn  kvm-module         kvm_pvm without"));
	free(buf);

	memset(&rep, 0, sizeof(rep));
	r = fast();
	rep.out = open_memstream(&buf, &len);
	bh_check_kvm(&rep, &amd, &r);
	fclose(rep.out);
	assert_int_equal(rep.fails, 0);
	assert_int_equal(rep.warns, 0);
	assert_non_null(strstr(buf, "pass  kvm-speed"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast),
		cmocka_unit_test(test_emulated_pvm),
		cmocka_unit_test(test_emulated_other),
		cmocka_unit_test(test_no_kvm),
		cmocka_unit_test(test_unusable),
		cmocka_unit_test(test_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
