//! The work queue: applications of the cases within scope, oldest first, a page at a time.
//!
//! One page is two queries: the applications (one index range per state, each stopping after
//! `limit` rows, merged in id order, plus those of cases referred to the organisation and
//! accepted), then their cases with the persons' wrapped keys and pseudonyms. Facts are never
//! decrypted; per item, one data key is unwrapped to show the pseudonym and the decision.

use super::SqlStore;
use crate::backend::{CaseListRow, QueueQuery};
use crate::error::{Result, StoreError};
use crate::{QueueFilter, QueueItem, Scope};
use refuge_core::application::ApplicationState;
use refuge_core::ids::ApplicationId;
use refuge_crypto::DataKey;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use uuid::Uuid;

fn query(scope: Scope, filter: &QueueFilter) -> QueueQuery<'_> {
    let mut states: Vec<ApplicationState> = if filter.states.is_empty() {
        ApplicationState::ALL.to_vec()
    } else {
        filter.states.clone()
    };
    states.sort();
    states.dedup();
    QueueQuery {
        org: scope.org(),
        programme: filter.programme.as_ref().map(|p| p.as_str()),
        states: states.into_iter().map(ApplicationState::as_str).collect(),
    }
}

/// A page of the queue.
pub(super) async fn queue(
    s: &SqlStore,
    scope: Scope,
    filter: &QueueFilter,
    after: Option<ApplicationId>,
    limit: u32,
) -> Result<Vec<QueueItem>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let q = query(scope, filter);
    let apps = s
        .backend
        .queue(&q, after.map(|a| a.0), i64::from(limit))
        .await?;
    let mut ids: Vec<Uuid> = apps.iter().map(|a| a.case_id).collect();
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
    let mut out = Vec::with_capacity(apps.len());
    for app in apps {
        let case = cases.get(&app.case_id).ok_or_else(|| {
            StoreError::Database(format!("case {} of an application is missing", app.case_id))
        })?;
        let dk = if app.decision_ct.is_some() {
            match keys.entry(app.case_id) {
                Entry::Occupied(e) => e.into_mut().as_ref(),
                Entry::Vacant(e) => e.insert(s.list_key(case)?).as_ref(),
            }
        } else {
            None
        };
        out.push(QueueItem {
            application: s.application_from_row(app, dk)?,
            case: s.summary(case)?,
        });
    }
    Ok(out)
}

/// How many applications the queue holds.
pub(super) async fn count_queue(s: &SqlStore, scope: Scope, filter: &QueueFilter) -> Result<u64> {
    let n = s.backend.count_queue(&query(scope, filter)).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
