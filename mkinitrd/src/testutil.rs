//! Helpers for the unit tests: the workspace's one temporary-directory
//! helper, under the name the tests here use.

pub use tests::Scratch as TempDir;
