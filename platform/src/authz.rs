//! Who is calling, and what they may do.
//!
//! The edge (gateway) verifies the bearer token once per request with the [`Sessions`] service
//! that `auth` provides, and leaves the outcome on the request as an [`Authentication`].
//! Handlers never see tokens: they take a [`Principal`] (any signed-in staff user) or an
//! [`Authorized<P>`] (a signed-in user whose role holds permission `P`). Each module declares its
//! permissions with [`permission!`] and lists them in its [`crate::Module`]; this one extractor
//! is the only place roles are checked, so the matrix in docs/API.md is the code's own table.
//!
//! Put `Authorized<P>` (or `Principal`) first in a handler's arguments: a caller without the
//! permission gets 403 before the body is even read.

use std::{future::Future, marker::PhantomData, ops::Deref, pin::Pin};

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    db::TenantTx,
    error::Error,
    events::Actor,
    health::Dependency,
    id::{SessionId, TenantId, UserId},
};

/// A staff member's role in their tenant, or the operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Manager,
    Cashier,
    /// The operator of a Warung installation (not a member of any merchant).
    PlatformAdmin,
}

impl Role {
    /// The roles a merchant's staff can hold.
    pub const STAFF: [Role; 3] = [Role::Owner, Role::Manager, Role::Cashier];
    pub const ALL: [Role; 4] = [
        Role::Owner,
        Role::Manager,
        Role::Cashier,
        Role::PlatformAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Manager => "manager",
            Self::Cashier => "cashier",
            Self::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: Role,
    pub session: SessionId,
}

impl Principal {
    /// The caller as the actor of an audit record.
    pub fn actor(&self) -> Actor {
        Actor::User { id: self.user }
    }
}

/// What the edge concluded about a request's credentials.
#[derive(Debug, Clone)]
pub enum Authentication {
    Verified(Principal),
    /// A token was sent but is not acceptable (bad signature, expired, revoked session...).
    Invalid,
    /// The token could not be checked because a dependency is down.
    Unavailable(Dependency),
}

/// The verified caller, whoever it is (staff or the operator); 401 without a valid token.
fn verified(parts: &Parts) -> Result<Principal, Error> {
    match parts.extensions.get::<Authentication>() {
        Some(Authentication::Verified(principal)) => Ok(*principal),
        Some(Authentication::Unavailable(dep)) => Err(Error::Unavailable(*dep)),
        Some(Authentication::Invalid) | None => Err(Error::Unauthorized),
    }
}

/// A signed-in member of a shop's staff: the "signed in" routes (`/me`, one's own consents,
/// the shop, logging out). The operator's token belongs to no shop: 403 here, as on every
/// route whose permission it lacks; the operator's own routes ask for [`Authorized`].
fn staff(principal: Principal) -> Result<Principal, Error> {
    if principal.role == Role::PlatformAdmin {
        Err(Error::Forbidden)
    } else {
        Ok(principal)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        staff(verified(parts)?)
    }
}

/// For routes open to everyone that also serve signed-in staff: no token is `None`; a token
/// that is sent must be valid (401) and a staff member's (403), and a dependency down is 503.
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Error> {
        if parts.extensions.get::<Authentication>().is_none() {
            return Ok(None);
        }
        staff(verified(parts)?).map(Some)
    }
}

/// A permission as data: for the module list, docs/API.md and the role-matrix test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionInfo {
    pub name: &'static str,
    pub roles: &'static [Role],
    pub description: &'static str,
}

/// A permission a route requires. Declare with [`permission!`].
pub trait Permission: Send + Sync + 'static {
    const INFO: PermissionInfo;
}

/// Declares a permission type: `permission!(pub InviteStaff = "users.invite", [Owner, Manager], "Invite staff")`.
#[macro_export]
macro_rules! permission {
    ($(#[$meta:meta])* $vis:vis $name:ident = $code:literal, [$($role:ident),+ $(,)?], $description:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $name {
            pub const INFO: $crate::authz::PermissionInfo = <$name as $crate::authz::Permission>::INFO;
        }

        impl $crate::authz::Permission for $name {
            const INFO: $crate::authz::PermissionInfo = $crate::authz::PermissionInfo {
                name: $code,
                roles: &[$($crate::authz::Role::$role),+],
                description: $description,
            };
        }
    };
}

