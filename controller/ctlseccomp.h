/* The seccomp allow-lists of the controller, its launcher and its binder. */
#ifndef BH_CONTROLLER_CTLSECCOMP_H
#define BH_CONTROLLER_CTLSECCOMP_H

#include <stdio.h>

/* Loads the filter (kill-process by default, every thread). Sets
 * no_new_privs. 0 or -errno, logged. */
int bh_ctl_seccomp_install(void);

/* --print-policy controller: the list, one rule per line, and its count,
 * which it returns. */
unsigned int bh_ctl_seccomp_print(FILE *out);

/* The launcher's: what it needs to start the children, and what they need
 * until their own filter is loaded and after. As bh_ctl_seccomp_install. */
int bh_launcher_seccomp_install(void);

/* --print-policy launcher. */
unsigned int bh_launcher_seccomp_print(FILE *out);

/* The binder's: its socket, and making unix listeners (socket, bind,
 * listen). As bh_ctl_seccomp_install. */
int bh_binder_seccomp_install(void);

/* --print-policy binder. */
unsigned int bh_binder_seccomp_print(FILE *out);

#endif
