//! Demonstration data: organisations modelled on the sources, and invented persons in the
//! situations the sources describe (`demo/personas.json`, each entry citing its passage).

use crate::usage;
use refuge_core::application::{ApplicationState, Move};
use refuge_core::event::Actor;
use refuge_core::facts::Facts;
use refuge_core::org::OrganisationKind;
use refuge_core::person::Person;
use refuge_store::{CaseSummary, NewCase, Scope, SqlStore, Store};
use serde::Deserialize;
use std::collections::HashMap;
use time::Date;

const DEMO: &str = include_str!("../demo/personas.json");

#[derive(Deserialize)]
struct Demo {
    organisations: Vec<DemoOrg>,
    personas: Vec<Persona>,
    staff: Vec<DemoStaff>,
    intake: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct DemoStaff {
    org: String,
    login: String,
    name: String,
    roles: Vec<refuge_core::org::Role>,
}

/// A demo staff user's credentials, printed so that a newcomer can sign in. Kept in
/// `DATA/demo-credentials.json` (owner-only): a demo instance only.
#[derive(serde::Serialize, Deserialize, Clone, Debug)]
pub struct Credential {
    /// Login.
    pub login: String,
    /// Display name.
    pub name: String,
    /// Organisation name.
    pub organisation: String,
    /// Password.
    pub password: String,
    /// TOTP secret (base32), for an authenticator app.
    pub totp_base32: String,
    /// The raw TOTP secret, hex.
    pub totp_hex: String,
}

/// The file demo credentials are kept in.
pub fn credentials_path(data: &std::path::Path) -> std::path::PathBuf {
    data.join("demo-credentials.json")
}

/// Create the demo staff users (once): random passwords and TOTP secrets, written to
/// `DATA/demo-credentials.json`. Returns the credentials (read back if they exist).
pub async fn load_staff(
    store: &SqlStore,
    data: &std::path::Path,
    entropy: &dyn refuge_crypto::Entropy,
) -> anyhow::Result<Vec<Credential>> {
    let path = credentials_path(data);
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        return Ok(serde_json::from_str(&text)?);
    }
    let d = demo()?;
    let orgs = store.organisations().await?;
    let mut out = Vec::new();
    for s in &d.staff {
        let org_name = &d
            .organisations
            .iter()
            .find(|o| o.key == s.org)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "demo staff {} names unknown organisation {}",
                    s.login,
                    s.org
                )
            })?
            .name;
        let org = orgs
            .iter()
            .find(|o| o.name.as_str() == org_name)
            .ok_or_else(|| anyhow::anyhow!("demo organisation {org_name} is not loaded"))?;
        let user = store
            .create_user(
                Actor::Operator,
                org.id,
                s.login.parse()?,
                s.name.parse()?,
                s.roles.clone(),
            )
            .await?;
        let mut raw = [0u8; 12];
        entropy.fill(&mut raw)?;
        let password = format!("demo-{}", hex_lower(&raw));
        let totp = refuge_web::totp::enrol(
            store,
            entropy,
            Actor::Operator,
            user.id,
            &refuge_crypto::SecretString::new(password.clone()),
        )
        .await?;
        let totp = totp.expose();
        out.push(Credential {
            login: s.login.clone(),
            name: s.name.clone(),
            organisation: org_name.clone(),
            password,
            totp_base32: refuge_web::totp::base32(totp),
            totp_hex: hex_lower(totp),
        });
    }
    write_private(&path, &serde_json::to_string_pretty(&out)?)?;
    Ok(out)
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Which demo organisation receives portal applications to each programme.
pub async fn intake(
    store: &SqlStore,
) -> anyhow::Result<
    std::collections::BTreeMap<refuge_core::application::ProgrammeId, refuge_core::ids::OrgId>,