/// A signed-in caller whose role holds permission `P`; 401 without a valid token, 403 without
/// the permission.
#[derive(Debug, Clone, Copy)]
pub struct Authorized<P>(pub Principal, PhantomData<P>);

impl<P> Deref for Authorized<P> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<P: Permission> Authorized<P> {
    /// Checks `principal`'s role against `P`: the extractor's check, for a route whose body
    /// decides which permission applies (e.g. filing a request about oneself or a customer).
    pub fn check(principal: Principal) -> Result<Self, Error> {
        if P::INFO.roles.contains(&principal.role) {
            Ok(Self(principal, PhantomData))
        } else {
            metrics::counter!("authz_denied_total", "permission" => P::INFO.name).increment(1);
            Err(Error::Forbidden)
        }
    }
}

impl<P: Permission, S: Send + Sync> FromRequestParts<S> for Authorized<P> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        Self::check(verified(parts)?)
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The session service: implemented by `auth`, installed into [`crate::AppState`] by gateway,
/// so the edge can verify tokens and any module can end a user's sessions (e.g. `users` when an
/// account is deleted) without depending on `auth`.
pub trait Sessions: Send + Sync + std::fmt::Debug {
    /// Verifies a bearer token and its server-side session.
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Authentication>;

    /// Revokes every live session of `user`, in the caller's transaction, recorded as done by
    /// `actor`. Returns how many.
    fn revoke_user<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        actor: Actor,
        user: UserId,
        reason: &'static str,
    ) -> BoxFuture<'a, Result<u64, Error>>;

    /// Closes `user`'s account in the caller's transaction (a deletion): every session ends,
    /// the password hash is removed and pending mailed tokens stop working. Audited as done by
    /// `actor`.
    fn close_account<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        actor: Actor,
        user: UserId,
        reason: &'static str,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// For the implementing module to find its own service in `AppState`.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Before gateway installs `auth`'s service: nobody is authenticated, nothing can be revoked.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSessions;

impl Sessions for NoSessions {
    fn authenticate<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Authentication> {
        Box::pin(async { Authentication::Invalid })
    }

    fn revoke_user<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        _actor: Actor,
        _user: UserId,
        _reason: &'static str,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async {
            Err(Error::Internal(anyhow::anyhow!(
                "no session service installed"
            )))
        })
    }

    fn close_account<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        _actor: Actor,
        _user: UserId,
        _reason: &'static str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async {
            Err(Error::Internal(anyhow::anyhow!(
                "no session service installed"
            )))
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    crate::permission!(
        ManageThings = "things.manage",
        [Owner, Manager],
        "Manage things"
    );

    fn parts(auth: Option<Authentication>) -> Parts {
        let mut request = Request::new(());
        if let Some(auth) = auth {
            request.extensions_mut().insert(auth);
        }
        request.into_parts().0
    }

    fn principal(role: Role) -> Principal {
        Principal {
            tenant: TenantId::new(),
            user: UserId::new(),
            role,
            session: SessionId::new(),
        }
    }

    #[tokio::test]
    async fn permission_is_checked_against_the_role() {
        let mut owner = parts(Some(Authentication::Verified(principal(Role::Owner))));
        assert!(
            Authorized::<ManageThings>::from_request_parts(&mut owner, &())
                .await
                .is_ok()
        );
        let mut cashier = parts(Some(Authentication::Verified(principal(Role::Cashier))));
        let err = Authorized::<ManageThings>::from_request_parts(&mut cashier, &())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "forbidden");
    }

    #[tokio::test]
    async fn missing_invalid_and_unverifiable_credentials_are_401_401_503() {
        for (auth, code) in [
            (None, "unauthorized"),
            (Some(Authentication::Invalid), "unauthorized"),
            (
                Some(Authentication::Unavailable(Dependency::Redis)),
                "cache_unavailable",
            ),
        ] {
            let mut parts = parts(auth);
            let err = Authorized::<ManageThings>::from_request_parts(&mut parts, &())
                .await
                .unwrap_err();
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn roles_round_trip_through_text() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(ManageThings::INFO.roles, &[Role::Owner, Role::Manager]);
    }
}
