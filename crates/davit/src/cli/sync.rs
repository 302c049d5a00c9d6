//! `davit sync`: one-way mirror of a tree between a local directory and a collection, in
//! either direction, transferring only what changed.
//!
//! A run lists both sides (the server with one Depth-infinity PROPFIND, or Depth-1 walks where
//! that is refused), plans, then acts: collections first, files in parallel, deletions last.
//! What counts as changed:
//! - downloading: a local file is current when its size and modification time (set to the
//!   server's `Last-Modified` after each download) match, and the validator recorded on it at
//!   download (`user.davit.validator`, see `davit_client::partial`) is the server's ETag now;
//! - uploading: a remote file is current when the local file still has the size and
//!   modification time recorded at its last upload and the server's ETag is the one that upload
//!   got (`user.davit.uploaded`); without a record, when sizes match and the server's copy is
//!   not older than the local file.
//!
//! Downloading from a server that offers RFC 6578 sync-collection, the listing is a
//! sync-collection REPORT instead: the first run lists every member and keeps the server's
//! answer with its token in `.davit-sync-state.json` in the local directory; later runs ask only
//! for what changed since that token. A refused token, a member the server will not report, or
//! a server without the report falls back to the full listing.
//!
//! Safety: nothing is deleted under a source collection that could not be read completely
//! (rclone's rule); a download goes to `.NAME.davit-part` beside its target and is renamed into
//! place, so an interrupted run leaves the old file and a partial one that the next run resumes
//! (safely: `If-Range` with the recorded validator); an upload whose local file changed while
//! it was sent is reported as failed and sent again by the next run.

use super::{walk, Out};
use anyhow::Context;
use davit_client::{Client, PropRequest, Resource, Url};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One side's view of a member: relative path (no leading or trailing slash) → what is there.
type Tree = BTreeMap<String, Node>;

#[derive(Clone, Debug)]
struct Node {
    dir: bool,
    size: u64,
    modified: Option<SystemTime>,
    /// The server's ETag (remote side only).
    etag: Option<String>,
}

/// A side that could not be read completely: the relative paths of the collections (or
/// files) that failed; nothing under them is deleted on the other side.
type Unreadable = Vec<String>;

/// What to do, in the order it is done.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    /// Remove something in the way of a collection or file of another kind (`--delete`).
    Replace(String),
    Mkdir(String),
    Copy {
        rel: String,
        size: u64,
    },
    Delete(String),
}

/// Which way a sync goes.
pub enum Direction {
    /// Local directory → collection.
    Up,
    /// Collection → local directory.
    Down,
}

/// The options of `davit sync`.
pub struct Options {
    pub delete: bool,
    pub dry_run: bool,
    pub jobs: usize,
}