> {
    let d = demo()?;
    let orgs = store.organisations().await?;
    let mut out = std::collections::BTreeMap::new();
    for (programme, key) in &d.intake {
        let Some(name) = d
            .organisations
            .iter()
            .find(|o| &o.key == key)
            .map(|o| &o.name)
        else {
            anyhow::bail!("demo intake names unknown organisation {key}");
        };
        if let Some(org) = orgs.iter().find(|o| o.name.as_str() == name) {
            out.insert(programme.parse()?, org.id);
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct DemoOrg {
    key: String,
    kind: OrganisationKind,
    name: String,
}

#[derive(Deserialize)]
struct Persona {
    org: String,
    #[allow(dead_code)]
    source: String,
    person: Person,
    facts: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    relative_dates: HashMap<String, i64>,
    applications: Vec<DemoApplication>,
    #[serde(default)]
    deadlines: Vec<DemoDeadline>,
}

#[derive(Deserialize)]
struct DemoDeadline {
    kind: refuge_core::case::DeadlineKind,
    in_days: i64,
    note: String,
}

#[derive(Deserialize)]
struct DemoApplication {
    programme: refuge_core::application::ProgrammeId,
    state: ApplicationState,
}

fn demo() -> anyhow::Result<Demo> {
    Ok(serde_json::from_str(DEMO)?)
}

/// The name and kind of the organisation `refuge init` creates for a demo instance.
pub fn first_organisation() -> anyhow::Result<(OrganisationKind, String)> {
    let d = demo()?;
    let first = d
        .organisations
        .first()
        .ok_or_else(|| anyhow::anyhow!("the demo data has no organisation"))?;
    Ok((first.kind, first.name.clone()))
}

/// The states an application passes through to reach `target` from draft. Demo applications
/// stop before a decision: deciding is left to the person trying the demo.
fn path_to(target: ApplicationState) -> anyhow::Result<&'static [ApplicationState]> {
    use ApplicationState::*;
    Ok(match target {
        Draft => &[],
        Submitted => &[Submitted],
        InReview => &[Submitted, InReview],
        InfoRequested => &[Submitted, InReview, InfoRequested],
        Interview => &[Submitted, InReview, Interview],
        other => anyhow::bail!("demo applications cannot start in state {other}"),
    })
}

/// Load the demo into an instance whose only organisation is the demo's first one. Returns
/// the cases created; does nothing if the demo is already loaded.
pub async fn load(store: &SqlStore, today: Date) -> anyhow::Result<Vec<CaseSummary>> {
    let d = demo()?;
    let existing = store.organisations().await?;
    let mut ids = HashMap::new();
    for o in &d.organisations {
        if let Some(found) = existing.iter().find(|e| e.name.as_str() == o.name) {
            ids.insert(o.key.clone(), found.id);
        }
    }
    if existing
        .iter()
        .any(|e| !d.organisations.iter().any(|o| o.name == e.name.as_str()))
    {
        return Err(usage(
            "this instance holds organisations that are not part of the demo: load the demo into its own data directory (e.g. --data ./refuge-demo)",
        ));
    }
    if ids.len() == d.organisations.len()
        && !store.cases(Scope::Instance, None, 1).await?.is_empty()
    {
        return store
            .cases(Scope::Instance, None, 1000)
            .await
            .map_err(Into::into);
    }
    for o in &d.organisations {
        if !ids.contains_key(&o.key) {
            let org = store
                .create_organisation(Actor::Operator, o.kind, o.name.parse()?)
                .await?;
            ids.insert(o.key.clone(), org.id);
        }
    }
    for p in d.personas {
        let mut facts = p.facts;
        for (fact, days) in &p.relative_dates {
            let date = today
                .checked_add(time::Duration::days(*days))
                .unwrap_or(today);
            facts.insert(fact.clone(), date.to_string().into());
        }
        let facts: Facts = serde_json::from_value(serde_json::Value::Object(facts))?;
        let org = *ids
            .get(&p.org)
            .ok_or_else(|| anyhow::anyhow!("demo persona names unknown organisation {}", p.org))?;
        let case = store
            .create_case(
                Actor::Operator,
                NewCase {
                    organisation_id: org,
                    person: p.person,
                    facts,
                },
            )
            .await?;
        for dl in &p.deadlines {
            let due = today
                .checked_add(time::Duration::days(dl.in_days))
                .unwrap_or(today);
            store
                .set_deadline(
                    Actor::Operator,
                    Scope::Instance,
                    case.id,
                    dl.kind,
                    due,
                    Some(dl.note.parse()?),
                )
                .await?;
        }
        for a in p.applications {
            let app = store
                .create_application(Actor::Operator, Scope::Instance, case.id, a.programme)
                .await?;
            for st in path_to(a.state)? {
                let mv = Move {
                    to: *st,
                    reason: None,
                    decision: None,
                };
                store
                    .move_application(Actor::Operator, Scope::Instance, app.id, None, mv)
                    .await?;
            }
        }
    }
    store
        .cases(Scope::Instance, None, 1000)
        .await
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_parses_and_cites_its_sources() {
        let d = demo().unwrap();
        assert_eq!(d.personas.len(), 7);
        for p in &d.personas {
            assert!(p.source.contains(".txt"), "{}", p.source);
            assert!(d.organisations.iter().any(|o| o.key == p.org));
            let facts: Facts =
                serde_json::from_value(serde_json::Value::Object(p.facts.clone())).unwrap();
            assert!(facts.nationality.is_some());
        }
        for s in &d.staff {
            assert!(
                d.organisations.iter().any(|o| o.key == s.org),
                "{}",
                s.login
            );
            assert!(
                s.login.parse::<refuge_core::org::Login>().is_ok(),
                "{}",
                s.login
            );
        }
        for (programme, org) in &d.intake {
            assert!(
                programme
                    .parse::<refuge_core::application::ProgrammeId>()
                    .is_ok()
            );
            assert!(d.organisations.iter().any(|o| &o.key == org), "{org}");
        }
    }

    #[test]
    fn paths_reach_their_targets_legally() {
        let mut reachable = 0;
        for target in ApplicationState::ALL {
            let Ok(path) = path_to(target) else { continue };
            let mut from = ApplicationState::Draft;
            for st in path {
                from.check(*st).unwrap();
                from = *st;
            }
            assert_eq!(from, target);
            reachable += 1;
        }
        assert_eq!(reachable, 5);
        for p in demo().unwrap().personas {
            for a in p.applications {
                assert!(path_to(a.state).is_ok());
            }
        }
    }
}
