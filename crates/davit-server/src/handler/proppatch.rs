//! PROPPATCH: all instructions in document order, atomically. If one cannot be applied, none
//! is, and the others answer 424.

use super::{multistatus, Change, Dav, ReqBody, Target};
use crate::body::Body;
use crate::error::{DavError, DavResult};
use crate::live;
use crate::locks::LockStore;
use crate::props::{DeadProp, PropOp, PropStore};
use crate::storage::Storage;
use davit_proto::xml::{parse_propertyupdate, MultistatusWriter, PatchOp, QName};
use http::request::Parts;
use http::Response;

/// What a PROPPATCH came to: each property's status (and failed condition), in document
/// order.
pub(crate) struct Patched {
    /// The resource is a collection.
    pub collection: bool,
    /// Property, status, condition.
    pub outcomes: Vec<(QName, u16, Option<&'static str>)>,
}

impl Patched {
    /// Whether any instruction failed (then none was applied).
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|(_, s, _)| *s != 200)
    }

    /// One `propstat` per outcome, each property named once, in first-seen order.
    pub fn write_propstats(&self, w: &mut MultistatusWriter) {
        let mut groups: Vec<(u16, Option<&'static str>)> = Vec::new();
        for (_, status, cond) in &self.outcomes {
            if !groups.contains(&(*status, *cond)) {
                groups.push((*status, *cond));
            }
        }
        for (status, cond) in groups {
            w.start_propstat();
            let mut written: Vec<&QName> = Vec::new();
            for (name, s, c) in &self.outcomes {
                if (*s, *c) == (status, cond) && !written.contains(&name) {
                    w.prop_empty(name);
                    written.push(name);
                }
            }
            w.end_propstat(status, cond);
        }
    }
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn proppatch<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        let body = self.read_xml_body(parts, body).await?;
        let ops = parse_propertyupdate(&body, &self.config.xml_limits())?;
        let patched = self.patch_props(parts, target, meta, ops).await?;
        // RFC 8144 §2.2: a PROPPATCH that did everything it was asked answers 200, empty.
        if !patched.failed() && super::prefer_of(parts).minimal {
            return Ok(super::preferences_applied(
                super::status_only(http::StatusCode::OK),
                true,
                false,
            ));
        }
        let mut w = MultistatusWriter::new();
        w.start_response(&target.path.href(patched.collection));
        patched.write_propstats(&mut w);
        w.end_response(None);
        Ok(multistatus(w.finish()))
    }

    /// PROPPATCH of `target` (whose metadata is `meta`): every instruction or none, for an
    /// HTTP request or a batch operation (`parts` carries who asks and the If header).
    pub(crate) async fn patch_props(
        &self,
        parts: &Parts,
        target: &Target,
        meta: crate::storage::Meta,
        ops: Vec<PatchOp>,
    ) -> DavResult<Patched> {
        self.check_preconditions(
            parts,
            target,
            Some(&meta),
            &[Change::Resource(&target.path)],
        )
        .await?;

        // Decide every instruction first; apply only if all can be.
        let mut outcomes: Vec<(QName, u16, Option<&'static str>)> = Vec::with_capacity(ops.len());
        for op in &ops {
            let name = match op {
                PatchOp::Set(e) => &e.name,
                PatchOp::Remove(n) => n,
            };
            if live::is_protected(name) {
                outcomes.push((name.clone(), 403, Some("cannot-modify-protected-property")));
            } else {
                outcomes.push((name.clone(), 200, None));
            }
        }
        let failed = outcomes.iter().any(|(_, s, _)| *s != 200);
        if failed {
            for o in outcomes.iter_mut().filter(|o| o.1 == 200) {
                o.1 = 424;
            }
        } else {
            let ops = ops
                .into_iter()
                .map(|op| match op {
                    PatchOp::Set(e) => PropOp::Set(DeadProp {
                        xml: e.to_fragment(),
                        name: e.name,
                    }),
                    PatchOp::Remove(n) => PropOp::Remove(n),
                })
                .collect();
            self.props.patch(&target.path, ops).await?;
            self.note_changes(vec![crate::changes::Noted::Touched(target.path.clone())])
                .await;
        }
        Ok(Patched {
            collection: meta.is_dir(),
            outcomes,
        })
    }
}