/// Runs one sync; `Ok(false)` when some resources failed.
pub async fn sync(
    client: &Client,
    out: &Out,
    direction: Direction,
    local: &Path,
    url: &Url,
    opts: &Options,
) -> anyhow::Result<bool> {
    let mut root = url.clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    // Downloading, sync-collection where the server offers it (the state lives in the local
    // directory); else, and always for uploads, a full listing.
    let synced = match direction {
        Direction::Down => remote_by_sync(client, &root, local).await,
        Direction::Up => None,
    };
    let (remote, remote_bad, remote_exists) = match &synced {
        Some(state) => (state.tree(), Unreadable::new(), true),
        None => remote_tree(client, &root).await?,
    };
    let (local_tree, local_bad) = match direction {
        Direction::Up => {
            let meta =
                std::fs::metadata(local).with_context(|| format!("reading {}", local.display()))?;
            if !meta.is_dir() {
                super::usage!("{} is not a directory", local.display());
            }
            local_tree(local)
        }
        Direction::Down => {
            if !remote_exists {
                anyhow::bail!("{root}: no such collection");
            }
            if !opts.dry_run {
                std::fs::create_dir_all(local)
                    .with_context(|| format!("creating {}", local.display()))?;
            }
            local_tree(local)
        }
    };
    let (src, src_bad, dst) = match direction {
        Direction::Up => (&local_tree, &local_bad, &remote),
        Direction::Down => (&remote, &remote_bad, &local_tree),
    };
    let plan = plan(
        src,
        src_bad,
        dst,
        opts.delete,
        |rel, s, d| match direction {
            Direction::Up => upload_current(&local.join(rel), s, d),
            Direction::Down => download_current(&local.join(rel), s, d),
        },
    );
    let mut ok = src_bad.is_empty();
    for bad in src_bad {
        eprintln!("davit: {bad}: could not be read; nothing under it is deleted");
    }
    // Kinds in the way without --delete cannot be fixed.
    for (rel, s) in src {
        if let Some(d) = dst.get(rel) {
            if d.dir != s.dir && !opts.delete {
                ok = false;
                eprintln!(
                    "davit: {rel}: a {} on the destination, a {} on the source (--delete replaces it)",
                    kind(d.dir),
                    kind(s.dir)
                );
            }
        }
    }
    if opts.dry_run {
        for a in &plan {
            say(out, &direction, a, true);
        }
        return Ok(ok);
    }
    if let Some(state) = &synced {
        // The server's side as of its token: true whatever happens to the transfers below.
        state.save(local);
    }
    if matches!(direction, Direction::Up) && !remote_exists {
        super::mkdir_p(client, &root).await?;
    }
    let ctx = Ctx {
        client,
        root: &root,
        local,
    };
    // Things in the way, then collections, parents first (the plan is sorted).
    for a in &plan {
        let done = match a {
            Action::Replace(rel) => ctx.remove(&direction, rel, dst).await,
            Action::Mkdir(rel) => ctx.mkdir(&direction, rel).await,
            _ => continue,
        };
        match done {
            Ok(()) => say(out, &direction, a, false),
            Err(e) => {
                ok = false;
                eprintln!("davit: {}: {e:#}", rel_of(a));
            }
        }
    }
    let copies: Vec<(String, u64)> = plan
        .iter()
        .filter_map(|a| match a {
            Action::Copy { rel, size } => Some((rel.clone(), *size)),
            _ => None,
        })
        .collect();
    let bar = super::transfer::bar(copies.iter().map(|c| c.1).sum(), out.json);
    let progress = super::transfer::progress_of(&bar);
    let mut running = futures_util::stream::iter(copies.into_iter().map(|(rel, size)| {
        let (ctx, direction, progress, src) = (&ctx, &direction, progress.clone(), src);
        async move {
            let r = match direction {
                Direction::Up => ctx.upload(&rel, progress).await,
                Direction::Down => ctx.download(&rel, src.get(&rel), progress).await,
            };
            (rel, size, r)
        }
    }))
    .buffer_unordered(opts.jobs.max(1));
    while let Some((rel, size, r)) = running.next().await {
        match r {
            Ok(()) => bar.suspend(|| say(out, &direction, &Action::Copy { rel, size }, false)),
            Err(e) => {
                ok = false;
                bar.suspend(|| eprintln!("davit: {rel}: {e:#}"));
            }
        }
    }
    drop(running);
    bar.finish_and_clear();
    for a in &plan {
        if let Action::Delete(rel) = a {
            match ctx.remove(&direction, rel, dst).await {
                Ok(()) => say(out, &direction, a, false),
                Err(e) => {
                    ok = false;
                    eprintln!("davit: {rel}: {e:#}");
                }
            }
        }
    }
    Ok(ok)
}

fn kind(dir: bool) -> &'static str {
    if dir {
        "directory"
    } else {
        "file"
    }
}

fn rel_of(a: &Action) -> &str {
    match a {
        Action::Replace(r) | Action::Mkdir(r) | Action::Delete(r) => r,
        Action::Copy { rel, .. } => rel,
    }
}

/// One line per change: `mkdir a/`, `put a/b.txt`, `get a/b.txt`, `delete c.txt`,
/// `replace d` (with `(dry run)` when nothing was done).
fn say(out: &Out, direction: &Direction, a: &Action, dry_run: bool) {
    let (op, rel, dir) = match a {
        Action::Replace(r) => ("replace", r.as_str(), false),
        Action::Mkdir(r) => ("mkdir", r.as_str(), true),
        Action::Copy { rel, .. } => (
            match direction {
                Direction::Up => "put",
                Direction::Down => "get",
            },
            rel.as_str(),
            false,
        ),
        Action::Delete(r) => ("delete", r.as_str(), false),
    };
    if out.json {
        let mut v = json!({"op": op, "path": rel, "dry_run": dry_run});
        if let Action::Copy { size, .. } = a {
            v["size"] = json!(size);
        }
        out.json(&v);
    } else {
        let slash = if dir { "/" } else { "" };
        let note = if dry_run { " (dry run)" } else { "" };
        out.line(&format!("{op} {rel}{slash}{note}"));
    }
}

