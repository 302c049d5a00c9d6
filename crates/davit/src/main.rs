//! The `davit` command: `davit serve [DIR]` runs the WebDAV server; the other subcommands
//! (`ls`, `get`, `put`, …, see `cli`) are the WebDAV client.

mod cli;
mod config;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{FileConfig, TlsFiles, DEFAULT_LISTEN};
use davit_server::Server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

// Listings allocate and free small strings by the thousand, across threads (the directory is
// read on one, the XML written on another); mimalloc handles that with far less overhead than
// glibc's malloc (measured: docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version and the commit it was built from (set by build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DAVIT_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "davit", version = VERSION, about = "A WebDAV server and client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a directory over WebDAV (class 1, 2 and 3).
    Serve(ServeArgs),
    /// Read a password from standard input and print its argon2 hash, for `[[auth.user]]`.
    HashPassword,
    /// Remove content objects no resource points at (the distributed backend: `[store]
    /// backend = "postgres"`); every instance also does this in the background.
    Gc {
        /// The configuration `davit serve --config` runs with.
        #[arg(long, short)]
        config: PathBuf,
        /// Leave unreferenced objects younger than this many seconds (an upload may be about
        /// to commit them).
        #[arg(long, default_value_t = 3600)]
        min_age_secs: u64,
    },
    /// Load a directory served by davit (its files, collections, dates and dead properties)
    /// into the distributed store of a configuration (`[store] backend = "postgres"`). Run it
    /// again to continue an interrupted import or to bring changed files up to date.
    Import {
        /// The directory `davit serve DIR` serves.
        dir: PathBuf,
        /// The configuration of the instances that will serve the store.
        #[arg(long, short)]
        config: PathBuf,
        /// Where `davit serve DIR` keeps its state (its dead properties)
        /// [default: DIR/.davit].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Check a configuration file: every error with its key (exit 1), else the effective
    /// settings (exit 0).
    CheckConfig {
        /// The TOML file `davit serve --config` would read.
        file: PathBuf,
    },
    /// Print a shell completion script: `davit completions bash > /etc/bash_completion.d/davit`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `davit man > davit.1; man ./davit.1`.
    Man {
        /// Instead, write a page for davit and one for each subcommand (`davit-serve.1`, ...)
        /// into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The directory to serve [default: the config's `root`, else the current directory].
    dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4918].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where davit keeps its own state (properties, temporary uploads)
    /// [default: DIR/.davit, hidden from clients].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. SIGHUP reloads both.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Worker threads, each with its own event loop and listener [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Serve /metrics, /healthz and /readyz on this address [default: the config's
    /// `[admin] listen`, else off].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// How log lines are written: `text`, or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Server-side commands fail with one line on stderr (`davit: what: why: cause`) and exit
/// status 1, whatever `RUST_BACKTRACE` says: a bad setting is not a crash.
fn main() {
    if let Err(e) = run() {
        eprintln!("davit: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        // The client prints its own errors and has its own exit statuses (see `cli`).
        Command::Client(cmd) => std::process::exit(i32::from(cli::run(cmd))),
        Command::HashPassword => hash_password(),
        Command::CheckConfig { file } => check_config(&file),
        Command::Import {
            dir,
            config,
            state_dir,
        } => import(&dir, &config, state_dir.as_deref()),
        Command::Gc {
            config,
            min_age_secs,
        } => gc(&config, std::time::Duration::from_secs(min_age_secs)),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "davit", &mut out);
            print_all(&out)
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir)
                .with_context(|| format!("writing manual pages to {}", dir.display()))
        }
        Command::Man { dir: None } => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
            print_all(&out)
        }
        Command::Serve(args) => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            // One buffer for every line: the access log's are written out in batches, the
            // others at once, in order (davit_server::logbuf).
            let buffer = davit_server::logbuf::LogBuffer::stderr(match args.log_format {
                LogFormat::Json => davit_server::logbuf::LineFormat::Json,
                LogFormat::Text => davit_server::logbuf::LineFormat::Text,
            });
            // On a terminal the access lines keep `tracing`'s colours, one by one.
            if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                buffer.install();
            }
            let logs = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(LogLines(buffer.clone()));
            match args.log_format {
                LogFormat::Json => logs
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .init(),
                LogFormat::Text => logs
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .init(),
            }
            let served = run_serve(args);
            buffer.flush();
            served
        }
    }
}

/// The `tracing` subscriber's writer: every line through the log buffer.
struct LogLines(davit_server::logbuf::LogBuffer);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogLines {
    type Writer = davit_server::logbuf::LogWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.writer()
    }
}

