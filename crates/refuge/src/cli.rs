//! The command line, as clap sees it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use refuge_core::application::{ApplicationState, ProgrammeId};
use refuge_core::ids::{ApplicationId, CaseId, OrgId};
use refuge_core::org::OrganisationKind;
use std::path::PathBuf;

/// refuge: find protection routes, apply safely, build and decide cases, for people who
/// refuse military service in Russia, Belarus and Ukraine.
///
/// Everything about a person is encrypted at rest under a per-person key wrapped by the
/// instance key (a key file, or REFUGE_PASSPHRASE). Every change is a hash-chained event.
#[derive(Parser, Debug)]
#[command(name = "refuge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Data directory (SQLite database and, by default, the key file).
    #[arg(
        long,
        global = true,
        env = "REFUGE_DATA",
        default_value = "./refuge-data",
        value_name = "DIR"
    )]
    pub data: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: SQLite in the data directory).
    #[arg(
        long,
        global = true,
        env = "REFUGE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Instance key file (default: DATA/instance.key). Ignored when REFUGE_PASSPHRASE is set.
    #[arg(long, global = true, env = "REFUGE_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub programmes: crate::rules_cmd::ProgrammesDir,
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text.
    Text,
    /// JSON, in the shapes documented in docs/cli.md.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new instance: data directory, instance key, database, first organisation.
    Init(InitArgs),
    /// Set up a demonstration instance (if there is none) and load demo organisations and
    /// invented persons modelled on the source documents.
    Demo,
    /// Cases: a person's matter within an organisation.
    #[command(subcommand)]
    Case(CaseCmd),
    /// The instance key: rotate it (every data key re-wrapped; no data re-encrypted).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Persons: erase one for good (crypto-shredding).
    #[command(subcommand)]
    Person(PersonCmd),
    /// Applications of a case to a programme, and their state machine.
    #[command(subcommand, alias = "app")]
    Application(AppCmd),
    /// Organisations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// The event log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Programmes: the protection routes and their rules.
    #[command(subcommand)]
    Programmes(crate::rules_cmd::ProgrammesCmd),
    /// Check which programmes a person's facts make them eligible for, with reasons.
    Check(crate::rules_cmd::CheckArgs),
    /// Run every programme, and reforms against their programmes, over a caseload.
    Simulate(crate::rules_cmd::SimulateArgs),
    /// Write a synthetic caseload (CSV, JSON Lines or .rcl) with documented distributions.
    Synth(crate::synth_cmd::SynthArgs),
    /// Write a consistent, still-encrypted copy of everything to a file.
    Backup(BackupArgs),
    /// Restore a backup into an empty database (SQLite or PostgreSQL).
    Restore(RestoreArgs),
    /// Serve the applicant portal, the staff workspace and the JSON API.
    Serve(crate::serve::ServeArgs),
    /// API tokens of staff users for the JSON API: issue (shown once), list, revoke.
    #[command(subcommand)]
    Token(crate::token_cmd::TokenCmd),
    /// Exports of cases: list, approve or refuse as the operator, and decrypt a collected
    /// export file.
    #[command(subcommand)]
    Export(crate::export_cmd::ExportCmd),
    /// Print the current sign-in code of a demo staff user (demo instances only).
    DemoCode {
        /// The demo user's login.
        login: String,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Name of the first organisation.
    #[arg(long, default_value = "Local organisation")]
    pub org_name: String,
    /// Kind of the first organisation: ngo, authority or embassy.
    #[arg(long, default_value = "ngo", value_parser = parse_org_kind)]
    pub org_kind: OrganisationKind,
}

