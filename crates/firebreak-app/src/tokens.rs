//! API tokens of the server: issued to a name with a [`Role`], shown once,
//! stored as a SHA-256 hash, expiring and revocable; [`App::authenticate`] turns
//! a presented token into the [`Caller`] it stands for.
//!
//! A token is `fbt_<id>_<secret>`: the public id finds the stored record, the
//! hash of the whole token must match it (compared in constant time). A token
//! authenticates a caller and its role limits what the caller may ask for; it
//! never decides a request: a decision carries the approver's own signature.

use firebreak_core::{Clock, SystemClock, Timestamp};
use firebreak_ledger::hex;
use firebreak_store::{Store, TokenRecord};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::keys::random_hex;
use crate::{App, AppError};

/// What a token's holder may do. Each role can do what the ones before it can,
/// except that only approvers and admins reach the decision endpoint (and even
/// they decide only with a listed approver's signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Auditor,
    /// Reads, queues configurations and asks for changes.
    Researcher,
    /// Reads and submits signed decisions.
    Approver,
    /// Everything, including issuing and revoking tokens.
    Admin,
}

impl Role {
    /// Every role, by name.
    pub const ALL: [Role; 4] = [Role::Auditor, Role::Researcher, Role::Approver, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Researcher => "researcher",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// The role called `name`.
    pub fn parse(name: &str) -> Result<Role, AppError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "unknown role '{name}'\nhint: one of auditor, researcher, approver, admin"
                ))
            })
    }

    /// True when this role may queue trials and ask for changes.
    pub fn may_run(self) -> bool {
        matches!(self, Role::Researcher | Role::Admin)
    }

    /// True when this role may submit decisions.
    pub fn may_decide(self) -> bool {
        matches!(self, Role::Approver | Role::Admin)
    }
}

/// An authenticated caller of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The token's id.
    pub token: String,
    /// Who it was issued to.
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// A token just issued: the only time its secret is seen.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The stored record.
    pub record: TokenRecord,
    /// The whole token, to hand to its holder.
    pub token: String,
}

fn hash_of(token: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    hex(&digest)
}

/// Equal in time independent of where two strings of equal length differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl<S: Store> App<S> {
    /// Issues a token to `name` with `role`, valid for `lifetime_ms` when given.
    pub async fn new_token(
        &self,
        name: &str,
        role: Role,
        lifetime_ms: Option<i64>,
    ) -> Result<NewToken, AppError> {
        if name.trim().is_empty() {
            return Err(AppError::Invalid(
                "a token needs a name: who or what will use it".into(),
            ));
        }
        let id = random_hex(true)?;
        let token = format!("fbt_{id}_{}", random_hex(false)?);
        let created_at = SystemClock.now();
        let record = TokenRecord {
            id,
            name: name.to_string(),
            role: role.as_str().to_string(),
            hash: hash_of(&token),
            created_at,
            expires_at: lifetime_ms.map(|ms| created_at.saturating_add(ms)),
            revoked_at: None,
        };
        self.store.add_token(&record).await?;
        Ok(NewToken { record, token })
    }

    /// Every token issued, oldest first (no secrets: only their hashes are kept).
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, AppError> {
        Ok(self.store.tokens().await?)
    }

    /// Revokes token `id`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), AppError> {
        if self.store.revoke_token(id, SystemClock.now()).await? {
            Ok(())
        } else {
            Err(AppError::Invalid(format!(
                "no live token '{id}'\nhint: `firebreak tokens list` shows them"
            )))
        }
    }

    /// The caller a presented token stands for, at `now`: refused when it is
    /// malformed, unknown, wrong, revoked or expired (one message for all, so a
    /// caller learns nothing about which).
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> Result<Caller, AppError> {
        let refused = || AppError::Unauthenticated("a valid API token is needed".into());
        let id = token
            .strip_prefix("fbt_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or_else(refused)?;
        let record = self.store.token(id).await?.ok_or_else(refused)?;
        let live = record.revoked_at.is_none() && record.expires_at.is_none_or(|at| now < at);
        if !same(&record.hash, &hash_of(token)) || !live {
            return Err(refused());
        }
        Ok(Caller {
            token: record.id,
            name: record.name,
            role: Role::parse(&record.role).map_err(|_| refused())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_by_name_and_say_what_they_may_do() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).ok(), Some(role));
        }
        assert!(Role::parse("root").is_err());
        assert!(!Role::Auditor.may_run() && !Role::Auditor.may_decide());
        assert!(Role::Researcher.may_run() && !Role::Researcher.may_decide());
        assert!(!Role::Approver.may_run() && Role::Approver.may_decide());
        assert!(Role::Admin.may_run() && Role::Admin.may_decide());
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
