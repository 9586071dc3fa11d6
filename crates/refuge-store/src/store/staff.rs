//! Staff credentials and API tokens. The password hash and the TOTP secret are sealed with the
//! user's own data key; an API token is stored only as its SHA-256. Events of these changes
//! carry no secret at all, not even sealed.

use super::{SqlStore, user_owner, write_scope};
use crate::error::{Result, StoreError};
use crate::rows::{ApiTokenRow, RowBatch, UserChange, UserRow};
use crate::writer::{Op, Outcome, token_ref};
use crate::{ApiToken, Credentials, Scope, SecretBytes};
use refuge_core::clock::Timestamp;
use refuge_core::event::{Actor, EventKind};
use refuge_core::ids::{OrgId, UserId};
use refuge_core::org::{Login, User};
use refuge_core::text::Label;
use refuge_crypto::{Aad, DataKey, SecretString, blind_index};

/// The largest TOTP secret accepted (RFC 4226 recommends 20 bytes; 64 is plenty).
const MAX_TOTP_SECRET: usize = 64;

impl SqlStore {
    pub(super) fn user_key(&self, r: &UserRow) -> Result<DataKey> {
        self.keys
            .unwrap_data_key(r.wrapped_key.as_deref().unwrap_or(&[]), &user_owner(r.id))
            .map_err(|_| StoreError::Corrupt {
                what: "user",
                id: r.id.to_string(),
            })
    }

    fn open_secret(&self, dk: &DataKey, field: &str, r: &UserRow, ct: &[u8]) -> Result<Vec<u8>> {
        refuge_crypto::open(dk, &Aad::new("users", field, r.id.as_bytes()), ct)
            .map(|p| p.to_vec())
            .map_err(|_| StoreError::Corrupt {
                what: "user",
                id: r.id.to_string(),
            })
    }

    pub(super) async fn user_row_in(&self, scope: Scope, id: UserId) -> Result<UserRow> {
        self.backend
            .user(id.0)
            .await?
            .filter(|r| scope.allows(r.organisation_id))
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: id.to_string(),
            })
    }

    /// Write one change to a user, with its event (no secret in it).
    async fn update_user(
        &self,
        actor: Actor,
        row: &UserRow,
        kind: EventKind,
        change: UserChange,
        meta: Option<(&str, serde_json::Value)>,
    ) -> Result<()> {
        let mut ev = self.event(actor, row.organisation_id, kind, row.id, None)?;
        if let Some((k, v)) = meta {
            ev.meta.insert(k.into(), v);
        }
        let op = Op::UpdateUser {
            scope: write_scope(row.organisation_id),
            user_id: row.id,
            change,
            event: ev,
        };
        match self.writer.write(op).await? {
            Outcome::Updated { .. } => Ok(()),
            Outcome::Written { .. } | Outcome::Indexed { .. } => {
                Err(StoreError::Database("unexpected write outcome".into()))
            }
        }
    }

    fn token_from_row(&self, r: ApiTokenRow, dk: &DataKey) -> Result<ApiToken> {
        let token_hash: [u8; 32] = r
            .token_hash
            .as_slice()
            .try_into()
            .map_err(|_| crate::error::bad_column("api_tokens.token_hash", "length"))?;
        Ok(ApiToken {
            token_hash,
            user_id: UserId(r.user_id),
            organisation_id: OrgId(r.organisation_id),
            label: {
                let corrupt = || StoreError::Corrupt {
                    what: "API token",
                    id: token_ref(&r.token_hash),
                };
                let plain = refuge_crypto::open(
                    dk,
                    &Aad::new("api_tokens", "label", &r.token_hash),
                    &r.label_ct,
                )
                .map_err(|_| corrupt())?;
                serde_json::from_slice(&plain).map_err(|_| corrupt())?
            },
            created_at: Timestamp::from_micros(r.created_at),
            revoked_at: r.revoked_at.map(Timestamp::from_micros),
        })
    }
}

/// One user within scope.
pub(super) async fn user(s: &SqlStore, scope: Scope, id: UserId) -> Result<User> {
    let row = s.user_row_in(scope, id).await?;
    s.user_from_row(row)
}

/// Set a user's password: an Argon2id PHC string, hashed by the caller.
pub(super) async fn set_password(
    s: &SqlStore,
    actor: Actor,
    user: UserId,
    phc: SecretString,
) -> Result<()> {
    if !phc.expose().starts_with("$argon2id$") {
        return Err(StoreError::Invalid {
            field: "password",
            message: "expected an Argon2id PHC string ($argon2id$…)".into(),
        });
    }
    let row = s.user_row_in(Scope::Instance, user).await?;
    let dk = s.user_key(&row)?;
    let ct = s.seal(&dk, "users", "password", row.id, phc.expose().as_bytes())?;
    s.update_user(
        actor,
        &row,
        EventKind::PasswordSet,
        UserChange::Password(ct),
        None,
    )
    .await
}

