//! The kernel's legacy LZ4 format over lz4_flex's block API.
