//! `refuge export`: the operator's side of exports. Staff ask for exports and collect them in
//! the workspace or through the API; here the operator lists them, approves or refuses one
//! (as a second person, recorded as `operator`), and anyone holding an export file and its
//! passphrase decrypts it on a trusted computer (no instance needed).

use crate::cli::Format;
use crate::{Ctx, usage};
use clap::{Args, Subcommand};
use refuge_core::event::Actor;
use refuge_core::ids::ExportId;
use refuge_crypto::SecretString;
use refuge_store::{Export, Scope, Store};
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `refuge export` does.
#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// List every organisation's exports, newest first: who asked, why, how many cases, where
    /// each stands.
    List,
    /// Approve an export someone asked for; they can then collect it once.
    Approve(IdArgs),
    /// Refuse an export someone asked for.
    Refuse(IdArgs),
    /// Decrypt an export file. The passphrase is read from REFUGE_EXPORT_PASSPHRASE, or asked
    /// for on the terminal. The cases are written as JSON to --out (created owner-only; it
    /// must not exist) or to standard output.
    Decrypt(DecryptArgs),
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The export's id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// The encrypted export file (refuge-export-….bin).
    pub file: PathBuf,
    /// Where to write the decrypted JSON (default: standard output).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, cmd: ExportCmd, format: Format) -> anyhow::Result<ExitCode> {
    match cmd {
        ExportCmd::List => {
            let store = ctx.open().await?;
            let exports = store.exports(Scope::Instance).await;
            store.close().await;
            print_exports(&exports?, format);
            Ok(ExitCode::SUCCESS)
        }
        ExportCmd::Approve(a) => decide(ctx, &a.id, true, format).await,
        ExportCmd::Refuse(a) => decide(ctx, &a.id, false, format).await,
        ExportCmd::Decrypt(a) => decrypt(&a),
    }
}

fn export_json(e: &Export) -> serde_json::Value {
    json!({
        "id": e.id,
        "organisation_id": e.organisation_id,
        "requested_by": e.requested_by,
        "cases": e.cases.len(),
        "purpose": e.purpose,
        "state": e.state,
        "decided_by": e.decided_by.map(|a| a.to_string()),
        "created_at": e.created_at.to_rfc3339(),
        "decided_at": e.decided_at.map(|t| t.to_rfc3339()),
        "collected_at": e.collected_at.map(|t| t.to_rfc3339()),
    })
}

fn print_exports(exports: &[Export], format: Format) {
    match format {
        Format::Json => {
            let v: Vec<_> = exports.iter().map(export_json).collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            if exports.is_empty() {
                println!("no exports");
            }
            for e in exports {
                println!(
                    "{}  {:<10} {:>4} cases  asked {} by user {}",
                    e.id,
                    e.state.as_str(),
                    e.cases.len(),
                    e.created_at.to_rfc3339(),
                    e.requested_by
                );
                println!("    purpose: {}", e.purpose.as_str());
            }
        }
    }
}

async fn decide(ctx: &Ctx, id: &str, approve: bool, format: Format) -> anyhow::Result<ExitCode> {
    let id: ExportId = id
        .trim()
        .parse()
        .map_err(|e| usage(format!("export id {id:?}: {e}")))?;
    let store = ctx.open().await?;
    let result = store
        .decide_export(Actor::Operator, Scope::Instance, id, approve)
        .await;
    store.close().await;
    let e = result?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&export_json(&e)).unwrap_or_default()
        ),
        Format::Text => println!(
            "export {} {} ({} cases)",
            e.id,
            if approve { "approved" } else { "refused" },
            e.cases.len()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn passphrase() -> anyhow::Result<SecretString> {
    if let Ok(p) = std::env::var("REFUGE_EXPORT_PASSPHRASE")
        && !p.is_empty()
    {
        return Ok(SecretString::new(p));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        // One line from a pipe (e.g. a password manager).
        let mut line = String::new();
        stdin.lock().read_to_string(&mut line).map_err(|e| {
            usage(format!(
                "cannot read the passphrase from standard input: {e}"
            ))
        })?;
        let p = line.trim_end_matches(['\n', '\r']).to_owned();
        if p.is_empty() {
            return Err(usage(
                "no passphrase: set REFUGE_EXPORT_PASSPHRASE or pipe it on standard input",
            ));
        }
        return Ok(SecretString::new(p));
    }
    eprint!("Passphrase of the export: ");
    std::io::stderr().flush().ok();
    let p = read_hidden_line()?;
    eprintln!();
    Ok(SecretString::new(p))
}

/// Read a line from the terminal without echoing it (`stty -echo`, restored afterwards).
fn read_hidden_line() -> anyhow::Result<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    read.map_err(|e| usage(format!("cannot read the passphrase: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn decrypt(a: &DecryptArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&a.file).map_err(|e| usage(format!("{}: {e}", a.file.display())))?;
    if !refuge_crypto::is_export(&bytes) {
        return Err(usage(format!(
            "{}: not a refuge export file (it does not begin with `refuge-export-v1`)",
            a.file.display()
        )));
    }
    if let Some(out) = &a.out
        && out.exists()
    {
        return Err(usage(format!(
            "--out {}: the file exists; refusing to overwrite it",
            out.display()
        )));
    }
    let pass = passphrase()?;
    let plain = refuge_crypto::open_export(&pass, &bytes).map_err(|e| match e {
        refuge_crypto::CryptoError::Decrypt => usage(format!(
            "{}: wrong passphrase, or the file was altered",
            a.file.display()
        )),
        other => usage(format!("{}: {other}", a.file.display())),
    })?;
    match &a.out {
        Some(out) => {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut f = o
                .open(out)
                .map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
            f.write_all(&plain)?;
            f.sync_all()?;
            eprintln!("decrypted to {} ({} bytes)", out.display(), plain.len());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&plain)?;
            stdout.write_all(b"\n")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
