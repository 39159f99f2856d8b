/* Unit tests for the command-line parser (controller/config.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cmocka.h>

#include <bulkhead/platform.h>
#include <bulkhead/util.h>

#include "config.h"

#define MAX_ARGS 24

/* Runs the parser on a NULL-terminated list of arguments after argv[0]. */
static int parse_list(struct bh_config *cfg, char *err, size_t errlen,
		      const char *const *args)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;

	argv[argc++] = (char *)"bulkhead";
	for (; *args; args++) {
		assert_true(argc <= MAX_ARGS);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	return bh_config_parse_args(argc, argv, cfg, err, errlen);
}

#define PARSE(cfg, err, ...)                  \
	parse_list((cfg), (err), sizeof(err), \
		   (const char *const[]){ __VA_ARGS__, NULL })

/* file=PATH[,max_size=SIZE][,on_full=...]: the parameters come off the end,
 * in any order; a comma item that is neither stays in the path. */
static void test_output_limits(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--serial",
			       "file=/l/a,b.log,max_size=1M,on_full=stop",
			       "--console",
			       "file=/l/c.log,on_full=truncate,max_size=4K"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.serial_path, "/l/a,b.log");
	assert_int_equal(cfg.serial_max_size, 1 << 20);
	assert_int_equal(cfg.serial_on_full, BH_OUT_FULL_STOP);
	assert_string_equal(cfg.console_path, "/l/c.log");
	assert_int_equal(cfg.console_max_size, 4096);
	assert_int_equal(cfg.console_on_full, BH_OUT_FULL_TRUNCATE);
	bh_config_free(&cfg);

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--serial",
			       "file=/l/x,max_size=1M,y,on_full=stop"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.serial_path, "/l/x,max_size=1M,y");
	assert_int_equal(cfg.serial_max_size, 64ULL << 20);
	assert_int_equal(cfg.serial_on_full, BH_OUT_FULL_STOP);
	bh_config_free(&cfg);
}

static void test_full(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "/boot/vmlinuz",
			       "--initramfs", "/boot/initrd.img", "--cmdline",
			       "console=ttyS0 quiet", "--cpus", "boot=4,max=4",
			       "--memory", "size=2G", "--serial",
			       "file=/tmp/a,b.log", "--name", "web-1.test_A",
			       "--log-level", "warn", "--exit-stats"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	assert_string_equal(cfg.initramfs, "/boot/initrd.img");
	assert_string_equal(cfg.cmdline, "console=ttyS0 quiet");
	assert_int_equal(cfg.vcpus, 4);
	assert_int_equal(cfg.memory, 2ULL << 30);
	assert_int_equal(cfg.serial, BH_SERIAL_FILE);
	assert_string_equal(cfg.serial_path, "/tmp/a,b.log");
	/* The default limit of a file output. */
	assert_int_equal(cfg.serial_max_size, 64ULL << 20);
	assert_int_equal(cfg.serial_on_full, BH_OUT_FULL_TRUNCATE);
	assert_string_equal(cfg.name, "web-1.test_A");
	assert_int_equal(cfg.log_level, BH_LOG_WARN);
	assert_true(cfg.print_exit_stats);
	bh_config_free(&cfg);
}

static void test_defaults(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "bzImage"), BH_CONFIG_OK);
	assert_string_equal(cfg.kernel, "bzImage");
	assert_null(cfg.initramfs);
	assert_non_null(cfg.cmdline);
	assert_string_equal(cfg.cmdline, "");
	assert_int_equal(cfg.vcpus, BH_CONFIG_DEFAULT_VCPUS);
	assert_int_equal(cfg.memory, BH_CONFIG_DEFAULT_MEMORY);
	assert_int_equal(cfg.memory, 512ULL << 20);
	assert_int_equal(cfg.serial, BH_SERIAL_TTY);
	assert_null(cfg.serial_path);
	assert_string_equal(cfg.name, "vm");
	assert_int_equal(cfg.log_level, BH_LOG_INFO);
	assert_false(cfg.print_exit_stats);
	bh_config_free(&cfg);
}

static void test_forms(void **state)
{
	struct bh_config cfg;
	char err[256];

	/* --opt=value, unique abbreviations and -v. */
	assert_int_equal(PARSE(&cfg, err, "--kernel=k", "--cpus=boot=254",
			       "--mem", "size=1T", "--serial=off", "-v"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.vcpus, BH_MAX_VCPUS);
	assert_int_equal(cfg.memory, 1ULL << 40);
	assert_int_equal(cfg.serial, BH_SERIAL_OFF);
	assert_int_equal(cfg.log_level, BH_LOG_DEBUG);
	bh_config_free(&cfg);

	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--memory", "size=64M",
		  "--serial", "null", "--cpus", "boot=1", "--name",
		  "abcdefghijklmnopqrstuvwxyz012345", "--log-level", "error"),
	    BH_CONFIG_OK);
	assert_int_equal(cfg.memory, BH_CONFIG_MIN_MEMORY);
	assert_int_equal(cfg.serial, BH_SERIAL_NULL);
	assert_int_equal(cfg.vcpus, 1);
	assert_int_equal(strlen(cfg.name), 32);
	assert_int_equal(cfg.log_level, BH_LOG_ERR);
	bh_config_free(&cfg);

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--memory",
			       "size=1048576k", "--cmdline", "", "--serial",
			       "tty", "--", "--log-level", "debug"),
			 -EINVAL); /* "--" ends options: the rest is junk */
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--memory",
			       "size=1048576k", "--cmdline", "", "--serial",
			       "tty", "--log-level", "debug"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_string_equal(cfg.cmdline, "");
	assert_int_equal(cfg.log_level, BH_LOG_DEBUG);
	bh_config_free(&cfg);
}

struct bad_case {
	const char *args[8];
	const char *want[3]; /* substrings the message must contain */
};

