//! Group commit. Every write goes through one task that owns the write connection: it takes
//! whatever requests are waiting (up to a limit), applies them in one transaction, commits
//! durably once, and only then acknowledges each. Under load, many submissions share one
//! fsync; alone, a request commits at once. Durability of acknowledged writes is unchanged:
//! nothing is acknowledged before its transaction has committed.

use crate::Scope;
use crate::backend::{Backend, WriteConn};
use crate::chain::event_hash;
use crate::error::{Result, StoreError};
use crate::rows::*;
use refuge_core::application::{ApplicationState, Move};
use refuge_core::clock::Clock;
use refuge_crypto::ChainHash;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// An event waiting for its place in the chain.
#[derive(Clone, Debug)]
pub(crate) struct PendingEvent {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub actor: String,
    pub kind: &'static str,
    pub subject: Uuid,
    pub person_id: Option<Uuid>,
    pub meta: serde_json::Map<String, serde_json::Value>,
    pub body_ct: Option<Vec<u8>>,
}

/// A write request.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// New records and their events. `what` names the record in duplicate errors.
    Insert {
        what: &'static str,
        rows: Box<RowBatch>,
        events: Vec<PendingEvent>,
    },
    /// Replace a case's facts if it is still at `expected` version.
    UpdateFacts {
        scope: Scope,
        case_id: Uuid,
        expected: u64,
        facts_ct: Vec<u8>,
        event: PendingEvent,
    },
    /// Move an application, checking the state machine against its current state.
    MoveApplication {
        scope: Scope,
        application_id: Uuid,
        expected: Option<u64>,
        mv: Move,
        decision: Option<(String, Vec<u8>, String, i64)>,
        event: PendingEvent,
    },
    /// Mark a deadline done, unless it already is.
    CompleteDeadline {
        scope: Scope,
        deadline_id: Uuid,
        event: PendingEvent,
    },
    /// Accept or decline a pending referral; only its receiving organisation may. The events
    /// (one per chain concerned) are written as they are.
    AnswerReferral {
        to_org: Uuid,
        referral_id: Uuid,
        accept: bool,
        events: Vec<PendingEvent>,
    },
    /// Move an export from state `from` to `to` (compare-and-set), within organisation `org`.
    MoveExport {
        org: Uuid,
        export_id: Uuid,
        from: &'static str,
        to: &'static str,
        decided_by: Option<String>,
        event: PendingEvent,
    },
    /// Change a staff user (password, second factor, disabled), bumping its version.
    UpdateUser {
        scope: Scope,
        user_id: Uuid,
        change: UserChange,
        event: PendingEvent,
    },
    /// Revoke an API token, unless it already is.
    RevokeToken {
        scope: Scope,
        token_hash: Vec<u8>,
        event: PendingEvent,
    },
    /// Erase a person (destroy their data key), unless they already are.
    ErasePerson {
        scope: Scope,
        person_id: Uuid,
        event: PendingEvent,
    },
    /// Key rotation: replace wrapped data keys (each only if unchanged since it was read).
    /// Derived key material: no event per row.
    Rewrap {
        persons: Vec<Rewrap>,
        users: Vec<Rewrap>,
    },
    /// Set and remove instance meta rows, with an event if given.
    SetMeta {
        set: Vec<MetaRow>,
        remove: Vec<String>,
        event: Option<PendingEvent>,
    },
    /// Only an event (e.g. an identity read).
    Append { event: PendingEvent },
    /// Copy up to `limit` persons' pending blind indexes into `person_lookup`, sorted, so that
    /// the random index inserts happen in bulk off the intake path. Derived data: no event.
    IndexLookups { limit: i64 },
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written at this time.
    Written { at: i64 },
    /// A record moved to a new version.
    Updated {
        version: u64,
        at: i64,
        from: Option<ApplicationState>,
    },
    /// This many persons' blind indexes were written.
    Indexed { persons: usize },
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Outcome>>,
}