/// Writes generated text to standard output; a reader that stops early (`| head`) is fine.
fn print_all(text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// PostgreSQL and the object store of the distributed backend, each checked to answer.
async fn connect_distributed(
    pg: &davit_distributed::PgConfig,
    blobs: &davit_distributed::BlobConfig,
) -> anyhow::Result<(davit_distributed::Pg, davit_distributed::Blobs)> {
    let pg = davit_distributed::Pg::connect(pg)
        .await
        .context("store: connecting to PostgreSQL")?;
    let blobs = davit_distributed::Blobs::connect(blobs)
        .await
        .context("blobs: connecting to the object store")?
        .with_upload_log(pg.clone());
    Ok((pg, blobs))
}

/// `davit gc`: one sweep, and what it did.
fn gc(path: &Path, min_age: std::time::Duration) -> anyhow::Result<()> {
    let file = config::read(path)?;
    let (Some(config::StoreConfig::Postgres(pg)), Some(blobs)) = (&file.store, &file.blobs) else {
        anyhow::bail!("store: davit gc is for the postgres backend (with [blobs])");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = runtime.block_on(async {
        let (pg, blobs) = connect_distributed(pg, blobs).await?;
        let ns = davit_distributed::Namespace::new(pg);
        davit_distributed::sweep::sweep(&ns, &blobs, min_age)
            .await
            .context("sweeping")
    })?;
    println!(
        "removed {} unreferenced objects ({} bytes); {} objects looked at; {} unreferenced but younger than {} s kept; {} unfinished multipart uploads aborted",
        r.removed,
        r.removed_bytes,
        r.seen,
        r.young,
        min_age.as_secs(),
        r.aborted_uploads
    );
    Ok(())
}

/// `davit import DIR --config FILE`: progress on stderr (at most once a second), the totals
/// on stdout.
fn import(dir: &Path, path: &Path, state_dir: Option<&Path>) -> anyhow::Result<()> {
    let file = config::read(path)?;
    let (Some(config::StoreConfig::Postgres(pg)), Some(blobs)) = (&file.store, &file.blobs) else {
        anyhow::bail!("store: davit import loads into the postgres backend (with [blobs])");
    };
    let state = state_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| davit_server::config::default_state_dir(dir));
    let source = davit_server::storage::FsStorage::new(dir, &state)
        .with_context(|| format!("opening {}", dir.display()))?;
    let props = davit_server::props::SqlitePropStore::open(&state.join("props.sqlite3"))
        .with_context(|| format!("opening the dead properties in {}", state.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let done = runtime.block_on(async {
        let (pg, blobs) = connect_distributed(pg, blobs).await?;
        let mut last = std::time::Instant::now();
        davit_distributed::import::Importer::new(pg, blobs)
            .run(&source, &props, |p| {
                if last.elapsed() >= std::time::Duration::from_secs(1) {
                    last = std::time::Instant::now();
                    eprintln!("davit import: {}", import_summary(p));
                }
            })
            .await
            .context("importing")
    })?;
    println!(
        "imported {} in {:.1} s",
        import_summary(&done),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn import_summary(p: &davit_distributed::import::Progress) -> String {
    format!(
        "{} files ({:.1} MiB), {} collections, {} dead properties; {} resources already up to date",
        p.files,
        p.bytes as f64 / f64::from(1 << 20),
        p.collections,
        p.properties,
        p.unchanged
    )
}

/// `davit check-config FILE`.
fn check_config(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match config::parse(&text) {
        Ok(c) => print_all(config::effective(c)?.as_bytes()),
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            eprintln!(
                "{}: {} error{}",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            std::process::exit(1);
        }
    }
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let file: FileConfig = match &args.config {
        Some(path) => config::read(path)?,
        None => FileConfig::default(),
    };
    let root = args
        .dir
        .clone()
        .or(file.root.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let listen = match args.listen.or(file.listen) {
        Some(a) => a,
        None => DEFAULT_LISTEN.parse()?,
    };
    let admin_listen = args.admin_listen.or(file.admin.as_ref().map(|a| a.listen));
    if let Some(admin) = admin_listen {
        anyhow::ensure!(
            !config::same_port(admin, listen),
            "admin.listen: {admin} is the WebDAV port; the admin listener needs its own"
        );
    }
    let tls_files = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => file.tls.clone(),
    };
    let tls = match &tls_files {
        Some(f) => {
            Some(davit_server::tls::Tls::from_files(&f.cert, &f.key).context("loading TLS files")?)
        }
        None => None,
    };
    let auth = match &file.auth {
        Some(auth) => Some(davit_server::auth::Auth::new(auth)?),
        None => None,
    };
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ctx = Serving {
        args,
        listen,
        admin_listen,
        tls,
        tls_files,
        control,
    };
    match &file.store {
        None | Some(config::StoreConfig::Directory) => {
            let state_dir = ctx.args.state_dir.clone().or(file.state_dir.clone());
            let mut server = Server::open(&root, state_dir.as_deref(), file.dav.clone())
                .with_context(|| format!("opening {}", root.display()))?;
            if let Some(auth) = auth {
                server = server.with_auth(auth);
            }
            serve(server, &root.display().to_string(), ctx)
        }
        Some(config::StoreConfig::Postgres(pg)) => {
            let Some(blobs) = &file.blobs else {
                anyhow::bail!(
                    "store: the postgres backend needs a [blobs] table (the object store)"
                );
            };
            let (pg, blobs, changes) = ctx.control.block_on(async {
                let (pg, blobs) = connect_distributed(pg, blobs).await?;
                // The sync-collection history is in the database too, so every instance
                // issues and accepts the same tokens.
                let changes =
                    davit_distributed::PgChangeLog::open(pg.clone(), file.dav.sync_max_tombstones)
                        .await
                        .context("store: opening the change log")?;
                anyhow::Ok((pg, blobs, changes))
            })?;
            let what = format!("bucket {} (namespace in PostgreSQL)", file_bucket(&file));
            let interval = file.blobs.as_ref().map_or(0, |b| b.sweep_interval_secs);
            if interval > 0 {
                ctx.control.spawn(davit_distributed::sweep::sweep_every(
                    davit_distributed::Namespace::new(pg.clone()),
                    blobs.clone(),
                    std::time::Duration::from_secs(interval),
                ));
            }
            let mut server = davit_server::Dav::new(
                davit_distributed::PgStorage::new(
                    davit_distributed::Namespace::new(pg.clone()),
                    blobs,
                ),
                davit_distributed::PgPropStore::new(pg.clone()),
                davit_distributed::PgLockStore::new(pg),
                file.dav.clone(),
            )
            .with_change_log(std::sync::Arc::new(changes));
            // Unfinished resumable uploads stay on this instance's disk until complete.
            let state_dir = ctx
                .args
                .state_dir
                .clone()
                .or(file.state_dir.clone())
                .unwrap_or_else(|| davit_server::config::default_state_dir(&root));
            server = server.with_uploads(state_dir.join("uploads"));
            if let Some(auth) = auth {
                server = server.with_auth(auth);
            }
            serve(server, &what, ctx)
        }
    }
}

fn file_bucket(file: &FileConfig) -> String {
    file.blobs
        .as_ref()
        .map_or_else(String::new, |b| b.bucket.clone())
}

/// What `serve` needs besides the server.
struct Serving {
    args: ServeArgs,
    listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
    tls: Option<davit_server::tls::Tls>,
    tls_files: Option<TlsFiles>,
    control: tokio::runtime::Runtime,
}

/// Runs `server` until SIGINT or SIGTERM: the worker threads, the admin listener, reloads.
fn serve<S, P, L>(
    server: davit_server::Dav<S, P, L>,
    what: &str,
    ctx: Serving,
) -> anyhow::Result<()>
where
    S: davit_server::storage::Storage + Clone,
    P: davit_server::props::PropStore + Clone,
    L: davit_server::locks::LockStore + Clone,
{
    let Serving {
        args,
        listen,
        admin_listen,
        tls,
        tls_files,
        control,
    } = ctx;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    match davit_server::server::raise_open_file_limit() {
        Some(n) => tracing::debug!("open files allowed: {n}"),
        None => tracing::warn!("could not raise the limit of open files"),
    }
    // Interrupted batches and COPY/MOVE are settled once, before any accept loop starts.
    control
        .block_on(server.recover())
        .context("recovering interrupted operations")?;
    let (listeners, addr) = bind_listeners(listen, workers)?;
    let admin = match admin_listen {
        Some(a) => {
            let l = control
                .block_on(tokio::net::TcpListener::bind(a))
                .with_context(|| format!("admin.listen: listening on {a}"))?;
            tracing::info!(
                "admin listener (metrics, health) on http://{}/",
                l.local_addr()?
            );
            Some(l)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "serving {what} on {scheme}://{addr}/ ({workers} worker thread{})",
        if workers == 1 { "" } else { "s" }
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, (runtime, listener)) in listeners.into_iter().enumerate() {
        let server = server.clone();
        let tls = tls.clone();
        let mut stopped = stopped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("davit-worker-{i}"))
            .spawn(move || {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                runtime.block_on(davit_server::serve_worker(listener, server, shutdown, tls))
            })
            .context("starting a worker thread")?;
        threads.push(thread);
    }
    control.block_on(async {
        // Expired resumable uploads go on the control thread, once for all workers.
        if let Some(sweeper) = server.upload_sweeper() {
            tokio::spawn(sweeper);
        }
        tokio::spawn(reload_on_sighup(Reload {
            config: args.config.clone(),
            auth: server.auth_handle(),
            tls: tls.clone(),
            tls_files: tls_files.clone(),
        }));
        if let Some(listener) = admin {
            let build = davit_server::metrics::BuildInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                commit: env!("DAVIT_COMMIT").into(),
            };
            let mut stopped = stopped.clone();
            tokio::spawn(davit_server::admin::serve_admin(
                listener,
                server.clone(),
                build,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ));
        }
        shutdown_signal().await;
    });
    let _ = stop.send(true);
    tracing::info!("shutting down: waiting for open requests to finish");
    for thread in threads {
        match thread.join() {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// One single-threaded runtime per worker, each with its own listener on `addr`. With more
/// than one, the listeners share the port through `SO_REUSEPORT` and the kernel spreads new
/// connections over them: a request is served start to finish on one thread, with none of
/// the cross-thread wake-ups of a work-stealing scheduler (measured: docs/benchmarks.md).
#[allow(clippy::type_complexity)]
fn bind_listeners(
    addr: SocketAddr,
    workers: usize,
) -> anyhow::Result<(
    Vec<(tokio::runtime::Runtime, tokio::net::TcpListener)>,
    SocketAddr,
)> {
    // A plain bind first: a port already in use is an error, as it would be without
    // SO_REUSEPORT (which would otherwise let two servers share it silently), and port 0
    // becomes the real port every worker then binds.
    let addr = std::net::TcpListener::bind(addr)
        .and_then(|probe| probe.local_addr())
        .with_context(|| format!("listening on {addr}"))?;
    let workers = if cfg!(unix) { workers } else { 1 };
    let mut out = Vec::with_capacity(workers);
    for _ in 0..workers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The listener registers with the runtime it is created in.
        let listener = runtime
            .block_on(async {
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                #[cfg(unix)]
                socket.set_reuseport(workers > 1)?;
                socket.bind(addr)?;
                socket.listen(1024)
            })
            .with_context(|| format!("listening on {addr}"))?;
        out.push((runtime, listener));
    }
    Ok((out, addr))
}

/// `davit hash-password`: one line from standard input (no echo is attempted: pipe it in, or
/// type it and press Enter), its argon2id hash on standard output.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password");
    println!("{}", davit_server::auth::hash_password(password)?);
    Ok(())
}

/// What SIGHUP reloads: users and rules from the configuration file, and the TLS files.
struct Reload {
    config: Option<PathBuf>,
    auth: Option<std::sync::Arc<davit_server::auth::Auth>>,
    tls: Option<davit_server::tls::Tls>,
    tls_files: Option<TlsFiles>,
}

impl Reload {
    /// One reload. A configuration that does not check out is refused whole, and the running
    /// one kept; so are changes that need a restart (said in the log).
    fn run(&self) {
        if let Some(path) = &self.config {
            match config::read(path) {
                Err(e) => {
                    tracing::error!("reload refused, keeping the running configuration: {e:#}")
                }
                Ok(file) => self.apply(&file),
            }
        }
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => tracing::info!("reloaded the TLS certificate and key"),
                Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the old files"),
            }
        }
    }

    fn apply(&self, file: &FileConfig) {
        match (self.auth.as_deref(), &file.auth) {
            (Some(auth), Some(new)) => match auth.reload(new) {
                Ok(r) => {
                    tracing::info!(users = r.users, rules = r.rules, "reloaded users and rules");
                    if r.quotas_changed {
                        tracing::warn!("users' quota_bytes changed: they take effect at restart");
                    }
                }
                Err(e) => tracing::error!("reload refused, keeping users and rules: {e}"),
            },
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => tracing::error!(
                "reload refused: turning [auth] on or off needs a restart; keeping users and rules"
            ),
        }
        if file.tls.is_some() && file.tls != self.tls_files {
            tracing::warn!("[tls] names other files: they take effect at restart");
        }
    }
}

/// Reloads on every SIGHUP (new connections get the new certificate; open ones are kept).
async fn reload_on_sighup(reload: Reload) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; nothing will be reloaded");
            return;
        };
        let reload = std::sync::Arc::new(reload);
        while hup.recv().await.is_some() {
            // Reading files and an argon2 run: not on the loop that serves the admin port.
            let r = reload.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || r.run()).await {
                tracing::error!(error = %e, "the reload failed");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
