/* Unit tests for config files (controller/conffile.c): lines to options,
 * comments, errors that name the file and the line, unreadable files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cmocka.h>

#include "conffile.h"

struct tmpdir {
	char dir[64];
	char path[128];
};

static void write_file(struct tmpdir *t, const char *name, const char *text,
		       size_t len)
{
	int fd;

	snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
	fd = open(t->path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	snprintf(t->dir, sizeof(t->dir), "/tmp/bh-test-conffile-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tmpdir *t = *state;
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
	free(t);
	return 0;
}

static const char good_file[] =
    "# web1: the front end\n"
    "\n"
    "kernel /boot/vmlinuz\n"
    "   initramfs\t/boot/initrd.img   \n"
    "cmdline console=ttyS0 root=/dev/vda # not a comment\n"
    "cpus boot=2\n"
    "memory=size=1G\n"
    "  # an indented comment\n"
    "disk path=/var/lib/vm/root.img,readonly=on\n"
    "disk path=/var/lib/vm/data.img,id=data\n"
    "serial file=/var/log/web1 serial.log\r\n"
    "console file=/var/log/web1,hvc0.log,max_size=8M,on_full=stop\n"
    "name web1\n"
    "rng src=/dev/urandom\n"
    "net tap=bh0,mac=52:54:00:12:34:56,ip=192.168.249.1,num_queues=4\n"
    "net=fd=[5,6],id=uplink\n"
    "vsock cid=3,socket=/run/bulkhead/web1.vsock\n"
    "pmem file=/var/lib/vm/web1.pmem,size=64M\n"
    "pmem file=/var/lib/vm/base.pmem,size=1G,discard_writes=on,id=base\n"
    "exit-stats\n"
    "api-socket path=/run/bulkhead/web1.sock,allow-uid=1000:1001,"
    "allow-gid=990\n"
    "log-level warn";

static void test_good_file(void **state)
{
	struct tmpdir *t = *state;
	struct bh_config cfg;
	char err[256];

	write_file(t, "web1.conf", good_file, strlen(good_file));
	if (bh_conffile_load(t->path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	assert_string_equal(cfg.initramfs, "/boot/initrd.img");
	assert_string_equal(cfg.cmdline,
			    "console=ttyS0 root=/dev/vda # not a comment");
	assert_int_equal(cfg.vcpus, 2);
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_int_equal(cfg.ndisks, 2);
	assert_string_equal(cfg.disks[0].path, "/var/lib/vm/root.img");
	assert_true(cfg.disks[0].readonly);
	assert_string_equal(cfg.disks[1].id, "data");
	assert_int_equal(cfg.serial, BH_SERIAL_FILE);
	assert_string_equal(cfg.serial_path, "/var/log/web1 serial.log");
	assert_int_equal(cfg.serial_max_size, 64ULL << 20);
	assert_int_equal(cfg.console, BH_CONSOLE_FILE);
	assert_string_equal(cfg.console_path, "/var/log/web1,hvc0.log");
	assert_int_equal(cfg.console_max_size, 8ULL << 20);
	assert_int_equal(cfg.console_on_full, BH_OUT_FULL_STOP);
	assert_string_equal(cfg.name, "web1");
	assert_string_equal(cfg.rng_source, "/dev/urandom");
	assert_int_equal(cfg.nnets, 2);
	assert_string_equal(cfg.nets[0].tap, "bh0");
	assert_string_equal(cfg.nets[0].id, "net0");
	assert_true(cfg.nets[0].mac_set);
	assert_int_equal(cfg.nets[0].mac[5], 0x56);
	assert_int_equal(cfg.nets[0].ip, htonl(0xc0a8f901));
	assert_int_equal(cfg.nets[0].mask, htonl(0xffffff00));
	assert_int_equal(cfg.nets[0].num_queues, 4);
	assert_null(cfg.nets[1].tap);
	assert_int_equal(cfg.nets[1].nfds, 2);
	assert_int_equal(cfg.nets[1].fds[1], 6);
	assert_string_equal(cfg.nets[1].id, "uplink");
	assert_int_equal(cfg.npmems, 2);
	assert_string_equal(cfg.pmems[0].file, "/var/lib/vm/web1.pmem");
	assert_int_equal(cfg.pmems[0].size, 64ULL << 20);
	assert_string_equal(cfg.pmems[0].id, "pmem0");
	assert_false(cfg.pmems[0].discard_writes);
	assert_true(cfg.pmems[1].discard_writes);
	assert_string_equal(cfg.pmems[1].id, "base");
	assert_non_null(cfg.vsock);
	assert_int_equal(cfg.vsock->cid, 3);
	assert_string_equal(cfg.vsock->socket, "/run/bulkhead/web1.vsock");
	assert_true(cfg.print_exit_stats);
	assert_string_equal(cfg.api_socket_path, "/run/bulkhead/web1.sock");
	assert_int_equal(cfg.api_access.nuids, 2);
	assert_int_equal(cfg.api_access.uids[1], 1001);
	assert_int_equal(cfg.api_access.ngids, 1);
	assert_int_equal(cfg.api_access.gids[0], 990);
	assert_int_equal(cfg.log_level, BH_LOG_WARN);
	bh_config_free(&cfg);
}

static void test_argv_and_lines(void **state)
{
	static const char text[] = "# c\n"
				   "kernel /k\n"
				   "\n"
				   "cmdline=\n"
				   "cmdline=  spaced  \n"
				   "verbose\n";
	struct bh_conffile *f;
	char err[128];

	assert_int_equal(bh_conffile_parse_text("x.conf", text, strlen(text),
						&f, err, sizeof(err)),
			 0);
	assert_int_equal(f->argc, 5);
	assert_string_equal(f->argv[0], "bulkhead");
	assert_string_equal(f->argv[1], "--kernel=/k");
	assert_int_equal(f->lines[1], 2);
	/* NAME= gives an empty value. */
	assert_string_equal(f->argv[2], "--cmdline=");
	assert_int_equal(f->lines[2], 4);
	assert_string_equal(f->argv[3], "--cmdline=spaced");
	assert_string_equal(f->argv[4], "--verbose");
	assert_int_equal(f->lines[4], 6);
	assert_null(f->argv[5]);
	bh_conffile_free(f);

	/* An empty file and one of comments only give no options. */
	assert_int_equal(
	    bh_conffile_parse_text("e.conf", "", 0, &f, err, sizeof(err)), 0);
	assert_int_equal(f->argc, 1);
	bh_conffile_free(f);
	assert_int_equal(bh_conffile_parse_text("e.conf", "#\n  #x\n", 7, &f,
						err, sizeof(err)),
			 0);
	assert_int_equal(f->argc, 1);
	bh_conffile_free(f);
}

