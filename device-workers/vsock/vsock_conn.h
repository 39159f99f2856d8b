/* vsock/vsock_conn: the virtio-vsock packet format and the connection state
 * machine, without any I/O, so that unit tests and the fuzzer drive it alone;
 * vsock.c moves the bytes. */
#ifndef BH_VSOCK_CONN_H
#define BH_VSOCK_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* struct virtio_vsock_hdr (virtio 1.2, 5.10.6), little-endian, packed. */
#define VSK_HDR_LEN	      44
#define VSK_HOST_CID	      2
#define VSK_TYPE_STREAM	      1
#define VSK_OP_REQUEST	      1
#define VSK_OP_RESPONSE	      2
#define VSK_OP_RST	      3
#define VSK_OP_SHUTDOWN	      4
#define VSK_OP_RW	      5
#define VSK_OP_CREDIT_UPDATE  6
#define VSK_OP_CREDIT_REQUEST 7
#define VSK_SHUTDOWN_RCV      1 /* the sender will receive no more */
#define VSK_SHUTDOWN_SEND     2 /* the sender will send no more */

/* Our receive buffer per connection, as advertised to the guest. */
#define VSK_BUF_ALLOC (256u * 1024)
/* Largest payload of one packet, either way. */
#define VSK_MAX_PKT (64u * 1024)
/* Connections open at once: the default and the ceiling. */
#define VSK_DEFAULT_CONNS 64u
#define VSK_MAX_CONNS	  1024u
/* Guest connections waiting for the controller's connect. */
#define VSK_MAX_PENDING_CONNECT 64u
/* RSTs for packets that belong to no connection, waiting for an rx buffer;
 * the transmit queue is not read while this is full. */
#define VSK_RST_RING 64u
/* The host's "CONNECT <port>\n": at most this long, within this time. */
#define VSK_LINE_MAX	    32u
#define VSK_LINE_TIMEOUT_NS (2000ULL * 1000 * 1000)
/* Host ports handed out for host-initiated connections. */
#define VSK_HOST_PORT_FIRST 1024u

struct vsk_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
};

void vsk_hdr_decode(const uint8_t b[VSK_HDR_LEN], struct vsk_hdr *h);
void vsk_hdr_encode(const struct vsk_hdr *h, uint8_t b[VSK_HDR_LEN]);

enum vsk_state {
	VSK_FREE,
	VSK_HOST_LINE,	   /* host connection, reading its CONNECT line */
	VSK_HOST_REQUEST,  /* REQUEST sent (or to send), waiting for the
			    * guest's RESPONSE */
	VSK_GUEST_CONNECT, /* guest REQUEST, the controller connects */
	VSK_ESTABLISHED,
	VSK_RST_PENDING, /* host socket closed, RST still to send */
};

/* What the guest is owed on a connection, sent as rx buffers come. */
#define VSK_PEND_REQUEST  1u
#define VSK_PEND_RESPONSE 2u
#define VSK_PEND_SHUTDOWN 4u /* host EOF: SHUTDOWN_SEND */
#define VSK_PEND_CREDIT	  8u
#define VSK_PEND_RST	  16u

struct vsk_conn {
	enum vsk_state state;
	int fd;		     /* host socket, owned; -1 */
	uint32_t local_port; /* the host side's port */
	uint32_t peer_port;  /* the guest side's port */
	uint32_t token;	     /* VSK_GUEST_CONNECT: the controller's answer */
	unsigned int pend;   /* VSK_PEND_* */

	/* Guest-controlled: its receive buffer and what it consumed. */
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
	uint32_t rx_cnt; /* payload bytes sent to the guest */

	/* Guest -> host: bytes received in RW packets, bytes written to the
	 * host socket (fwd_cnt), and the last fwd_cnt the guest was told. */
	uint32_t tx_cnt;
	uint32_t fwd_cnt;
	uint32_t fwd_sent;
	uint8_t *buf; /* VSK_BUF_ALLOC bytes, a ring; made on first use */
	uint32_t buf_head;
	uint32_t buf_len;

	bool host_eof;		 /* the host will send no more */
	bool host_wr_shut;	 /* shutdown(SHUT_WR) done */
	unsigned int guest_shut; /* VSK_SHUTDOWN_* the guest sent */

	char line[VSK_LINE_MAX];
	uint32_t line_len;
	uint64_t deadline_ns; /* VSK_HOST_LINE: closed after this */
};

/* What the caller does after vsk_tx. */
enum vsk_action {
	VSK_ACT_NONE,	     /* consumed (state only) */
	VSK_ACT_DROP,	     /* a bad packet, counted in drops */
	VSK_ACT_DATA,	     /* conn takes the payload (vsk_conn_take) */
	VSK_ACT_CONNECT,     /* ask the controller: conn->token, local_port */
	VSK_ACT_ESTABLISHED, /* the guest accepted a host connection: tell
			      * the host "OK <local_port>\n" */
	VSK_ACT_CLOSE,	     /* close conn's host socket, then vsk_conn_free */
	VSK_ACT_RESET,	     /* close conn's host socket, then vsk_conn_reset */
	VSK_ACT_SHUT,	     /* the guest shut down: see vsk_conn_drained */
};

