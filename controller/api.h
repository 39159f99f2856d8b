/*
 * The management API server: accepts clients on a unix socket, checks the
 * handshake, the framing and each request's allowed states, and hands the
 * request to the VM layer through an ops table. The wire format is in
 * proto/api.proto and docs/API.md.
 */
#ifndef BH_CONTROLLER_API_H
#define BH_CONTROLLER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/api.pb-c.h"

struct event_base;

/* The API version this server speaks (Hello.version). */
#define BH_API_VERSION BULKHEAD__API__V1__API_VERSION__API_VERSION_CURRENT
/* Frame types of the API socket (the range 256-271 is the API's). */
#define BH_API_FRAME_REQUEST  BULKHEAD__API__V1__FRAME_TYPE__FRAME_REQUEST
#define BH_API_FRAME_RESPONSE BULKHEAD__API__V1__FRAME_TYPE__FRAME_RESPONSE
#define BH_API_FRAME_HELLO    BULKHEAD__API__V1__FRAME_TYPE__FRAME_HELLO
/* Largest frame body the server reads, checked before the body is read. */
#define BH_API_MAX_FRAME (1024u * 1024u)
/* The server's Hello.role. */
#define BH_API_SERVER_ROLE "bulkhead-api"

/* The VM's state, as the server checks it: the values of api.proto's
 * VmState. */
enum bh_api_vm_state {
	BH_API_NOT_CREATED = BULKHEAD__API__V1__VM_STATE__NOT_CREATED,
	BH_API_CREATED = BULKHEAD__API__V1__VM_STATE__CREATED,
	BH_API_RUNNING = BULKHEAD__API__V1__VM_STATE__RUNNING,
	BH_API_PAUSED = BULKHEAD__API__V1__VM_STATE__PAUSED,
	BH_API_SHUTDOWN = BULKHEAD__API__V1__VM_STATE__SHUTDOWN,
};

/*
 * Limits that keep one client from starving the others or the VMM. Of the
 * max_clients slots (if there is more than one) the last is kept for a
 * client whose SO_PEERCRED uid is root or the server's own effective uid:
 * whoever else fills the others, the owner can still get in (to
 * shutdown-vmm, for one).
 */
struct bh_api_limits {
	unsigned int max_clients; /* connections served at once */
	size_t max_output;	  /* reply bytes queued for one client */
	unsigned int max_calls;	  /* unanswered requests of one client */
	int handshake_ms;	  /* from accept to the client's hello */
	int frame_ms; /* from a frame's first byte to its last, and for the
			 last reply to a client being closed to go out */
	/* A client with no frame begun and no call under way is dropped
	 * after this long without a complete request, counted from its
	 * hello, its last request or its last reply. */
	int idle_ms;
};

#define BH_API_LIMITS_DEFAULT                                                  \
	{                                                                      \
		.max_clients = 32, .max_output = 1024 * 1024, .max_calls = 16, \
		.handshake_ms = 10000, .frame_ms = 10000, .idle_ms = 60000,    \
	}

/* Ids in each list of struct bh_api_access. */
#define BH_API_MAX_ALLOW 32

/*
 * Who may use the API besides root and the server's own effective uid, who
 * always may (they own the process anyway). A client is let in if its uid
 * is in uids, or its gid or one of its supplementary groups is in gids, as
 * the kernel gives them for the connection (SO_PEERCRED, SO_PEERGROUPS).
 * With both lists empty, anyone who can connect to the socket may.
 */
struct bh_api_access {
	uint32_t uids[BH_API_MAX_ALLOW];
	unsigned int nuids;
	uint32_t gids[BH_API_MAX_ALLOW];
	unsigned int ngids;
};

/* Whether a client of uid, with groups (its gid and supplementary groups,
 * n of them), may use a server whose effective uid is self. */
bool bh_api_access_allows(const struct bh_api_access *a, uint32_t self,
			  uint32_t uid, const uint32_t *groups, size_t n);

struct bh_api_server;
/* One request being carried out. Every call handed to a handler must be
 * answered exactly once with bh_api_reply*(), now or later. */
struct bh_api_call;

/*
 * A handler for one operation. req (its op member is the handler's
 * operation) stays valid until the call is answered. The server has checked
 * the VM's state against the operation's allowed states already; the
 * handler checks the request's fields.
 */
typedef void (*bh_api_op_fn)(void *ctx, struct bh_api_call *call,
			     const Bulkhead__Api__V1__Request *req);

/*
 * The VM layer's side of the API: one handler per operation of api.proto
 * (ping is answered by the server). A NULL handler makes its operation answer
 * NOT_SUPPORTED_YET and leaves it out of ping's list.
 */
