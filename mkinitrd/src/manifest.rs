//! The --manifest file: one directive a line.