/// Decides what to do to make `dst` mirror `src`. `current(rel, src, dst)` says whether a
/// file on both sides needs no transfer.
fn plan(
    src: &Tree,
    src_bad: &Unreadable,
    dst: &Tree,
    delete: bool,
    current: impl Fn(&str, &Node, &Node) -> bool,
) -> Vec<Action> {
    let mut replaces = Vec::new();
    let mut mkdirs = Vec::new();
    let mut copies = Vec::new();
    for (rel, s) in src {
        match dst.get(rel) {
            Some(d) if d.dir != s.dir => {
                if !delete {
                    continue;
                }
                replaces.push(Action::Replace(rel.clone()));
                if s.dir {
                    mkdirs.push(Action::Mkdir(rel.clone()));
                } else {
                    copies.push(Action::Copy {
                        rel: rel.clone(),
                        size: s.size,
                    });
                }
            }
            Some(_) if s.dir => {}
            Some(d) if current(rel, s, d) => {}
            _ if s.dir => mkdirs.push(Action::Mkdir(rel.clone())),
            _ => copies.push(Action::Copy {
                rel: rel.clone(),
                size: s.size,
            }),
        }
    }
    let mut deletes = Vec::new();
    if delete {
        let under = |rel: &str, top: &str| {
            top.is_empty() || rel == top || rel.starts_with(&format!("{top}/"))
        };
        let mut last_deleted: Option<String> = None;
        for rel in dst.keys() {
            if src.contains_key(rel) {
                continue;
            }
            // Only the topmost of a deleted tree; never under what could not be read.
            if last_deleted.as_deref().is_some_and(|top| under(rel, top)) {
                continue;
            }
            if src_bad.iter().any(|bad| under(rel, bad)) {
                continue;
            }
            last_deleted = Some(rel.clone());
            deletes.push(Action::Delete(rel.clone()));
        }
    }
    replaces
        .into_iter()
        .chain(mkdirs)
        .chain(copies)
        .chain(deletes)
        .collect()
}

/// Whether the local file at `path` holds the remote file `r` as downloaded before.
fn download_current(path: &Path, r: &Node, l: &Node) -> bool {
    if r.size != l.size || secs(r.modified) != secs(l.modified) || r.modified.is_none() {
        return false;
    }
    match davit_client::partial::validator(path) {
        // The download recorded the strong ETag, or the Last-Modified where the server gave
        // a weak one (Apache, in the second after a change): either still naming the server's
        // version means it is the one held.
        Some(recorded) => {
            let date = r.modified.map(davit_proto::date::http_date);
            match &r.etag {
                Some(etag) => {
                    opaque(etag) == opaque(&recorded) || date.as_deref() == Some(recorded.as_str())
                }
                // A listing without ETags (nginx): a recorded ETag cannot be checked against
                // it, so size and time decide; a recorded date still can.
                None => {
                    recorded.starts_with(['"', 'W']) || date.as_deref() == Some(recorded.as_str())
                }
            }
        }
        // No record (another program made it, or no extended attributes): size and time.
        None => true,
    }
}

/// Whether the remote file `r` holds what the local file `l` at `path` holds.
fn upload_current(path: &Path, l: &Node, r: &Node) -> bool {
    if let Some(note) = davit_client::partial::uploaded(path) {
        return note == upload_note(r.etag.as_deref(), l);
    }
    // (Tags are compared by their opaque part: Apache's tag of a file changed in the last
    // second is weak, then the same tag strong.)
    l.size == r.size && secs(r.modified) >= secs(l.modified)
}

