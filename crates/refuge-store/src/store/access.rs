//! Who may see a case, in one place; and referrals, the one way a case becomes visible to an
//! organisation other than the one holding it.
//!
//! The rule: `Scope::Instance` sees everything; `Scope::Organisation(o)` sees all of a case
//! held by `o`, and all of a case referred to `o` once `o` has accepted the referral. While
//! the referral is pending, `o` sees the referral itself and the case's reference and
//! pseudonym (through [`referrals`]), nothing else; once declined, nothing. Whatever a scope
//! may not see is reported as `NotFound`, exactly as if it did not exist.

use super::{SqlStore, json, to_u64};
use crate::backend::CaseListRow;
use crate::error::{Result, StoreError, bad_column};
use crate::rows::{ReferralRow, RowBatch};
use crate::writer::{Op, Outcome};
use crate::{CaseKey, Scope};
use refuge_core::casework::{Referral, ReferralState};
use refuge_core::clock::Timestamp;
use refuge_core::event::{Actor, EventKind};
use refuge_core::ids::{CaseId, OrgId, ReferralId};
use refuge_core::text::Text;
use refuge_crypto::DataKey;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use uuid::Uuid;

/// How much of a case a scope may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// All of it: facts, identity, applications, events, evidence, messages, deadlines; and
    /// it may change them.
    Full,
    /// A referral to the scope's organisation is pending: the referral and the case's
    /// reference and pseudonym only.
    Summary,
}

impl SqlStore {
    /// The visibility rule (see the module documentation). `owner` is the organisation
    /// holding case `case_id`; `None` means the scope may not know the case exists.
    pub(crate) async fn access(
        &self,
        scope: Scope,
        owner: Uuid,
        case_id: Uuid,
    ) -> Result<Option<Access>> {
        match scope {
            Scope::Instance => Ok(Some(Access::Full)),
            Scope::Organisation(o) if o.0 == owner => Ok(Some(Access::Full)),
            Scope::Organisation(o) => Ok(
                match self.backend.referral_to(case_id, o.0).await?.as_deref() {
                    Some("accepted") => Some(Access::Full),
                    Some("pending") => Some(Access::Summary),
                    _ => None,
                },
            ),
        }
    }

    /// Fail with `NotFound` for `what`/`id` unless `scope` may see all of the case.
    pub(crate) async fn require_full(
        &self,
        scope: Scope,
        owner: Uuid,
        case_id: Uuid,
        what: &'static str,
        id: impl ToString,
    ) -> Result<()> {
        if self.access(scope, owner, case_id).await? == Some(Access::Full) {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                what,
                id: id.to_string(),
            })
        }
    }

    /// A referral as returned, with the case's reference and pseudonym; the consent is
    /// decrypted with `dk` (`None` once the person is erased).
    fn referral_from_row(
        &self,
        r: ReferralRow,
        case: &CaseListRow,
        dk: Option<&DataKey>,
    ) -> Result<Referral> {
        let summary = self.summary(case)?;
        let consent = match dk {
            Some(dk) => Some(self.open_json::<Text>(
                dk,
                "referral",
                "referrals",
                "consent",
                r.id,
                &r.consent_ct,
            )?),
            None => None,
        };
        Ok(Referral {
            id: ReferralId(r.id),
            case_id: CaseId(r.case_id),
            case_reference: summary.reference,
            pseudonym: summary.pseudonym,
            from_org: OrgId(r.from_org),
            to_org: OrgId(r.to_org),
            state: r
                .state
                .parse()
                .map_err(|_| bad_column("referrals.state", &r.state))?,
            consent,
            version: to_u64(r.version),
            created_at: Timestamp::from_micros(r.created_at),
            answered_at: r.answered_at.map(Timestamp::from_micros),
        })
    }

    pub(super) fn list_key(&self, case: &CaseListRow) -> Result<Option<DataKey>> {
        match &case.wrapped_key {
            Some(w) => Ok(Some(self.person_key(case.case.person_id, Some(w))?)),
            None => Ok(None),
        }
    }
}