/// The handle requests are sent through.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer task.
    pub(crate) fn spawn(
        backend: Arc<dyn Backend>,
        clock: Arc<dyn Clock>,
        max_batch: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 8);
        let max = max_batch.max(1);
        if backend.dedicated_writer_thread() {
            // A connection that blocks gets a thread (and a single-threaded runtime) of its own,
            // so it never stalls the tasks that encrypt and prepare the next requests.
            let spawned = std::thread::Builder::new()
                .name("refuge-writer".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(run(backend, clock, rx, max)),
                        Err(e) => tracing::error!(error = %e, "cannot start the writer's runtime"),
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the writer thread");
            }
        } else {
            tokio::spawn(run(backend, clock, rx, max));
        }
        Self { tx }
    }

    /// Submit one request and wait until it is durable (or refused).
    pub(crate) async fn write(&self, op: Op) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut conn: Option<Box<dyn WriteConn>> = None;
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let ops: Vec<&Op> = jobs.iter().map(|j| &j.op).collect();
        let results = match commit_group(&*backend, &mut conn, &*clock, &ops).await {
            Ok(results) => results,
            Err(e) if jobs.len() == 1 => vec![Err(e)],
            Err(e) => {
                // One bad request must not sink its neighbours: retry each on its own.
                tracing::warn!(batch = jobs.len(), error = %e, "group commit failed; retrying requests one by one");
                let mut singles = Vec::with_capacity(jobs.len());
                for op in &ops {
                    let r = commit_group(&*backend, &mut conn, &*clock, &[*op]).await;
                    singles.push(r.and_then(|mut v| v.pop().unwrap_or(Err(StoreError::Closed))));
                }
                singles
            }
        };
        for (job, result) in jobs.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// Apply `ops` in one transaction. `Err` means the transaction failed as a whole; per-request
/// refusals (conflicts, illegal moves) are `Ok(vec![Err(..), ..])` and write nothing.
async fn commit_group(
    backend: &dyn Backend,
    conn: &mut Option<Box<dyn WriteConn>>,
    clock: &dyn Clock,
    ops: &[&Op],
) -> Result<Vec<Result<Outcome>>> {
    if conn.is_none() {
        *conn = Some(backend.writer().await?);
    }
    let Some(c) = conn.as_mut() else {
        return Err(StoreError::Closed);
    };
    if let Err(e) = c.begin().await {
        *conn = None; // reconnect next time
        return Err(e);
    }
    let mut group = Group {
        at: clock.now().as_micros(),
        ..Group::default()
    };
    let mut results = Vec::with_capacity(ops.len());
    let planned = async {
        for op in ops {
            results.push(group.plan(&mut **c, op).await?);
        }
        group.finish();
        c.write_rows(&group.rows).await?;
        c.commit().await
    }
    .await;
    match planned {
        Ok(()) => Ok(results),
        Err(e) => {
            if c.rollback().await.is_err() {
                *conn = None;
            }
            if ops.len() == 1
                && let (Op::Insert { what, .. }, StoreError::Database(msg)) = (ops[0], &e)
                && msg.starts_with("unique constraint")
            {
                return Err(StoreError::Duplicate(what));
            }
            Err(e)
        }
    }
}

#[derive(Default)]
struct Group {
    at: i64,
    rows: RowBatch,
    heads: HashMap<Uuid, (i64, ChainHash)>,
    cases: HashMap<Uuid, (Uuid, i64)>,
    applications: HashMap<Uuid, (Uuid, ApplicationState, i64)>,
    deadlines: HashMap<Uuid, (Uuid, bool, i64)>,
    referrals: HashMap<Uuid, (Uuid, Uuid, String, i64)>,
    exports: HashMap<Uuid, (Uuid, String, i64)>,
    users: HashMap<Uuid, (Uuid, i64)>,
    tokens: HashMap<Vec<u8>, (Uuid, Uuid, bool)>,
    persons: HashMap<Uuid, (Uuid, bool)>,
}

fn not_found(what: &'static str, id: impl ToString) -> Result<Outcome> {
    Err(StoreError::NotFound {
        what,
        id: id.to_string(),
    })
}

/// How an API token is named in messages and events: the first 8 hex digits of its hash
/// (the hash of a random secret reveals nothing of it).
pub(crate) fn token_ref(token_hash: &[u8]) -> String {
    hex::encode(token_hash.get(..4).unwrap_or_default())
}

fn next_version(v: i64) -> (u64, i64) {
    let next = u64::try_from(v).unwrap_or(0) + 1;
    (next, i64::try_from(next).unwrap_or(i64::MAX))
}