/// What is recorded on a local file after an upload: the server's ETag and the file's size
/// and modification time when it was sent.
fn upload_note(etag: Option<&str>, l: &Node) -> String {
    format!(
        "{} {} {}",
        etag.map(opaque).unwrap_or("-"),
        l.size,
        l.modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    )
}

/// An entity tag without its weakness mark (RFC 9110 §8.8.3.2, weak comparison) and quotes
/// (WsgiDAV's `getetag` has none, its `ETag` header has them).
fn opaque(tag: &str) -> &str {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

fn secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// The remote tree below `root`, what could not be read, and whether `root` exists.
async fn remote_tree(client: &Client, root: &Url) -> anyhow::Result<(Tree, Unreadable, bool)> {
    let base = percent_encoding::percent_decode_str(root.path())
        .decode_utf8_lossy()
        .trim_end_matches('/')
        .to_owned();
    let mut tree = Tree::new();
    let mut bad = Unreadable::new();
    let listed = walk(client, root, &PropRequest::Common, |r: Resource| {
        let path = r.path.trim_end_matches('/');
        let rel = path
            .strip_prefix(&base)
            .unwrap_or(path)
            .trim_start_matches('/')
            .to_owned();
        if !(200..300).contains(&r.status) {
            bad.push(rel);
            return Ok(());
        }
        if rel.is_empty() {
            return Ok(());
        }
        if super::transfer::safe_local(&rel).is_none() {
            eprintln!("davit: {}: refusing an unsafe name", r.path);
            bad.push(rel);
            return Ok(());
        }
        tree.insert(
            rel,
            Node {
                dir: r.live.is_collection,
                size: r.live.size.unwrap_or(0),
                modified: r.live.modified,
                etag: r.live.etag.clone(),
            },
        );
        Ok(())
    })
    .await;
    match listed {
        Ok(()) => Ok((tree, bad, true)),
        Err(e)
            if e.downcast_ref::<davit_client::Error>()
                .and_then(|e| e.status())
                == Some(404) =>
        {
            Ok((Tree::new(), Unreadable::new(), false))
        }
        Err(e) => Err(e),
    }
}

/// Is `name` a download in progress, or the sync state (ours)?
fn is_part(name: &str) -> bool {
    name == STATE_FILE || (name.starts_with('.') && name.ends_with(".davit-part"))
}

/// Where a download keeps the server's side as of its last sync-collection token.
const STATE_FILE: &str = ".davit-sync-state.json";

/// The server's tree as a sync-collection REPORT last described it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SyncState {
    /// The collection it describes.
    url: String,
    /// The token of that description.
    token: String,
    /// Member → (collection, size, modified in seconds, ETag).
    members: BTreeMap<String, (bool, u64, Option<u64>, Option<String>)>,
}

impl SyncState {
    fn load(local: &Path, url: &Url) -> Option<SyncState> {
        let text = std::fs::read(local.join(STATE_FILE)).ok()?;
        let state: SyncState = serde_json::from_slice(&text).ok()?;
        (state.url == url.as_str()).then_some(state)
    }

    fn save(&self, local: &Path) {
        let Ok(text) = serde_json::to_vec(self) else {
            return;
        };
        let tmp = local.join(format!("{STATE_FILE}.tmp"));
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, local.join(STATE_FILE));
        }
    }

    fn tree(&self) -> Tree {
        self.members
            .iter()
            .map(|(rel, (dir, size, modified, etag))| {
                (
                    rel.clone(),
                    Node {
                        dir: *dir,
                        size: *size,
                        modified: modified.map(|s| UNIX_EPOCH + std::time::Duration::from_secs(s)),
                        etag: etag.clone(),
                    },
                )
            })
            .collect()
    }
}