/// Refer a case held by the scope's organisation to `to`, recording the person's consent.
pub(super) async fn refer(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    case: CaseId,
    to: OrgId,
    consent: Text,
) -> Result<Referral> {
    let row = s.case_row(scope, &CaseKey::Id(case)).await?;
    if let Scope::Organisation(o) = scope
        && o.0 != row.organisation_id
    {
        return Err(StoreError::Invalid {
            field: "case",
            message: "only the organisation holding a case can refer it".into(),
        });
    }
    if to.0 == row.organisation_id {
        return Err(StoreError::Invalid {
            field: "to",
            message: "a case cannot be referred to the organisation holding it".into(),
        });
    }
    s.ensure_org(to).await?;
    let list = s
        .backend
        .cases_by_ids(&[row.id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Database(format!("case {} vanished", row.id)))?;
    let dk = s
        .list_key(&list)?
        .ok_or_else(|| StoreError::Erased(row.person_id.to_string()))?;
    let now = s.clock.now();
    let id = s.new_id()?;
    let referral = ReferralRow {
        id,
        case_id: row.id,
        from_org: row.organisation_id,
        to_org: to.0,
        state: ReferralState::Pending.as_str().into(),
        consent_ct: s.seal(&dk, "referrals", "consent", id, &json(&consent)?)?,
        version: 1,
        created_at: now.as_micros(),
        answered_at: None,
    };
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::ReferralMade,
        id,
        Some(row.person_id),
    )?;
    ev.meta.insert("case_id".into(), row.id.to_string().into());
    ev.meta.insert("to_org".into(), to.to_string().into());
    ev.meta.insert("version".into(), 1.into());
    ev.body_ct = Some(s.seal(
        &dk,
        "events",
        "body",
        ev.id,
        &json(&serde_json::json!({ "consent": consent }))?,
    )?);
    let rows = RowBatch {
        referrals: vec![referral.clone()],
        ..RowBatch::default()
    };
    s.writer
        .write(Op::Insert {
            what: "an open referral of this case to this organisation",
            rows: Box::new(rows),
            events: vec![ev],
        })
        .await?;
    s.referral_from_row(referral, &list, Some(&dk))
}

/// Accept or decline a pending referral: only the receiving organisation may.
pub(super) async fn answer_referral(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    id: ReferralId,
    accept: bool,
) -> Result<Referral> {
    let not_found = || StoreError::NotFound {
        what: "referral",
        id: id.to_string(),
    };
    let Scope::Organisation(me) = scope else {
        return Err(not_found());
    };
    let row = s
        .backend
        .referral(id.0)
        .await?
        .filter(|r| r.to_org == me.0)
        .ok_or_else(not_found)?;
    let list = s
        .backend
        .cases_by_ids(&[row.case_id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Database(format!("case {} vanished", row.case_id)))?;
    let state = if accept {
        ReferralState::Accepted
    } else {
        ReferralState::Declined
    };
    // One event in the sending organisation's chain (which holds the case's history) and one
    // in the receiving organisation's (which acted).
    let mut events = Vec::new();
    for org in [row.from_org, row.to_org] {
        let mut ev = s.event(
            actor,
            org,
            EventKind::ReferralAnswered,
            row.id,
            Some(list.case.person_id),
        )?;
        ev.meta
            .insert("case_id".into(), row.case_id.to_string().into());
        ev.meta.insert("state".into(), state.as_str().into());
        events.push(ev);
    }
    let op = Op::AnswerReferral {
        to_org: me.0,
        referral_id: row.id,
        accept,
        events,
    };
    match s.writer.write(op).await? {
        Outcome::Updated { version, at, .. } => {
            let dk = s.list_key(&list)?;
            let mut answered = s.referral_from_row(row, &list, dk.as_ref())?;
            answered.state = state;
            answered.version = version;
            answered.answered_at = Some(Timestamp::from_micros(at));
            Ok(answered)
        }
        Outcome::Written { .. } | Outcome::Indexed { .. } => {
            Err(StoreError::Database("unexpected write outcome".into()))
        }
    }
}

/// Referrals sent or received by the scope's organisation (every one for the instance),
/// oldest first.
pub(super) async fn referrals(s: &SqlStore, scope: Scope) -> Result<Vec<Referral>> {
    let rows = s.backend.referrals(scope.org()).await?;
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.case_id).collect();
    ids.sort();
    ids.dedup();
    let cases: HashMap<Uuid, CaseListRow> = s
        .backend
        .cases_by_ids(&ids)
        .await?
        .into_iter()
        .map(|c| (c.case.id, c))
        .collect();
    let mut keys: HashMap<Uuid, Option<DataKey>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let case = cases.get(&r.case_id).ok_or_else(|| {
            StoreError::Database(format!("case {} of a referral is missing", r.case_id))
        })?;
        let dk = match keys.entry(r.case_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(s.list_key(case)?),
        };
        out.push(s.referral_from_row(r, case, dk.as_ref())?);
    }
    Ok(out)
}
