/* The VM configuration, parsed from the command line (Cloud Hypervisor's
 * option syntax) and later from per-instance config files. */
#ifndef BH_CONTROLLER_CONFIG_H
#define BH_CONTROLLER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <bulkhead/limits.h>
#include <bulkhead/log.h>
#include <bulkhead/outbuf.h>

#include "api.h"

enum bh_serial_mode {
	BH_SERIAL_TTY = 0, /* our stdin/stdout (default) */
	BH_SERIAL_OFF,	   /* no UART at all */
	BH_SERIAL_NULL,	   /* a UART whose output is discarded */
	BH_SERIAL_FILE,	   /* output written to a file (created or truncated) */
};

#define BH_CONFIG_DEFAULT_VCPUS	 1
#define BH_CONFIG_DEFAULT_MEMORY (512ULL * 1024 * 1024)
#define BH_CONFIG_MIN_MEMORY	 (64ULL * 1024 * 1024)
#define BH_CONFIG_MAX_MEMORY	 (1024ULL * 1024 * 1024 * 1024) /* 1 TiB */

/* virtio devices: BH_MAX_DEVICES, BH_MAX_QUEUES (bulkhead/limits.h). */
#define BH_CONFIG_MAX_DISK_QUEUES    BH_MAX_QUEUES
#define BH_CONFIG_DISK_QUEUE_SIZE    256
#define BH_CONFIG_DISK_SERIAL_MAX    20 /* VIRTIO_BLK_ID_BYTES */
#define BH_CONFIG_ID_MAX	     32
#define BH_CONFIG_DEFAULT_RNG_SOURCE "/dev/urandom"
#define BH_CONFIG_RNG_ID	     "rng0"
#define BH_CONFIG_CONSOLE_ID	     "console0"
/* Worker replacements per device in any 60 seconds (--restart-devices). */
#define BH_CONFIG_DEFAULT_RESTARTS 3
#define BH_CONFIG_MAX_RESTARTS	   100

enum bh_console_mode {
	BH_CONSOLE_OFF = 0, /* no virtio-console (default) */
	BH_CONSOLE_TTY,	    /* hvc0 on our stdin/stdout */
	BH_CONSOLE_FILE,    /* output to a file (created or truncated) */
};

/* --self-test-seccomp PROCESS: once sandboxed, PROCESS makes a system call
 * its filter refuses, and must be killed for it (a test option). */
enum bh_self_test {
	BH_SELF_TEST_NONE = 0,
	BH_SELF_TEST_CONTROLLER, /* the controller itself, after start-up */
	BH_SELF_TEST_VCPU,	 /* the vCPU runner (bulkhead-vcpu) */
	BH_SELF_TEST_WORKER,	 /* every device worker */
	/* the controller again, with io_uring_setup: io_uring's operations
	 * pass no filter, so the controller must not have it at all */
	BH_SELF_TEST_IO_URING,
};

/* --check-host[=kvm]: a report on this host, then exit. */
enum bh_check_host {
	BH_CHECK_HOST_NONE = 0,
	BH_CHECK_HOST_ALL, /* KVM and the sandbox's kernel features */
	BH_CHECK_HOST_KVM, /* /dev/kvm alone: can a stock guest run? */
};

struct bh_disk_config {
	char *path;
	char *id;     /* "diskN" by default */
	char *serial; /* "" by default */
	bool readonly;
	bool direct;
	unsigned int num_queues;
	unsigned int queue_size;
};

/* virtio-net (--net): rx/tx queue pairs, plus one control queue. */
#define BH_CONFIG_MAX_NET_PAIRS	  7
#define BH_CONFIG_NET_QUEUE_SIZE  256
#define BH_CONFIG_NET_MTU	  1500
#define BH_CONFIG_NET_MIN_MTU	  68
#define BH_CONFIG_NET_MAX_MTU	  65535
#define BH_CONFIG_VSOCK_ID	  "vsock0"
#define BH_CONFIG_VSOCK_MAX_CONNS 1024 /* per VM, both directions */
/* The limits of --net and --vsock that the command line and the API check
 * alike. Net rings stay small enough for the worker's buffers. */