static const struct bad_case bad_cases[] = {
	{ { "--cpus", "boot=2" }, { "--kernel is required" } },
	{ { NULL }, { "--kernel is required" } },
	{ { "--kernel", "k", "--bogus" }, { "unknown option '--bogus'" } },
	{ { "--kernel", "k", "--bogus=1" }, { "unknown option '--bogus'" } },
	{ { "--kernel", "k", "-x" }, { "unknown option '-x'" } },
	{ { "--kernel", "k", "-vx" }, { "unknown option '-x'" } },
	{ { "--kernel", "k", "--ver" },
	  { "ambiguous option '--ver'", "--verbose", "--version" } },
	{ { "--kernel", "k", "--help=1" }, { "--help", "does not take" } },
	{ { "--kernel", "k", "--exit-stats=yes" }, { "--exit-stats" } },
	{ { "--kernel" }, { "--kernel needs an argument" } },
	{ { "--kernel", "k", "--memory" }, { "--memory needs an argument" } },
	{ { "--kernel", "k", "--mem" }, { "--memory needs an argument" } },
	{ { "--kernel", "" }, { "--kernel", "empty" } },
	{ { "--kernel", "k", "--initramfs", "" }, { "--initramfs", "empty" } },
	{ { "--kernel", "k", "--cpus", "boot=abc" },
	  { "--cpus", "boot=abc", "not a number" } },
	{ { "--kernel", "k", "--cpus", "boot=" }, { "--cpus", "boot=" } },
	{ { "--kernel", "k", "--cpus", "boot=0" },
	  { "--cpus: boot=0 is out of range 1..254" } },
	{ { "--kernel", "k", "--cpus", "boot=255" },
	  { "--cpus", "boot=255", "1..254" } },
	{ { "--kernel", "k", "--cpus", "boot=-1" }, { "--cpus", "boot=-1" } },
	{ { "--kernel", "k", "--cpus", "boot=99999999999999999999999" },
	  { "--cpus", "out of range" } },
	{ { "--kernel", "k", "--cpus", "boot=2,max=4" },
	  { "--cpus", "max must equal boot: CPU hotplug is not supported" } },
	{ { "--kernel", "k", "--cpus", "max=2" }, { "--cpus", "max must" } },
	{ { "--kernel", "k", "--cpus", "foo=1" },
	  { "--cpus: unknown parameter 'foo' (known: boot, max)" } },
	{ { "--kernel", "k", "--cpus", "2" },
	  { "--cpus", "'2'", "key=value" } },
	{ { "--kernel", "k", "--cpus", "" }, { "--cpus", "empty" } },
	{ { "--kernel", "k", "--cpus", "boot=2,,max=2" },
	  { "--cpus", "empty parameter" } },
	{ { "--kernel", "k", "--cpus", "boot=2," },
	  { "--cpus", "empty parameter" } },
	{ { "--kernel", "k", "--cpus", "=2" },
	  { "--cpus", "no parameter name" } },
	{ { "--kernel", "k", "--cpus", "boot=2,boot=2" },
	  { "--cpus", "boot given twice" } },
	{ { "--kernel", "k", "--memory", "size=0" },
	  { "--memory", "size=0", "minimum 64M" } },
	{ { "--kernel", "k", "--memory", "size=12Q" },
	  { "--memory: size=12Q: unknown size suffix 'Q'" } },
	{ { "--kernel", "k", "--memory", "size=1P" },
	  { "--memory", "suffix 'P'" } },
	{ { "--kernel", "k", "--memory", "size=4097" }, { "--memory" } },
	{ { "--kernel", "k", "--memory", "size=65537K" },
	  { "--memory", "multiple of 4K" } },
	{ { "--kernel", "k", "--memory", "size=2T" },
	  { "--memory", "maximum 1T" } },
	{ { "--kernel", "k", "--memory", "size=99999999999999999999" },
	  { "--memory", "too large" } },
	{ { "--kernel", "k", "--memory", "size=1MB" },
	  { "--memory", "not a size" } },
	{ { "--kernel", "k", "--memory", "size=M" },
	  { "--memory", "not a size" } },
	{ { "--kernel", "k", "--memory", "size=" },
	  { "--memory: size= needs a value" } },
	{ { "--kernel", "k", "--memory", "sise=1G" },
	  { "--memory: unknown parameter 'sise' (known: size)" } },
	{ { "--kernel", "k", "--memory", "1G" },
	  { "--memory", "key=value", "did you mean size=1G?" } },
	{ { "--kernel", "k", "--serial", "foo" },
	  { "--serial: 'foo' is not one of tty, off, null, file=PATH" } },
	{ { "--kernel", "k", "--serial", "file=" }, { "--serial", "file=" } },
	{ { "--kernel", "k", "--serial", "file=,max_size=1M" },
	  { "--serial: file= needs a path" } },
	{ { "--kernel", "k", "--serial", "file=a,max_size=1K" },
	  { "--serial: max_size=1K is out of range 4K..1T" } },
	{ { "--kernel", "k", "--serial", "file=a,max_size=2T" },
	  { "--serial: max_size=2T is out of range 4K..1T" } },
	{ { "--kernel", "k", "--serial", "file=a,max_size=12Q" },
	  { "--serial: max_size=12Q: unknown size suffix 'Q'" } },
	{ { "--kernel", "k", "--serial", "file=a,on_full=rotate" },
	  { "--serial: on_full=rotate is not truncate or stop" } },
	{ { "--kernel", "k", "--serial", "file=a,on_full=stop,on_full=stop" },
	  { "--serial: on_full given twice" } },
	{ { "--kernel", "k", "--console", "file=a,max_size=8K,max_size=8K" },
	  { "--console: max_size given twice" } },
	{ { "--kernel", "k", "--serial", "" }, { "--serial" } },
	{ { "--kernel", "k", "--serial", "TTY" }, { "--serial" } },
	{ { "--kernel", "k", "--name", "a/b" }, { "--name", "'/'" } },
	{ { "--kernel", "k", "--name", "" }, { "--name", "empty" } },
	{ { "--kernel", "k", "--name", "a b" }, { "--name" } },
	{ { "--kernel", "k", "--name", "caf\xc3\xa9" }, { "--name", "0xc3" } },
	{ { "--kernel", "k", "--name", "abcdefghijklmnopqrstuvwxyz0123456" },
	  { "--name", "longer than 32" } },
	{ { "--kernel", "k", "--log-level", "loud" },
	  { "--log-level", "'loud'" } },
	{ { "--kernel", "k", "--log-level", "debug", "-v" },
	  { "--log-level", "--verbose" } },
	{ { "--kernel", "k", "--kernel", "k2" }, { "--kernel given twice" } },
	{ { "--kernel", "k", "--memory", "size=1G", "--memory", "size=2G" },
	  { "--memory given twice" } },
	{ { "--kernel", "k", "--cpus", "boot=1", "--cpus", "boot=2" },
	  { "--cpus given twice" } },
	{ { "--kernel", "k", "--cmdline", "a", "--cmdline", "b" },
	  { "--cmdline given twice" } },
	{ { "--kernel", "k", "--serial", "tty", "--serial=off" },
	  { "--serial given twice" } },
	{ { "--kernel", "k", "--name", "a", "--name", "b" },
	  { "--name given twice" } },
	{ { "--kernel", "k", "foo" }, { "unexpected argument 'foo'" } },
	{ { "foo", "--kernel", "k" }, { "unexpected argument 'foo'" } },
	{ { "--kernel", "k", "--", "foo" }, { "unexpected argument 'foo'" } },
	{ { "--kernel", "k", "--disk", "size=1" },
	  { "--disk: unknown parameter 'size'", "path" } },
	{ { "--kernel", "k", "--disk", "readonly=on" },
	  { "--disk: path= is required" } },
	{ { "--kernel", "k", "--disk", "" }, { "--disk", "empty" } },
	{ { "--kernel", "k", "--disk", "path=a,readonly=yes" },
	  { "--disk: readonly=yes is not on or off" } },
	{ { "--kernel", "k", "--disk", "path=a,direct=1" },
	  { "--disk: direct=1 is not on or off" } },
	{ { "--kernel", "k", "--disk", "path=a,num_queues=0" },
	  { "--disk: num_queues=0 is out of range 1..16" } },
	{ { "--kernel", "k", "--disk", "path=a,num_queues=17" },
	  { "--disk", "num_queues=17", "1..16" } },
	{ { "--kernel", "k", "--disk", "path=a,num_queues=x" },
	  { "--disk", "num_queues=x", "not a number" } },
	{ { "--kernel", "k", "--disk", "path=a,queue_size=100" },
	  { "--disk: queue_size=100 is not a power of two" } },
	{ { "--kernel", "k", "--disk", "path=a,queue_size=1" },
	  { "--disk", "queue_size=1", "2..32768" } },
	{ { "--kernel", "k", "--disk", "path=a,queue_size=65536" },
	  { "--disk", "queue_size=65536", "out of range" } },
	{ { "--kernel", "k", "--disk", "path=a,serial=123456789012345678901" },
	  { "--disk", "serial=", "longer than 20 bytes" } },
	{ { "--kernel", "k", "--disk", "path=a,id=a/b" },
	  { "--disk", "id=a/b", "0x2f" } },
	{ { "--kernel", "k", "--disk", "path=a,path=b" },
	  { "--disk: path given twice" } },
	{ { "--kernel", "k", "--disk", "path=a,id=x", "--disk", "path=b,id=x" },
	  { "--disk: id=x is used twice" } },
	{ { "--kernel", "k", "--disk", "path=a,id=disk1", "--disk", "path=b" },
	  { "id=disk1 is used twice" } },
	{ { "--kernel", "k", "--disk", "path=a,id=rng0", "--rng", "" },
	  { "id=rng0 is used twice" } },
	{ { "--kernel", "k", "--rng", "path=/dev/random" },
	  { "--rng: unknown parameter 'path' (known: src)" } },
	{ { "--kernel", "k", "--rng", "/dev/random" },
	  { "--rng", "did you mean src=/dev/random?" } },
	{ { "--kernel", "k", "--rng", "src=" },
	  { "--rng: src= needs a value" } },
	{ { "--kernel", "k", "--rng", "", "--rng", "" },
	  { "--rng given twice" } },
	{ { "--kernel", "k", "--console", "pty" },
	  { "--console: 'pty' is not one of off, tty, file=PATH" } },
	{ { "--kernel", "k", "--console", "file=" },
	  { "--console: file= needs a path" } },
	{ { "--kernel", "k", "--console", "" }, { "--console" } },
	{ { "--kernel", "k", "--console", "tty" },
	  { "--console tty and --serial tty cannot share the terminal" } },
	{ { "--kernel", "k", "--console", "tty", "--serial", "tty" },
	  { "--console tty and --serial tty cannot share the terminal" } },
	{ { "--kernel", "k", "--console", "off", "--console", "off" },
	  { "--console given twice" } },
	{ { "--kernel", "k", "--net", "mac=52:54:00:12:34:56" },
	  { "--net: tap= or fd= is required" } },
	{ { "--kernel", "k", "--net", "tap=t0,fd=5" },
	  { "--net: tap= and fd= exclude each other" } },
	{ { "--kernel", "k", "--net", "tap=" },
	  { "--net: tap= needs a value" } },
	{ { "--kernel", "k", "--net", "tap=0123456789abcdef" },
	  { "--net: tap=0123456789abcdef: longer than 15 bytes (IFNAMSIZ - "
	    "1)" } },
	{ { "--kernel", "k", "--net", "tap=a/b" },
	  { "--net: tap=a/b: not an interface name" } },
	{ { "--kernel", "k", "--net", "tap=a b" },
	  { "--net: tap=a b: not an interface name" } },
	{ { "--kernel", "k", "--net", "tap=a:1" },
	  { "--net: tap=a:1: not an interface name" } },
	{ { "--kernel", "k", "--net", "tap=.." },
	  { "--net: tap=..: not an interface name" } },
	{ { "--kernel", "k", "--net", "tap=." },
	  { "--net: tap=.: not an interface name" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=52:54:00:zz:34:56" },
	  { "--net: mac=52:54:00:zz:34:56: not a MAC address "
	    "(xx:xx:xx:xx:xx:xx)" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=52:54:00:12:34" },
	  { "--net: mac=52:54:00:12:34: not a MAC address" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=52-54-00-12-34-56" },
	  { "--net: mac=52-54-00-12-34-56: not a MAC address" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=52:54:00:12:34:567" },
	  { "--net: mac=52:54:00:12:34:567: not a MAC address" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=01:00:5e:00:00:01" },
	  { "--net: mac=01:00:5e:00:00:01: a multicast address" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=ff:ff:ff:ff:ff:ff" },
	  { "--net: mac=ff:ff:ff:ff:ff:ff: a multicast address" } },
	{ { "--kernel", "k", "--net", "tap=t0,mac=00:00:00:00:00:00" },
	  { "--net: mac=00:00:00:00:00:00: the all-zero address" } },
	{ { "--kernel", "k", "--net", "tap=t0,ip=192.168.1" },
	  { "--net: ip=192.168.1: not an IPv4 address (a.b.c.d)" } },
	{ { "--kernel", "k", "--net", "tap=t0,ip=300.1.1.1" },
	  { "--net: ip=300.1.1.1: not an IPv4 address" } },
	{ { "--kernel", "k", "--net", "tap=t0,ip=0.0.0.0" },
	  { "--net: ip=0.0.0.0: not a host address" } },
	{ { "--kernel", "k", "--net", "tap=t0,ip=10.0.0.1,mask=255.0.255.0" },
	  { "--net: mask=255.0.255.0: not a contiguous netmask" } },
	{ { "--kernel", "k", "--net", "tap=t0,ip=10.0.0.1,mask=0.0.0.0" },
	  { "--net: mask=0.0.0.0: not a contiguous netmask" } },
	{ { "--kernel", "k", "--net", "tap=t0,ip=10.0.0.1,mask=24" },
	  { "--net: mask=24: not a netmask (a.b.c.d)" } },
	{ { "--kernel", "k", "--net", "tap=t0,mask=255.255.255.0" },
	  { "--net: mask= needs ip=" } },
	{ { "--kernel", "k", "--net", "fd=5,ip=10.0.0.1" },
	  { "--net: ip= goes with tap= only: with fd= the interface belongs to "
	    "whoever opened it" } },
	{ { "--kernel", "k", "--net", "fd=5,mask=255.0.0.0" },
	  { "--net: mask= goes with tap= only" } },
	{ { "--kernel", "k", "--net", "fd=2" },
	  { "--net: fd=2: fd 2 is a standard stream, not a TAP (3 or more)" } },
	{ { "--kernel", "k", "--net", "fd=x" },
	  { "--net: fd=x: 'x' is not a file descriptor number" } },
	{ { "--kernel", "k", "--net", "fd=-3" },
	  { "--net: fd=-3: '-3' is not a file descriptor number" } },
	{ { "--kernel", "k", "--net", "fd=[5,]" },
	  { "--net: fd=[5,]: '' is not a file descriptor number" } },
	{ { "--kernel", "k", "--net", "fd=[]" },
	  { "--net: fd=[]: not a list of fds ([N,M,...])" } },
	{ { "--kernel", "k", "--net", "fd=[5,6" },
	  { "--net: '6' is not key=value" } },
	{ { "--kernel", "k", "--net", "fd=[5,5]" },
	  { "--net: fd=[5,5]: fd 5 is given twice" } },
	{ { "--kernel", "k", "--net", "fd=[5,6]", "--net", "fd=[7,6]" },
	  { "--net: fd=[7,6]: fd 6 is net0's already" } },
	{ { "--kernel", "k", "--net", "fd=[3,4,5,6,7,8,9,10]" },
	  { "--net: fd=[3,4,5,6,7,8,9,10]: more than 7 fds (one per queue "
	    "pair)" } },
	{ { "--kernel", "k", "--net", "fd=[5,6],num_queues=2" },
	  { "--net: num_queues=2 needs 1 fds (one per queue pair), fd= gives "
	    "2" } },
	{ { "--kernel", "k", "--net", "tap=t0,num_queues=3" },
	  { "--net: num_queues=3 is odd" } },
	{ { "--kernel", "k", "--net", "tap=t0,num_queues=0" },
	  { "--net: num_queues=0 is out of range 2..14" } },
	{ { "--kernel", "k", "--net", "tap=t0,num_queues=16" },
	  { "--net: num_queues=16 is out of range 2..14" } },
	{ { "--kernel", "k", "--net", "tap=t0,queue_size=32" },
	  { "--net: queue_size=32 is out of range 64..4096" } },
	{ { "--kernel", "k", "--net", "tap=t0,queue_size=8192" },
	  { "--net: queue_size=8192 is out of range 64..4096" } },
	{ { "--kernel", "k", "--net", "tap=t0,queue_size=100" },
	  { "--net: queue_size=100 is not a power of two" } },
	{ { "--kernel", "k", "--net", "tap=t0,mtu=67" },
	  { "--net: mtu=67 is out of range 68..65535" } },
	{ { "--kernel", "k", "--net", "tap=t0,mtu=65536" },
	  { "--net: mtu=65536 is out of range 68..65535" } },
	{ { "--kernel", "k", "--net", "tap=t0,mtu=x" },
	  { "--net: mtu=x is not a number" } },
	{ { "--kernel", "k", "--net", "tap=t0,id=a/b" },
	  { "--net", "id=a/b", "0x2f" } },
	{ { "--kernel", "k", "--net",
	    "tap=t0,id=0123456789012345678901234567890123" },
	  { "--net: id=0123456789012345678901234567890123 is longer than "
	    "32" } },
	{ { "--kernel", "k", "--net", "tap=t0,speed=10" },
	  { "--net: unknown parameter 'speed'" } },
	{ { "--kernel", "k", "--net", "tap=t0,id=x", "--net", "tap=t1,id=x" },
	  { "--net: id=x is used twice" } },
	{ { "--kernel", "k", "--net", "tap=t0,id=disk0", "--disk", "path=a" },
	  { "--net: id=disk0 is used twice (also by --disk)" } },
	{ { "--kernel", "k", "--net", "tap=t0", "--disk", "path=a,id=net0" },
	  { "--disk: id=net0 is used twice (also by --net)" } },
	{ { "--kernel", "k", "--net", "tap=t0,id=console0", "--console",
	    "file=c" },
	  { "--net: id=console0 is used twice (also by --console)" } },
	{ { "--kernel", "k", "--net", "tap=t0,id=vsock0", "--vsock",
	    "cid=3,socket=s" },
	  { "--net: id=vsock0 is used twice (also by --vsock)" } },
	{ { "--kernel", "k", "--vsock", "cid=3,socket=s,id=rng0", "--rng", "" },
	  { "--vsock: id=rng0 is used twice (also by --rng)" } },
	{ { "--kernel", "k", "--vsock", "socket=s" },
	  { "--vsock: cid= is required" } },
	{ { "--kernel", "k", "--vsock", "cid=3" },
	  { "--vsock: socket= is required" } },
	{ { "--kernel", "k", "--vsock", "cid=2,socket=s" },
	  { "--vsock: cid=2 is out of range 3..4294967294" } },
	{ { "--kernel", "k", "--vsock", "cid=4294967295,socket=s" },
	  { "--vsock: cid=4294967295 is out of range 3..4294967294" } },
	{ { "--kernel", "k", "--vsock", "cid=0x10,socket=s,cid=4" },
	  { "--vsock: cid given twice" } },
	{ { "--kernel", "k", "--vsock", "cid=three,socket=s" },
	  { "--vsock: cid=three is not a number" } },
	{ { "--kernel", "k", "--vsock",
	    "cid=3,socket=/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	  { "--vsock: socket=/", "is longer than 107 bytes" } },
	{ { "--kernel", "k", "--vsock", "cid=3,socket=s,id=a b" },
	  { "--vsock", "id=a b", "0x20" } },
	{ { "--kernel", "k", "--vsock", "cid=3,socket=s", "--vsock",
	    "cid=4,socket=t" },
	  { "--vsock given twice" } },
	{ { "--kernel", "k", "--vsock", "cid=3,socket=s,port=5" },
	  { "--vsock: unknown parameter 'port'" } },
	{ { "--kernel", "k", "--pmem", "size=2M" },
	  { "--pmem: file= is required" } },
	{ { "--kernel", "k", "--pmem", "file=,size=2M" },
	  { "--pmem: file= needs a value" } },
	{ { "--kernel", "k", "--pmem", "file=p" },
	  { "--pmem: size= is required" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=3M" },
	  { "--pmem: size=3M is not a non-zero multiple of 2 MiB",
	    "2 MiB sections" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=0" },
	  { "--pmem: size=0 is not a non-zero multiple of 2 MiB" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=2T" },
	  { "--pmem: size=2T is larger than 1T" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=2Q" },
	  { "--pmem: size=2Q: unknown size suffix 'Q'" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=2M,discard_writes=maybe" },
	  { "--pmem: discard_writes=maybe is not on or off" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=2M,readonly=on" },
	  { "--pmem: unknown parameter 'readonly'" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=2M,id=disk0", "--disk",
	    "path=d" },
	  { "id=disk0 is used twice" } },
	{ { "--kernel", "k", "--pmem", "file=p,size=2M", "--pmem",
	    "file=q,size=2M,id=pmem0" },
	  { "--pmem: id=pmem0 is used twice" } },
	{ { "--kernel", "k", "--restart-devices", "yes" },
	  { "--restart-devices: 'yes' is not on, off or on,max=N" } },
	{ { "--kernel", "k", "--restart-devices", "onx" },
	  { "--restart-devices: 'onx' is not" } },
	{ { "--kernel", "k", "--restart-devices", "on,max=0" },
	  { "--restart-devices: max=0 is out of range 1..100" } },
	{ { "--kernel", "k", "--restart-devices", "on,max=x" },
	  { "--restart-devices: max=x is not a number" } },
	{ { "--kernel", "k", "--restart-devices", "on,min=3" },
	  { "--restart-devices", "min" } },
	{ { "--kernel", "k", "--restart-devices", "on", "--restart-devices",
	    "off" },
	  { "--restart-devices given twice" } },
};

static void test_bad(void **state)
{
	struct bh_config cfg;
	char err[256];
	size_t i, j;
	int ret;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];

		memset(&cfg, 0xa5, sizeof(cfg));
		strcpy(err, "untouched");
		ret = parse_list(&cfg, err, sizeof(err), c->args);
		if (ret != -EINVAL)
			fail_msg("case %zu (%s %s): returned %d, want -EINVAL",
				 i, c->args[0] ? c->args[0] : "",
				 c->args[0] && c->args[1] ? c->args[1] : "",
				 ret);
		for (j = 0; j < 3 && c->want[j]; j++)
			if (!strstr(err, c->want[j]))
				fail_msg("case %zu: '%s' does not contain '%s'",
					 i, err, c->want[j]);
		/* The parser freed and zeroed cfg; freeing again is harmless.
		 */
		assert_null(cfg.kernel);
		assert_null(cfg.cmdline);
		assert_null(cfg.name);
		assert_null(cfg.serial_path);
		assert_int_equal(cfg.ndisks, 0);
		assert_int_equal(cfg.nnets, 0);
		assert_null(cfg.vsock);
		assert_null(cfg.rng_source);
		assert_null(cfg.console_path);
		bh_config_free(&cfg);
		bh_config_free(&cfg);
	}
}

/* The parser must not print on error, and must survive a tiny err buffer. */
static void test_err_buffer(void **state)
{
	struct bh_config cfg;
	char small[8];

	assert_int_equal(
	    PARSE(&cfg, small, "--kernel", "k", "--memory", "size=12Q"),
	    -EINVAL);
	assert_string_equal(small, "--memor");
	assert_int_equal(bh_config_parse_args(1, (char *[]){ "bulkhead", NULL },
					      &cfg, NULL, 0),
			 -EINVAL);
}

/* getopt keeps global state; every parse must start afresh, even after one
 * that stopped in the middle of "-vx". */
static void test_reentrant(void **state)
{
	struct bh_config cfg;
	char err[256];
	int i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "-vx"),
				 -EINVAL);
		assert_int_equal(
		    PARSE(&cfg, err, "--kernel", "k", "--cpus", "boot=3"),
		    BH_CONFIG_OK);
		assert_int_equal(cfg.vcpus, 3);
		assert_int_equal(cfg.log_level, BH_LOG_INFO);
		bh_config_free(&cfg);
	}
}

/* Runs a parse with stdout sent to a temporary file, returned as a string. */
static char *capture_stdout(int *ret, const char *const *args)
{
	struct bh_config cfg;
	char err[256];
	FILE *tmp = tmpfile();
	int saved;
	long len;
	char *text;

	assert_non_null(tmp);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
	*ret = parse_list(&cfg, err, sizeof(err), args);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	bh_config_free(&cfg);

	assert_true(fseek(tmp, 0, SEEK_END) == 0);
	len = ftell(tmp);
	assert_true(len >= 0);
	rewind(tmp);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return text;
}

static void test_help_version(void **state)
{
	static const char *const help_args[][2] = {
		{ "--help", NULL },
		{ "-h", NULL },
	};
	char *out;
	int ret;
	size_t i;

	for (i = 0; i < 2; i++) {
		out = capture_stdout(&ret, help_args[i]);
		assert_int_equal(ret, BH_CONFIG_EXIT);
		assert_non_null(strstr(out, "Usage: bulkhead"));
		free(out);
	}
	/* --help wins over a missing --kernel and later junk. */
	out = capture_stdout(&ret, (const char *const[]){ "-h", "junk", NULL });
	assert_int_equal(ret, BH_CONFIG_EXIT);
	free(out);

	out = capture_stdout(&ret, (const char *const[]){ "--version", NULL });
	assert_int_equal(ret, BH_CONFIG_EXIT);
	assert_non_null(strstr(out, "bulkhead "));
	free(out);
	out = capture_stdout(&ret, (const char *const[]){ "-V", NULL });
	assert_int_equal(ret, BH_CONFIG_EXIT);
	free(out);
}

static void test_usage_text(void **state)
{
	static const char *const documented[] = {
		"--kernel PATH",
		"--initramfs PATH",
		"--cmdline STRING",
		"--cpus boot=N",
		"max=N",
		"--memory size=SIZE",
		"--serial",
		"file=PATH",
		"null",
		"off",
		"tty",
		"--name NAME",
		"--log-level LEVEL",
		"-v, --verbose",
		"--exit-stats",
		"-h, --help",
		"-V, --version",
		"default: boot=1",
		"default: size=512M",
		"64M..1T",
		"1..254",
		"default: info",
		"default: vm",
		"default: tty",
		"Exit status",
		"--disk path=PATH",
		"readonly=on|off",
		"num_queues=N",
		"queue_size=N",
		"serial=S",
		"--rng src=PATH",
		"--console MODE",
		"--restart-devices on[,max=N]|off",
		"--api-socket path=PATH|fd=N",
		"allow-uid=U[:U...]",
		"allow-gid=G[:G...]",
		"PERMISSION_DENIED",
		"--net tap=NAME|fd=N|fd=[N,M,...]",
		"[,mac=MAC]",
		"[,ip=IP]",
		"[,mask=MASK]",
		"[,mtu=N]",
		"mask default 255.255.255.0",
		"num_queues=2",
		"2..14",
		"64..4096",
		"mtu=1500 (68..65535)",
		"id=netN",
		"--vsock cid=CID,socket=PATH[,id=ID]",
		"3..4294967294",
		"107",
		"id=vsock0",
	};
	char *text = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	bh_config_usage(f);
	fclose(f);
	for (i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
		if (!strstr(text, documented[i]))
			fail_msg("usage lacks '%s'", documented[i]);
	free(text);
}

static void test_devices(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--disk", "path=/img/a.raw",
		  "--disk",
		  "path=/img/b.raw,readonly=on,direct=on,num_queues=4,"
		  "queue_size=1024,id=data,serial=12345678901234567890",
		  "--disk", "path=c,readonly=off,direct=off", "--rng",
		  "src=/dev/random", "--console", "file=/tmp/c,1.log"),
	    BH_CONFIG_OK);
	assert_int_equal(cfg.ndisks, 3);
	assert_string_equal(cfg.disks[0].path, "/img/a.raw");
	assert_string_equal(cfg.disks[0].id, "disk0");
	assert_string_equal(cfg.disks[0].serial, "");
	assert_false(cfg.disks[0].readonly);
	assert_false(cfg.disks[0].direct);
	assert_int_equal(cfg.disks[0].num_queues, 1);
	assert_int_equal(cfg.disks[0].queue_size, 256);
	assert_string_equal(cfg.disks[1].path, "/img/b.raw");
	assert_string_equal(cfg.disks[1].id, "data");
	assert_string_equal(cfg.disks[1].serial, "12345678901234567890");
	assert_true(cfg.disks[1].readonly);
	assert_true(cfg.disks[1].direct);
	assert_int_equal(cfg.disks[1].num_queues, 4);
	assert_int_equal(cfg.disks[1].queue_size, 1024);
	assert_string_equal(cfg.disks[2].id, "disk2");
	assert_false(cfg.disks[2].readonly);
	assert_string_equal(cfg.rng_source, "/dev/random");
	assert_int_equal(cfg.console, BH_CONSOLE_FILE);
	assert_string_equal(cfg.console_path, "/tmp/c,1.log");
	assert_int_equal(cfg.console_max_size, 64ULL << 20);
	assert_int_equal(cfg.console_on_full, BH_OUT_FULL_TRUNCATE);
	bh_config_free(&cfg);

	/* Defaults: no devices; --rng with an empty value; console tty
	 * once the serial port leaves the terminal. */
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k"), BH_CONFIG_OK);
	assert_int_equal(cfg.ndisks, 0);
	assert_null(cfg.rng_source);
	assert_int_equal(cfg.console, BH_CONSOLE_OFF);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k",
			       "--rng=", "--console", "tty", "--serial", "off"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.rng_source, BH_CONFIG_DEFAULT_RNG_SOURCE);
	assert_int_equal(cfg.console, BH_CONSOLE_TTY);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--console", "off",
			       "--disk", "path=x,queue_size=2", "--disk",
			       "path=y,queue_size=32768"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.console, BH_CONSOLE_OFF);
	assert_int_equal(cfg.disks[0].queue_size, 2);
	assert_int_equal(cfg.disks[1].queue_size, 32768);
	bh_config_free(&cfg);
}

/* --net and --vsock: every key, the defaults, and the list syntax of fd=. */
static void test_net_vsock(void **state)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	struct bh_config cfg;
	char err[256];

	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--net",
		  "tap=bh0,mac=52:54:00:AB:cd:ef,ip=192.168.249.1,"
		  "mask=255.255.0.0,num_queues=14,queue_size=4096,mtu=9000,"
		  "id=lan",
		  "--net", "fd=[5,6,7]", "--net", "fd=8,mtu=68,queue_size=64",
		  "--net", "tap=tap%d,ip=10.0.0.1,mtu=65535", "--vsock",
		  "cid=4294967294,socket=/run/bulkhead/web1.vsock,id=vs"),
	    BH_CONFIG_OK);
	assert_int_equal(cfg.nnets, 4);
	assert_string_equal(cfg.nets[0].id, "lan");
	assert_string_equal(cfg.nets[0].tap, "bh0");
	assert_int_equal(cfg.nets[0].nfds, 0);
	assert_true(cfg.nets[0].mac_set);
	assert_memory_equal(cfg.nets[0].mac, mac, 6);
	assert_int_equal(ntohl(cfg.nets[0].ip), 0xc0a8f901);
	assert_int_equal(ntohl(cfg.nets[0].mask), 0xffff0000);
	assert_int_equal(cfg.nets[0].num_queues, 14);
	assert_int_equal(cfg.nets[0].queue_size, 4096);
	assert_int_equal(cfg.nets[0].mtu, 9000);
	/* fd=: one queue pair per fd unless num_queues says otherwise. */
	assert_string_equal(cfg.nets[1].id, "net1");
	assert_null(cfg.nets[1].tap);
	assert_int_equal(cfg.nets[1].nfds, 3);
	assert_int_equal(cfg.nets[1].fds[0], 5);
	assert_int_equal(cfg.nets[1].fds[1], 6);
	assert_int_equal(cfg.nets[1].fds[2], 7);
	assert_int_equal(cfg.nets[1].num_queues, 6);
	assert_false(cfg.nets[1].mac_set);
	assert_int_equal(cfg.nets[1].ip, 0);
	assert_int_equal(cfg.nets[1].mask, 0);
	assert_int_equal(cfg.nets[1].queue_size, BH_CONFIG_NET_QUEUE_SIZE);
	assert_int_equal(cfg.nets[1].mtu, BH_CONFIG_NET_MTU);
	assert_int_equal(cfg.nets[2].nfds, 1);
	assert_int_equal(cfg.nets[2].fds[0], 8);
	assert_int_equal(cfg.nets[2].num_queues, 2);
	assert_int_equal(cfg.nets[2].queue_size, 64);
	assert_int_equal(cfg.nets[2].mtu, 68);
	/* ip= alone gets a /24. */
	assert_string_equal(cfg.nets[3].tap, "tap%d");
	assert_string_equal(cfg.nets[3].id, "net3");
	assert_int_equal(ntohl(cfg.nets[3].ip), 0x0a000001);
	assert_int_equal(ntohl(cfg.nets[3].mask), 0xffffff00);
	assert_int_equal(cfg.nets[3].mtu, 65535);
	assert_non_null(cfg.vsock);
	assert_int_equal(cfg.vsock->cid, 0xfffffffeULL);
	assert_string_equal(cfg.vsock->socket, "/run/bulkhead/web1.vsock");
	assert_string_equal(cfg.vsock->id, "vs");
	bh_config_free(&cfg);
	assert_int_equal(cfg.nnets, 0);
	assert_null(cfg.vsock);

	/* Defaults; fd= with a matching num_queues; a relative socket path
	 * of exactly 107 bytes; /32 and /1 masks. */
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--net", "tap=t0", "--net",
		  "fd=[3,4],num_queues=4", "--net",
		  "tap=0123456789abcde,ip=10.1.2.3,mask=255.255.255.255",
		  "--net", "tap=t1,ip=10.1.2.3,mask=128.0.0.0", "--vsock",
		  "socket=r/"
		  "012345678901234567890123456789012345678901234567890123456789"
		  "012345678901234567890123456789012345678901234,cid=3"),
	    BH_CONFIG_OK);
	assert_string_equal(cfg.nets[0].id, "net0");
	assert_int_equal(cfg.nets[0].num_queues, 2);
	assert_int_equal(cfg.nets[0].queue_size, 256);
	assert_int_equal(cfg.nets[0].mtu, 1500);
	assert_false(cfg.nets[0].mac_set);
	assert_int_equal(cfg.nets[0].ip, 0);
	assert_int_equal(cfg.nets[1].num_queues, 4);
	assert_int_equal(cfg.nets[1].nfds, 2);
	assert_int_equal(ntohl(cfg.nets[2].mask), 0xffffffff);
	assert_int_equal(ntohl(cfg.nets[3].mask), 0x80000000);
	assert_int_equal(cfg.vsock->cid, 3);
	assert_int_equal(strlen(cfg.vsock->socket), 107);
	assert_string_equal(cfg.vsock->id, "vsock0");
	bh_config_free(&cfg);

	/* An inherited fd is either the API's socket or a TAP queue. */
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--net", "fd=[4,5]",
			       "--api-socket", "fd=5"),
			 -EINVAL);
	assert_string_equal(err, "--net: fd 5 is the --api-socket's already");
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--net", "fd=[4,5]",
			       "--api-socket", "fd=3"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.api_socket_fd, 3);
	bh_config_free(&cfg);

	/* Both need a VM. */
	assert_int_equal(
	    PARSE(&cfg, err, "--api-socket", "path=/a", "--net", "tap=t0"),
	    -EINVAL);
	assert_string_equal(err, "--net needs --kernel: without one, the VM "
				 "comes from the API (create)");
	assert_int_equal(PARSE(&cfg, err, "--api-socket", "path=/a", "--vsock",
			       "cid=3,socket=s"),
			 -EINVAL);
	assert_non_null(strstr(err, "--vsock needs --kernel"));
}

