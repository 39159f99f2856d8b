/* The host check as the test suite's stand-in runners answer it: a KVM
 * with every capability the controller asks about, whose probe guest ran at
 * hardware speed (vcpu-runner/probe.c measures the real one). */
#ifndef BH_TEST_STANDIN_PROBE_H
#define BH_TEST_STANDIN_PROBE_H

#include <stdint.h>

#include <bulkhead/frame.h>

#include "proto/internal.pb-c.h"

/* Answers f, which must be MSG_RUNNER_PROBE (f is released). 0, or -1 for
 * anything else. */
static inline int standin_answer_probe_frame(int sock, struct bh_frame *f)
{
	Bh__RunnerProbeResult res = BH__RUNNER_PROBE_RESULT__INIT;
	Bh__RunnerProbe *q;
	int32_t caps[64];
	int r;

	q = f->type == BH__MSG_TYPE__MSG_RUNNER_PROBE
		? bh__runner_probe__unpack(NULL, f->len, f->body)
		: NULL;
	bh_frame_release(f);
	if (!q || q->n_capabilities > 64) {
		if (q)
			bh__runner_probe__free_unpacked(q, NULL);
		return -1;
	}
	for (size_t i = 0; i < q->n_capabilities; i++)
		caps[i] = 1;
	res.n_capabilities = q->n_capabilities;
	res.capabilities = caps;
	res.api_version = 12;
	res.cpu_vendor = "stand-in";
	res.probe_ran = 1;
	res.probe_planned = res.probe_done = 4000000;
	res.probe_ns = 1000000;
	res.probe_best_done = 400000;
	res.probe_best_ns = 100000;
	res.probe_deadline_ns = 700000000;
	r = bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_PROBE_RESULT,
			  &res.base, NULL, 0);
	bh__runner_probe__free_unpacked(q, NULL);
	return r < 0 ? -1 : 0;
}

/* Reads MSG_RUNNER_PROBE from sock within timeout_ms and answers it. 0, or
 * -1 for anything else. */
static inline int standin_answer_probe(int sock, struct bh_frame_reader *rd,
				       int timeout_ms)
{
	struct bh_frame f;

	if (bh_frame_read_timeout(sock, rd, &f, timeout_ms) < 0)
		return -1;
	return standin_answer_probe_frame(sock, &f);
}

#endif
