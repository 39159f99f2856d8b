/* The version handshake: the first frame in each direction of every
 * connection is MSG_HELLO with the protocol version and the sender's role. */
#ifndef BULKHEAD_HELLO_H
#define BULKHEAD_HELLO_H

#include "frame.h"

#define BH_PROTO_VERSION 1

/* Sends MSG_HELLO {version = BH_PROTO_VERSION, role}. 0 or -errno. */
int bh_hello_send(int sock, const char *role);

/*
 * Checks that f is a valid MSG_HELLO with no fds, version BH_PROTO_VERSION and,
 * if expect_role is not NULL, that role. Does not release f.
 * 0, or -EPROTO (wrong type, fds attached, wrong role), -EBADMSG (body does not
 * unpack), -EPROTONOSUPPORT (other version).
 */
int bh_hello_check(const struct bh_frame *f, const char *expect_role);

/* Blocking: sends our hello, reads the peer's and checks it. 0 or -errno. */
int bh_hello_exchange(int sock, const char *role, const char *expect_role);

#endif