/* Nets and vsock take PCI slots like any device. */
static void test_net_vsock_count(void **state)
{
	char paths[BH_MAX_DEVICES][16];
	char *argv[2 * BH_MAX_DEVICES + 8];
	struct bh_config cfg;
	char err[256];
	int argc = 0, i;

	argv[argc++] = (char *)"bulkhead";
	argv[argc++] = (char *)"--kernel";
	argv[argc++] = (char *)"k";
	for (i = 0; i < BH_MAX_DEVICES - 2; i++) {
		snprintf(paths[i], sizeof(paths[i]), "tap=t%d", i);
		argv[argc++] = (char *)"--net";
		argv[argc++] = paths[i];
	}
	argv[argc++] = (char *)"--vsock";
	argv[argc++] = (char *)"cid=3,socket=s";
	argv[argc++] = (char *)"--rng";
	argv[argc++] = (char *)"";
	argv[argc] = NULL;
	assert_int_equal(
	    bh_config_parse_args(argc, argv, &cfg, err, sizeof(err)),
	    BH_CONFIG_OK);
	assert_int_equal(cfg.nnets, BH_MAX_DEVICES - 2);
	assert_string_equal(cfg.nets[13].id, "net13");
	bh_config_free(&cfg);

	argv[argc++] = (char *)"--disk";
	argv[argc++] = (char *)"path=d";
	argv[argc] = NULL;
	assert_int_equal(
	    bh_config_parse_args(argc, argv, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk: more than 16 virtio devices in all");
}

/* --pmem: repeatable, defaults, sizes with suffixes. */
static void test_pmem(void **state)
{
	struct bh_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--pmem",
			       "file=/a,size=2M", "--pmem",
			       "file=/dev/pmem9,size=1G,discard_writes=on,"
			       "id=ro"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.npmems, 2);
	assert_string_equal(cfg.pmems[0].file, "/a");
	assert_int_equal(cfg.pmems[0].size, 2ULL << 20);
	assert_false(cfg.pmems[0].discard_writes);
	assert_string_equal(cfg.pmems[0].id, "pmem0");
	assert_string_equal(cfg.pmems[1].file, "/dev/pmem9");
	assert_int_equal(cfg.pmems[1].size, 1ULL << 30);
	assert_true(cfg.pmems[1].discard_writes);
	assert_string_equal(cfg.pmems[1].id, "ro");
	bh_config_free(&cfg);
	assert_int_equal(cfg.npmems, 0);

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--pmem",
			       "file=/a,size=1T,discard_writes=off"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.pmems[0].size, 1ULL << 40);
	bh_config_free(&cfg);
}

