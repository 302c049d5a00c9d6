//! Resolving a path beneath the root in one system call.
//!
//! `canonicalize` costs a `readlink` per component of the full path (the root's own components
//! included) on every request. On Linux, `openat2` relative to a descriptor of the root with
//! `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH` opens the resource in one call and cannot leave the
//! root. A path with a symlink in it fails with `ELOOP`; the caller then takes the slow path,
//! which follows symlinks that stay inside the root. Elsewhere (or on kernels without
//! `openat2`) every path takes the slow path.

use std::fs::File;
use std::io;
use std::path::Path;

/// What the descriptor is for.
#[derive(Clone, Copy)]
pub(super) enum Purpose {
    /// Only to learn that the path resolves, and its metadata (`O_PATH`).
    Locate,
    /// To read the file.
    Read,
    /// To create, link and rename entries in it: a directory (`ENOTDIR` otherwise).
    Directory,
}

#[cfg(target_os = "linux")]
pub(super) use linux::Beneath;

#[cfg(target_os = "linux")]
mod linux {
    use super::{io, File, Path, Purpose};
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug)]
    pub(in crate::storage) struct Beneath {
        root: OwnedFd,
        /// Cleared when the kernel (or a seccomp policy) refuses `openat2` itself.
        available: AtomicBool,
    }

    impl Beneath {
        pub(in crate::storage) fn new(root: &Path) -> io::Result<Beneath> {
            let root = rustix::fs::open(
                root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(Beneath {
                root,
                available: AtomicBool::new(true),
            })
        }

        /// `Some` with the outcome when the path resolved without meeting a symlink (or
        /// failed for a reason a symlink cannot explain); `None` when the slow path must
        /// decide. `relative` is `.` or `a/b` built from validated segments.
        pub(in crate::storage) fn open(
            &self,
            relative: &str,
            purpose: Purpose,
        ) -> Option<io::Result<File>> {
            if !self.available.load(Ordering::Relaxed) {
                return None;
            }
            // openat2 refuses flags that O_PATH ignores, so O_NOCTTY goes with reads only.
            // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, with the
            // worker thread (it changes nothing for regular files and directories).
            let flags = match purpose {
                Purpose::Locate => OFlags::PATH | OFlags::CLOEXEC,
                Purpose::Directory => OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Purpose::Read => {
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK
                }
            };
            let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
            match rustix::fs::openat2(&self.root, relative, flags, Mode::empty(), resolve) {
                Ok(fd) => Some(Ok(File::from(fd))),
                Err(Errno::LOOP | Errno::XDEV | Errno::AGAIN | Errno::INVAL) => None,
                Err(Errno::NOSYS | Errno::PERM) => {
                    self.available.store(false, Ordering::Relaxed);
                    None
                }
                Err(e) => Some(Err(e.into())),
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub(super) struct Beneath;

#[cfg(not(target_os = "linux"))]
impl Beneath {
    pub(super) fn new(_root: &Path) -> io::Result<Beneath> {
        Ok(Beneath)
    }

    pub(super) fn open(&self, _relative: &str, _purpose: Purpose) -> Option<io::Result<File>> {
        None
    }
}
