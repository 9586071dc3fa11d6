//! `refuge token`: API tokens of staff users, for the JSON API (`Authorization: Bearer …`).
//!
//! A token is `rf_` and the base64url of 32 random bytes; the store keeps only its SHA-256, so
//! a token is printed once, when it is issued, and never again. Tokens are named in listings
//! and on revocation by an id: the first 12 hex digits of that SHA-256 (it reveals nothing of
//! the token). Logins are never printed: they identify staff, who are at risk too.

use crate::cli::Format;
use crate::{Ctx, usage};
use anyhow::Context;
use clap::{Args, Subcommand};
use refuge_core::event::Actor;
use refuge_core::org::{Login, User};
use refuge_crypto::OsSeededEntropy;
use refuge_store::{ApiToken, Scope, SqlStore, Store};
use serde_json::json;
use std::process::ExitCode;

/// What `refuge token` does.
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issue an API token to a staff user. It is printed once, now, and cannot be shown again.
    New(NewArgs),
    /// List a staff user's API tokens: id, label, when issued and revoked (never the tokens).
    List(LoginArgs),
    /// Revoke one of a staff user's API tokens, by the id `token list` shows or by the token.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The staff user's login.
    #[arg(long, value_name = "LOGIN")]
    pub login: String,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The staff user's login.
    #[arg(long, value_name = "LOGIN")]
    pub login: String,
    /// What the token is for (stored encrypted), e.g. "case management system".
    #[arg(long, value_name = "TEXT", default_value = "API token")]
    pub label: String,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The staff user's login.
    #[arg(long, value_name = "LOGIN")]
    pub login: String,
    /// The token's id as `token list` shows it (at least 6 hex digits of it).
    #[arg(
        long,
        value_name = "HEX",
        required_unless_present = "token",
        conflicts_with = "token"
    )]
    pub id: Option<String>,
    /// The token itself; `-` reads it from standard input (keeps it out of shell history).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// The id a token is listed under: the first 12 hex digits of its SHA-256.
fn token_id(hash: &[u8; 32]) -> String {
    hash.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user of a login, or exit 2.
async fn user_of(store: &SqlStore, login: &str) -> anyhow::Result<User> {
    let login: Login = login
        .trim()
        .parse()
        .map_err(|e| usage(format!("--login: {e}")))?;
    store
        .user_credentials(&login)
        .await?
        .map(|c| c.user)
        .ok_or_else(|| usage("--login: there is no staff user with this login"))
}

pub async fn run(ctx: &Ctx, cmd: TokenCmd, format: Format) -> anyhow::Result<ExitCode> {
    // Parse what needs no store first: bad input writes nothing.
    if let TokenCmd::New(a) = &cmd {
        a.label
            .parse::<refuge_core::text::Label>()
            .map_err(|e| usage(format!("--label: {e}")))?;
    }
    let store = ctx.open().await?;
    let result = match cmd {
        TokenCmd::New(a) => new(&store, &a, format).await,
        TokenCmd::List(a) => list(&store, &a, format).await,
        TokenCmd::Revoke(a) => revoke(&store, a, format).await,
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn new(store: &SqlStore, a: &NewArgs, format: Format) -> anyhow::Result<()> {
    let user = user_of(store, &a.login).await?;
    if user.disabled {
        return Err(usage(
            "--login: this user is disabled; a token of theirs would not work",
        ));
    }
    let entropy =
        OsSeededEntropy::new().context("cannot read the operating system's randomness")?;
    let (token, hash) = refuge_web::new_api_token(&entropy)?;
    let issued = store
        .create_api_token(Actor::Operator, user.id, hash, a.label.clone())
        .await?;
    let warning = format!(
        "This token is shown only now: the server keeps only its hash. Store it safely. \
         Revoke it with `refuge token revoke --login … --id {}`.",
        token_id(&hash)
    );
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "token": token.expose(),
                    "user_id": user.id,
                    "label": issued.label,
                }))?
            );
            eprintln!("{warning}");
        }
        Format::Text => {
            eprintln!(
                "API token {} for user {} ({}):",
                token_id(&hash),
                user.id,
                issued.label.as_str()
            );
            println!("{}", token.expose());
            eprintln!("{warning}");
        }
    }
    Ok(())
}