static void test_user(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k"), BH_CONFIG_OK);
	assert_null(cfg.user);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--user", "nobody"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.user, "nobody");
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--user=107:108"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.user, "107:108");
	bh_config_free(&cfg);
	/* API-only mode takes it too */
	assert_int_equal(PARSE(&cfg, err, "--api-socket", "path=/s", "--user",
			       "bulkhead:kvm"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.user, "bulkhead:kvm");
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--user", ""),
			 -EINVAL);
	assert_string_equal(err, "--user: no user name or id in ''");
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--user", ":kvm"),
			 -EINVAL);
	assert_string_equal(err, "--user: no user name or id in ':kvm'");
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--user", "a:"),
			 -EINVAL);
	assert_string_equal(err, "--user: 'a:' is not USER or USER:GROUP");
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--user", "a:b:c"),
			 -EINVAL);
	assert_string_equal(err, "--user: 'a:b:c' is not USER or USER:GROUP");
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--user", "a", "--user", "b"),
	    -EINVAL);
	assert_string_equal(err, "--user given twice");
	assert_int_equal(PARSE(&cfg, err, "--user", "nobody"), -EINVAL);
}

static void test_self_test(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k"), BH_CONFIG_OK);
	assert_int_equal(cfg.self_test, BH_SELF_TEST_NONE);
	bh_config_free(&cfg);
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--self-test-seccomp", "vcpu"),
	    BH_CONFIG_OK);
	assert_int_equal(cfg.self_test, BH_SELF_TEST_VCPU);
	bh_config_free(&cfg);
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--self-test-seccomp=worker"),
	    BH_CONFIG_OK);
	assert_int_equal(cfg.self_test, BH_SELF_TEST_WORKER);
	bh_config_free(&cfg);
	/* the controller's needs neither a VM nor an API socket */
	assert_int_equal(PARSE(&cfg, err, "--self-test-seccomp", "controller"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.self_test, BH_SELF_TEST_CONTROLLER);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--self-test-seccomp", "io-uring"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.self_test, BH_SELF_TEST_IO_URING);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--self-test-seccomp", "vcpu"),
			 -EINVAL);
	assert_string_equal(err, "--self-test-seccomp vcpu or worker needs "
				 "--kernel: the test boots a VM");
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--self-test-seccomp", "blk"),
	    -EINVAL);
	assert_string_equal(err, "--self-test-seccomp: 'blk' is not "
				 "controller, vcpu, worker or io-uring");
}

