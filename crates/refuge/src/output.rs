//! What commands print: readable text, or JSON in the shapes documented in docs/cli.md.
//! Identity is printed only by `case show --reveal-identity`; logs never carry it.

use crate::cli::Format;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use refuge_core::application::Application;
use refuge_core::case::Case;
use refuge_core::event::Event;
use refuge_core::facts::{Fact, Facts};
use refuge_core::org::Organisation;
use refuge_core::person::Person;
use refuge_store::{BackupSummary, CaseSummary, ChainReport, KeySource};
use serde_json::{Value, json};
use std::path::Path;

/// The output of one command.
pub struct Out {
    format: Format,
    quiet: bool,
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn case_json(c: &Case) -> Value {
    json!({
        "id": c.id,
        "reference": c.reference,
        "organisation_id": c.organisation_id,
        "person_id": c.person_id,
        "version": c.version,
        "created_at": c.created_at.to_rfc3339(),
        "updated_at": c.updated_at.to_rfc3339(),
        "facts": c.facts,
    })
}

fn application_json(a: &Application) -> Value {
    json!({
        "id": a.id,
        "case_id": a.case_id,
        "organisation_id": a.organisation_id,
        "programme": a.programme,
        "state": a.state,
        "version": a.version,
        "decision": a.decision.as_ref().map(|d| json!({
            "legal_basis": d.legal_basis,
            "reasons": d.reasons,
            "decided_by": d.decided_by,
            "decided_at": d.decided_at.to_rfc3339(),
        })),
        "created_at": a.created_at.to_rfc3339(),
        "updated_at": a.updated_at.to_rfc3339(),
    })
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn facts_text(f: &Facts) {
    let mut any = false;
    for fact in Fact::ALL {
        if let Some(v) = f.get(*fact) {
            println!("  {:<24} {v}", fact.name());
            any = true;
        }
    }
    if !any {
        println!("  (none known)");
    }
}

/// The name of a serialisable unit enum as written in files.
fn name_of<T: serde::Serialize>(v: &T) -> String {
    value_text(&to_json(v))
}

impl Out {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            quiet: false,
        }
    }

    /// An output that prints nothing (for steps inside another command).
    pub fn quiet(self) -> Self {
        Self {
            quiet: true,
            ..self
        }
    }

    fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A key rotation done.
    pub fn rotated(&self, r: &refuge_store::RotationReport) {
        if self.json() {
            print_json(&to_json(r));
        } else if !self.quiet {
            println!(
                "The instance key is now {} (was {}): {} persons' and {} users' data keys re-wrapped.",
                r.new_key_id, r.old_key_id, r.persons, r.users
            );
            if let Some(f) = &r.retired_key_file {
                println!(
                    "The old key is kept in {}: backups made before now need it. Delete it when they expire.",
                    f.display()
                );
            }
        }
    }

    /// A person erased.
    pub fn person_erased(&self, person: refuge_core::ids::PersonId) {
        if self.json() {
            print_json(&json!({"person_id": person, "erased": true}));
        } else if !self.quiet {
            println!(
                "erased person {person}: their data key is destroyed; their cases and events remain, unreadable"
            );
        }
    }

    pub fn init(&self, data: &Path, key: &KeySource, org: &Organisation) {
        if self.quiet {
            return;
        }
        if self.json() {
            print_json(&json!({ "data_dir": data, "key": key.describe(), "organisation": org }));
            return;
        }
        println!("Initialised refuge in {}", data.display());
        println!("Instance key: {}", key.describe());
        if let KeySource::KeyFile(p) = key {
            println!(
                "  Keep a copy of {} somewhere safe and separate: without it, nothing can be decrypted.",
                p.display()
            );
        }
        println!("Organisation: {} ({}, {})", org.name, org.kind, org.id);
    }

    pub fn demo(&self, data: &Path, fresh: bool, orgs: &[Organisation], cases: &[CaseSummary]) {
        if self.json() {
            print_json(
                &json!({ "data_dir": data, "created": fresh, "organisations": orgs, "cases": cases }),
            );
            return;
        }
        if fresh {
            println!(
                "Created a demonstration instance in {} (key file {}/instance.key).",
                data.display(),
                data.display()
            );
        } else {
            println!("Demonstration instance in {}.", data.display());
        }
        println!("All persons are invented; their situations follow the source documents.");
        println!();
        println!("Organisations:");
        self.orgs(orgs);
        println!();
        println!("Cases:");
        self.cases(cases);
        println!();
        println!("Try:");
        if let Some(c) = cases.first() {
            println!(
                "  refuge --data {} case show {} --events",
                data.display(),
                c.reference
            );
            println!(
                "  refuge --data {} case show {} --reveal-identity   (recorded as an event)",
                data.display(),
                c.reference
            );
        }
        println!("  refuge --data {} audit verify", data.display());
        println!("  refuge --help");
    }

    pub fn case_created(&self, c: &Case) {
        if self.json() {
            print_json(&json!({ "case": case_json(c) }));
        } else {
            println!("Created case {} ({})", c.reference, c.id);
            println!("Version: {}", c.version);
        }
    }

    pub fn facts_updated(&self, c: &Case) {
        if self.json() {
            print_json(&json!({ "case": case_json(c) }));
        } else {
            println!(
                "Updated facts of case {} ({}): now at version {}",
                c.reference, c.id, c.version
            );
        }
    }

