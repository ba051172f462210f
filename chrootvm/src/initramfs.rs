//! The initramfs, built in memory with the mkinitrd library: init, the
//! modules a virtiofs root needs, and virtio_console for init's status
//! port. Written to a memfd that qemu reads as /proc/self/fd/N, so no file
//! of it is ever left behind.

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use mkinitrd::image::Image;
use mkinitrd::kmod::ModuleTree;
use rustix::io::FdFlags;

use crate::error::Error;
use crate::kernel::Kernel;

/// Modules beyond mkinitrd's virtiofs set: the status port's driver.
const EXTRA_MODULES: &[&str] = &["virtio_console"];

/// An initramfs in a memfd.
pub struct Initramfs {
    file: File,
    /// How many modules it holds, for `--debug`.
    pub modules: Vec<String>,
}

/// Builds the image for `kernel`.
///
/// # Errors
/// A module or the init binary is missing, or the memfd cannot be written.
pub fn build(kernel: &Kernel) -> Result<Initramfs, Error> {
    let tree = ModuleTree::open(&kernel.moddir)?;
    let names: Vec<&str> = mkinitrd::kernel::DEFAULT_MODULES
        .iter()
        .chain(EXTRA_MODULES)
        .copied()
        .collect();
    let modules = tree.resolve(&names)?;
    let init = mkinitrd::kernel::find_init(None)?;
    // Nothing here is reproduced later: a fixed mtime is as good as any.
    let mut image = Image::new(0);
    image.add_init(&init)?;
    image.add_modules(&modules)?;
    let fd = rustix::fs::memfd_create("initramfs", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::Io("create the initramfs in memory".into(), e.into()))?;
    let file = File::from(fd);
    image.write_to(BufWriter::with_capacity(1 << 20, &file))?;
    Ok(Initramfs {
        file,
        modules: modules.iter().map(|m| m.name.clone()).collect(),
    })
}

impl Initramfs {
    /// Lets the next program started inherit the memfd and returns the path
    /// under which that program opens it. Call right before starting qemu,
    /// so earlier helpers (virtiofsd) do not get it.
    ///
    /// # Errors
    /// The close-on-exec flag cannot be cleared.
    pub fn pass_to_child(&self) -> Result<PathBuf, Error> {
        rustix::io::fcntl_setfd(&self.file, FdFlags::empty())
            .map_err(|e| Error::Io("pass the initramfs to qemu".into(), e.into()))?;
        Ok(PathBuf::from(format!(
            "/proc/self/fd/{}",
            self.file.as_raw_fd()
        )))
    }
}