static void test_sandbox(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k"), BH_CONFIG_OK);
	assert_false(cfg.strict_sandbox);
	bh_config_free(&cfg);
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--sandbox", "strict"),
	    BH_CONFIG_OK);
	assert_true(cfg.strict_sandbox);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--sandbox=relaxed"),
			 BH_CONFIG_OK);
	assert_false(cfg.strict_sandbox);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--sandbox", "on"),
			 -EINVAL);
	assert_string_equal(err, "--sandbox: 'on' is not relaxed or strict");
	assert_int_equal(
	    PARSE(&cfg, err, "--api-socket", "path=/s", "--sandbox", "strict"),
	    BH_CONFIG_OK);
	assert_true(cfg.strict_sandbox);
	bh_config_free(&cfg);
}

static void test_restart_devices(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k"), BH_CONFIG_OK);
	assert_false(cfg.restart_devices);
	assert_int_equal(cfg.max_restarts, BH_CONFIG_DEFAULT_RESTARTS);
	bh_config_free(&cfg);
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--restart-devices", "on"),
	    BH_CONFIG_OK);
	assert_true(cfg.restart_devices);
	assert_int_equal(cfg.max_restarts, BH_CONFIG_DEFAULT_RESTARTS);
	bh_config_free(&cfg);
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--restart-devices=on,max=100"),
	    BH_CONFIG_OK);
	assert_true(cfg.restart_devices);
	assert_int_equal(cfg.max_restarts, 100);
	bh_config_free(&cfg);
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--restart-devices", "off"),
	    BH_CONFIG_OK);
	assert_false(cfg.restart_devices);
	bh_config_free(&cfg);
}

