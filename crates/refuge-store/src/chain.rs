//! The hash chain over events: each organisation's events link to the previous one by
//! SHA-256, so that any edit, deletion, insertion or reordering is detected by [`verify`].

use crate::backend::Backend;
use crate::error::Result;
use crate::rows::EventRow;
use refuge_crypto::{ChainHash, chain_link};
use serde::Serialize;
use uuid::Uuid;

/// The hash of an event: every stored column except `hash` itself, chained to `prev_hash`.
pub(crate) fn event_hash(e: &EventRow) -> ChainHash {
    let prev = prev_of(e);
    let seq = e.seq.to_be_bytes();
    let at = e.at.to_be_bytes();
    let person = e.person_id.map(|p| *p.as_bytes());
    let person_field: &[u8] = person.as_ref().map_or(&[], |p| p.as_slice());
    let person_flag = [u8::from(e.person_id.is_some())];
    let body_flag = [u8::from(e.body_ct.is_some())];
    chain_link(
        &prev,
        &[
            e.organisation_id.as_bytes(),
            &seq,
            e.id.as_bytes(),
            &at,
            e.actor.as_bytes(),
            e.kind.as_bytes(),
            e.subject.as_bytes(),
            &person_flag,
            person_field,
            e.meta.as_bytes(),
            &body_flag,
            e.body_ct.as_deref().unwrap_or(&[]),
        ],
    )
}

fn prev_of(e: &EventRow) -> ChainHash {
    let mut b = [0u8; 32];
    if e.prev_hash.len() == 32 {
        b.copy_from_slice(&e.prev_hash);
    }
    ChainHash(b)
}

/// One problem found in a chain.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChainProblem {
    /// The organisation whose chain it is.
    pub organisation_id: Uuid,
    /// The event's position, if the problem is at an event.
    pub seq: Option<i64>,
    /// The event's id, if the problem is at an event.
    pub event_id: Option<Uuid>,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.seq, self.event_id) {
            (Some(seq), Some(id)) => write!(
                f,
                "organisation {} event #{seq} ({id}): {}",
                self.organisation_id, self.problem
            ),
            _ => write!(f, "organisation {}: {}", self.organisation_id, self.problem),
        }
    }
}

/// One organisation's chain as verified.
#[derive(Clone, Debug, Serialize)]
pub struct ChainSummary {
    /// The organisation (the nil id is the instance's own chain).
    pub organisation_id: Uuid,
    /// Events checked.
    pub events: u64,
    /// The head hash (hex); publish it elsewhere to detect truncation later.
    pub head: String,
}

/// The result of verifying every chain.
#[derive(Clone, Debug, Serialize)]
pub struct ChainReport {
    /// Per organisation.
    pub chains: Vec<ChainSummary>,
    /// Everything found wrong; empty when the log is intact.
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    /// No problems found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// Total events checked.
    pub fn events(&self) -> u64 {
        self.chains.iter().map(|c| c.events).sum()
    }
}

const PAGE: i64 = 5_000;

/// Walk every organisation's chain from its first event to its head.
pub(crate) async fn verify(backend: &dyn Backend) -> Result<ChainReport> {
    let mut report = ChainReport {
        chains: Vec::new(),
        problems: Vec::new(),
    };
    for org in backend.chain_orgs().await? {
        let mut expected_seq = 1i64;
        let mut running = ChainHash::GENESIS;
        let mut after = 0i64;
        let mut count = 0u64;
        loop {
            let page = backend.events_page(org, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                count += 1;
                let problem = |what: String| ChainProblem {
                    organisation_id: org,
                    seq: Some(e.seq),
                    event_id: Some(e.id),
                    problem: what,
                };
                if e.seq != expected_seq {
                    report.problems.push(problem(format!(
                        "expected event #{expected_seq} here: an event was deleted, inserted or renumbered"
                    )));
                } else if e.prev_hash.as_slice() != running.0.as_slice() {
                    report.problems.push(problem(
                        "does not link to the event before it: the log was reordered or an event removed"
                            .into(),
                    ));
                } else if event_hash(e).0.as_slice() != e.hash.as_slice() {
                    report.problems.push(problem(
                        "its contents do not match its hash: the event was altered".into(),
                    ));
                }
                // Resynchronise on the stored link so that each problem is reported where it
                // is, and one altered event does not hide others.
                running = ChainHash(to32(&e.hash));
                expected_seq = e.seq + 1;
            }
        }
        match backend.chain_head(org).await? {
            None => report.problems.push(ChainProblem {
                organisation_id: org,
                seq: None,
                event_id: None,
                problem: "events exist but the chain has no recorded head".into(),
            }),
            Some(h) if h.seq != expected_seq - 1 || h.hash != running.0 => {
                report.problems.push(ChainProblem {
                    organisation_id: org,
                    seq: None,
                    event_id: None,
                    problem: format!(
                        "the recorded head is event #{} but the chain ends at #{}: events were removed from the end or the head was altered",
                        h.seq,
                        expected_seq - 1
                    ),
                })
            }
            Some(_) => {}
        }
        report.chains.push(ChainSummary {
            organisation_id: org,
            events: count,
            head: hex::encode(running.0),
        });
    }
    Ok(report)
}

fn to32(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if b.len() == 32 {
        out.copy_from_slice(b);
    }
    out
}