/* The whole text must fail with exactly want. */
static void expect_error(const char *text, const char *want)
{
	struct bh_conffile *f;
	struct bh_config cfg;
	char err[512];
	int r;

	r = bh_conffile_parse_text("/etc/bulkhead/web1.conf", text,
				   strlen(text), &f, err, sizeof(err));
	if (r == 0) {
		r = bh_conffile_config(f, &cfg, err, sizeof(err));
		bh_conffile_free(f);
	}
	assert_int_equal(r, -EINVAL);
	assert_string_equal(err, want);
}

static void test_bad_lines(void **state)
{
	expect_error("kernel /k\n--memory size=1G\n",
		     "/etc/bulkhead/web1.conf:2: write options without their "
		     "leading dashes ('kernel /boot/vmlinuz')");
	expect_error("kernel /k\n\nMemory size=1G\n",
		     "/etc/bulkhead/web1.conf:3: 'Memory size=1G' does not "
		     "start with an option name (lower-case letters, digits "
		     "and '-')");
	expect_error("kernel:/k\n",
		     "/etc/bulkhead/web1.conf:1: 'kernel:/k' does not start "
		     "with an option name (lower-case letters, digits and "
		     "'-')");
	expect_error("kernel /k\nhelp\n",
		     "/etc/bulkhead/web1.conf:2: 'help' cannot be used in a "
		     "config file");
	expect_error("kernel /k\nversion\n",
		     "/etc/bulkhead/web1.conf:2: 'version' cannot be used in "
		     "a config file");
	expect_error("kernel /k\nh\n",
		     "/etc/bulkhead/web1.conf:2: 'h' cannot be used in a "
		     "config file");
}