/// Set (or, with `None`, remove) a user's TOTP secret.
pub(super) async fn set_totp(
    s: &SqlStore,
    actor: Actor,
    user: UserId,
    secret: Option<SecretBytes>,
) -> Result<()> {
    if let Some(b) = &secret
        && (b.expose().is_empty() || b.expose().len() > MAX_TOTP_SECRET)
    {
        return Err(StoreError::Invalid {
            field: "totp",
            message: format!("a TOTP secret has 1 to {MAX_TOTP_SECRET} bytes"),
        });
    }
    let row = s.user_row_in(Scope::Instance, user).await?;
    let dk = s.user_key(&row)?;
    let ct = match &secret {
        Some(b) => Some(s.seal(&dk, "users", "totp", row.id, b.expose())?),
        None => None,
    };
    s.update_user(
        actor,
        &row,
        EventKind::TotpSet,
        UserChange::Totp(ct),
        Some(("enabled", secret.is_some().into())),
    )
    .await
}

/// Disable or enable a user.
pub(super) async fn set_user_disabled(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    user: UserId,
    disabled: bool,
) -> Result<()> {
    let row = s.user_row_in(scope, user).await?;
    let kind = if disabled {
        EventKind::UserDisabled
    } else {
        EventKind::UserEnabled
    };
    s.update_user(
        actor,
        &row,
        kind,
        UserChange::Disabled(i64::from(disabled)),
        None,
    )
    .await
}

/// A user and their secrets, found by login name through its blind index.
pub(super) async fn user_credentials(s: &SqlStore, login: &Login) -> Result<Option<Credentials>> {
    let bidx = blind_index(&s.keys.index, "user.login", login.as_str().as_bytes());
    let Some(row) = s.backend.user_by_login(&bidx).await? else {
        return Ok(None);
    };
    let dk = s.user_key(&row)?;
    let password_phc = match &row.password_ct {
        Some(ct) => {
            let plain = s.open_secret(&dk, "password", &row, ct)?;
            Some(SecretString::new(String::from_utf8(plain).map_err(
                |_| StoreError::Corrupt {
                    what: "user",
                    id: row.id.to_string(),
                },
            )?))
        }
        None => None,
    };
    let totp_secret = match &row.totp_ct {
        Some(ct) => Some(SecretBytes::new(s.open_secret(&dk, "totp", &row, ct)?)),
        None => None,
    };
    Ok(Some(Credentials {
        user: s.user_from_row(row)?,
        password_phc,
        totp_secret,
    }))
}

/// Issue an API token to a user: only the SHA-256 of the token is stored.
pub(super) async fn create_api_token(
    s: &SqlStore,
    actor: Actor,
    user: UserId,
    token_hash: [u8; 32],
    label: String,
) -> Result<ApiToken> {
    let label: Label = label.parse().map_err(|e| StoreError::Invalid {
        field: "label",
        message: format!("{e}"),
    })?;
    let row = s.user_row_in(Scope::Instance, user).await?;
    let dk = s.user_key(&row)?;
    let now = s.clock.now();
    let token = ApiTokenRow {
        token_hash: token_hash.to_vec(),
        user_id: row.id,
        organisation_id: row.organisation_id,
        // Bound to its record, whose id is the token's hash.
        label_ct: refuge_crypto::seal(
            &dk,
            &Aad::new("api_tokens", "label", &token_hash),
            &super::json(&label)?,
            &*s.entropy,
        )?,
        created_at: now.as_micros(),
        revoked_at: None,
    };
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::ApiTokenCreated,
        row.id,
        None,
    )?;
    ev.meta
        .insert("token".into(), token_ref(&token_hash).into());
    let rows = RowBatch {
        api_tokens: vec![token],
        ..RowBatch::default()
    };
    s.writer
        .write(Op::Insert {
            what: "API token",
            rows: Box::new(rows),
            events: vec![ev],
        })
        .await?;
    Ok(ApiToken {
        token_hash,
        user_id: user,
        organisation_id: OrgId(row.organisation_id),
        label,
        created_at: now,
        revoked_at: None,
    })
}

/// The user a token belongs to: `None` if unknown, revoked, or the user is disabled.
pub(super) async fn user_for_token(s: &SqlStore, token_hash: [u8; 32]) -> Result<Option<User>> {
    match s.backend.user_for_token(&token_hash).await? {
        Some((row, None)) if row.disabled == 0 => Ok(Some(s.user_from_row(row)?)),
        _ => Ok(None),
    }
}

/// Revoke a token.
pub(super) async fn revoke_api_token(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    token_hash: [u8; 32],
) -> Result<()> {
    let not_found = || StoreError::NotFound {
        what: "API token",
        id: token_ref(&token_hash),
    };
    let Some((row, _)) = s.backend.user_for_token(&token_hash).await? else {
        return Err(not_found());
    };
    if !scope.allows(row.organisation_id) {
        return Err(not_found());
    }
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::ApiTokenRevoked,
        row.id,
        None,
    )?;
    ev.meta
        .insert("token".into(), token_ref(&token_hash).into());
    let op = Op::RevokeToken {
        scope: write_scope(row.organisation_id),
        token_hash: token_hash.to_vec(),
        event: ev,
    };
    s.writer.write(op).await.map(|_| ())
}

/// A user's tokens, oldest first.
pub(super) async fn api_tokens(s: &SqlStore, scope: Scope, user: UserId) -> Result<Vec<ApiToken>> {
    let row = s.user_row_in(scope, user).await?;
    let dk = s.user_key(&row)?;
    s.backend
        .api_tokens_of_user(row.id)
        .await?
        .into_iter()
        .map(|t| s.token_from_row(t, &dk))
        .collect()
}