#define BH_CONFIG_NET_MIN_QUEUE_SIZE 64
#define BH_CONFIG_NET_MAX_QUEUE_SIZE 4096
#define BH_CONFIG_NET_DEFAULT_MASK   "255.255.255.0" /* ip= without mask= */
#define BH_CONFIG_IFNAME_MAX	     15		     /* IFNAMSIZ - 1 */
#define BH_CONFIG_VSOCK_MIN_CID	     3 /* 0-2: hypervisor, local, host */
#define BH_CONFIG_VSOCK_MAX_CID	     0xFFFFFFFEu /* -1U is VMADDR_CID_ANY */
#define BH_CONFIG_VSOCK_SOCKET_MAX   107	 /* sun_path less its NUL */

struct bh_net_config {
	char *id;  /* "netN" by default */
	char *tap; /* tap=NAME: opened (created if missing) by us; or NULL */
	/* fd=[A,B]: TAP queues opened by our caller, one per queue pair */
	int fds[BH_CONFIG_MAX_NET_PAIRS];
	unsigned int nfds;
	uint8_t mac[6]; /* mac=; a random locally administered one if unset */
	bool mac_set;
	/* ip=, mask=: the host side's IPv4 address, network byte order; 0
	 * when not given (then the TAP's address is left as it is). */
	uint32_t ip;
	uint32_t mask;
	unsigned int num_queues; /* rx + tx queues: 2 x pairs, default 2 */
	unsigned int queue_size; /* per queue, default 256 */
	unsigned int mtu;	 /* default 1500 */
};

struct bh_vsock_config {
	char *id;     /* "vsock0" by default */
	uint64_t cid; /* >= 3 */
	char *socket; /* host unix socket path; guest->host: <socket>_<port> */
};

/* virtio-pmem (--pmem): the region's size must be whole 2 MiB pieces, since
 * the guest's nvdimm driver maps it in memory subsections of that size. */
#define BH_CONFIG_PMEM_ALIGN	(2ULL * 1024 * 1024)
#define BH_CONFIG_MAX_PMEM_SIZE (1024ULL * 1024 * 1024 * 1024) /* 1 TiB */

struct bh_pmem_config {
	char *file;	     /* a regular file or a block device */
	char *id;	     /* "pmemN" by default */
	uint64_t size;	     /* bytes, a multiple of BH_CONFIG_PMEM_ALIGN */
	bool discard_writes; /* the guest's writes never reach the file */
};

