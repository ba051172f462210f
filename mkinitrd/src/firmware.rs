//! Firmware named by packed modules.
