/* vcpu: placeholder, being written. */