    pub fn case(
        &self,
        c: &Case,
        apps: &[Application],
        identity: Option<&Person>,
        events: Option<&[Event]>,
    ) {
        if self.json() {
            let mut v = json!({
                "case": case_json(c),
                "applications": apps.iter().map(application_json).collect::<Vec<_>>(),
                "identity": identity,
            });
            if let (Some(ev), Value::Object(m)) = (events, &mut v) {
                m.insert("events".into(), to_json(&ev));
            }
            print_json(&v);
            return;
        }
        println!("Case {}  ({})", c.reference, c.id);
        println!("Organisation: {}", c.organisation_id);
        println!(
            "Version: {}   created {}   updated {}",
            c.version, c.created_at, c.updated_at
        );
        println!("Facts:");
        facts_text(&c.facts);
        println!("Applications:");
        if apps.is_empty() {
            println!("  (none)");
        }
        for a in apps {
            println!(
                "  {}  {:<28} {:<15} v{}",
                a.id,
                a.programme.as_str(),
                a.state.as_str(),
                a.version
            );
            if let Some(d) = &a.decision {
                println!(
                    "      decided {} by {} on {}: {}",
                    a.state, d.decided_by, d.decided_at, d.legal_basis
                );
                println!("      reasons: {}", d.reasons);
            }
        }
        match identity {
            Some(p) => {
                println!("Identity (this reveal has been recorded):");
                if let Some(ps) = &p.pseudonym {
                    println!("  pseudonym    {ps}");
                }
                for n in &p.names {
                    println!("  name         {} [{}]", n.value, name_of(&n.script()));
                }
                if let Some(b) = p.birth_date {
                    println!("  birth date   {b}");
                }
                for d in &p.documents {
                    println!("  document     {} {}", name_of(&d.kind), d.number);
                }
                for k in &p.contacts {
                    println!("  contact      {} {}", name_of(&k.kind), k.value);
                }
            }
            None => println!(
                "Identity: hidden (add --reveal-identity; the reveal is recorded as an event)"
            ),
        }
        if let Some(events) = events {
            println!("Events:");
            for e in events {
                println!(
                    "  #{:<5} {}  {:<20} {}  {}",
                    e.seq,
                    e.at,
                    e.kind.as_str(),
                    e.actor,
                    e.meta
                );
            }
        }
    }

    pub fn cases(&self, cases: &[CaseSummary]) {
        if self.json() {
            print_json(&json!({ "cases": cases }));
            return;
        }
        if cases.is_empty() {
            println!("No cases.");
            return;
        }
        println!(
            "{:<18} {:<36} {:<20} {:>3}  UPDATED",
            "REFERENCE", "ID", "PSEUDONYM", "V"
        );
        for c in cases {
            let p = c.pseudonym.as_ref().map_or("-", |p| p.as_str());
            println!(
                "{:<18} {:<36} {:<20} {:>3}  {}",
                c.reference.as_str(),
                c.id.to_string(),
                p,
                c.version,
                c.updated_at
            );
        }
    }

    pub fn application(&self, a: &Application, what: &str) {
        if self.json() {
            print_json(&json!({ "application": application_json(a) }));
        } else {
            println!(
                "Application {} {what}: {} is {} (version {})",
                a.id,
                a.programme.as_str(),
                a.state,
                a.version
            );
        }
    }

    pub fn applications(&self, apps: &[Application]) {
        if self.json() {
            print_json(
                &json!({ "applications": apps.iter().map(application_json).collect::<Vec<_>>() }),
            );
            return;
        }
        for a in apps {
            println!(
                "{}  {:<28} {:<15} v{}",
                a.id,
                a.programme.as_str(),
                a.state.as_str(),
                a.version
            );
        }
    }

    pub fn orgs(&self, orgs: &[Organisation]) {
        if self.json() {
            print_json(&json!({ "organisations": orgs }));
            return;
        }
        for o in orgs {
            println!("{}  {:<10} {}", o.id, o.kind.as_str(), o.name);
        }
    }

    pub fn audit(&self, r: &ChainReport) {
        if self.json() {
            print_json(&json!({
                "intact": r.is_intact(),
                "events": r.events(),
                "chains": r.chains,
                "problems": r.problems,
            }));
            return;
        }
        for c in &r.chains {
            println!(
                "chain {}: {} events, head {}",
                c.organisation_id, c.events, c.head
            );
        }
        if r.is_intact() {
            println!(
                "OK: {} events in {} chains verified",
                r.events(),
                r.chains.len()
            );
        } else {
            for p in &r.problems {
                println!("TAMPERED: {p}");
            }
            println!("FAILED: {} problem(s) in the event log", r.problems.len());
        }
    }

    pub fn backup(&self, path: &Path, s: &BackupSummary) {
        if self.json() {
            print_json(
                &json!({ "file": path, "rows": s.rows(), "counts": s.counts, "sha256": s.sha256 }),
            );
        } else {
            println!(
                "Wrote backup {} ({} rows, sha256 {})",
                path.display(),
                s.rows(),
                s.sha256
            );
            println!("It is still encrypted: it restores only with this instance's key.");
        }
    }

    pub fn restored(&self, path: &Path, s: &BackupSummary) {
        if self.json() {
            print_json(
                &json!({ "file": path, "rows": s.rows(), "counts": s.counts, "sha256": s.sha256 }),
            );
        } else {
            println!(
                "Restored {} ({} rows); the event log verifies.",
                path.display(),
                s.rows()
            );
        }
    }
}

/// A spinner with a message on standard error, hidden when stderr is not a terminal.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A progress bar on standard error for `len` bytes, hidden when stderr is not a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
