//! Dead properties in PostgreSQL, keyed by resource id: a MOVE changes none of them, a DELETE
//! drops them with the resource's row, and every instance sees the same. `PropStore` speaks in
//! paths; each statement resolves them through the namespace.

use crate::namespace::{
    below, id_at, rows_at_many, tree_rows, At, AtMany, FULL_PATH, ROWS_WITH_PARENT,
};
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
        let at = AtMany::new(&paths);
        // One query for the whole batch of a listing.
        let stmt = Box::pin(client.prepare_cached(&format!(
            "SELECT want, ns, local, xml FROM ({}) r JOIN davit_props p ON p.resource = r.id",
            rows_at_many("r.id")
        )))
        .await
        .map_err(q)?;
        let rows = client
            .query(&stmt, &[&at.full, &at.up, &at.name])
            .await
            .map_err(q)?;
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
                let at = At::new(path);
                let id: uuid::Uuid = tx
                    .query_opt(
                        &format!(
                            "SELECT id FROM davit_resources WHERE id = {} FOR SHARE",
                            id_at(1)
                        ),
                        &[&at.full, &at.up(), &at.name],
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
        let tree = matches!(scope, TreeScope::Tree);
        let (src, dst) = (At::new(from), At::new(to));
        let cut = |p: &DavPath| {
            if p.is_root() {
                0
            } else {
                i32::try_from(p.as_str().chars().count()).unwrap_or(i32::MAX)
            }
        };
        // Each source resource's properties onto the resource at the same place below `to`
        // (places compared relative to each tree's top, "" for the top itself).
        let tree_at = |n: usize| {
            tree_rows(
                &format!(
                    "r.id, CASE WHEN r.id = {id} THEN '' \
                     ELSE substr({FULL_PATH}, ${cut} + 1) END AS rel",
                    id = id_at(n),
                    cut = n + 3,
                ),
                ROWS_WITH_PARENT,
                n,
                n + 4,
                "$11",
            )
        };
        client
            .execute(
                &format!(
                    "INSERT INTO davit_props (resource, ns, local, xml) \
                     SELECT d.id, p.ns, p.local, p.xml FROM ({}) s \
                     JOIN davit_props p ON p.resource = s.id \
                     JOIN ({}) d ON d.rel = s.rel \
                     ON CONFLICT (resource, ns, local) DO UPDATE SET xml = excluded.xml",
                    tree_at(1),
                    tree_at(6)
                ),
                &[
                    &src.full,
                    &src.up(),
                    &src.name,
                    &cut(from),
                    &below(from),
                    &dst.full,
                    &dst.up(),
                    &dst.name,
                    &cut(to),
                    &below(to),
                    &tree,
                ],
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
        let at = At::new(path);
        client
            .execute(
                &format!(
                    "DELETE FROM davit_props WHERE resource IN (SELECT id FROM ({}) t \
                     WHERE NOT full_path = ANY($5))",
                    tree_rows(
                        &format!("r.id, {FULL_PATH} AS full_path"),
                        ROWS_WITH_PARENT,
                        1,
                        4,
                        "true"
                    )
                ),
                &[&at.full, &at.up(), &at.name, &below(path), &keep],
            )
            .await
            .map_err(q)?;
        Ok(())
    }
}
