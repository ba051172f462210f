//! Host programs and the shared libraries they load, found as ld.so finds them.
