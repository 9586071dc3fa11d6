//! `refuge`: the command-line interface.
//!
//! Exit codes: 0 success, 1 failure, 2 bad input or usage (the message names the file, line,
//! field or state at fault). Bad input never leaves partial writes: every file is parsed and
//! checked before anything is written, and each write is one transaction.

mod cli;
mod demo;
mod export_cmd;
mod input;
mod output;
mod rules_cmd;
mod serve;
mod synth_cmd;
mod token_cmd;

use anyhow::Context;
use clap::Parser;
use cli::{AppCmd, CaseCmd, Cli, Command, Format, OrgCmd};
use output::Out;
use refuge_core::application::{Decision, Move};
use refuge_core::clock::{SystemClock, Timestamp};
use refuge_core::event::Actor;
use refuge_core::ids::{OrgId, PersonId};
use refuge_crypto::{OsSeededEntropy, SecretString};
use refuge_store::{
    CaseKey, KeySource, Lookup, NewCase, Scope, SqlStore, Store, StoreConfig, StoreError,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// An error that is the user's to fix: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let format = cli.format;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => report(&e, format),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REFUGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Print an error and choose the exit code.
fn report(e: &anyhow::Error, format: Format) -> ExitCode {
    let store = e.downcast_ref::<StoreError>();
    let is_usage =
        e.downcast_ref::<UsageError>().is_some() || store.is_some_and(StoreError::is_user_error);
    let code = store
        .map(StoreError::code)
        .unwrap_or(if is_usage { "invalid" } else { "failure" });
    let message = format!("{e:#}");
    match format {
        Format::Json => {
            let j = serde_json::json!({ "error": { "code": code, "message": message } });
            eprintln!("{j}");
        }
        Format::Text => eprintln!("error: {message}"),
    }
    ExitCode::from(if is_usage { 2 } else { 1 })
}

/// Everything a command needs to reach the store.
struct Ctx {
    data: PathBuf,
    url: String,
    default_url: bool,
    key: KeySource,
}

impl Ctx {
    fn new(cli: &Cli) -> Self {
        let data = cli.data.clone();
        let (url, default_url) = match &cli.database_url {
            Some(u) => (u.clone(), false),
            None => (
                format!("sqlite://{}", data.join("refuge.db").display()),
                true,
            ),
        };
        let key = match std::env::var("REFUGE_PASSPHRASE") {
            Ok(p) if !p.is_empty() => KeySource::Passphrase(SecretString::new(p)),
            _ => KeySource::KeyFile(
                cli.key_file
                    .clone()
                    .unwrap_or_else(|| data.join("instance.key")),
            ),
        };
        Self {
            data,
            url,
            default_url,
            key,
        }
    }

    fn config(&self) -> anyhow::Result<StoreConfig> {
        let entropy =
            OsSeededEntropy::new().context("cannot read the operating system's randomness")?;
        Ok(StoreConfig::new(
            self.url.clone(),
            self.key.clone(),
            Arc::new(SystemClock),
            Arc::new(entropy),
        ))
    }

    /// Open the store of an initialised instance.
    async fn open(&self) -> anyhow::Result<SqlStore> {
        if self.default_url && !self.data.join("refuge.db").exists() {
            return Err(usage(format!(
                "no refuge instance in {}: run `refuge init` first, or pass --data / --database-url",
                self.data.display()
            )));
        }
        Ok(refuge_store::open(self.config()?).await?)
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(&cli);
    let out = Out::new(cli.format);
    match cli.command {
        Command::Init(a) => init(&ctx, &out, a).await,
        Command::Demo => run_demo(&ctx, &out).await,
        Command::Case(c) => case(&ctx, &out, c).await,
        Command::Person(cli::PersonCmd::Erase(a)) => erase_person(&ctx, &out, a).await,
        Command::Keys(cli::KeysCmd::Rotate(a)) => rotate_keys(&ctx, &out, a).await,
        Command::Application(c) => application(&ctx, &out, c).await,
        Command::Org(c) => org(&ctx, &out, c).await,
        Command::Audit(cli::AuditCmd::Verify) => audit_verify(&ctx, &out).await,
        Command::Programmes(c) => rules_cmd::programmes(&cli.programmes, c, cli.format),
        Command::Check(a) => rules_cmd::check(
            &cli.programmes,
            &a,
            cli.format,
            refuge_core::clock::Clock::today(&SystemClock),
        ),
        Command::Simulate(a) => rules_cmd::simulate(
            &cli.programmes,
            &a,
            cli.format,
            refuge_core::clock::Clock::today(&SystemClock),
        ),
        Command::Synth(a) => {
            synth_cmd::run(&a, cli.format == Format::Json).map(|()| ExitCode::SUCCESS)
        }
        Command::Backup(a) => backup(&ctx, &out, &a.out).await,
        Command::Restore(a) => restore(&ctx, &out, &a.file).await,
        Command::Serve(a) => serve::run(&ctx, &cli.programmes, a, cli.format).await,
        Command::DemoCode { login } => serve::demo_code(&ctx, &login),
        Command::Token(c) => token_cmd::run(&ctx, c, cli.format).await,
        Command::Export(c) => export_cmd::run(&ctx, c, cli.format).await,
    }
}

async fn init(ctx: &Ctx, out: &Out, a: cli::InitArgs) -> anyhow::Result<ExitCode> {
    let name: refuge_core::text::Label = a
        .org_name
        .parse()
        .map_err(|e| usage(format!("--org-name: {e}")))?;
    create_private_dir(&ctx.data)?;
    if let KeySource::KeyFile(path) = &ctx.key {
        // A new directory for the key is made owner-only; an existing one is left as it is.
        if let Some(parent) = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
        {
            create_private_dir(parent)?;
        }
        if path.exists() {
            return Err(usage(format!(
                "the key file {} already exists; refusing to overwrite it (move it away, or pass another --key-file)",
                path.display()
            )));
        }
    }
    let (store, org) = refuge_store::initialise(ctx.config()?, a.org_kind, name).await?;
    store.close().await;
    out.init(&ctx.data, &ctx.key, &org);
    Ok(ExitCode::SUCCESS)
}

/// Whether the instance `ctx` names has yet to be created: no SQLite file in the data
/// directory, or (with --database-url) a database holding no instance.
async fn no_instance_yet(ctx: &Ctx) -> anyhow::Result<bool> {
    if ctx.default_url {
        return Ok(!ctx.data.join("refuge.db").exists());
    }
    match refuge_store::open(ctx.config()?).await {
        Ok(store) => {
            store.close().await;
            Ok(false)
        }
        Err(refuge_store::StoreError::NotInitialised) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

async fn run_demo(ctx: &Ctx, out: &Out) -> anyhow::Result<ExitCode> {
    let fresh = no_instance_yet(ctx).await?;
    if fresh {
        let (kind, name) = demo::first_organisation()?;
        init(
            ctx,
            &Out::new(Format::Text).quiet(),
            cli::InitArgs {
                org_name: name,
                org_kind: kind,
            },
        )
        .await?;
    }
    let store = ctx.open().await?;
    let cases = demo::load(&store, refuge_core::clock::Clock::today(&SystemClock)).await?;
    let orgs = store.organisations().await?;
    store.close().await;
    out.demo(&ctx.data, fresh, &orgs, &cases);
    Ok(ExitCode::SUCCESS)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {} to its owner", dir.display()))?;
    }
    Ok(())
}

/// The organisation to act in: the one given, or the only one there is.
async fn pick_org(store: &SqlStore, given: Option<OrgId>) -> anyhow::Result<OrgId> {
    let orgs = store.organisations().await?;
    match given {
        Some(id) if orgs.iter().any(|o| o.id == id) => Ok(id),
        Some(id) => Err(usage(format!(
            "--org: no organisation {id} (see `refuge org list`)"
        ))),
        None => match orgs.as_slice() {
            [only] => Ok(only.id),
            [] => Err(usage(
                "there is no organisation yet: create one with `refuge org new`",
            )),
            _ => Err(usage(
                "there are several organisations: choose one with --org ID (see `refuge org list`)",
            )),
        },
    }
}

fn scope(org: Option<OrgId>) -> Scope {
    org.map_or(Scope::Instance, Scope::Organisation)
}

async fn rotate_keys(ctx: &Ctx, out: &Out, a: cli::KeysRotateArgs) -> anyhow::Result<ExitCode> {
    let new_passphrase = match std::env::var("REFUGE_NEW_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Some(refuge_crypto::SecretString::new(p)),
        _ => None,
    };
    if ctx.default_url && !ctx.data.join("refuge.db").exists() {
        return Err(usage(format!(
            "no refuge instance in {}: pass --data / --database-url",
            ctx.data.display()
        )));
    }
    let bar = output::spinner("rotating the instance key");
    let progress = |what: &str, done: u64| {
        bar.set_message(format!("{what} ({done} keys re-wrapped)"));
    };
    let report = refuge_store::rotate_key(
        ctx.config()?,
        refuge_store::Rotation {
            new_passphrase,
            grace: std::time::Duration::from_secs(a.grace),
        },
        &progress,
    )
    .await;
    bar.finish_and_clear();
    out.rotated(&report?);
    Ok(ExitCode::SUCCESS)
}

async fn erase_person(ctx: &Ctx, out: &Out, a: cli::PersonEraseArgs) -> anyhow::Result<ExitCode> {
    let key: CaseKey = a.id.parse().map_err(|_| {
        usage(format!(
            "{:?} is neither a person id, a case id nor a case reference (RF-XXXX-XXXX-XXXX)",
            a.id
        ))
    })?;
    if !a.yes {
        return Err(usage(
            "erasing a person cannot be undone: pass --yes to confirm".to_owned(),
        ));
    }
    let store = ctx.open().await?;
    // A UUID names the person, or else one of their cases; a reference names a case.
    let person = match key {
        CaseKey::Id(id) => {
            let as_person = PersonId(id.0);
            match store
                .erase_person(Actor::Operator, scope(a.org), as_person)
                .await
            {
                Err(refuge_store::StoreError::NotFound { .. }) => None,
                other => Some(other.map(|()| as_person)),
            }
        }
        CaseKey::Reference(_) => None,
    };
    let erased = match person {
        Some(done) => done?,
        None => {
            let case = store.case(scope(a.org), &key).await?;
            store
                .erase_person(Actor::Operator, scope(a.org), case.person_id)
                .await?;
            case.person_id
        }
    };
    out.person_erased(erased);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn case(ctx: &Ctx, out: &Out, cmd: CaseCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CaseCmd::New(a) => {
            // Parse everything before touching the store.
            let person = input::read_json::<refuge_core::person::Person>(&a.person, "--person")?;
            let facts = input::read_json::<refuge_core::facts::Facts>(&a.facts, "--facts")?;
            let store = ctx.open().await?;
            let org = pick_org(&store, a.org).await?;
            let case = store
                .create_case(
                    Actor::Operator,
                    NewCase {
                        organisation_id: org,
                        person,
                        facts,
                    },
                )
                .await?;
            out.case_created(&case);
            store.close().await;
        }
        CaseCmd::Show(a) => {
            let key: CaseKey = a.case.parse().map_err(|e| usage(format!("{e}")))?;
            let store = ctx.open().await?;
            let case = store.case(scope(a.org), &key).await?;
            let apps = store.applications(scope(a.org), case.id).await?;
            let identity = if a.reveal_identity {
                Some(
                    store
                        .reveal_identity(Actor::Operator, scope(a.org), case.id)
                        .await?,
                )
            } else {
                None
            };
            let events = if a.events {
                Some(store.case_events(scope(a.org), case.id).await?)
            } else {
                None
            };
            out.case(&case, &apps, identity.as_ref(), events.as_deref());
            store.close().await;
        }
        CaseCmd::List(a) => {
            let store = ctx.open().await?;
            let cases = match (&a.name, &a.document) {
                (Some(n), _) => {
                    store
                        .find_cases(scope(a.org), &Lookup::Name(n.clone()))
                        .await?
                }
                (None, Some(d)) => {
                    store
                        .find_cases(scope(a.org), &Lookup::Document(d.clone()))
                        .await?
                }
                (None, None) => store.cases(scope(a.org), a.after, a.limit).await?,
            };
            out.cases(&cases);
            store.close().await;
        }
        CaseCmd::Facts(a) => {
            let facts = input::read_json::<refuge_core::facts::Facts>(&a.facts, "--facts")?;
            let store = ctx.open().await?;
            let case = store
                .update_facts(
                    Actor::Operator,
                    scope(a.org),
                    a.case,
                    a.expect_version,
                    facts,
                )
                .await?;
            out.facts_updated(&case);
            store.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn application(ctx: &Ctx, out: &Out, cmd: AppCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AppCmd::New(a) => {
            let store = ctx.open().await?;
            let case = store.case(scope(a.org), &CaseKey::Id(a.case)).await?;
            let app = store
                .create_application(Actor::Operator, scope(a.org), case.id, a.programme)
                .await?;
            out.application(&app, "created");
            store.close().await;
        }
        AppCmd::List(a) => {
            let key: CaseKey = a.case.parse().map_err(|e| usage(format!("{e}")))?;
            let store = ctx.open().await?;
            let case = store.case(scope(a.org), &key).await?;
            out.applications(&store.applications(scope(a.org), case.id).await?);
            store.close().await;
        }
        AppCmd::Move(a) => {
            let mv = build_move(&a)?;
            let store = ctx.open().await?;
            let app = store
                .move_application(
                    Actor::Operator,
                    scope(a.org),
                    a.application,
                    a.expect_version,
                    mv,
                )
                .await?;
            out.application(&app, "moved");
            store.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn build_move(a: &cli::MoveArgs) -> anyhow::Result<Move> {
    let to = a.to;
    let reason = a
        .reason
        .as_deref()
        .map(|r| r.parse().map_err(|e| usage(format!("--reason: {e}"))))
        .transpose()?;
    let decision = if to.is_decided() {
        let basis = a.basis.as_deref().ok_or_else(|| {
            usage(format!("--to {to} records a decision: give its legal basis with --basis and its reasons with --reason"))
        })?;
        let reasons = reason.clone().ok_or_else(|| {
            usage(format!(
                "--to {to} records a decision: give its reasons with --reason"
            ))
        })?;
        Some(Decision {
            legal_basis: basis.parse().map_err(|e| usage(format!("--basis: {e}")))?,
            reasons,
            decided_by: Actor::Operator,
            decided_at: Timestamp::from_micros(0),
        })
    } else {
        if a.basis.is_some() {
            return Err(usage(format!(
                "--basis is only for decisions (--to granted or --to refused), not --to {to}"
            )));
        }
        None
    };
    Ok(Move {
        to,
        reason: if decision.is_some() { None } else { reason },
        decision,
    })
}

async fn org(ctx: &Ctx, out: &Out, cmd: OrgCmd) -> anyhow::Result<ExitCode> {
    let store = ctx.open().await?;
    match cmd {
        OrgCmd::List => out.orgs(&store.organisations().await?),
        OrgCmd::New(a) => {
            let name = a.name.parse().map_err(|e| usage(format!("--name: {e}")))?;
            let org = store
                .create_organisation(Actor::Operator, a.kind, name)
                .await?;
            out.orgs(std::slice::from_ref(&org));
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(ctx: &Ctx, out: &Out) -> anyhow::Result<ExitCode> {
    let store = ctx.open().await?;
    let report = store.verify_chain().await?;
    store.close().await;
    out.audit(&report);
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn backup(ctx: &Ctx, out: &Out, path: &Path) -> anyhow::Result<ExitCode> {
    let store = ctx.open().await?;
    let tmp = input::private_temp_beside(path)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let result = store.backup(&mut writer).await;
    store.close().await;
    let summary = match result.and_then(|s| {
        writer
            .into_inner()
            .map_err(|e| StoreError::Backup(e.to_string()))?
            .sync_all()
            .map_err(|e| StoreError::Backup(e.to_string()))?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move the backup into place at {}", path.display()))?;
    out.backup(path, &summary);
    Ok(ExitCode::SUCCESS)
}

async fn restore(ctx: &Ctx, out: &Out, path: &Path) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if ctx.default_url {
        create_private_dir(&ctx.data)?;
    }
    let bar = output::progress(size, "restoring");
    let mut reader = std::io::BufReader::new(bar.wrap_read(file));
    let progress = |_rows: u64| {};
    let summary = refuge_store::restore(ctx.config()?, &mut reader, &progress).await;
    bar.finish_and_clear();
    let summary =
        summary.map_err(|e| anyhow::Error::new(e).context(format!("{}", path.display())))?;
    out.restored(path, &summary);
    Ok(ExitCode::SUCCESS)
}