/* The parser's own messages, traced back to the line that caused them. */
static void test_parser_errors_name_the_line(void **state)
{
	expect_error("# vm\nkernel /k\n\nmemory size=12Q\n",
		     "/etc/bulkhead/web1.conf:4: --memory: size=12Q: unknown "
		     "size suffix 'Q'");
	expect_error("kernel /k\nbogus on\n",
		     "/etc/bulkhead/web1.conf:2: unknown option '--bogus'");
	expect_error("kernel /k\ncpus boot=1\n\ncpus boot=2\n",
		     "/etc/bulkhead/web1.conf:4: --cpus given twice");
	expect_error("kernel /k\ndisk path=/a,id=x\nrng src=/r\n"
		     "disk path=/b,id=x\n",
		     "/etc/bulkhead/web1.conf:4: --disk: id=x is used twice");
	expect_error("kernel /k\nnet tap=bh0\ndisk path=/a\n"
		     "net tap=bh1,mac=52:54:00:zz:34:56\n",
		     "/etc/bulkhead/web1.conf:4: --net: mac=52:54:00:zz:34:56: "
		     "not a MAC address (xx:xx:xx:xx:xx:xx)");
	expect_error("kernel /k\nnet tap=bh0,id=x\ndisk path=/a,id=x\n",
		     "/etc/bulkhead/web1.conf:3: --net: id=x is used twice "
		     "(also by --disk)");
	expect_error("kernel /k\nvsock cid=3,socket=/a\n\nvsock "
		     "cid=4,socket=/b\n",
		     "/etc/bulkhead/web1.conf:4: --vsock given twice");
	expect_error("kernel /k\n\npmem file=/p,size=1M\n",
		     "/etc/bulkhead/web1.conf:3: --pmem: size=1M is not a "
		     "non-zero multiple of 2 MiB (the guest maps the region "
		     "in 2 MiB sections)");
	expect_error("kernel /k\nvsock cid=1,socket=/a\n",
		     "/etc/bulkhead/web1.conf:2: --vsock: cid=1 is out of "
		     "range 3..4294967294");
	expect_error("kernel /k\nconsole tty\n",
		     "/etc/bulkhead/web1.conf:2: --console tty and --serial "
		     "tty cannot share the terminal (the default is --serial "
		     "tty: add --serial off, null or file=PATH)");
	expect_error("kernel /k\nexit-stats=yes\n",
		     "/etc/bulkhead/web1.conf:2: --exit-stats does not take a "
		     "value");
	expect_error("kernel\n",
		     "/etc/bulkhead/web1.conf:1: --kernel needs an argument");
	expect_error(
	    "kernel /k\napi-socket fd=3,allow-gid=wheel\n",
	    "/etc/bulkhead/web1.conf:2: --api-socket: allow-gid=wheel: "
	    "'wheel' is not a numeric id (ids are separated by ':')");
	/* What no single line causes names the file alone. */
	expect_error("# nothing but\nmemory size=1G\n",
		     "/etc/bulkhead/web1.conf: --kernel is required (or "
		     "--api-socket alone, to create the VM through the API)");
	expect_error("", "/etc/bulkhead/web1.conf: --kernel is required (or "
			 "--api-socket alone, to create the VM through the "
			 "API)");
}

