/*
 * libbulkhead-client: the C client of bulkhead's management API. Connects to
 * a controller's API socket, does the version handshake, and makes one call
 * at a time: a Request out, its Response back, each within a time limit.
 * The messages are those of api.proto (bulkhead/proto/api.pb-c.h); the
 * socket and framing are described in bulkhead's docs/API.md.
 *
 * A struct bh_client is not thread-safe: use one per thread.
 */
#ifndef BULKHEAD_CLIENT_H
#define BULKHEAD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/api.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BH_CLIENT_EXPORT __attribute__((visibility("default")))

/* The API version this library speaks. */
#define BH_CLIENT_API_VERSION 1

struct bh_client;

/*
 * Connects to the API socket at path and exchanges hellos, within timeout_ms
 * in all (negative: no limit). role names the program in the server's logs
 * (NULL: "libbulkhead-client"). 0 with *out set, or -errno with a message in
 * err (which may be NULL):
 *   -errno of connect(2) (-ENOENT, -ECONNREFUSED, -EACCES, ...),
 *   -ETIMEDOUT          no hello from the server in time,
 *   -EPROTO             the server's first frame is not a hello,
 *   -EPROTONOSUPPORT    the server speaks another API version.
 */
BH_CLIENT_EXPORT int bh_client_connect(const char *path, int timeout_ms,
				       const char *role, struct bh_client **out,
				       char *err, size_t errlen);

/* Closes the connection and frees c; NULL is fine. */
BH_CLIENT_EXPORT void bh_client_close(struct bh_client *c);

/* The API version in the server's hello. */
BH_CLIENT_EXPORT uint32_t bh_client_server_version(const struct bh_client *c);

/*
 * One call: sets req->id to the next id of this connection, sends req and
 * waits up to timeout_ms (negative: no limit) for its Response. Replies to
 * earlier calls that timed out are skipped. A reply with id 0 (the server
 * refused the connection or the frame) is returned as this call's.
 *
 * 0 with *resp set (free it with bh_client_response_free): the server
 * answered, with success or an error (bh_client_error_code). Or -errno when
 * no answer came, with a message in bh_client_last_error():
 *   -ETIMEDOUT  no reply in time; the connection stays usable if the
 *               request went out whole,
 *   -EPIPE      the server closed the connection,
 *   -EPROTO     the server broke the protocol,
 *   -EMSGSIZE   the request is too large for a frame.
 * After any error but a -ETIMEDOUT on a sent request, later calls fail
 * with -ENOTCONN.
 */
BH_CLIENT_EXPORT int bh_client_call(struct bh_client *c,
				    Bulkhead__Api__V1__Request *req,
				    int timeout_ms,
				    Bulkhead__Api__V1__Response **resp);

BH_CLIENT_EXPORT void
bh_client_response_free(Bulkhead__Api__V1__Response *resp);

/* The server's verdict: ERROR_NONE on success. */
BH_CLIENT_EXPORT Bulkhead__Api__V1__ErrorCode
bh_client_error_code(const Bulkhead__Api__V1__Response *resp);
/* The server's error message; "" on success. */
BH_CLIENT_EXPORT const char *
bh_client_error_message(const Bulkhead__Api__V1__Response *resp);
/* "INVALID_STATE" for BULKHEAD__API__V1__ERROR_CODE__INVALID_STATE;
 * "UNKNOWN" for a code this library does not know. */
BH_CLIENT_EXPORT const char *
bh_client_error_code_name(Bulkhead__Api__V1__ErrorCode code);

/*
 * Devices added to and removed from a running or paused VM, each one
 * bh_client_call with the operation's request (the configuration is
 * borrowed; its fields as in api.proto, an empty id letting the VMM pick
 * "disk0", "net1", ...). Returns as bh_client_call. The VMM answers once
 * the device is in the VM, or once the guest has ejected it for
 * remove-device (INVALID_STATE if the guest did not within the VMM's
 * limit: the removal stays asked for). add-vsock is refused while the VM
 * runs (NOT_SUPPORTED_YET): a vsock device is given at start-up. add-pmem
 * may leave pmem->size 0: the file's size, a non-zero multiple of 2 MiB.
 */
BH_CLIENT_EXPORT int
bh_client_add_disk(struct bh_client *c,
		   const Bulkhead__Api__V1__DiskConfig *disk, int timeout_ms,
		   Bulkhead__Api__V1__Response **resp);
BH_CLIENT_EXPORT int bh_client_add_net(struct bh_client *c,
				       const Bulkhead__Api__V1__NetConfig *net,
				       int timeout_ms,
				       Bulkhead__Api__V1__Response **resp);
BH_CLIENT_EXPORT int
bh_client_add_vsock(struct bh_client *c,
		    const Bulkhead__Api__V1__VsockConfig *vsock, int timeout_ms,
		    Bulkhead__Api__V1__Response **resp);
BH_CLIENT_EXPORT int
bh_client_add_pmem(struct bh_client *c,
		   const Bulkhead__Api__V1__PmemConfig *pmem, int timeout_ms,
		   Bulkhead__Api__V1__Response **resp);
BH_CLIENT_EXPORT int
bh_client_remove_device(struct bh_client *c, const char *id, int timeout_ms,
			Bulkhead__Api__V1__Response **resp);
/* The device an add-* call placed (id, type, PCI address
 * "0000:00:SS.0"), or NULL for any other response or an error. Borrowed
 * from resp. */
BH_CLIENT_EXPORT const Bulkhead__Api__V1__DeviceInfo *
bh_client_device_info(const Bulkhead__Api__V1__Response *resp);

/* What went wrong in the last failed bh_client_call; "" if nothing. */
BH_CLIENT_EXPORT const char *bh_client_last_error(const struct bh_client *c);

#ifdef __cplusplus
}
#endif

#endif
