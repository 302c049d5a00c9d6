//! The one way davit opens its SQLite files (dead properties, locks), so every connection gets
//! the same settings.

use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How long a connection waits for another one's write lock (an atomic batch may hold it for a
/// while) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens (creating if needed) the database in `file`: WAL journal, `synchronous = NORMAL`
/// (durable across a process crash, at most the last commits lost on power loss), and a busy
/// timeout instead of failing at once on a held write lock. Safe outside a transaction only.
pub(crate) fn connect(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(file)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;",
    )?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_wal_normal_sync_and_a_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let c = connect(&dir.path().join("x.sqlite3")).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let busy: i64 = c
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 30_000);
    }
}