/// The server's tree from sync-collection: the changes since the saved token applied to the
/// saved members, or every member when there is no usable token. `None` when the server does
/// not offer the report, refuses a member, or anything else goes wrong: the caller lists the
/// tree instead.
async fn remote_by_sync(client: &Client, root: &Url, local: &Path) -> Option<SyncState> {
    use davit_client::{SyncChange, SyncLevel};
    let saved = SyncState::load(local, root);
    let result = match &saved {
        Some(s) => {
            match client
                .sync_collection_all(
                    root,
                    Some(&s.token),
                    SyncLevel::Infinite,
                    &PropRequest::Common,
                    None,
                )
                .await
            {
                Err(e) if e.is_invalid_sync_token() => None,
                other => Some(other),
            }
        }
        None => None,
    };
    let (mut members, result) = match result {
        Some(r) => (saved.map(|s| s.members).unwrap_or_default(), r),
        None => (
            BTreeMap::new(),
            client
                .sync_collection_all(root, None, SyncLevel::Infinite, &PropRequest::Common, None)
                .await,
        ),
    };
    let result = result.ok()?;
    let base = percent_encoding::percent_decode_str(root.path())
        .decode_utf8_lossy()
        .trim_end_matches('/')
        .to_owned();
    let rel_of = |path: &str| {
        let path = path.trim_end_matches('/');
        path.strip_prefix(&base)
            .unwrap_or(path)
            .trim_start_matches('/')
            .to_owned()
    };
    for change in result.changes {
        match change {
            SyncChange::Refused { .. } => return None,
            SyncChange::Changed(r) => {
                let rel = rel_of(&r.path);
                if rel.is_empty() || !(200..300).contains(&r.status) {
                    continue;
                }
                super::transfer::safe_local(&rel)?;
                let modified = r
                    .live
                    .modified
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                members.insert(
                    rel,
                    (
                        r.live.is_collection,
                        r.live.size.unwrap_or(0),
                        modified,
                        r.live.etag.clone(),
                    ),
                );
            }
            SyncChange::Removed { path, .. } => {
                let rel = rel_of(&path);
                let below = format!("{rel}/");
                members.retain(|k, _| k != &rel && !k.starts_with(&below));
            }
        }
    }
    Some(SyncState {
        url: root.to_string(),
        token: result.token,
        members,
    })
}

/// The local tree below `root` (symlinks and special files are left out).
fn local_tree(root: &Path) -> (Tree, Unreadable) {
    let mut tree = Tree::new();
    let mut bad = Unreadable::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                if dir.exists() {
                    eprintln!("davit: {}: {e}", dir.display());
                    bad.push(rel);
                }
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                bad.push(rel.clone());
                continue;
            };
            let Ok(name) = entry.file_name().into_string() else {
                eprintln!("davit: {}: not UTF-8, left out", entry.path().display());
                continue;
            };
            if is_part(&name) {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(md) = entry.metadata() else {
                bad.push(child);
                continue;
            };
            if md.is_dir() {
                pending.push((entry.path(), child.clone()));
            } else if !md.is_file() {
                continue;
            }
            tree.insert(
                child,
                Node {
                    dir: md.is_dir(),
                    size: if md.is_dir() { 0 } else { md.len() },
                    modified: md.modified().ok(),
                    etag: None,
                },
            );
        }
    }
    (tree, bad)
}

/// What the actions need.
struct Ctx<'a> {
    client: &'a Client,
    root: &'a Url,
    local: &'a Path,
}

