//! Who is calling and what they may do: bearer tokens and roles, or an open API.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::{ApiError, ApiState};
use crate::auth::{Caller, Role, Tokens};

/// Why a caller was refused ([`Access::identify`], [`Identity::may`]): the answer, and who it
/// was when the token was known.
#[derive(Debug, Clone)]
pub struct Denied {
    pub error: ApiError,
    pub caller: Option<Caller>,
}

/// Decides who may call the API.
#[derive(Debug, Clone, Default)]
pub enum Access {
    /// No tokens file: every caller is anonymous with every right (loopback only, unless the
    /// operator insisted).
    #[default]
    Open,
    /// Bearer tokens from a tokens file.
    Tokens(Arc<Tokens>),
}

impl Access {
    /// Who presents these headers: the caller of a known bearer token (anyone, as
    /// `anonymous`, on an open API), or why not (401).
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let Access::Tokens(tokens) = self else {
            return Ok(Caller::anonymous());
        };
        let unauthorized = |message: &str| Denied {
            error: ApiError::Unauthorized(message.to_owned()),
            caller: None,
        };
        let header = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing token: send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("malformed Authorization header: expected Bearer <token>"))?;
        tokens
            .caller(token)
            .cloned()
            .ok_or_else(|| unauthorized("unknown token"))
    }
}

/// Who is calling: an axum extractor over the `Authorization` header. It never rejects a
/// request itself; the handler decides what the caller may do ([`Identity::may`]), so a refusal
/// is audited with the call's own action and parameters.
#[derive(Debug, Clone)]
pub struct Identity(Result<Caller, Denied>);

impl FromRequestParts<ApiState> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Identity, Self::Rejection> {
        Ok(Identity(state.access.identify(&parts.headers)))
    }
}

impl Identity {
    /// The caller if it may act as `needed` to `what`: 401 without a known token, 403 when its
    /// role is below `needed`.
    pub fn may(self, needed: Role, what: &str) -> Result<Caller, Denied> {
        let caller = self.0?;
        if caller.role < needed {
            return Err(Denied {
                error: ApiError::Forbidden(format!(
                    "{} (role {}) may not {what}: it needs role {} or above",
                    caller.name,
                    caller.role.as_str(),
                    needed.as_str()
                )),
                caller: Some(caller),
            });
        }
        Ok(caller)
    }
}
