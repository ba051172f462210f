//! One request for an image, planned the same way by mkinitrd and by
//! chrootvm (issue 15): init, the modules with their dependencies,
//! firmware and decompression as the kernel needs them, the user's
//! directives, and rapido's resources, in one precedence ([`Source`]):
//! init first, then the directives in order (programs resolved as they
//! come), then what they ask the image to boot with, which is pinned.

use std::path::Path;

use crate::content::{self, Applied, Directive};
use crate::dangling;
use crate::error::Error;
use crate::firmware;
use crate::image::{Image, Source};
use crate::init_binary::InitBinary;
use crate::kmod::{Module, ModuleTree};
use crate::rsc::{self, Resources};

/// What an image must hold.
pub struct Request<'a> {
    /// The PID 1 packed as /init.
    pub init: &'a InitBinary,
    /// Modules by name or alias, always packed (before any `-m`).
    pub modules: &'a [&'a str],
    /// The user's directives, manifests expanded, in order.
    pub directives: &'a [Directive],
    /// rapido's resource markers.
    pub resources: &'a Resources,
    /// Every entry's mtime.
    pub mtime: u32,
}

/// A planned image and what planning found.
pub struct Plan {
    /// The image, not yet written.
    pub image: Image,
    /// The modules packed, in load order.
    pub modules: Vec<Module>,
    /// One line per problem that did not stop the plan (firmware not
    /// found, symlinks that point at nothing in the image), without a
    /// program prefix.
    pub warnings: Vec<String>,
}

/// Plans the image `request` asks for from the module tree `tree`.
///
/// # Errors
/// Those of the [`Image`] methods and of [`content::apply`], a missing
/// module, an unreadable tree or module, and [`Error::Clash`] when a
/// directive is in the way of what the image needs to boot.
pub fn plan(request: &Request<'_>, tree: &ModuleTree) -> Result<Plan, Error> {
    let mut image = Image::new(request.mtime);
    image.set_source(Some(Source::pinned("mkinitrd's init and its layout")));
    image.add_init(request.init)?;
    image.set_source(None);
    let applied = content::apply(&mut image, request.directives)?;
    let modules = resolve_modules(tree, request.modules, &applied)?;
    image.set_source(Some(Source::pinned("the kernel modules")));
    image.add_modules_for(&modules, tree.kernel_decompresses())?;
    let firmware = firmware::firmware_for(&modules, Path::new(firmware::FIRMWARE_DIR))?;
    image.set_source(Some(Source::pinned("the modules' firmware")));
    image.add_firmware(&firmware)?;
    image.set_source(Some(Source::pinned("the resources (--cpus, --mem, --net)")));
    rsc::add_to_image(request.resources, &mut image)?;
    image.set_source(None);
    let mut warnings = firmware.warnings;
    // Last: only the complete plan says what a link leads to.
    warnings.extend(
        dangling::dangling_symlinks(&image)
            .iter()
            .map(ToString::to_string),
    );
    Ok(Plan {
        image,
        modules,
        warnings,
    })
}

/// The modules in load order: `base`, every `module` directive, and the
/// `try-module` names the tree has.
fn resolve_modules(
    tree: &ModuleTree,
    base: &[&str],
    applied: &Applied,
) -> Result<Vec<Module>, Error> {
    let mut names: Vec<&str> = base.to_vec();
    names.extend(applied.modules.iter().map(String::as_str));
    for optional in &applied.optional_modules {
        match tree.resolve(&[optional.as_str()]) {
            Ok(_) => names.push(optional),
            // What `try-` promises: a module the tree does not have is
            // skipped. A broken tree (a parse error, a cycle) is still an
            // error, as for any other module.
            Err(Error::MissingModules { .. }) => {}
            Err(other) => return Err(other),
        }
    }
    tree.resolve(&names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &[&str] = &["virtio_pci", "virtiofs"];

    #[test]
    fn try_module_skips_only_modules_the_tree_lacks() {
        let dep = "kernel/virtio_pci.ko:\nkernel/virtiofs.ko:\n\
                   kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n";
        let tree = ModuleTree::parse(Path::new("/m"), dep, "").unwrap();
        let applied = |name: &str| Applied {
            optional_modules: vec![name.to_string()],
            ..Applied::default()
        };
        let names: Vec<String> = resolve_modules(&tree, BASE, &applied("absent"))
            .unwrap()
            .into_iter()
            .map(|module| module.name)
            .collect();
        assert_eq!(names, ["virtio_pci", "virtiofs"]);
        let err = resolve_modules(&tree, BASE, &applied("a")).unwrap_err();
        assert!(matches!(err, Error::DependencyCycle { .. }), "{err}");
    }
}
