/* Who the runner and the controller may signal, under their real seccomp
 * filters (vcpu-runner/seccomp.c and controller/seccomp.c, built into this
 * test), each loaded in a forked child: the runner only its own threads with
 * its kick or SIGABRT, the controller SIGKILL to one pid at a time. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/sandbox.h>

#include "ctlseccomp.h"
#include "runner.h"

/* A process that only waits to be killed: the other VM's runner. */
static pid_t victim_start(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* Not left behind by a child that fails. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return pid;
}

/* The victim is alive; then it goes. */
static void victim_check_alive_and_end(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void child_sandbox(int (*install)(void))
{
	struct rlimit core = { 0, 0 };

	/* abort() must not leave core files behind the test. */
	if (setrlimit(RLIMIT_CORE, &core) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || install() < 0)
		_exit(90);
}

/* Runs fn(arg) in a child behind install's filter; its wait status. */
static int under_filter(int (*install)(void), void (*fn)(long), long arg)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Its own process group: a kill(0) that got through would end
		 * only this child. */
		setpgid(0, 0);
		child_sandbox(install);
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void assert_killed_by(int status, int sig)
{
	if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
		fail_msg("wait status 0x%x, expected signal %d (%s)", status,
			 sig, strsignal(sig));
}

/* ---- the runner --------------------------------------------------------- */

static void do_tgkill(long pid)
{
	syscall(SYS_tgkill, (pid_t)pid, (pid_t)pid, SIGKILL);
	_exit(1);
}

static void test_runner_tgkill_other_process(void **state)
{
	pid_t victim = victim_start();

	assert_killed_by(
	    under_filter(runner_seccomp_install, do_tgkill, victim), SIGSYS);
	victim_check_alive_and_end(victim);
}

static void do_probe_init(long unused)
{
	(void)unused;
	syscall(SYS_tgkill, 1, 1, 0);
	_exit(1);
}

static void test_runner_tgkill_probe(void **state)
{
	assert_killed_by(under_filter(runner_seccomp_install, do_probe_init, 0),
			 SIGSYS);
}

static void do_tgkill_self(long sig)
{
	syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), (int)sig);
	_exit(1);
}

static void test_runner_tgkill_self_other_signal(void **state)
{
	/* Its own process, but neither the kick nor SIGABRT. */
	assert_killed_by(
	    under_filter(runner_seccomp_install, do_tgkill_self, SIGKILL),
	    SIGSYS);
	assert_killed_by(
	    under_filter(runner_seccomp_install, do_tgkill_self, SIGTERM),
	    SIGSYS);
}

static void do_other_senders(long which)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_code = SI_QUEUE;
	switch (which) {
	case 0:
		syscall(SYS_kill, getpid(), BH_RUNNER_KICK_SIGNAL);
		break;
	case 1:
		syscall(SYS_tkill, (pid_t)syscall(SYS_gettid),
			BH_RUNNER_KICK_SIGNAL);
		break;
	case 2:
		syscall(SYS_rt_sigqueueinfo, getpid(), BH_RUNNER_KICK_SIGNAL,
			&si);
		break;
	case 3:
		syscall(SYS_rt_tgsigqueueinfo, getpid(),
			(pid_t)syscall(SYS_gettid), BH_RUNNER_KICK_SIGNAL, &si);
		break;
	}
	_exit(1);
}

static void test_runner_other_senders(void **state)
{
	for (long i = 0; i < 4; i++)
		assert_killed_by(
		    under_filter(runner_seccomp_install, do_other_senders, i),
		    SIGSYS);
}

static volatile sig_atomic_t kicked, thread_running;

static void on_kick(int sig)
{
	(void)sig;
	kicked = 1;
}

/* A vCPU thread: waits for its kick, as KVM_RUN would. */
static void *kicked_thread(void *arg)
{
	struct timespec ts = { 0, 1000000 };
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, BH_RUNNER_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	thread_running = 1;
	for (int i = 0; i < 10000 && !kicked; i++)
		nanosleep(&ts, NULL);
	return NULL;
}