/* 16 virtio devices fit (PCI slots 1..16); the 17th is refused, whichever
 * option brings it. */
/* Without --kernel: only with an API socket, and then only the process's
 * own options. */
static void test_no_vm(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--api-socket", "path=/run/a.sock",
			       "--name", "web1", "--log-level", "debug"),
			 BH_CONFIG_OK);
	assert_null(cfg.kernel);
	assert_string_equal(cfg.api_socket_path, "/run/a.sock");
	assert_string_equal(cfg.name, "web1");
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "-v", "--api-socket", "fd=3"),
			 BH_CONFIG_OK);
	bh_config_free(&cfg);

	assert_int_equal(PARSE(&cfg, err, "--name", "web1"), -EINVAL);
	assert_non_null(strstr(err, "--kernel is required"));
	assert_int_equal(
	    PARSE(&cfg, err, "--api-socket", "path=/s", "--memory", "size=1G"),
	    -EINVAL);
	assert_string_equal(err, "--memory needs --kernel: without one, the VM "
				 "comes from the API (create)");
	assert_int_equal(
	    PARSE(&cfg, err, "--disk", "path=x", "--api-socket", "path=/s"),
	    -EINVAL);
	assert_non_null(strstr(err, "--disk needs --kernel"));
}

/* --restore: the VM from a snapshot, with only the process's options. */
static void test_restore(void **state)
{
	struct bh_config cfg;
	char err[256] = "";
	int r;

	r = PARSE(&cfg, err, "--restore",
		  "source_url=file:///srv/snap,prefault=on", "--restore-disk",
		  "disk0=/srv/copy.img", "--restore-disk",
		  "data=/srv/data2.img", "--api-socket", "path=/run/a.sock");
	if (r != BH_CONFIG_OK)
		fail_msg("%s", err);
	assert_null(cfg.kernel);
	assert_string_equal(cfg.restore_url, "file:///srv/snap");
	assert_int_equal(cfg.nrestore_disks, 2);
	assert_string_equal(cfg.restore_disks[1].id, "data");
	assert_string_equal(cfg.restore_disks[1].path, "/srv/data2.img");
	bh_config_free(&cfg);
	/* Without an API socket too: the VM then runs at once. */
	assert_int_equal(PARSE(&cfg, err, "--restore", "source_url=/srv/snap"),
			 BH_CONFIG_OK);
	bh_config_free(&cfg);

	assert_int_equal(PARSE(&cfg, err, "--restore", "prefault=on"), -EINVAL);
	assert_non_null(strstr(err, "source_url= is required"));
	assert_int_equal(PARSE(&cfg, err, "--restore", "source_url=/s",
			       "--restore", "source_url=/t", "--restore-disk",
			       "x"),
			 -EINVAL);
	assert_int_equal(PARSE(&cfg, err, "--restore", "source_url=/s",
			       "--restore-disk", "disk0"),
			 -EINVAL);
	assert_non_null(strstr(err, "is not ID=PATH"));
	assert_int_equal(PARSE(&cfg, err, "--restore", "source_url=/s",
			       "--restore-disk", "disk0=rel.img"),
			 -EINVAL);
	assert_non_null(strstr(err, "must be an absolute path"));
	assert_int_equal(PARSE(&cfg, err, "--restore", "source_url=/s",
			       "--restore-disk", "d=/a", "--restore-disk",
			       "d=/b"),
			 -EINVAL);
	assert_non_null(strstr(err, "d given twice"));
	assert_int_equal(PARSE(&cfg, err, "--restore-disk", "d=/a",
			       "--api-socket", "path=/s"),
			 -EINVAL);
	assert_non_null(strstr(err, "--restore-disk goes with --restore"));
	assert_int_equal(PARSE(&cfg, err, "--kernel", "/boot/k", "--restore",
			       "source_url=/s"),
			 -EINVAL);
	assert_non_null(
	    strstr(err, "--restore takes the VM from the snapshot"));
	assert_int_equal(PARSE(&cfg, err, "--restore", "source_url=/s",
			       "--memory", "size=1G"),
			 -EINVAL);
}