impl Ctx<'_> {
    fn url(&self, rel: &str, dir: bool) -> anyhow::Result<Url> {
        let mut url = self.root.clone();
        for (i, seg) in rel.split('/').enumerate() {
            let last = i == rel.split('/').count() - 1;
            url = super::transfer::join(&url, seg, !last || dir)?;
        }
        Ok(url)
    }

    fn path(&self, rel: &str) -> PathBuf {
        let mut p = self.local.to_path_buf();
        p.extend(rel.split('/'));
        p
    }

    async fn mkdir(&self, direction: &Direction, rel: &str) -> anyhow::Result<()> {
        match direction {
            Direction::Up => match self.client.mkcol(&self.url(rel, true)?).await {
                Err(e) if e.status() == Some(405) => Ok(()),
                other => Ok(other?),
            },
            Direction::Down => Ok(std::fs::create_dir_all(self.path(rel))?),
        }
    }

    async fn remove(&self, direction: &Direction, rel: &str, dst: &Tree) -> anyhow::Result<()> {
        let dir = dst.get(rel).is_some_and(|n| n.dir);
        match direction {
            Direction::Up => {
                let o = self.client.delete(&self.url(rel, dir)?).await?;
                if !o.is_complete() {
                    anyhow::bail!("some members could not be deleted");
                }
                Ok(())
            }
            Direction::Down => {
                let p = self.path(rel);
                if dir {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
                Ok(())
            }
        }
    }

    async fn upload(&self, rel: &str, progress: davit_client::Progress) -> anyhow::Result<()> {
        let path = self.path(rel);
        let before = local_node(&path)?;
        let stored = self
            .client
            .upload_file(&self.url(rel, false)?, &path, Some(progress))
            .await?;
        let after = local_node(&path)?;
        if after.size != before.size || after.modified != before.modified {
            anyhow::bail!("changed while it was uploaded; the next sync sends it again");
        }
        let etag = match stored.etag {
            Some(e) => Some(e),
            None => self
                .client
                .stat(&self.url(rel, false)?, &PropRequest::Common)
                .await
                .ok()
                .and_then(|r| r.live.etag),
        };
        davit_client::partial::record_upload(&path, &upload_note(etag.as_deref(), &before));
        Ok(())
    }

    async fn download(
        &self,
        rel: &str,
        remote: Option<&Node>,
        progress: davit_client::Progress,
    ) -> anyhow::Result<()> {
        let target = self.path(rel);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let part = target.with_file_name(format!(".{name}.davit-part"));
        // A partial file from an interrupted run is resumed if it is still of this version.
        self.client
            .get_to_file(&self.url(rel, false)?, &part, true, Some(progress))
            .await?;
        if let Some(m) = remote.and_then(|r| r.modified) {
            if let Ok(f) = std::fs::File::options().write(true).open(&part) {
                let _ = f.set_modified(m);
            }
        }
        std::fs::rename(&part, &target)
            .with_context(|| format!("renaming into {}", target.display()))?;
        Ok(())
    }
}

fn local_node(path: &Path) -> anyhow::Result<Node> {
    let md = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Node {
        dir: md.is_dir(),
        size: md.len(),
        modified: md.modified().ok(),
        etag: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file(size: u64, secs: u64) -> Node {
        Node {
            dir: false,
            size,
            modified: Some(UNIX_EPOCH + Duration::from_secs(secs)),
            etag: None,
        }
    }

    fn dir() -> Node {
        Node {
            dir: true,
            size: 0,
            modified: None,
            etag: None,
        }
    }

    fn tree(items: &[(&str, Node)]) -> Tree {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn plans_parents_first_and_deletes_only_what_was_read() {
        let src = tree(&[
            ("a", dir()),
            ("a/b", dir()),
            ("a/b/f", file(1, 1)),
            ("same", file(2, 2)),
            ("bad", dir()),
        ]);
        let dst = tree(&[
            ("same", file(2, 2)),
            ("gone", dir()),
            ("gone/x", file(1, 1)),
            ("bad", dir()),
            ("bad/kept", file(1, 1)),
        ]);
        let current = |_: &str, s: &Node, d: &Node| s.size == d.size;
        let bad = vec!["bad".to_owned()];
        assert_eq!(
            plan(&src, &bad, &dst, true, current),
            vec![
                Action::Mkdir("a".into()),
                Action::Mkdir("a/b".into()),
                Action::Copy {
                    rel: "a/b/f".into(),
                    size: 1
                },
                Action::Delete("gone".into()),
            ]
        );
        // Without --delete nothing goes.
        assert!(!plan(&src, &bad, &dst, false, current)
            .iter()
            .any(|a| matches!(a, Action::Delete(_))));
        // The root unreadable: nothing at all is deleted.
        assert!(!plan(&src, &vec![String::new()], &dst, true, current)
            .iter()
            .any(|a| matches!(a, Action::Delete(_))));
    }

    #[test]
    fn a_kind_change_is_replaced_only_with_delete() {
        let src = tree(&[("x", dir())]);
        let dst = tree(&[("x", file(1, 1))]);
        let current = |_: &str, _: &Node, _: &Node| true;
        assert_eq!(plan(&src, &Vec::new(), &dst, false, current), vec![]);
        assert_eq!(
            plan(&src, &Vec::new(), &dst, true, current),
            vec![Action::Replace("x".into()), Action::Mkdir("x".into())]
        );
    }
}
