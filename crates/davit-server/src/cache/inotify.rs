//! The filesystem's [`ChangeFeed`]: inotify watches on the directories cached resources live
//! in, read without blocking whenever the cache is asked.

use super::{ChangeFeed, Noticed};
use davit_proto::href::DavPath;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Watches on the directories of cached resources below one root.
#[derive(Debug)]
pub struct InotifyFeed {
    root: PathBuf,
    /// The root, to check that a path reaches its resource without a symlink.
    root_fd: OwnedFd,
    fd: OwnedFd,
    max_watches: usize,
    watches: Mutex<Watches>,
}

#[derive(Debug, Default)]
struct Watches {
    by_wd: HashMap<i32, DavPath>,
    by_path: HashMap<DavPath, i32>,
    /// Set by `simulate_overflow`: the next drain reports lost changes.
    overflowed: bool,
}

/// What a watched directory reports: changes of its members' content, metadata and names,
/// and of itself.
fn mask() -> WatchFlags {
    WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
        | WatchFlags::DONT_FOLLOW
        | WatchFlags::EXCL_UNLINK
}

impl InotifyFeed {
    /// A feed for resources below `root` (canonical), with at most `max_watches` watches.
    pub fn new(root: &Path, max_watches: usize) -> io::Result<InotifyFeed> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(InotifyFeed {
            root: root.to_owned(),
            root_fd,
            fd,
            max_watches,
            watches: Mutex::new(Watches::default()),
        })
    }

    fn relative(path: &DavPath) -> String {
        let r = path.segments().collect::<Vec<_>>().join("/");
        if r.is_empty() {
            ".".to_owned()
        } else {
            r
        }
    }

    /// Whether `path` names its resource with no symlink on the way, and is its only binding
    /// (a change through another name, or of what a symlink points to, would be reported
    /// elsewhere, or not at all).
    fn literal(&self, path: &DavPath) -> bool {
        let Ok(fd) = rustix::fs::openat2(
            &self.root_fd,
            Self::relative(path),
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
        ) else {
            return false;
        };
        rustix::fs::fstat(&fd).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
                || st.st_nlink == 1
        })
    }

    fn add(&self, w: &mut Watches, dir: &DavPath) -> bool {
        if w.by_path.contains_key(dir) {
            return true;
        }
        if w.by_path.len() >= self.max_watches {
            return false;
        }
        let full = self.root.join(Self::relative(dir));
        match inotify::add_watch(&self.fd, &full, mask()) {
            Ok(wd) => {
                // The same directory reached by two paths (a bind mount) would report under
                // one of them only: keep neither.
                if let Some(other) = w.by_wd.get(&wd) {
                    if other != dir {
                        return false;
                    }
                }
                w.by_wd.insert(wd, dir.clone());
                w.by_path.insert(dir.clone(), wd);
                true
            }
            Err(e) => {
                if e == Errno::NOSPC {
                    tracing::warn!(
                        "inotify watch limit reached (fs.inotify.max_user_watches): \
                         resources in further directories are not cached"
                    );
                }
                false
            }
        }
    }

    /// Stops watching `dir` and every directory below it (renamed or removed: their watches
    /// would report under the old paths).
    fn forget_tree(&self, w: &mut Watches, dir: &DavPath) {
        let below: Vec<DavPath> = w
            .by_path
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in below {
            if let Some(wd) = w.by_path.remove(&p) {
                w.by_wd.remove(&wd);
                let _ = inotify::remove_watch(&self.fd, wd);
            }
        }
    }

    fn forget_all(&self, w: &mut Watches) {
        for (wd, _) in w.by_wd.drain() {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
        w.by_path.clear();
    }
}