impl Group {
    /// Check one request against current state (as left by earlier requests of the same
    /// group) and stage its rows. A refusal stages nothing.
    async fn plan(&mut self, c: &mut dyn WriteConn, op: &Op) -> Result<Result<Outcome>> {
        match op {
            Op::Insert { rows, events, .. } => {
                self.rows.extend_inserts(rows);
                for e in events {
                    self.append(c, e.clone()).await?;
                }
                Ok(Ok(Outcome::Written { at: self.at }))
            }
            Op::UpdateFacts {
                scope,
                case_id,
                expected,
                facts_ct,
                event,
            } => {
                let current = match self.cases.get(case_id) {
                    Some(v) => Some(*v),
                    None => c.case_version(*case_id).await?,
                };
                let Some((org, version)) = current.filter(|(org, _)| scope.allows(*org)) else {
                    return Ok(Err(StoreError::NotFound {
                        what: "case",
                        id: case_id.to_string(),
                    }));
                };
                let version = u64::try_from(version).unwrap_or(0);
                if version != *expected {
                    return Ok(Err(StoreError::Conflict {
                        what: "case",
                        id: case_id.to_string(),
                        expected: *expected,
                        actual: version,
                    }));
                }
                let next = version + 1;
                let next_i = i64::try_from(next).unwrap_or(i64::MAX);
                self.cases.insert(*case_id, (org, next_i));
                self.rows.case_updates.push(CaseUpdate {
                    id: *case_id,
                    facts_ct: facts_ct.clone(),
                    version: next_i,
                    updated_at: self.at,
                });
                self.append_update(c, event.clone(), org, next, None)
                    .await
                    .map(Ok)
            }
            Op::MoveApplication {
                scope,
                application_id,
                expected,
                mv,
                decision,
                event,
            } => {
                let current = match self.applications.get(application_id) {
                    Some(v) => Some(*v),
                    None => match c.application_state(*application_id).await? {
                        Some((org, state, v)) => Some((
                            org,
                            state
                                .parse()
                                .map_err(|_| crate::error::bad_column("state", &state))?,
                            v,
                        )),
                        None => None,
                    },
                };
                let Some((org, from, version)) = current.filter(|(org, ..)| scope.allows(*org))
                else {
                    return Ok(Err(StoreError::NotFound {
                        what: "application",
                        id: application_id.to_string(),
                    }));
                };
                let version = u64::try_from(version).unwrap_or(0);
                if let Some(expected) = expected.filter(|e| *e != version) {
                    return Ok(Err(StoreError::Conflict {
                        what: "application",
                        id: application_id.to_string(),
                        expected,
                        actual: version,
                    }));
                }
                if let Err(e) = mv.check(from) {
                    return Ok(Err(e.into()));
                }
                let next = version + 1;
                let next_i = i64::try_from(next).unwrap_or(i64::MAX);
                self.applications
                    .insert(*application_id, (org, mv.to, next_i));
                self.rows.application_updates.push(ApplicationUpdate {
                    id: *application_id,
                    state: mv.to.as_str().to_owned(),
                    version: next_i,
                    decision: decision.clone(),
                    updated_at: self.at,
                });
                let mut ev = event.clone();
                ev.meta.insert("from".into(), from.as_str().into());
                ev.meta.insert("to".into(), mv.to.as_str().into());
                self.append_update(c, ev, org, next, Some(from))
                    .await
                    .map(Ok)
            }
            Op::CompleteDeadline {
                scope,
                deadline_id,
                event,
            } => {
                let current = match self.deadlines.get(deadline_id) {
                    Some(v) => Some(*v),
                    None => c.deadline_state(*deadline_id).await?,
                };
                let Some((org, done, version)) = current.filter(|(org, ..)| scope.allows(*org))
                else {
                    return Ok(not_found("deadline", deadline_id));
                };
                if done {
                    return Ok(Err(StoreError::AlreadyDone {
                        what: "deadline",
                        id: deadline_id.to_string(),
                        state: "done",
                    }));
                }
                let (next, next_i) = next_version(version);
                self.deadlines.insert(*deadline_id, (org, true, next_i));
                self.rows.deadline_updates.push(DeadlineUpdate {
                    id: *deadline_id,
                    done_at: self.at,
                    version: next_i,
                });
                self.append_update(c, event.clone(), org, next, None)
                    .await
                    .map(Ok)
            }
            Op::MoveExport {
                org,
                export_id,
                from,
                to,
                decided_by,
                event,
            } => {
                let current = match self.exports.get(export_id) {
                    Some(v) => Some(v.clone()),
                    None => c.export_state(*export_id).await?,
                };
                let Some((_, state, version)) = current.filter(|(o, ..)| o == org) else {
                    return Ok(not_found("export", export_id));
                };
                if state != *from {
                    return Ok(Err(StoreError::AlreadyDone {
                        what: "export",
                        id: export_id.to_string(),
                        state: match state.as_str() {
                            "approved" => "approved",
                            "refused" => "refused",
                            "collected" => "collected",
                            _ => "requested",
                        },
                    }));
                }
                let (next, next_i) = next_version(version);
                self.exports
                    .insert(*export_id, (*org, (*to).to_owned(), next_i));
                self.rows.export_updates.push(ExportUpdate {
                    id: *export_id,
                    from: (*from).to_owned(),
                    state: (*to).to_owned(),
                    decided_by: decided_by.clone(),
                    at: self.at,
                    version: next_i,
                });
                let mut ev = event.clone();
                ev.meta.insert("version".into(), next.into());
                self.append(c, ev).await?;
                Ok(Ok(Outcome::Updated {
                    version: next,
                    at: self.at,
                    from: None,
                }))
            }
            Op::AnswerReferral {
                to_org,
                referral_id,
                accept,
                events,
            } => {
                let current = match self.referrals.get(referral_id) {
                    Some(v) => Some(v.clone()),
                    None => c.referral_state(*referral_id).await?,
                };
                let Some((from, to, state, version)) = current.filter(|(_, to, ..)| to == to_org)
                else {
                    return Ok(not_found("referral", referral_id));
                };
                if state != "pending" {
                    return Ok(Err(StoreError::AlreadyDone {
                        what: "referral",
                        id: referral_id.to_string(),
                        state: if state == "accepted" {
                            "accepted"
                        } else {
                            "declined"
                        },
                    }));
                }
                let (next, next_i) = next_version(version);
                let new_state = if *accept { "accepted" } else { "declined" };
                self.referrals
                    .insert(*referral_id, (from, to, new_state.to_owned(), next_i));
                self.rows.referral_updates.push(ReferralUpdate {
                    id: *referral_id,
                    state: new_state.to_owned(),
                    answered_at: self.at,
                    version: next_i,
                });
                for e in events {
                    let mut ev = e.clone();
                    ev.meta.insert("version".into(), next.into());
                    self.append(c, ev).await?;
                }
                Ok(Ok(Outcome::Updated {
                    version: next,
                    at: self.at,
                    from: None,
                }))
            }
            Op::UpdateUser {
                scope,
                user_id,
                change,
                event,
            } => {
                let current = match self.users.get(user_id) {
                    Some(v) => Some(*v),
                    None => c.user_state(*user_id).await?,
                };
                let Some((org, version)) = current.filter(|(org, _)| scope.allows(*org)) else {
                    return Ok(not_found("user", user_id));
                };
                let (next, next_i) = next_version(version);
                self.users.insert(*user_id, (org, next_i));
                self.rows.user_updates.push(UserUpdate {
                    id: *user_id,
                    version: next_i,
                    change: change.clone(),
                });
                self.append_update(c, event.clone(), org, next, None)
                    .await
                    .map(Ok)
            }
            Op::ErasePerson {
                scope,
                person_id,
                event,
            } => {
                let current = match self.persons.get(person_id) {
                    Some(v) => Some(*v),
                    None => c.person_state(*person_id).await?,
                };
                let Some((org, erased)) = current.filter(|(org, _)| scope.allows(*org)) else {
                    return Ok(not_found("person", person_id));
                };
                if erased {
                    return Ok(Err(StoreError::AlreadyDone {
                        what: "person",
                        id: person_id.to_string(),
                        state: "erased",
                    }));
                }
                self.persons.insert(*person_id, (org, true));
                self.rows.person_erasures.push(PersonErasure {
                    id: *person_id,
                    erased_at: self.at,
                });
                let mut event = event.clone();
                event.organisation_id = org;
                self.append(c, event).await?;
                Ok(Ok(Outcome::Written { at: self.at }))
            }
            Op::RevokeToken {
                scope,
                token_hash,
                event,
            } => {
                let current = match self.tokens.get(token_hash) {
                    Some(v) => Some(*v),
                    None => c.token_state(token_hash).await?,
                };
                let Some((org, user, revoked)) = current.filter(|(org, ..)| scope.allows(*org))
                else {
                    return Ok(not_found("API token", token_ref(token_hash)));
                };
                if revoked {
                    return Ok(Err(StoreError::AlreadyDone {
                        what: "API token",
                        id: token_ref(token_hash),
                        state: "revoked",
                    }));
                }
                self.tokens.insert(token_hash.clone(), (org, user, true));
                self.rows.token_revocations.push(TokenRevocation {
                    token_hash: token_hash.clone(),
                    revoked_at: self.at,
                });
                let mut ev = event.clone();
                ev.organisation_id = org;
                ev.subject = user;
                self.append(c, ev).await?;
                Ok(Ok(Outcome::Written { at: self.at }))
            }
            Op::Append { event } => {
                self.append(c, event.clone()).await?;
                Ok(Ok(Outcome::Written { at: self.at }))
            }
            Op::Rewrap { persons, users } => {
                self.rows.person_rewraps.extend(persons.iter().cloned());
                self.rows.user_rewraps.extend(users.iter().cloned());
                Ok(Ok(Outcome::Written { at: self.at }))
            }
            Op::SetMeta { set, remove, event } => {
                self.rows.meta_set.extend(set.iter().cloned());
                self.rows.meta_removed.extend(remove.iter().cloned());
                if let Some(e) = event {
                    self.append(c, e.clone()).await?;
                }
                Ok(Ok(Outcome::Written { at: self.at }))
            }
            Op::IndexLookups { limit } => {
                let pending = c.pending_lookups(*limit).await?;
                let mut lookups: Vec<LookupRow> = pending
                    .iter()
                    .flat_map(|(person, org, blob)| {
                        blob.chunks_exact(16).map(|bidx| LookupRow {
                            organisation_id: *org,
                            bidx: bidx.to_vec(),
                            person_id: *person,
                        })
                    })
                    .collect();
                lookups.sort_by(|a, b| a.bidx.cmp(&b.bidx));
                self.rows.lookups.extend(lookups);
                self.rows.indexed.extend(pending.iter().map(|(p, ..)| *p));
                Ok(Ok(Outcome::Indexed {
                    persons: pending.len(),
                }))
            }
        }
    }

