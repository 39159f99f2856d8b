/* kvm: placeholder, being written. */