static void test_files(void **state)
{
	struct tmpdir *t = *state;
	struct bh_config cfg;
	char err[256], want[256], *big;

	snprintf(t->path, sizeof(t->path), "%s/missing.conf", t->dir);
	assert_int_equal(bh_conffile_load(t->path, &cfg, err, sizeof(err)),
			 -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", t->path);
	assert_string_equal(err, want);

	assert_int_equal(bh_conffile_load(t->dir, &cfg, err, sizeof(err)),
			 -EISDIR);
	snprintf(want, sizeof(want), "%s: Is a directory", t->dir);
	assert_string_equal(err, want);

	write_file(t, "nul.conf", "kernel /k\nname a\0b\n", 19);
	assert_int_equal(bh_conffile_load(t->path, &cfg, err, sizeof(err)),
			 -EINVAL);
	snprintf(want, sizeof(want), "%s:2: the line holds a NUL byte",
		 t->path);
	assert_string_equal(err, want);

	big = malloc(BH_CONFFILE_MAX_SIZE + 2);
	assert_non_null(big);
	memset(big, '#', BH_CONFFILE_MAX_SIZE + 1);
	write_file(t, "big.conf", big, BH_CONFFILE_MAX_SIZE + 1);
	free(big);
	assert_int_equal(bh_conffile_load(t->path, &cfg, err, sizeof(err)),
			 -EFBIG);
	assert_non_null(strstr(err, "larger than"));

	write_file(t, "bad.conf", "kernel /k\nmemory size=1\n", 24);
	assert_int_equal(bh_conffile_load(t->path, &cfg, err, sizeof(err)),
			 -EINVAL);
	snprintf(want, sizeof(want), "%s:2: --memory: size=1 is below the",
		 t->path);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

/* bh_conffile_parse_cmdline on a NULL-terminated list after "bulkhead". */
static int parse_cmdline(struct bh_config *cfg, char *err, size_t errlen, ...)
{
	char *argv[16] = { "bulkhead" };
	int argc = 1;
	va_list ap;

	va_start(ap, errlen);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	return bh_conffile_parse_cmdline(argc, argv, cfg, err, errlen);
}

static void test_config_option(void **state)
{
	static const char text[] = "# web1\n"
				   "kernel /boot/vmlinuz\n"
				   "memory size=1G\n"
				   "disk path=/var/lib/bulkhead/a.img\n";
	struct tmpdir *t = *state;
	struct bh_config cfg;
	char err[512], arg[160];

	write_file(t, "web1.conf", text, strlen(text));
	/* The file's options, then the command line's. */
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--config",
				       t->path, "--name", "web1", "--disk",
				       "path=/var/lib/bulkhead/b.img", NULL),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_string_equal(cfg.name, "web1");
	assert_int_equal(cfg.ndisks, 2);
	assert_string_equal(cfg.disks[0].path, "/var/lib/bulkhead/a.img");
	assert_string_equal(cfg.disks[1].path, "/var/lib/bulkhead/b.img");
	assert_string_equal(cfg.config_path, t->path);
	bh_config_free(&cfg);

	/* --config=FILE and a unique abbreviation, anywhere on the line. */
	snprintf(arg, sizeof(arg), "--config=%s", t->path);
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--cpus",
				       "boot=2", arg, NULL),
			 BH_CONFIG_OK);
	assert_int_equal(cfg.vcpus, 2);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	bh_config_free(&cfg);
	assert_int_equal(
	    parse_cmdline(&cfg, err, sizeof(err), "--conf", t->path, NULL),
	    BH_CONFIG_OK);
	bh_config_free(&cfg);

	/* An option in both is given twice, as on one command line. */
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--config",
				       t->path, "--memory", "size=2G", NULL),
			 -EINVAL);
	assert_string_equal(err, "--memory given twice");
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--config",
				       t->path, "--config", t->path, NULL),
			 -EINVAL);
	assert_string_equal(err, "--config given twice");

	/* A value that looks like --config is a value. */
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--kernel", "/k",
				       "--cmdline", "--config", NULL),
			 BH_CONFIG_OK);
	assert_string_equal(cfg.cmdline, "--config");
	assert_null(cfg.config_path);
	bh_config_free(&cfg);

	/* The command line's own errors are reported as they are. */
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--config",
				       t->path, "--cpus", "boot=0", NULL),
			 -EINVAL);
	assert_string_equal(err, "--cpus: boot=0 is out of range 1..254");
}

static void test_config_option_errors(void **state)
{
	static const char bad[] = "kernel /boot/vmlinuz\n"
				  "\n"
				  "memory size=12Q\n";
	static const char nested[] = "kernel /k\nconfig /etc/other.conf\n";
	struct tmpdir *t = *state;
	struct bh_config cfg;
	char err[512], want[512];

	/* A bad line names the file and the line. */
	write_file(t, "bad.conf", bad, strlen(bad));
	assert_int_equal(parse_cmdline(&cfg, err, sizeof(err), "--name", "x",
				       "--config", t->path, NULL),
			 -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:3: --memory: size=12Q: unknown size suffix 'Q'", t->path);
	assert_string_equal(err, want);

	/* A file cannot name another one. */
	write_file(t, "nested.conf", nested, strlen(nested));
	assert_int_equal(
	    parse_cmdline(&cfg, err, sizeof(err), "--config", t->path, NULL),
	    -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:2: 'config' cannot be used in a config file", t->path);
	assert_string_equal(err, want);

	/* What the file and the command line lack together. */
	write_file(t, "short.conf", "memory size=1G\n", 15);
	assert_int_equal(
	    parse_cmdline(&cfg, err, sizeof(err), "--config", t->path, NULL),
	    -EINVAL);
	/* No line of the file is to blame. */
	assert_true(strncmp(err, "--kernel is required", 20) == 0);

	snprintf(want, sizeof(want), "%s/missing.conf", t->dir);
	assert_int_equal(
	    parse_cmdline(&cfg, err, sizeof(err), "--config", want, NULL),
	    -ENOENT);
	assert_non_null(strstr(err, "missing.conf: No such file"));
	assert_int_equal(
	    parse_cmdline(&cfg, err, sizeof(err), "--config", NULL), -EINVAL);
	assert_string_equal(err, "--config needs an argument");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_file, setup,
						teardown),
		cmocka_unit_test(test_argv_and_lines),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_parser_errors_name_the_line),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_option, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_option_errors,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