    /// Append `event` to `org`'s chain with the record's new `version` in its meta, and report
    /// the record updated.
    async fn append_update(
        &mut self,
        c: &mut dyn WriteConn,
        mut event: PendingEvent,
        org: Uuid,
        version: u64,
        from: Option<ApplicationState>,
    ) -> Result<Outcome> {
        event.organisation_id = org;
        event.meta.insert("version".into(), version.into());
        self.append(c, event).await?;
        Ok(Outcome::Updated {
            version,
            at: self.at,
            from,
        })
    }

    /// Give an event its place in its organisation's chain.
    async fn append(&mut self, c: &mut dyn WriteConn, e: PendingEvent) -> Result<()> {
        let org = e.organisation_id;
        let (seq, prev) = match self.heads.get(&org) {
            Some(h) => *h,
            None => match c.lock_head(org).await? {
                Some((seq, hash)) if hash.len() == 32 => {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(&hash);
                    (seq, ChainHash(h))
                }
                Some(_) => return Err(crate::error::bad_column("chain_heads.hash", "length")),
                None => (0, ChainHash::GENESIS),
            },
        };
        let mut row = EventRow {
            organisation_id: org,
            seq: seq + 1,
            id: e.id,
            at: self.at,
            actor: e.actor,
            kind: e.kind.to_owned(),
            subject: e.subject,
            person_id: e.person_id,
            meta: serde_json::Value::Object(e.meta).to_string(),
            body_ct: e.body_ct,
            prev_hash: prev.0.to_vec(),
            hash: Vec::new(),
        };
        let hash = event_hash(&row);
        row.hash = hash.0.to_vec();
        self.heads.insert(org, (row.seq, hash));
        self.rows.events.push(row);
        Ok(())
    }

    /// Stage the new chain heads.
    fn finish(&mut self) {
        let mut heads: Vec<HeadRow> = self
            .heads
            .iter()
            .map(|(org, (seq, h))| HeadRow {
                organisation_id: *org,
                seq: *seq,
                hash: h.0.to_vec(),
            })
            .collect();
        heads.sort_by_key(|h| h.organisation_id);
        self.rows.heads = heads;
    }
}