struct bh_api_ops {
	/* Required: the VM's state now. Called before each request. */
	enum bh_api_vm_state (*state)(void *ctx);
	bh_api_op_fn create;
	bh_api_op_fn delete;
	bh_api_op_fn boot;
	bh_api_op_fn shutdown;
	bh_api_op_fn reboot;
	bh_api_op_fn power_button;
	bh_api_op_fn pause;
	bh_api_op_fn resume;
	bh_api_op_fn info;
	bh_api_op_fn counters;
	bh_api_op_fn snapshot;
	bh_api_op_fn restore;
	bh_api_op_fn resize;
	bh_api_op_fn resize_zone;
	bh_api_op_fn add_device;
	bh_api_op_fn remove_device;
	bh_api_op_fn add_disk;
	bh_api_op_fn add_fs;
	bh_api_op_fn add_pmem;
	bh_api_op_fn add_net;
	bh_api_op_fn add_vsock;
	bh_api_op_fn send_migration;
	bh_api_op_fn receive_migration;
	bh_api_op_fn shutdown_vmm;
	bh_api_op_fn migration_status;
	bh_api_op_fn abandon_migration;
};

/*
 * Creates a server on base (borrowed; it must outlive the server). ops and
 * ctx are borrowed too. limits may be NULL for BH_API_LIMITS_DEFAULT.
 * 0, -EINVAL (no state callback, a zero limit) or -ENOMEM.
 */
int bh_api_server_new(struct event_base *base, const struct bh_api_ops *ops,
		      void *ctx, const struct bh_api_limits *limits,
		      struct bh_api_server **out);

/*
 * Closes every client and the listening socket, and removes the socket file
 * that bh_api_listen_path created. Calls still unanswered stay valid: their
 * replies go nowhere. Not from inside a handler.
 */
void bh_api_server_free(struct bh_api_server *s);

/*
 * Creates the API socket at path (mode 0600) and listens on it. An existing
 * socket file that nothing answers on is replaced. 0, or
 *   -EEXIST        path exists and is not a socket (left alone)
 *   -EADDRINUSE    a live server answers on path
 *   -ENAMETOOLONG  path does not fit in sockaddr_un
 *   -EALREADY      the server listens already
 *   other -errno from socket(2), bind(2), listen(2).
 * Sets the process umask for the duration of bind(2).
 */
int bh_api_listen_path(struct bh_api_server *s, const char *path);

/*
 * Listens on an inherited listening AF_UNIX stream socket (systemd socket
 * activation, --api-socket fd=N). Takes fd on success; on failure the caller
 * still owns it. 0, -ENOTSOCK (not a listening unix stream socket),
 * -EALREADY, or -errno.
 */
int bh_api_listen_fd(struct bh_api_server *s, int fd);

/*
 * Accepts from now on only the clients that a allows (copied); clients
 * already connected stay. NULL or empty lists: anyone who can connect.
 */
void bh_api_server_set_access(struct bh_api_server *s,
			      const struct bh_api_access *a);

/* Clients connected now (after the handshake or waiting for it). */
unsigned int bh_api_server_clients(const struct bh_api_server *s);

/*
 * Answers call with resp (borrowed: the caller frees what it built). The
 * server sets the id. An error code other than ERROR_NONE sends the error
 * and no result; without an error, a result of the call's operation is
 * sent, an empty one if resp has none. Frees the call; safe when its client
 * or the server has gone away.
 */
void bh_api_reply(struct bh_api_call *call,
		  const Bulkhead__Api__V1__Response *resp);
/* Answers with success and the operation's empty result. */
void bh_api_reply_ok(struct bh_api_call *call);
/* Answers with an error. The message is prefixed by the operation's name
 * ("boot: ..."). */
void bh_api_reply_error(struct bh_api_call *call,
			Bulkhead__Api__V1__ErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The call's operation, by bulkhead-ctl subcommand name ("power-button"). */
const char *bh_api_call_op_name(const struct bh_api_call *call);
/* Whether the client that sent the call is still connected. */
bool bh_api_call_client_connected(const struct bh_api_call *call);

/* "NotCreated", "Created", "Running", "Paused", "Shutdown". */
const char *bh_api_state_name(enum bh_api_vm_state state);

/*
 * Parses an --api-socket argument: a bare PATH (taken whole, commas and
 * all), or "path=PATH" or "fd=N" followed by ",allow-uid=U[:U...]" and
 * ",allow-gid=G[:G...]" (numeric ids) if wanted. On success exactly one of
 * *path (malloc'd) and *fd (>= 0; else -1) is set, and *access holds the
 * lists (empty without them). 0, or -EINVAL with a message in err.
 */
int bh_api_socket_arg_parse(const char *arg, char **path, int *fd,
			    struct bh_api_access *access, char *err,
			    size_t errlen);

#endif
