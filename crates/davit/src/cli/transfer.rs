//! `davit get` and `davit put`: files and whole trees, with one progress bar for the whole
//! transfer (drawn only when stderr is a terminal and the transfer is large enough to matter).

use super::Out;
use anyhow::{bail, Context};
use davit_client::{Client, Progress, PropRequest, Url};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Transfers smaller than this finish before a bar would be worth drawing.
const BAR_MIN_BYTES: u64 = 4 * 1024 * 1024;

pub(crate) fn bar(total: u64, json: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    if !json && total >= BAR_MIN_BYTES && std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        ) {
            bar.set_style(style);
        }
    }
    bar
}

pub(crate) fn progress_of(bar: &ProgressBar) -> Progress {
    let b = bar.clone();
    Arc::new(move |n| b.inc(n))
}

/// The last path segment of a URL, decoded.
fn url_name(url: &Url) -> String {
    let name = url
        .path_segments()
        .and_then(|mut s| s.rfind(|s| !s.is_empty()))
        .unwrap_or("");
    percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .into_owned()
}

/// A name from the server used as a local file name: refuse anything that could leave the
/// destination directory.
pub(crate) fn safe_local(rel: &str) -> Option<PathBuf> {
    let mut p = PathBuf::new();
    for seg in rel.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." || seg.contains('\\') || seg.contains('\0') {
            return None;
        }
        p.push(seg);
    }
    Some(p)
}

pub async fn get(
    client: &Client,
    out: &Out,
    url: &Url,
    dest: Option<PathBuf>,
    resume: bool,
) -> anyhow::Result<bool> {
    let top = client.stat(url, &PropRequest::Common).await?;
    let name = url_name(url);
    if dest.as_deref() == Some(Path::new("-")) {
        if top.live.is_collection {
            super::usage!("{url} is a collection: it cannot go to standard output");
        }
        return to_stdout(client, url).await;
    }
    let dest = match dest {
        Some(d) if d.is_dir() && !top.live.is_collection => d.join(&name),
        Some(d) => d,
        None if name.is_empty() => {
            super::usage!("give a local destination for {url} (it has no name to use)")
        }
        None => PathBuf::from(&name),
    };
    if !top.live.is_collection {
        let bar = bar(top.live.size.unwrap_or(0), out.json);
        let (size, _) = client
            .get_to_file(url, &dest, resume, Some(progress_of(&bar)))
            .await?;
        bar.finish_and_clear();
        report(out, "get", url, &dest, size);
        return Ok(true);
    }
    // A collection: list it whole, make the directories, then fetch each file.
    let mut base = url.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let base_path = top.path.trim_end_matches('/').to_owned();
    let mut files = Vec::new();
    let mut ok = true;
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    super::walk(client, &base, &PropRequest::Common, |r| {
        if !(200..300).contains(&r.status) {
            ok = false;
            out.failure(&r.path, r.status, "");
            return Ok(());
        }
        let rel = r.path.strip_prefix(&base_path).unwrap_or(&r.path);
        let Some(local) = safe_local(rel) else {
            ok = false;
            eprintln!("davit: {}: refusing an unsafe name", r.path);
            return Ok(());
        };
        let local = dest.join(local);
        if r.live.is_collection {
            std::fs::create_dir_all(&local)
                .with_context(|| format!("creating {}", local.display()))?;
        } else {
            files.push((r.url.clone(), local, r.live.size.unwrap_or(0)));
        }
        Ok(())
    })
    .await?;
    let bar = bar(files.iter().map(|f| f.2).sum(), out.json);
    for (furl, local, _) in files {
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match client
            .get_to_file(&furl, &local, resume, Some(progress_of(&bar)))
            .await
        {
            Ok((size, _)) => report(out, "get", &furl, &local, size),
            // One file failing does not stop the others; it makes the run a partial failure.
            Err(e) => {
                ok = false;
                bar.suspend(|| eprintln!("davit: {}: {e}", furl.path()));
            }
        }
    }
    bar.finish_and_clear();
    Ok(ok)
}