struct bh_config {
	char *kernel;	 /* path, required */
	char *initramfs; /* path or NULL */
	char *cmdline;	 /* never NULL after parsing ("" by default) */
	unsigned int vcpus;
	uint64_t memory;
	enum bh_serial_mode serial;
	char *serial_path; /* BH_SERIAL_FILE */
	/* file=PATH,max_size=,on_full=: what a guest may put on the host's
	 * disk through the port (BH_SERIAL_FILE only) */
	uint64_t serial_max_size;
	enum bh_out_full serial_on_full;
	enum bh_log_level log_level;
	char *name;	       /* VM name for log prefixes, default "vm" */
	bool print_exit_stats; /* --exit-stats: VM-exit counts on exit */
	struct bh_disk_config disks[BH_MAX_DEVICES];
	unsigned int ndisks;
	char *rng_source; /* --rng: entropy source, or NULL for no rng */
	struct bh_net_config nets[BH_MAX_DEVICES]; /* --net, in order */
	unsigned int nnets;
	struct bh_vsock_config *vsock;		     /* --vsock, or NULL */
	struct bh_pmem_config pmems[BH_MAX_DEVICES]; /* --pmem, in order */
	unsigned int npmems;
	enum bh_console_mode console;
	char *console_path;	   /* BH_CONSOLE_FILE */
	uint64_t console_max_size; /* as serial_max_size, for BH_CONSOLE_FILE */
	enum bh_out_full console_on_full;
	/* --restart-devices: a dead worker is replaced by a fresh one that
	 * takes up its queues (on), or by one that fails every request (off,
	 * the default, and once the restarts are used up). */
	bool restart_devices;
	/* --sandbox strict: a device worker refuses to start where the host
	 * refuses it a namespace, the empty root or Landlock. */
	bool strict_sandbox;
	unsigned int max_restarts; /* per device per minute */
	/* --api-socket: where the management API listens; not part of the
	 * VM's configuration (VmConfig). At most one of the two is set. */
	char *api_socket_path; /* NULL, or a path to create the socket at */
	/* --restore source_url=: the VM comes from this snapshot (and the
	 * command line has no VM options); NULL otherwise. */
	char *restore_url;
	/* --restore-disk ID=PATH: the snapshot's disk ID opened at PATH (a
	 * copy) instead of where it was. */
	struct {
		char *id;
		char *path;
	} restore_disks[BH_MAX_DEVICES];
	unsigned int nrestore_disks;
	int api_socket_fd; /* -1, or an inherited listening socket */
	/* allow-uid=, allow-gid=: who besides root and our own uid may use
	 * the API; both empty, whoever the socket lets connect. */
	struct bh_api_access api_access;
	/* --config: the file whose options were read ahead of the command
	 * line's (bh_conffile_parse_cmdline), or NULL. */
	char *config_path;
	/* --user USER[:GROUP]: who the controller becomes once its root-only
	 * start-up is done (names or numeric ids), or NULL. */
	char *user;
	/* --self-test-seccomp: a test of the seccomp filters, not for use. */
	enum bh_self_test self_test;
	enum bh_check_host check_host;
};

enum bh_config_result {
	BH_CONFIG_OK = 0,   /* run the VM */
	BH_CONFIG_EXIT = 1, /* --help or --version was printed: exit 0 */
};

/*
 * Parses argv into cfg (zeroed and filled with defaults first). On a bad
 * option returns -EINVAL with a message that names the option and the problem
 * in err (e.g. "--memory: size=12Q: unknown size suffix 'Q'"); cfg is freed
 * then. Checks syntax and ranges only; files are checked later.
 */
int bh_config_parse_args(int argc, char *const argv[], struct bh_config *cfg,
			 char *err, size_t errlen);
void bh_config_free(struct bh_config *cfg);
/*
 * The FILE of the first --config FILE (or an abbreviation, or --config=FILE)
 * in argv, found with the parser's own option table so that an option's
 * value ("--cmdline --config") is never taken for it; NULL if there is none.
 * Reports nothing: the full parse does. Not thread-safe (getopt).
 */
const char *bh_config_file_arg(int argc, char *const argv[]);
/*
 * The checks of --net's values, shared with the API (apiconfig.c): 0, or
 * -EINVAL with *why set to the problem, a constant string that each caller
 * puts in a message naming its own option or field.
 */
/* A TAP name the kernel takes (dev_valid_name): 1..15 bytes, not "." or
 * "..", no '/', ':', blank or control byte. */
int bh_config_check_ifname(const char *name, const char **why);
/* "xx:xx:xx:xx:xx:xx", a unicast address other than all zeros. */
int bh_config_parse_mac(const char *s, uint8_t mac[6], const char **why);
/* A dotted IPv4 address, or with netmask a contiguous netmask (not
 * 0.0.0.0); *out in network byte order, never 0. */
int bh_config_parse_ipv4(const char *s, bool netmask, uint32_t *out,
			 const char **why);
/* A --pmem size: a non-zero multiple of BH_CONFIG_PMEM_ALIGN up to
 * BH_CONFIG_MAX_PMEM_SIZE; else -EINVAL, *why (if why) as above. */
int bh_config_check_pmem_size(uint64_t size, const char **why);
/* The --help text. */
void bh_config_usage(FILE *out);

#endif
