/* seccomp: placeholder, being written. */