/// `get URL -`: the body to standard output, as it comes.
async fn to_stdout(client: &Client, url: &Url) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut dl = client.get(url, 0, None).await?;
    let mut stdout = std::io::stdout().lock();
    let mut size = 0u64;
    while let Some(chunk) = dl.chunk().await? {
        stdout
            .write_all(&chunk)
            .context("writing to standard output")?;
        size += chunk.len() as u64;
    }
    stdout.flush().context("writing to standard output")?;
    if dl.total.is_some_and(|t| t != size) {
        bail!("{url}: the download ended after {size} bytes");
    }
    Ok(true)
}

fn report(out: &Out, op: &str, url: &Url, local: &Path, size: u64) {
    if out.json {
        out.json(&json!({"op": op, "url": url.as_str(), "file": local.display().to_string(), "size": size}));
    }
}

pub async fn put(
    client: &Client,
    out: &Out,
    src: &Path,
    url: &Url,
    resume: bool,
) -> anyhow::Result<bool> {
    let meta = std::fs::metadata(src).with_context(|| format!("reading {}", src.display()))?;
    let file_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_file() {
        let target = if url.path().ends_with('/') {
            join(url, &file_name, false)?
        } else {
            url.clone()
        };
        let bar = bar(meta.len(), out.json);
        let status = if resume {
            put_resumable(client, &bar, src, &meta, &target).await?
        } else {
            client
                .put_file(&target, src, Some(progress_of(&bar)))
                .await?
        };
        bar.finish_and_clear();
        if out.json {
            out.json(
                &json!({"op": "put", "url": target.as_str(), "status": status, "size": meta.len()}),
            );
        }
        return Ok(true);
    }
    if !meta.is_dir() {
        bail!("{} is neither a file nor a directory", src.display());
    }
    // A directory goes into a collection, never onto a file.
    if let Ok(target) = client.stat(url, &PropRequest::Common).await {
        if !target.live.is_collection {
            bail!(
                "{url} is a file: a directory ({}) can only go into a collection",
                src.display()
            );
        }
    }
    // A tree: walk it first (so the bar knows the total), then MKCOL parents before children.
    let mut root = url.clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    let mut dirs = vec![(src.to_path_buf(), root.clone())];
    let mut files = Vec::new();
    let mut i = 0;
    while i < dirs.len() {
        let (dir, durl) = dirs[i].clone();
        i += 1;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type()?;
            if ft.is_dir() {
                dirs.push((e.path(), join(&durl, &name, true)?));
            } else if ft.is_file() {
                files.push((e.path(), join(&durl, &name, false)?, e.metadata()?.len()));
            }
        }
    }
    let mut ok = true;
    for (_, durl) in &dirs {
        let status = match client.mkcol(durl).await {
            Ok(()) => 201,
            // 405: the collection exists already, which is fine for an upload into it.
            Err(e) if e.status() == Some(405) => 405,
            Err(e) => return Err(e.into()),
        };
        if out.json {
            out.json(&json!({"op": "mkdir", "url": durl.as_str(), "status": status}));
        }
    }
    let bar = bar(files.iter().map(|f| f.2).sum(), out.json);
    for (path, furl, len) in files {
        match client.put_file(&furl, &path, Some(progress_of(&bar))).await {
            Ok(status) => {
                if out.json {
                    out.json(
                        &json!({"op": "put", "url": furl.as_str(), "status": status, "size": len}),
                    );
                }
            }
            Err(e) => {
                ok = false;
                bar.suspend(|| eprintln!("davit: {}: {e}", path.display()));
            }
        }
    }
    bar.finish_and_clear();
    Ok(ok)
}

