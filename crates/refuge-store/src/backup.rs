//! Backups: a consistent, still-encrypted, backend-neutral copy of every table.
//!
//! The file is JSON Lines: a header line, one line per row (`{"table": …, "row": …}`, bytes in
//! base64) in dependency order, and a trailer with the row counts per table, the chain heads
//! and the SHA-256 of every line before it. The rows are exactly what the database holds:
//! ciphertexts stay ciphertexts, so a backup is as safe as the database and as useless without
//! the instance key. It restores on either backend.

use crate::backend::{Backend, BackupRow, TABLES};
use crate::error::{Result, StoreError};
use crate::keys::{self, KeySource};
use crate::rows::{MetaRow, RowBatch};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const FORMAT: &str = "refuge-backup";
const VERSION: u32 = 1;
const CHUNK: usize = 2_000;
/// Evidence can be large: write a chunk early once it holds this many bytes of it.
const CHUNK_BYTES: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    source: String,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: BackupSummary,
}

/// What a backup holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// Rows per table.
    pub counts: BTreeMap<String, u64>,
    /// Chain heads: organisation id → `seq:hash`.
    pub heads: BTreeMap<String, String>,
    /// SHA-256 (hex) of every line before the trailer.
    pub sha256: String,
}

impl BackupSummary {
    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.counts.values().sum()
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backup(format!("could not be written: {e}"))
}

/// Write a backup of everything in `backend` to `out`.
pub(crate) async fn write(
    backend: &dyn Backend,
    out: &mut (dyn std::io::Write + Send),
) -> Result<BackupSummary> {
    let mut hasher = Sha256::new();
    let mut summary = BackupSummary::default();
    let mut line = serde_json::to_vec(&Header {
        format: FORMAT.into(),
        version: VERSION,
        source: backend.name().into(),
    })
    .map_err(|e| StoreError::Backup(e.to_string()))?;
    line.push(b'\n');
    hasher.update(&line);
    out.write_all(&line).map_err(io)?;
    let mut sink = |row: BackupRow| -> Result<()> {
        *summary.counts.entry(row.table().to_owned()).or_default() += 1;
        if let BackupRow::ChainHeads(h) = &row {
            summary.heads.insert(
                h.organisation_id.to_string(),
                format!("{}:{}", h.seq, hex::encode(&h.hash)),
            );
        }
        let mut line = serde_json::to_vec(&row).map_err(|e| StoreError::Backup(e.to_string()))?;
        line.push(b'\n');
        hasher.update(&line);
        out.write_all(&line).map_err(io)
    };
    backend.export(&mut sink).await?;
    for t in TABLES {
        summary.counts.entry(t.to_owned()).or_default();
    }
    summary.sha256 = hex::encode(hasher.finalize());
    let mut line = serde_json::to_vec(&Trailer {
        end: summary.clone(),
    })
    .map_err(|e| StoreError::Backup(e.to_string()))?;
    line.push(b'\n');
    out.write_all(&line).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(summary)
}

/// Restore a backup into `backend`, which must be empty, in one transaction. Nothing is
/// written unless the whole file is intact and the key matches.
pub(crate) async fn restore(
    backend: &dyn Backend,
    key: &KeySource,
    input: &mut (dyn std::io::BufRead + Send),
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<BackupSummary> {
    if backend.counts().await?.iter().any(|(_, n)| *n > 0) {
        return Err(StoreError::Backup("cannot be restored here: the target database is not empty (restore into a new data directory or database)".into()));
    }
    let mut lines = read_lines(input);
    let first = lines
        .next()
        .ok_or_else(|| StoreError::Backup("file is empty".into()))??;
    let header: Header = serde_json::from_slice(&first)
        .ok()
        .filter(|h: &Header| h.format == FORMAT)
        .ok_or_else(|| StoreError::Backup("line 1: not a refuge backup".into()))?;
    if header.version != VERSION {
        return Err(StoreError::Backup(format!(
            "line 1: version {} is not supported (expected {VERSION})",
            header.version
        )));
    }
    let mut hasher = Sha256::new();
    hasher.update(&first);
    hasher.update(b"\n");

    let mut conn = backend.writer().await?;
    conn.begin().await?;
    let result = async {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut batch = RowBatch::default();
        let mut pending = 0usize;
        let mut pending_bytes = 0usize;
        let mut meta: Option<Vec<MetaRow>> = Some(Vec::new());
        let mut line_no = 1u64;
        let mut trailer = None;
        for line in lines {
            let line = line?;
            line_no += 1;
            if line.starts_with(b"{\"end\"") {
                let t: Trailer = serde_json::from_slice(&line).map_err(|e| {
                    StoreError::Backup(format!("line {line_no}: malformed trailer: {e}"))
                })?;
                trailer = Some(t.end);
                break;
            }
            hasher.update(&line);
            hasher.update(b"\n");
            let row: BackupRow = serde_json::from_slice(&line)
                .map_err(|e| StoreError::Backup(format!("line {line_no}: {e}")))?;
            *counts.entry(row.table().to_owned()).or_default() += 1;
            if let BackupRow::Evidence(e) = &row {
                pending_bytes += e.content_ct.len();
            }
            match (&mut meta, row) {
                (Some(m), BackupRow::InstanceMeta(r)) => m.push(r),
                (Some(_), other) => {
                    // All key material has been read: check the key before writing anything.
                    let m = meta.take().unwrap_or_default();
                    keys::unlock(key, &m)?;
                    batch.meta = m;
                    other.push_into(&mut batch);
                }
                (None, other) => other.push_into(&mut batch),
            }
            pending += 1;
            if (pending >= CHUNK || pending_bytes >= CHUNK_BYTES) && meta.is_none() {
                conn.write_rows(&batch).await?;
                batch = RowBatch::default();
                pending = 0;
                pending_bytes = 0;
                progress(line_no - 1);
            }
        }
        if let Some(m) = meta.take() {
            keys::unlock(key, &m)?;
            batch.meta = m;
        }
        let trailer = trailer
            .ok_or_else(|| StoreError::Backup("is truncated: the trailer is missing".into()))?;
        if hex::encode(hasher.finalize_reset()) != trailer.sha256 {
            return Err(StoreError::Backup(
                "is damaged: its checksum does not match".into(),
            ));
        }
        for (table, n) in &trailer.counts {
            if counts.get(table).copied().unwrap_or(0) != *n {
                return Err(StoreError::Backup(format!(
                    "is damaged: {table} should have {n} rows"
                )));
            }
        }
        conn.write_rows(&batch).await?;
        progress(line_no - 1);
        Ok(trailer)
    }
    .await;
    match result {
        Ok(summary) => {
            conn.commit().await?;
            Ok(summary)
        }
        Err(e) => {
            let _ = conn.rollback().await;
            Err(e)
        }
    }
}

fn read_lines(
    input: &mut (dyn std::io::BufRead + Send),
) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = Vec::new();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                Some(Ok(buf))
            }
            Err(e) => {
                done = true;
                Some(Err(StoreError::Backup(format!("could not be read: {e}"))))
            }
        }
    })
}
