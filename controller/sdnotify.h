/* The systemd notify protocol (sd_notify(3)) without libsystemd: one
 * datagram of NAME=VALUE lines to $NOTIFY_SOCKET. */
#ifndef BH_CONTROLLER_SDNOTIFY_H
#define BH_CONTROLLER_SDNOTIFY_H

/*
 * Sends state ("READY=1", "STOPPING=1", "STATUS=booting", or several such
 * lines separated by '\n') to the socket named by $NOTIFY_SOCKET: a path,
 * or an abstract socket written with a leading '@'. Returns 0, also when
 * $NOTIFY_SOCKET is unset or empty (not run by systemd, or not Type=notify:
 * nothing to tell), or -errno: -EINVAL for an unusable address, or what
 * socket() or sendmsg() failed with. Leaves the environment alone, so that
 * each later call reaches systemd too; the socket is close-on-exec and
 * closed before returning, so no child inherits it.
 *
 * Where bulkhead calls it (bulkhead@.service is Type=notify):
 *   - "READY=1" once the guest is running (after its first vCPU entered the
 *     guest), so that `systemctl start bulkhead@web1` returns then, and
 *     units ordered after it start with the VM up; with --api-socket the
 *     socket is listening by then;
 *   - "STOPPING=1" when the VM is on its way down (SIGTERM, the guest
 *     powering off, shutdown-vmm), before the power button is pressed or
 *     the children are stopped;
 *   - "STATUS=..." optionally, for `systemctl status` (e.g. "Running",
 *     "Paused").
 * A failure is worth a log line, never the VM's end.
 */
int bh_sdnotify(const char *state);

#endif
