//! `refuge serve`: the portal, the staff workspace and the API over HTTP.

use crate::cli::Format;
use crate::{Ctx, demo, usage};
use anyhow::Context;
use clap::Args;
use refuge_core::application::ProgrammeId;
use refuge_core::clock::SystemClock;
use refuge_core::ids::OrgId;
use refuge_core::org::OrganisationKind;
use refuge_crypto::OsSeededEntropy;
use refuge_store::Store;
use refuge_web::{AppState, WebConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// Options of `refuge serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on. Put a TLS-terminating proxy in front for anything but
    /// localhost: session cookies are `Secure`.
    #[arg(long, env = "REFUGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Set up demonstration organisations, staff users and cases first (in a fresh data
    /// directory) and print the staff credentials.
    #[arg(long)]
    pub demo: bool,
    /// Send portal applications to PROGRAMME to organisation ORG (repeatable). Programmes not
    /// named go to the only organisation, or else the first NGO.
    #[arg(long = "intake", value_name = "PROGRAMME=ORG_ID")]
    pub intake: Vec<String>,
    /// Largest evidence upload, in MiB.
    #[arg(long, default_value_t = 10, value_name = "MIB")]
    pub max_upload_mib: usize,
}

pub async fn run(
    ctx: &Ctx,
    programmes: &crate::rules_cmd::ProgrammesDir,
    a: ServeArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    if a.demo {
        crate::run_demo(ctx, &crate::output::Out::new(format).quiet()).await?;
    }
    let store = ctx.open().await?;
    let entropy =
        Arc::new(OsSeededEntropy::new().context("cannot read the operating system's randomness")?);
    let mut intake: BTreeMap<ProgrammeId, OrgId> = BTreeMap::new();
    let mut credentials = Vec::new();
    if a.demo {
        credentials = demo::load_staff(&store, &ctx.data, entropy.as_ref()).await?;
        intake = demo::intake(&store).await?;
    }
    for spec in &a.intake {
        let (p, o) = spec
            .split_once('=')
            .ok_or_else(|| usage(format!("--intake {spec:?}: expected PROGRAMME=ORG_ID")))?;
        let p: ProgrammeId = p
            .parse()
            .map_err(|e| usage(format!("--intake {spec:?}: {e}")))?;
        let o: OrgId = o.parse().map_err(|_| {
            usage(format!(
                "--intake {spec:?}: {o:?} is not an organisation id"
            ))
        })?;
        intake.insert(p, o);
    }
    let orgs = store.organisations().await?;
    for (p, o) in &intake {
        if !orgs.iter().any(|x| x.id == *o) {
            return Err(usage(format!(
                "--intake {p}: no organisation {o} (see `refuge org list`)"
            )));
        }
    }
    let default_intake = match orgs.as_slice() {
        [only] => Some(only.id),
        _ => orgs
            .iter()
            .find(|o| o.kind == OrganisationKind::Ngo)
            .map(|o| o.id),
    };
    let library = refuge_rules::library::Library::load(&programmes.dir()).map_err(|errors| {
        usage(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let config = WebConfig {
        intake,
        default_intake,
        max_upload_bytes: a.max_upload_mib.max(1) * 1024 * 1024,
        ..WebConfig::default()
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let state = AppState::new(
        store.clone(),
        Arc::new(library),
        Arc::new(SystemClock),
        entropy,
        config,
    )?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", a.listen)))?;
    let addr = listener.local_addr()?;
    println!("refuge is serving on http://{addr}");
    println!("  applicant portal:  http://{addr}/");
    println!("  staff workspace:   http://{addr}/staff");
    println!("  API:               http://{addr}/api/v1/openapi.json");
    if !credentials.is_empty() {
        println!();
        println!(
            "Demo staff (also in {}):",
            demo::credentials_path(&ctx.data).display()
        );
        for c in &credentials {
            println!(
                "  {:<14} password {}  organisation: {}",
                c.login, c.password, c.organisation
            );
            println!(
                "  {:<14} TOTP secret {} (an authenticator app, or `refuge --data {} demo-code {}`)",
                "",
                c.totp_base32,
                ctx.data.display(),
                c.login
            );
        }
    }
    println!();
    println!("Stop with Ctrl-C.");
    // Token revocations and disabled users from outside this process (`refuge token revoke`,
    // another server on the same database) reach the server's caches within seconds.
    let watcher = tokio::spawn(refuge_web::watch_access(
        state.clone(),
        refuge_web::ACCESS_WATCH,
    ));
    let served = axum::serve(listener, refuge_web::app(state))
        .with_graceful_shutdown(shutdown())
        .await;
    watcher.abort();
    served?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// `refuge demo-code LOGIN`: the current TOTP code of a demo staff user.
pub fn demo_code(ctx: &Ctx, login: &str) -> anyhow::Result<ExitCode> {
    let path = demo::credentials_path(&ctx.data);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        usage(format!(
            "{} not found: demo codes exist only for an instance made with `refuge serve --demo`",
            path.display()
        ))
    })?;
    let creds: Vec<demo::Credential> = serde_json::from_str(&text)?;
    let c = creds
        .iter()
        .find(|c| c.login == login)
        .ok_or_else(|| usage(format!("no demo user {login:?} in {}", path.display())))?;
    let secret: Vec<u8> = (0..c.totp_hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&c.totp_hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    let now = refuge_core::clock::Clock::now(&SystemClock).as_micros() / 1_000_000;
    println!("{}", refuge_web::totp::code_at(&secret, now));
    Ok(ExitCode::SUCCESS)
}