fn token_json(t: &ApiToken) -> serde_json::Value {
    json!({
        "id": token_id(&t.token_hash),
        "label": t.label,
        "created_at": t.created_at.to_rfc3339(),
        "revoked_at": t.revoked_at.map(|r| r.to_rfc3339()),
    })
}

async fn list(store: &SqlStore, a: &LoginArgs, format: Format) -> anyhow::Result<()> {
    let user = user_of(store, &a.login).await?;
    let tokens = store.api_tokens(Scope::Instance, user.id).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "user_id": user.id,
                "tokens": tokens.iter().map(token_json).collect::<Vec<_>>(),
            }))?
        ),
        Format::Text => {
            if tokens.is_empty() {
                println!("User {} has no API tokens.", user.id);
            }
            for t in &tokens {
                let state = match t.revoked_at {
                    Some(r) => format!("revoked {r}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}  issued {}  {:<36}  {}",
                    token_id(&t.token_hash),
                    t.created_at,
                    state,
                    t.label.as_str()
                );
            }
        }
    }
    Ok(())
}

async fn revoke(store: &SqlStore, a: RevokeArgs, format: Format) -> anyhow::Result<()> {
    // Which token: its hash from the token itself, or a prefix of it from `--id`.
    let by_token = match a.token.as_deref() {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the token from standard input")?;
            Some(line.trim().to_owned())
        }
        Some(t) => Some(t.trim().to_owned()),
        None => None,
    };
    let wanted_hash = by_token
        .as_deref()
        .map(|t| {
            refuge_web::api_token_hash(t)
                .ok_or_else(|| usage("--token: not an API token (expected rf_ and 43 characters)"))
        })
        .transpose()?;
    let prefix = match &a.id {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            if id.len() < 6 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(usage(
                    "--id: expected at least 6 hex digits of the id `refuge token list` shows",
                ));
            }
            Some(id)
        }
        None => None,
    };
    let user = user_of(store, &a.login).await?;
    let tokens = store.api_tokens(Scope::Instance, user.id).await?;
    let matching: Vec<&ApiToken> = tokens
        .iter()
        .filter(|t| match (&wanted_hash, &prefix) {
            (Some(h), _) => t.token_hash == *h,
            (None, Some(p)) => hex(&t.token_hash).starts_with(p.as_str()),
            (None, None) => false,
        })
        .collect();
    let t = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(usage(
                "no API token of this user matches (see `refuge token list --login …`)",
            ));
        }
        many => {
            return Err(usage(format!(
                "--id matches {} tokens of this user: give more digits",
                many.len()
            )));
        }
    };
    store
        .revoke_api_token(Actor::Operator, Scope::Instance, t.token_hash)
        .await?;
    let id = token_id(&t.token_hash);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"revoked": id, "user_id": user.id}))?
        ),
        Format::Text => {
            println!("Revoked API token {id} of user {}.", user.id);
            println!("A server already running refuses it within 2 seconds.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use refuge_core::clock::SystemClock;
    use refuge_core::org::{OrganisationKind, Role};
    use refuge_store::{KeySource, StoreConfig};
    use std::sync::Arc;

    struct Instance {
        ctx: Ctx,
        _dir: tempfile::TempDir,
    }

    async fn instance() -> (Instance, User) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let ctx = Ctx {
            url: format!("sqlite://{}", data.join("refuge.db").display()),
            default_url: true,
            key: KeySource::KeyFile(data.join("instance.key")),
            data,
        };
        let cfg = StoreConfig::new(
            ctx.url.clone(),
            ctx.key.clone(),
            Arc::new(SystemClock),
            Arc::new(OsSeededEntropy::new().unwrap()),
        );
        let (store, org) =
            refuge_store::initialise(cfg, OrganisationKind::Ngo, "NGO (test)".parse().unwrap())
                .await
                .unwrap();
        let user = store
            .create_user(
                Actor::Operator,
                org.id,
                "anna.k".parse().unwrap(),
                "Anna (test)".parse().unwrap(),
                vec![Role::Counsellor],
            )
            .await
            .unwrap();
        store.close().await;
        (Instance { ctx, _dir: dir }, user)
    }

    fn is_usage(e: &anyhow::Error) -> bool {
        e.downcast_ref::<crate::UsageError>().is_some()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_are_issued_listed_and_revoked_by_id() {
        let (i, user) = instance().await;
        let login = || "anna.k".to_owned();
        for _ in 0..2 {
            run(
                &i.ctx,
                TokenCmd::New(NewArgs {
                    login: login(),
                    label: "case system".into(),
                }),
                Format::Json,
            )
            .await
            .unwrap();
        }
        let store = i.ctx.open().await.unwrap();
        let tokens = store.api_tokens(Scope::Instance, user.id).await.unwrap();
        store.close().await;
        assert_eq!(tokens.len(), 2);
        assert!(tokens.iter().all(|t| t.revoked_at.is_none()));
        assert_eq!(tokens[0].label.as_str(), "case system");
        run(
            &i.ctx,
            TokenCmd::List(LoginArgs { login: login() }),
            Format::Text,
        )
        .await
        .unwrap();

        let id = token_id(&tokens[0].token_hash);
        let revoke = |id: Option<String>, token: Option<String>| {
            TokenCmd::Revoke(RevokeArgs {
                login: login(),
                id,
                token,
            })
        };
        run(&i.ctx, revoke(Some(id.clone()), None), Format::Json)
            .await
            .unwrap();
        let store = i.ctx.open().await.unwrap();
        let after = store.api_tokens(Scope::Instance, user.id).await.unwrap();
        assert!(after[0].revoked_at.is_some() && after[1].revoked_at.is_none());
        assert_eq!(
            store.user_for_token(tokens[0].token_hash).await.unwrap(),
            None
        );
        assert!(
            store
                .user_for_token(tokens[1].token_hash)
                .await
                .unwrap()
                .is_some()
        );
        store.close().await;
        // Again: already revoked, the user's mistake.
        let e = run(&i.ctx, revoke(Some(id), None), Format::Text)
            .await
            .unwrap_err();
        assert!(
            e.downcast_ref::<refuge_store::StoreError>()
                .is_some_and(refuge_store::StoreError::is_user_error),
            "{e:#}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_is_revoked_by_itself() {
        let (i, user) = instance().await;
        let store = i.ctx.open().await.unwrap();
        let entropy = OsSeededEntropy::new().unwrap();
        let (token, hash) = refuge_web::new_api_token(&entropy).unwrap();
        store
            .create_api_token(Actor::Operator, user.id, hash, "x".into())
            .await
            .unwrap();
        store.close().await;
        run(
            &i.ctx,
            TokenCmd::Revoke(RevokeArgs {
                login: "anna.k".into(),
                id: None,
                token: Some(token.expose().to_owned()),
            }),
            Format::Text,
        )
        .await
        .unwrap();
        let store = i.ctx.open().await.unwrap();
        assert_eq!(store.user_for_token(hash).await.unwrap(), None);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_logins_and_bad_ids_are_usage_errors() {
        let (i, _) = instance().await;
        let cases = [
            TokenCmd::New(NewArgs {
                login: "nobody".into(),
                label: "x".into(),
            }),
            TokenCmd::New(NewArgs {
                login: "Not A Login".into(),
                label: "x".into(),
            }),
            TokenCmd::New(NewArgs {
                login: "anna.k".into(),
                label: " ".into(),
            }),
            TokenCmd::List(LoginArgs {
                login: "nobody".into(),
            }),
            TokenCmd::Revoke(RevokeArgs {
                login: "anna.k".into(),
                id: Some("abc".into()),
                token: None,
            }),
            TokenCmd::Revoke(RevokeArgs {
                login: "anna.k".into(),
                id: Some("abcdef".into()),
                token: None,
            }),
            TokenCmd::Revoke(RevokeArgs {
                login: "anna.k".into(),
                id: None,
                token: Some("rf_nope".into()),
            }),
        ];
        for cmd in cases {
            let what = format!("{cmd:?}");
            let e = run(&i.ctx, cmd, Format::Text).await.unwrap_err();
            assert!(is_usage(&e), "{what}: {e:#}");
            assert!(
                !format!("{e:#}").contains("nobody"),
                "logins are not echoed"
            );
        }
    }
}