/// `base` (ending in '/') plus one encoded segment.
pub(crate) fn join(base: &Url, name: &str, collection: bool) -> anyhow::Result<Url> {
    let mut seg = davit_proto::href::encode_segment(name);
    if collection {
        seg.push('/');
    }
    // "./" keeps a name with a colon from being read as a URL scheme.
    base.join(&format!("./{seg}"))
        .with_context(|| format!("cannot make a URL for {name:?}"))
}

/// Where `put --continue` remembers its unfinished uploads: `$XDG_STATE_HOME/davit/uploads.json`
/// (default `~/.local/state/davit/`), upload URLs by target URL, size and modification time.
fn upload_state_file() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("davit").join("uploads.json"))
}

fn load_uploads(file: &Path) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the state whole to a temporary file renamed over the old one, so a crash leaves
/// the old state or the new, never half of one.
fn save_uploads(
    file: &Path,
    map: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Per process: two runs saving at once must not write into one temporary file.
    let tmp = file.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(map)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

/// Records (or with `None` forgets) the upload of `key` in the state file, read again just
/// before so that other `put --continue` runs' entries written meanwhile stay.
fn remember(state: Option<&Path>, key: &str, upload: Option<&Url>) -> anyhow::Result<()> {
    let Some(file) = state else {
        return Ok(());
    };
    let mut map = load_uploads(file);
    match upload {
        Some(u) => map.insert(key.to_owned(), serde_json::Value::String(u.to_string())),
        None => map.remove(key),
    };
    save_uploads(file, &map)
}

/// `put --continue` of one file: resumes the upload this command started before for the
/// same file (same target, size and modification time) from the server's offset, or starts
/// one; a server without resumable uploads gets a plain PUT.
async fn put_resumable(
    client: &Client,
    bar: &ProgressBar,
    src: &Path,
    meta: &std::fs::Metadata,
    target: &Url,
) -> anyhow::Result<u16> {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!("{target} {} {mtime}", meta.len());
    let state = upload_state_file();
    let mut known = state
        .as_deref()
        .map(load_uploads)
        .and_then(|map| map.get(&key)?.as_str().and_then(|u| Url::parse(u).ok()));
    let mut offset = 0;
    if let Some(upload) = &known {
        match client.upload_state(upload).await? {
            Some(s) if s.complete => {
                // An earlier run sent everything and the server took it; only its answer
                // was lost.
                bar.suspend(|| eprintln!("davit: {} was already uploaded whole", target.path()));
                remember(state.as_deref(), &key, None)?;
                return Ok(200);
            }
            Some(s) => offset = s.offset,
            None => known = None,
        }
    }
    let upload = match known {
        Some(u) => {
            bar.suspend(|| eprintln!("davit: resuming {} at byte {offset}", target.path()));
            u
        }
        None => match client.upload_start(target, meta.len()).await? {
            Some(u) => {
                remember(state.as_deref(), &key, Some(&u))?;
                u
            }
            None => {
                bar.suspend(|| {
                    eprintln!(
                        "davit: {} does not offer resumable uploads; sending the whole file",
                        target.host_str().unwrap_or("the server")
                    )
                });
                return Ok(client.put_file(target, src, Some(progress_of(bar))).await?);
            }
        },
    };
    bar.set_position(offset);
    // 409: the server holds other bytes than it said a moment ago; 503: it is still busy
    // with an earlier request to this upload. Ask again where it stands, a few times.
    let mut attempts = 0;
    let stored = loop {
        match client
            .upload_finish(&upload, target, src, offset, Some(progress_of(bar)))
            .await
        {
            Err(e) if matches!(e.status(), Some(409 | 503)) && attempts < 5 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempts)).await;
                let now = client
                    .upload_state(&upload)
                    .await?
                    .with_context(|| format!("{}: the upload is gone", target.path()))?;
                if now.complete {
                    remember(state.as_deref(), &key, None)?;
                    return Ok(200);
                }
                offset = now.offset;
                bar.set_position(offset);
            }
            other => break other?,
        }
    };
    remember(state.as_deref(), &key, None)?;
    Ok(stored.status)
}