struct vsk {
	uint64_t guest_cid;
	uint32_t max_conns;
	uint32_t nconns; /* slots not FREE */
	uint32_t npending_connect;
	uint32_t next_token;
	uint32_t next_host_port;
	unsigned int rr; /* round robin over connections for rx */
	struct vsk_conn conns[VSK_MAX_CONNS];
	/* RSTs for packets of no connection: {src_port, dst_port} as the
	 * guest sent them. */
	uint32_t rst[VSK_RST_RING][2];
	unsigned int rst_head, rst_len;

	/* Counters since start; vsock.c reports them. */
	uint64_t n_connections, n_host, n_guest;
	uint64_t n_resets, n_drops;
};

/* max_conns 0: the default; clamped to VSK_MAX_CONNS. */
void vsk_init(struct vsk *v, uint64_t guest_cid, uint32_t max_conns);
/* Frees every connection; each open host fd goes to close_fd. */
void vsk_reset(struct vsk *v, void (*close_fd)(void *arg, int fd), void *arg);

/*
 * Parses the host's CONNECT line in line[0..len): "CONNECT <port>\n" with
 * port a decimal u32 without sign or leading zeros (but "0"), one space.
 * 1 with *port when complete, 0 when a prefix of a valid line shorter than
 * VSK_LINE_MAX, -EINVAL otherwise.
 */
int vsk_parse_connect(const char *line, size_t len, uint32_t *port);

/* A host connection with fd (taken: on -EBUSY the caller still closes it)
 * arrived at now_ns. 0, or -EBUSY beyond max_conns. */
int vsk_host_conn(struct vsk *v, int fd, uint64_t now_ns,
		  struct vsk_conn **out);
/* One byte of the CONNECT line. 0 more wanted, 1 the line is complete
 * (REQUEST now pending), -EINVAL bad line: the caller closes the connection
 * (vsk_conn_close). */
int vsk_line_byte(struct vsk *v, struct vsk_conn *c, uint8_t byte);

/*
 * A packet from the guest's transmit queue: h as read, payload_len the
 * readable bytes of the chain after the header (guest-controlled both).
 * Returns the action and, for those that concern one, *cp.
 */
enum vsk_action vsk_tx(struct vsk *v, const struct vsk_hdr *h,
		       uint64_t payload_len, struct vsk_conn **cp);
/* True if vsk_tx has room for the RST a packet may need. */
bool vsk_tx_room(const struct vsk *v);

/* The controller's answer to a VSK_ACT_CONNECT: the connection waiting for
 * token, or NULL (a late answer after a reset: the caller closes fd). On
 * error != 0 the guest gets an RST; else fd is taken. */
struct vsk_conn *vsk_connected(struct vsk *v, uint32_t token, int error,
			       int fd);

/* Guest payload for c: bytes the host socket did not take go to its
 * buffer; written bytes are acknowledged. */
void vsk_conn_written(struct vsk_conn *c, uint32_t n);
/* Copies n bytes into c's buffer; the credit rule bounds them (vsk_tx
 * checked). */
void vsk_conn_buffer(struct vsk_conn *c, const uint8_t *data, uint32_t n);
/* The contiguous buffered bytes to write next. */
uint32_t vsk_conn_pending(const struct vsk_conn *c, const uint8_t **data);
/* n of them were written to the host socket. */
void vsk_conn_flushed(struct vsk_conn *c, uint32_t n);
/* After the guest's SHUTDOWN, once nothing is buffered: what to do with
 * the host socket. */
#define VSK_DRAIN_SHUT_WR 1 /* shutdown(SHUT_WR): the host sees EOF */
#define VSK_DRAIN_CLOSE	  2 /* close it, then vsk_conn_reset */
int vsk_conn_drained(struct vsk_conn *c);

/* The host side sent EOF: SHUTDOWN_SEND to the guest. */
void vsk_conn_host_eof(struct vsk_conn *c);
/* Marks the connection reset: fd must already be closed by the caller;
 * the RST goes out with the next rx buffer, then the slot is free. */
void vsk_conn_reset(struct vsk *v, struct vsk_conn *c);
/* Frees the slot without telling the guest (fd closed by the caller). */
void vsk_conn_free(struct vsk *v, struct vsk_conn *c);

/* Bytes the guest can take on c now (its credit), at most VSK_MAX_PKT. */
uint32_t vsk_conn_credit(const struct vsk_conn *c);
/* True if the host socket should be read for c. */
bool vsk_conn_wants_read(const struct vsk_conn *c);

/*
 * The next control packet owed to the guest: 1 with h filled and *cp the
 * connection (NULL for an RST of no connection), or 0 if none. Commit it
 * with vsk_rx_done once it is in an rx buffer.
 */
int vsk_rx_next(struct vsk *v, struct vsk_hdr *h, struct vsk_conn **cp);
/* The header of a data packet on c (len left 0); the caller reads at most
 * vsk_conn_credit(c) bytes after it. */
void vsk_rx_data(const struct vsk *v, struct vsk_conn *c, struct vsk_hdr *h);
/* The packet went out with n payload bytes (h->len set by the caller). A
 * connection whose RST went out is free afterwards. */
void vsk_rx_done(struct vsk *v, const struct vsk_hdr *h, struct vsk_conn *c);

/* Earliest CONNECT-line deadline, or UINT64_MAX. */
uint64_t vsk_next_deadline(const struct vsk *v);

#endif
