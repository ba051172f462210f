//! Decompressing kernel modules at pack time.