/* The thread was started before the filter, as the runner's are. */
static void do_kick(long thread)
{
	pthread_t t = *(pthread_t *)(uintptr_t)thread;

	if (pthread_kill(t, BH_RUNNER_KICK_SIGNAL) != 0)
		_exit(2);
	pthread_join(t, NULL);
	_exit(kicked ? 0 : 3);
}

static void test_runner_kicks_own_thread(void **state)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction sa;
		sigset_t set;
		pthread_t t;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_kick;
		sigemptyset(&sa.sa_mask);
		sigemptyset(&set);
		sigaddset(&set, BH_RUNNER_KICK_SIGNAL);
		if (sigaction(BH_RUNNER_KICK_SIGNAL, &sa, NULL) < 0 ||
		    pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
		    pthread_create(&t, NULL, kicked_thread, NULL) != 0)
			_exit(91);
		/* As in the runner: glibc finishes setting a thread up (rseq,
		 * set_robust_list) before the filter, which refuses that. */
		while (!thread_running)
			sched_yield();
		child_sandbox(runner_seccomp_install);
		do_kick((long)(uintptr_t)&t);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the kick failed: wait status 0x%x", status);
}

static void do_abort(long unused)
{
	(void)unused;
	abort();
}

static void test_runner_abort(void **state)
{
	/* abort() ends the runner with SIGABRT, not through the filter. */
	assert_killed_by(under_filter(runner_seccomp_install, do_abort, 0),
			 SIGABRT);
}

/* ---- the controller ----------------------------------------------------- */

/* Under the controller's filter: SIGKILL to the victim works. */
static void test_controller_kills_one_pid(void **state)
{
	pid_t pid, victim;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		victim = victim_start();
		child_sandbox(bh_ctl_seccomp_install);
		if (kill(victim, SIGKILL) != 0)
			_exit(2);
		if (waitpid(victim, &status, 0) != victim ||
		    !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("wait status 0x%x", status);
}

static void do_ctl_kill(long how)
{
	pid_t self = getpid();

	switch (how) {
	case 0: /* its process group */
		syscall(SYS_kill, 0, SIGKILL);
		break;
	case 1: /* a process group by number */
		syscall(SYS_kill, -(long)getpgrp(), SIGKILL);
		break;
	case 2: /* a probe */
		syscall(SYS_kill, self, 0);
		break;
	case 3: /* another signal */
		syscall(SYS_kill, self, SIGTERM);
		break;
	case 4:
		syscall(SYS_tkill, self, SIGKILL);
		break;
	case 5:
		syscall(SYS_tgkill, self, self, SIGKILL);
		break;
	case 6:
		syscall(SYS_rt_sigqueueinfo, self, SIGKILL, NULL);
		break;
	case 7:
		syscall(SYS_pidfd_send_signal, 0, SIGKILL, NULL, 0);
		break;
	}
	_exit(1);
}

static void test_controller_refused_signals(void **state)
{
	/* kill(-1) is left out: were it let through, it would end every
	 * process of this user. Negative pids are tested with the child's
	 * own process group, which holds only the child. */
	for (long i = 0; i <= 7; i++) {
		int status =
		    under_filter(bh_ctl_seccomp_install, do_ctl_kill, i);

		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
			fail_msg("case %ld: wait status 0x%x, expected SIGSYS",
				 i, status);
	}
}

static void test_controller_abort(void **state)
{
	assert_killed_by(under_filter(bh_ctl_seccomp_install, do_abort, 0),
			 SIGABRT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runner_tgkill_other_process),
		cmocka_unit_test(test_runner_tgkill_probe),
		cmocka_unit_test(test_runner_tgkill_self_other_signal),
		cmocka_unit_test(test_runner_other_senders),
		cmocka_unit_test(test_runner_kicks_own_thread),
		cmocka_unit_test(test_runner_abort),
		cmocka_unit_test(test_controller_kills_one_pid),
		cmocka_unit_test(test_controller_refused_signals),
		cmocka_unit_test(test_controller_abort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
