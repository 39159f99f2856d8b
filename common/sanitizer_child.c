/*
 * Sanitizer builds only: the runtime options of the sandboxed children
 * (runner and device workers). They start with a clean environment, so
 * ASAN_OPTIONS and UBSAN_OPTIONS cannot reach them; these are their options.
 *
 * Their seccomp allow-list (kill by default), the empty root and Landlock
 * leave the runtime no file to open and no process to start:
 * - LeakSanitizer's exit-time scan stops the world with prctl, clone and
 *   ptrace: off. Leak checking stays with the controller and the unit tests.
 * - Symbolizing a report opens the binary (or runs a symbolizer): off, so
 *   that the report is printed whole, with frames as binary+offset
 *   (addr2line -f -e BINARY OFFSET names them afterwards).
 * - abort() would need tgkill, which the workers may not call: a report
 *   ends the process with exit status 1 instead (exit_group).
 * - Colour would need isatty, an ioctl outside their lists: none.
 * What the runtime still reads from /proc at a report fails with EACCES in
 * sanitizer builds (common/sandbox.c) rather than killing the process.
 * Every check stays on, and the first report ends the process; it goes to
 * stderr, which is the controller's.
 */
const char *__asan_default_options(void);
const char *__lsan_default_options(void);
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
	return "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=1:"
	       "symbolize=0:color=never";
}

const char *__lsan_default_options(void)
{
	return "detect_leaks=0";
}

const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:abort_on_error=0:exitcode=1:print_stacktrace=1:"
	       "symbolize=0:color=never";
}