impl ChangeFeed for InotifyFeed {
    fn watch(&self, path: &DavPath, collection: bool) -> bool {
        if !self.literal(path) {
            return false;
        }
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parent) = path.parent() {
            if !self.add(&mut w, &parent) {
                return false;
            }
        }
        !collection || self.add(&mut w, path)
    }

    fn drain(&self, sink: &mut dyn FnMut(Noticed)) {
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        let mut lost = std::mem::take(&mut w.overflowed);
        loop {
            let event = match reader.next() {
                Ok(e) => e,
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify events failed");
                    lost = true;
                    break;
                }
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                lost = true;
                continue;
            }
            let Some(dir) = w.by_wd.get(&event.wd()).cloned() else {
                continue;
            };
            let name = event.file_name().map(|n| n.to_bytes());
            match name.filter(|n| !n.is_empty()) {
                Some(name) => {
                    sink(Noticed::Path(dir.clone()));
                    let member = std::str::from_utf8(name)
                        .ok()
                        .and_then(|n| dir.join(n).ok());
                    let Some(member) = member else {
                        continue;
                    };
                    let renamed = ReadFlags::MOVED_FROM
                        | ReadFlags::MOVED_TO
                        | ReadFlags::DELETE
                        | ReadFlags::CREATE;
                    if flags.contains(ReadFlags::ISDIR) && flags.intersects(renamed) {
                        self.forget_tree(&mut w, &member);
                        sink(Noticed::Tree(member));
                    } else {
                        sink(Noticed::Path(member));
                    }
                }
                None => {
                    let gone = ReadFlags::DELETE_SELF
                        | ReadFlags::MOVE_SELF
                        | ReadFlags::IGNORED
                        | ReadFlags::UNMOUNT;
                    if flags.intersects(gone) {
                        self.forget_tree(&mut w, &dir);
                        sink(Noticed::Tree(dir));
                    } else {
                        sink(Noticed::Path(dir));
                    }
                }
            }
        }
        if lost {
            // Renames may have been lost too: the watches' paths cannot be trusted either.
            self.forget_all(&mut w);
            sink(Noticed::Everything);
        }
    }

    fn simulate_overflow(&self) {
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        while reader.next().is_ok() {}
        w.overflowed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    fn drained(feed: &InotifyFeed) -> Vec<Noticed> {
        let mut v = Vec::new();
        feed.drain(&mut |n| v.push(n));
        v
    }

    #[test]
    fn changes_by_other_programs_are_noticed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f.txt"), b"one").unwrap();
        let feed = InotifyFeed::new(&root, 100).unwrap();
        assert!(feed.watch(&p("/d/f.txt"), false));
        assert!(feed.watch(&p("/d"), true));
        assert_eq!(drained(&feed), vec![]);

        std::fs::write(root.join("d/f.txt"), b"two").unwrap();
        let seen = drained(&feed);
        assert!(seen.contains(&Noticed::Path(p("/d/f.txt"))), "{seen:?}");

        std::fs::rename(root.join("d/f.txt"), root.join("d/g.txt")).unwrap();
        let seen = drained(&feed);
        assert!(seen.contains(&Noticed::Path(p("/d/f.txt"))), "{seen:?}");
        assert!(seen.contains(&Noticed::Path(p("/d/g.txt"))), "{seen:?}");

        std::fs::create_dir(root.join("d/sub")).unwrap();
        let seen = drained(&feed);
        assert!(seen.contains(&Noticed::Tree(p("/d/sub"))), "{seen:?}");
    }

    #[test]
    fn a_path_through_a_symlink_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), b"x").unwrap();
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        let feed = InotifyFeed::new(&root, 100).unwrap();
        assert!(!feed.watch(&p("/link/f"), false));
        assert!(!feed.watch(&p("/link"), true));
        assert!(feed.watch(&p("/real/f"), false));
    }

    #[test]
    fn the_watch_limit_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["a", "b", "c"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        let feed = InotifyFeed::new(&root, 2).unwrap();
        assert!(feed.watch(&p("/a"), true)); // "/" and "/a"
        assert!(!feed.watch(&p("/b"), true));
    }

    #[test]
    fn an_overflow_loses_the_queue_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), b"x").unwrap();
        let feed = InotifyFeed::new(&root, 100).unwrap();
        assert!(feed.watch(&p("/f"), false));
        std::fs::write(root.join("f"), b"y").unwrap();
        feed.simulate_overflow();
        assert_eq!(drained(&feed), vec![Noticed::Everything]);
        // The watches went with it: a fill must watch again.
        assert!(feed.watches.lock().unwrap().by_path.is_empty());
    }
}