static void test_api_socket(void **state)
{
	struct bh_config cfg;
	char err[256];

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k"), BH_CONFIG_OK);
	assert_null(cfg.api_socket_path);
	assert_int_equal(cfg.api_socket_fd, -1);
	bh_config_free(&cfg);

	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--api-socket",
			       "path=/run/bh/a.sock"),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.api_socket_path, "/run/bh/a.sock");
	assert_int_equal(cfg.api_socket_fd, -1);
	bh_config_free(&cfg);

	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--api-socket=plain.sock"),
	    BH_CONFIG_OK);
	assert_string_equal(cfg.api_socket_path, "plain.sock");
	bh_config_free(&cfg);

	assert_int_equal(
	    PARSE(&cfg, err, "--api-socket", "fd=3", "--kernel", "k"),
	    BH_CONFIG_OK);
	assert_null(cfg.api_socket_path);
	assert_int_equal(cfg.api_socket_fd, 3);
	assert_int_equal(cfg.api_access.nuids + cfg.api_access.ngids, 0);
	bh_config_free(&cfg);

	/* Socket activation with only some users let in; no VM needed. */
	assert_int_equal(PARSE(&cfg, err, "--api-socket",
			       "fd=3,allow-uid=1000,allow-gid=100:101"),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.api_socket_fd, 3);
	assert_int_equal(cfg.api_access.nuids, 1);
	assert_int_equal(cfg.api_access.uids[0], 1000);
	assert_int_equal(cfg.api_access.ngids, 2);
	assert_int_equal(cfg.api_access.gids[1], 101);
	bh_config_free(&cfg);
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--api-socket",
			       "path=/s,allow-uid=-1"),
			 -EINVAL);
	assert_non_null(strstr(err, "--api-socket: allow-uid=-1: '-1' is not "
				    "a numeric id"));

	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--api-socket", "fd=x"), -EINVAL);
	assert_non_null(strstr(err, "--api-socket: fd=x"));
	assert_int_equal(
	    PARSE(&cfg, err, "--kernel", "k", "--api-socket", "path="),
	    -EINVAL);
	assert_non_null(strstr(err, "--api-socket: the path is empty"));
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--api-socket", "a",
			       "--api-socket", "b"),
			 -EINVAL);
	assert_non_null(strstr(err, "--api-socket given twice"));
	assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--api-socket"),
			 -EINVAL);
	assert_non_null(strstr(err, "--api-socket"));
}

