//! The initramfs, built in memory with the mkinitrd library and written to
//! a memfd that qemu reads as /proc/self/fd/N, so no file of it is ever
//! left behind.
//!
//! For a ROOTFS: init, the modules the VM needs, and the run spec. For
//! `--initrd IMAGE`: a small segment (the run spec and the status port's
//! modules, named to load after the image's own) followed by the image as
//! it is. The kernel unpacks concatenated archives in order, and a plain
//! segment before an LZ4 one is fine (the reverse is not).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use mkinitrd::image::Image;
use mkinitrd::kmod::ModuleTree;
use mkinitrd::request::{self, Plan, Request};
use mkinitrd::rsc::Resources;

use crate::error::{Error, Step};

/// An initramfs in a memfd.
pub struct Initramfs {
    file: File,
    /// The modules it adds, for `--debug`.
    pub modules: Vec<String>,
}

/// What goes in besides init.
pub struct Contents<'a> {
    /// Module names, resolved with their dependencies.
    pub modules: &'a [&'a str],
    /// The run spec (init::runspec), in run mode.
    pub run_spec: Option<Vec<u8>>,
}

/// The run spec's path in the archive (init reads /init.run).
fn run_spec_path() -> String {
    init::runspec::PATH
        .to_string_lossy()
        .trim_start_matches('/')
        .to_string()
}

/// A whole image for booting a directory.
///
/// # Errors
/// A module or the init binary is missing, or the memfd cannot be written.
pub fn build(tree: &ModuleTree, contents: Contents<'_>) -> Result<Initramfs, Error> {
    // The same plan as mkinitrd's: modules as the kernel loads them
    // (compressed where it decompresses), and their firmware.
    let init = mkinitrd::init_binary::find_init(None);
    let request = Request {
        init: &init,
        modules: contents.modules,
        directives: &[],
        resources: &Resources::default(),
        // Nothing here is reproduced later: a fixed mtime is as good as any.
        mtime: 0,
    };
    let Plan {
        mut image,
        modules,
        warnings,
    } = request::plan(&request, tree)?;
    for warning in warnings {
        note!("warning: {warning}");
    }
    if let Some(spec) = contents.run_spec {
        image.add_bytes(&run_spec_path(), spec, 0o600)?;
    }
    let file = memfd()?;
    image.write_to(BufWriter::with_capacity(1 << 20, &file))?;
    Ok(Initramfs {
        file,
        modules: modules.iter().map(|m| m.name.clone()).collect(),
    })
}

/// A segment for `--initrd IMAGE`, then the image itself.
///
/// # Errors
/// A module is missing, or the image or the memfd cannot be read or
/// written.
pub fn build_before(
    image_path: &Path,
    tree: &ModuleTree,
    contents: Contents<'_>,
) -> Result<Initramfs, Error> {
    let modules = tree.resolve(contents.modules)?;
    let mut segment = Image::new(0);
    segment.add_late_modules_for(&modules, tree.kernel_decompresses())?;
    if let Some(spec) = contents.run_spec {
        segment.add_bytes(&run_spec_path(), spec, 0o600)?;
    }
    let mut file = memfd()?;
    segment.write_to(BufWriter::new(&file))?;
    let mut image =
        File::open(image_path).map_err(|e| Error::Image(image_path.to_path_buf(), e))?;
    io::copy(&mut image, &mut file).map_err(|e| Error::Image(image_path.to_path_buf(), e))?;
    file.flush()
        .map_err(|e| Error::Host(Step::Initramfs("write"), e))?;
    Ok(Initramfs {
        file,
        modules: modules.iter().map(|m| m.name.clone()).collect(),
    })
}

fn memfd() -> Result<File, Error> {
    let fd = rustix::fs::memfd_create("initramfs", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::Host(Step::Initramfs("create in memory"), e.into()))?;
    Ok(File::from(fd))
}

impl Initramfs {
    /// A copy of the memfd the next program started inherits, and the path
    /// under which that program opens it. Create right before starting
    /// qemu and drop right after, so no other helper gets it.
    ///
    /// # Errors
    /// The memfd cannot be duplicated.
    pub fn pass_to_child(&self) -> Result<(OwnedFd, PathBuf), Error> {
        // dup(2) leaves close-on-exec off on the copy.
        let fd = rustix::io::dup(&self.file)
            .map_err(|e| Error::Host(Step::Initramfs("pass to qemu"), e.into()))?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Ok((fd, path))
    }
}
