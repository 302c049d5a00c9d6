//! Dead properties in PostgreSQL, keyed by resource id: a MOVE changes none of them, a DELETE
//! drops them with the resource's row, and every instance sees the same. `PropStore` speaks in
//! paths; each statement resolves them through the namespace.

use crate::namespace::below;
use crate::pg::{Pg, PgError};
use davit_proto::href::DavPath;
use davit_proto::xml::QName;
use davit_server::props::{DeadProp, PropOp, PropStore, StoreError, TreeScope};
use davit_server::storage::SharedTx;
use std::sync::Arc;

/// The property store of the distributed backend.
#[derive(Debug, Clone)]
pub struct PgPropStore {
    pg: Pg,
}

impl PgPropStore {
    /// Properties in the database behind `pg` (schema made by [`Pg::connect`]).
    pub fn new(pg: Pg) -> Self {
        PgPropStore { pg }
    }
}

fn q(e: tokio_postgres::Error) -> StoreError {
    PgError::Query(e).into()
}

impl PropStore for PgPropStore {
    type Tx = PgPropStore;

    async fn check(&self) -> Result<(), StoreError> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        client.query_one("SELECT 1", &[]).await.map_err(q)?;
        Ok(())
    }

    fn joins_storage(&self) -> bool {
        // Inside a transaction already (an atomic batch): its steps join that one.
        !self.pg.in_transaction()
    }

    fn shared(&self) -> Option<SharedTx> {
        self.pg
            .in_transaction()
            .then(|| Arc::new(self.pg.clone()) as SharedTx)
    }

    // An atomic batch runs in one PostgreSQL transaction, which the storage joins
    // (`PgStorage::join`): content rows and properties commit or roll back together.
    async fn begin(&self) -> Result<PgPropStore, StoreError> {
        Ok(PgPropStore {
            pg: self.pg.begin().await?,
        })
    }

    async fn commit(&self, tx: PgPropStore, _: &str) -> Result<(), StoreError> {
        Ok(tx.pg.commit().await?)
    }

    async fn rollback(&self, tx: PgPropStore) -> Result<(), StoreError> {
        Ok(tx.pg.rollback().await?)
    }

    async fn was_committed(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn forget_batch(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn get_many(&self, paths: Vec<DavPath>) -> Result<Vec<Vec<DeadProp>>, StoreError> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let keys: Vec<&str> = paths.iter().map(DavPath::as_str).collect();
        // One query for the whole batch of a listing.
        let stmt = Box::pin(client.prepare_cached(
            "SELECT r.path, p.ns, p.local, p.xml FROM davit_resources r \
                 JOIN davit_props p ON p.resource = r.id WHERE r.path = ANY($1)",
        ))
        .await
        .map_err(q)?;
        let rows = client.query(&stmt, &[&keys]).await.map_err(q)?;
        let mut by_path: std::collections::HashMap<String, Vec<DeadProp>> = Default::default();
        for r in &rows {
            by_path.entry(r.get(0)).or_default().push(DeadProp {
                name: QName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                xml: r.get(3),
            });
        }
        Ok(paths
            .iter()
            .map(|p| by_path.remove(p.as_str()).unwrap_or_default())
            .collect())
    }

    async fn patch(&self, path: &DavPath, ops: Vec<PropOp>) -> Result<(), StoreError> {
        self.pg
            .atomically(async |tx| {
                let id: uuid::Uuid = tx
                    .query_opt(
                        "SELECT id FROM davit_resources WHERE path = $1 FOR SHARE",
                        &[&path.as_str()],
                    )
                    .await
                    .map_err(q)?
                    .ok_or_else(|| StoreError::Failed(format!("no resource at {}", path.as_str())))?
                    .get(0);
                for op in &ops {
                    match op {
                        PropOp::Set(p) => tx
                            .execute(
                                "INSERT INTO davit_props (resource, ns, local, xml) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (resource, ns, local) \
                                 DO UPDATE SET xml = excluded.xml",
                                &[&id, &p.name.ns, &p.name.local, &p.xml],
                            )
                            .await
                            .map_err(q)?,
                        PropOp::Remove(n) => tx
                            .execute(
                                "DELETE FROM davit_props \
                                 WHERE resource = $1 AND ns = $2 AND local = $3",
                                &[&id, &n.ns, &n.local],
                            )
                            .await
                            .map_err(q)?,
                    };
                }
                Ok(())
            })
            .await
    }

    async fn copy(&self, from: &DavPath, to: &DavPath, scope: TreeScope) -> Result<(), StoreError> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let pattern = match scope {
            TreeScope::Tree => below(from),
            TreeScope::Resource => String::new(),
        };
        let cut = i32::try_from(from.as_str().chars().count()).unwrap_or(i32::MAX);
        let base = if to.is_root() { "" } else { to.as_str() };
        let from_root = if from.is_root() { 0 } else { cut };
        // Each source resource's properties onto the resource at the same place below `to`.
        client
            .execute(
                "INSERT INTO davit_props (resource, ns, local, xml) \
                 SELECT d.id, p.ns, p.local, p.xml FROM davit_resources s \
                 JOIN davit_props p ON p.resource = s.id \
                 JOIN davit_resources d ON d.path = CASE WHEN s.path = $1 THEN $2 \
                      ELSE $3 || substr(s.path, $4 + 1) END \
                 WHERE s.path = $1 OR ($5 <> '' AND s.path LIKE $5) \
                 ON CONFLICT (resource, ns, local) DO UPDATE SET xml = excluded.xml",
                &[&from.as_str(), &to.as_str(), &base, &from_root, &pattern],
            )
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn rename(&self, _: &DavPath, _: &DavPath) -> Result<(), StoreError> {
        // Properties belong to resource ids, which a MOVE keeps.
        Ok(())
    }

    async fn delete(&self, path: &DavPath, keep: Vec<DavPath>) -> Result<(), StoreError> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let keep: Vec<&str> = keep.iter().map(DavPath::as_str).collect();
        client
            .execute(
                "DELETE FROM davit_props WHERE resource IN (SELECT id FROM davit_resources \
                 WHERE (path = $1 OR path LIKE $2) AND NOT path = ANY($3))",
                &[&path.as_str(), &below(path), &keep],
            )
            .await
            .map_err(q)?;
        Ok(())
    }
}
