//! rapido resources: the VM size an image asks for.