#[derive(Subcommand, Debug)]
pub enum CaseCmd {
    /// Open a case from a person file and a facts file (JSON; `-` reads standard input).
    New(CaseNewArgs),
    /// Show a case: facts, applications; identity only with --reveal-identity (audited).
    Show(CaseShowArgs),
    /// List cases (pseudonyms only), or find them by exact name or document number.
    List(CaseListArgs),
    /// Replace a case's facts, if it is still at the version you based the change on.
    Facts(CaseFactsArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Replace the instance key with a new one while servers keep running: every data key is
    /// wrapped anew under it and nothing else is re-encrypted. With a key file, the new key is
    /// written beside it as KEY.next, running servers take it up within 5 s, and at the end it
    /// replaces KEY; the old key is kept as KEY.retired-<id> for older backups. A passphrase
    /// instance takes its new passphrase from REFUGE_NEW_PASSPHRASE; stop its servers first.
    Rotate(KeysRotateArgs),
}

#[derive(Args, Debug)]
pub struct KeysRotateArgs {
    /// Seconds to give running servers to take up the new key before re-wrapping starts
    /// (they look every 5 s).
    #[arg(long, default_value_t = 12, value_name = "SECONDS")]
    pub grace: u64,
}

#[derive(Subcommand, Debug)]
pub enum PersonCmd {
    /// Erase a person: destroy their data key, so that their identity, facts, evidence, notes
    /// and messages can never be read again. Their cases, applications and events stay (ids,
    /// states, dates), and `refuge audit verify` still passes. Cannot be undone.
    Erase(PersonEraseArgs),
}

#[derive(Args, Debug)]
pub struct PersonEraseArgs {
    /// The person's id, or the id or reference (RF-XXXX-XXXX-XXXX) of one of their cases.
    pub id: String,
    /// Confirm: the erasure cannot be undone.
    #[arg(long)]
    pub yes: bool,
    /// Act within this organisation only (the person's own).
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Args, Debug)]
pub struct CaseNewArgs {
    /// Person file: pseudonym, names, birth date, documents, contacts (see docs/cli.md).
    #[arg(long, value_name = "FILE")]
    pub person: PathBuf,
    /// Facts file: a JSON object keyed by fact name (see docs/facts.md).
    #[arg(long, value_name = "FILE")]
    pub facts: PathBuf,
    /// Organisation opening the case (default: the only one).
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Args, Debug)]
pub struct CaseShowArgs {
    /// Case id or reference (RF-XXXX-XXXX-XXXX).
    pub case: String,
    /// Also show who the person is. This is recorded as an event.
    #[arg(long)]
    pub reveal_identity: bool,
    /// Also show the case's events.
    #[arg(long)]
    pub events: bool,
    /// Act within this organisation only.
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Args, Debug)]
pub struct CaseListArgs {
    /// Only this organisation's cases.
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Start after this case id (for paging).
    #[arg(long, value_name = "ID")]
    pub after: Option<CaseId>,
    /// Find by exact full name (compared by blind index; case and spacing ignored).
    #[arg(long, value_name = "NAME", conflicts_with = "document")]
    pub name: Option<String>,
    /// Find by exact document number (letters and digits compared).
    #[arg(long, value_name = "NUMBER")]
    pub document: Option<String>,
}

#[derive(Args, Debug)]
pub struct CaseFactsArgs {
    /// Case id.
    pub case: CaseId,
    /// Facts file (JSON; `-` reads standard input). Replaces all facts.
    #[arg(long, value_name = "FILE")]
    pub facts: PathBuf,
    /// The version the change is based on (from `case show`); a newer one is a conflict.
    #[arg(long, value_name = "N")]
    pub expect_version: u64,
    /// Act within this organisation only.
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Start a draft application of a case to a programme.
    New(AppNewArgs),
    /// List a case's applications.
    List(AppListArgs),
    /// Move an application to another state.
    Move(MoveArgs),
}

#[derive(Args, Debug)]
pub struct AppNewArgs {
    /// Case id.
    pub case: CaseId,
    /// Programme id, e.g. eu-humanitarian-visa.
    #[arg(long, value_name = "ID")]
    pub programme: ProgrammeId,
    /// Act within this organisation only.
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Args, Debug)]
pub struct AppListArgs {
    /// Case id or reference.
    pub case: String,
    /// Act within this organisation only.
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Args, Debug)]
pub struct MoveArgs {
    /// Application id.
    pub application: ApplicationId,
    /// Target state: submitted, in_review, info_requested, interview, granted, refused,
    /// appealed, closed, withdrawn.
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    pub to: ApplicationState,
    /// Why; for granted or refused, the reasons of the decision (required).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Legal basis of a decision (required with --to granted or refused).
    #[arg(long, value_name = "TEXT")]
    pub basis: Option<String>,
    /// Only if the application is still at this version.
    #[arg(long, value_name = "N")]
    pub expect_version: Option<u64>,
    /// Act within this organisation only.
    #[arg(long, value_name = "ID")]
    pub org: Option<OrgId>,
}

#[derive(Subcommand, Debug)]
pub enum OrgCmd {
    /// List organisations.
    List,
    /// Create an organisation.
    New(OrgNewArgs),
}

#[derive(Args, Debug)]
pub struct OrgNewArgs {
    /// Its public name.
    #[arg(long)]
    pub name: String,
    /// ngo, authority or embassy.
    #[arg(long, value_parser = parse_org_kind)]
    pub kind: OrganisationKind,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Verify every organisation's hash chain; exits 1 naming each altered, missing or
    /// reordered event.
    Verify,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup (written to a temporary file, then moved into place).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
}

fn parse_state(s: &str) -> Result<ApplicationState, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_org_kind(s: &str) -> Result<OrganisationKind, String> {
    s.parse().map_err(|e| format!("{e}"))
}
