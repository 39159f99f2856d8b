/*
 * Sanitizer builds only: the runtime options of the sandboxed children
 * (runner and device workers). They start with a clean environment, so
 * ASAN_OPTIONS cannot reach them, and their seccomp allow-list (kill by
 * default) has no room for LeakSanitizer's exit-time scan, which stops the
 * world with prctl, clone and ptrace. Leak checking therefore stays with the
 * controller and the unit tests; every other check stays on in the children.
 */
const char *__asan_default_options(void);
const char *__lsan_default_options(void);

const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

const char *__lsan_default_options(void)
{
	return "detect_leaks=0";
}
