/* The management API's round trip: N pings over one connection through
 * libbulkhead-client, each timed alone; prints the median, the 99th
 * percentile and the extremes in microseconds (and JSON with --json). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bulkhead/client.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	Bulkhead__Api__V1__PingRequest ping =
	    BULKHEAD__API__V1__PING_REQUEST__INIT;
	Bulkhead__Api__V1__Request req = BULKHEAD__API__V1__REQUEST__INIT;
	struct bh_client *c = NULL;
	char err[256];
	double *t;
	long n;
	int r, json;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: ping_bench SOCKET N [--json]\n");
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	json = argc == 4 && strcmp(argv[3], "--json") == 0;
	if (n < 1 || n > 10000000) {
		fprintf(stderr, "ping_bench: N must be 1..10000000\n");
		return 2;
	}
	t = calloc((size_t)n, sizeof(*t));
	if (!t)
		return 1;
	r = bh_client_connect(argv[1], 5000, "ping_bench", &c, err,
			      sizeof(err));
	if (r < 0) {
		fprintf(stderr, "ping_bench: %s\n", err);
		return 1;
	}
	req.op_case = BULKHEAD__API__V1__REQUEST__OP_PING;
	req.ping = &ping;
	for (long i = 0; i < n; i++) {
		Bulkhead__Api__V1__Response *resp = NULL;
		double t0 = now_us();

		req.id = (uint64_t)i + 1;
		r = bh_client_call(c, &req, 5000, &resp);
		t[i] = now_us() - t0;
		if (r < 0 || bh_client_error_code(resp) != 0) {
			fprintf(stderr, "ping_bench: ping %ld failed: %s\n", i,
				r < 0 ? strerror(-r)
				      : bh_client_error_message(resp));
			bh_client_response_free(resp);
			return 1;
		}
		bh_client_response_free(resp);
	}
	bh_client_close(c);
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	if (json)
		printf(
		    "{\"calls\": %ld, \"median_us\": %.1f, \"p99_us\": %.1f, "
		    "\"min_us\": %.1f, \"max_us\": %.1f}\n",
		    n, t[n / 2], t[(n * 99) / 100], t[0], t[n - 1]);
	else
		printf("%ld pings: median %.1f us, 99th percentile %.1f us, "
		       "min %.1f us, max %.1f us\n",
		       n, t[n / 2], t[(n * 99) / 100], t[0], t[n - 1]);
	free(t);
	return 0;
}
