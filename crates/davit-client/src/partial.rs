//! What a download remembers of the version it holds: the validator (strong ETag or
//! Last-Modified) of the response it came from, kept in an extended attribute of the file
//! itself (`user.davit.validator`), so that it travels with the file and needs no other file.
//! A resume sends it as `If-Range`. `davit sync` keeps what it uploaded from a file the same
//! way (`user.davit.uploaded`). Where extended attributes are not available, nothing is
//! recorded and a resume downloads the whole resource again: safe, only slower.

use std::path::Path;

#[cfg(target_os = "linux")]
const NAME: &str = "user.davit.validator";

/// Records `validator` on an open download (best effort).
pub fn record(file: &tokio::fs::File, validator: &str) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fsetxattr(
            file,
            NAME,
            validator.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, validator);
}

/// Removes the record (the version of what is being written is unknown).
pub fn forget(file: &tokio::fs::File) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fremovexattr(file, NAME);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// The validator recorded on a partial download, if any.
pub fn validator(path: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let mut buf = vec![0u8; 512];
        let n = rustix::fs::getxattr(path, NAME, &mut buf[..]).ok()?;
        buf.truncate(n);
        String::from_utf8(buf).ok().filter(|v| !v.is_empty())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

#[cfg(target_os = "linux")]
const UPLOADED: &str = "user.davit.uploaded";

/// Records on a local file what a sync uploaded from it (best effort): see [`uploaded`].
pub fn record_upload(path: &Path, note: &str) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::setxattr(
            path,
            UPLOADED,
            note.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (path, note);
}

/// What [`record_upload`] recorded on `path`, if anything.
pub fn uploaded(path: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let mut buf = vec![0u8; 1024];
        let n = rustix::fs::getxattr(path, UPLOADED, &mut buf[..]).ok()?;
        buf.truncate(n);
        String::from_utf8(buf).ok().filter(|v| !v.is_empty())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}
