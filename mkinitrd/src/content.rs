//! Host files, trees, directories, symlinks and device nodes added to an image.