static void test_too_many_devices(void **state)
{
	static const char *const extra[][2] = {
		{ "--disk", "path=last" },	 { "--net", "tap=t0" },
		{ "--vsock", "cid=3,socket=s" }, { "--rng", "" },
		{ "--console", "file=c" },	 { "--pmem", "file=p,size=2M" },
	};
	char paths[BH_MAX_DEVICES][16];
	char *argv[2 * BH_MAX_DEVICES + 8];
	struct bh_config cfg;
	char err[256];
	int argc, i;
	size_t e;

	for (e = 0; e <= BH_ARRAY_SIZE(extra); e++) {
		argc = 0;
		argv[argc++] = (char *)"bulkhead";
		argv[argc++] = (char *)"--kernel";
		argv[argc++] = (char *)"k";
		for (i = 0; i < BH_MAX_DEVICES; i++) {
			snprintf(paths[i], sizeof(paths[i]), "path=d%d", i);
			argv[argc++] = (char *)"--disk";
			argv[argc++] = paths[i];
		}
		if (e < BH_ARRAY_SIZE(extra)) {
			argv[argc++] = (char *)extra[e][0];
			argv[argc++] = (char *)extra[e][1];
		}
		argv[argc] = NULL;
		if (e == BH_ARRAY_SIZE(extra)) {
			assert_int_equal(bh_config_parse_args(argc, argv, &cfg,
							      err, sizeof(err)),
					 BH_CONFIG_OK);
			assert_int_equal(cfg.ndisks, BH_MAX_DEVICES);
			assert_string_equal(cfg.disks[15].id, "disk15");
			bh_config_free(&cfg);
			continue;
		}
		assert_int_equal(
		    bh_config_parse_args(argc, argv, &cfg, err, sizeof(err)),
		    -EINVAL);
		assert_non_null(strstr(err, "more than 16 virtio devices"));
		assert_non_null(strstr(err, extra[e][0]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_output_limits),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_err_buffer),
		cmocka_unit_test(test_reentrant),
		cmocka_unit_test(test_help_version),
		cmocka_unit_test(test_usage_text),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_restart_devices),
		cmocka_unit_test(test_sandbox),
		cmocka_unit_test(test_too_many_devices),
		cmocka_unit_test(test_net_vsock),
		cmocka_unit_test(test_net_vsock_count),
		cmocka_unit_test(test_pmem),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_api_socket),
		cmocka_unit_test(test_no_vm),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_self_test),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
