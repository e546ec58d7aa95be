//! Bearer-token authentication with a short-lived cache of verified tokens.
//!
//! A verified token is trusted for `auth.token_cache_ttl` (default 2 s, at most 10 s) before
//! the state database is asked again. Revocation through the HTTP API drops the token from the
//! cache at once; revocation by another process (the command-line tool) takes effect within the
//! TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use bongsu_state::{hash_token, Scope, StateStore, TokenInfo};

use crate::api_error::{ApiError, ErrorCode};
use crate::clock::Clock;
use crate::state::AppState;

/// Most cached tokens; the cache is cleared when full (only live tokens are cached, so this
/// is never reached in practice).
const MAX_CACHED: usize = 4096;

#[derive(Debug, Clone)]
struct Cached {
    info: TokenInfo,
    verified_at_ms: i64,
}

/// Checks bearer tokens against the state store.
#[derive(Debug)]
pub(crate) struct Authenticator {
    store: Arc<StateStore>,
    clock: Arc<dyn Clock>,
    ttl_ms: i64,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

/// Why a request was refused, for the failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Missing,
    Invalid,
    Forbidden,
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Invalid => "invalid",
            Failure::Forbidden => "forbidden",
        }
    }
}

impl Authenticator {
    pub(crate) fn new(store: Arc<StateStore>, clock: Arc<dyn Clock>, ttl_ms: i64) -> Authenticator {
        Authenticator {
            store,
            clock,
            ttl_ms,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the request's token and scope.
    pub(crate) async fn check(
        &self,
        headers: &HeaderMap,
        required: Scope,
    ) -> Result<TokenInfo, (Failure, ApiError)> {
        let Some(secret) = bearer(headers) else {
            return Err((
                Failure::Missing,
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing bearer token: send the header `Authorization: Bearer <token>`",
                ),
            ));
        };
        let info = self
            .verify(&secret)
            .await
            .map_err(|e| (Failure::Invalid, e))?
            .ok_or_else(|| {
                (
                    Failure::Invalid,
                    ApiError::new(
                        ErrorCode::Unauthorized,
                        "invalid or revoked token: create a new one with `bongsu token create`",
                    ),
                )
            })?;
        if !info.scope.allows(required) {
            return Err((
                Failure::Forbidden,
                ApiError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "token {:?} has scope {}, this needs {required}: use a token with scope {required} or more",
                        info.name, info.scope
                    ),
                ),
            ));
        }
        Ok(info)
    }

    /// Verifies a secret, from the cache when fresh, else from the store.
    async fn verify(&self, secret: &str) -> Result<Option<TokenInfo>, ApiError> {
        let key = hash_token(secret);
        let now = self.clock.now_ms();
        if let Some(c) = self.cache().get(&key) {
            if now.saturating_sub(c.verified_at_ms) < self.ttl_ms {
                return Ok(Some(c.info.clone()));
            }
        }
        let store = self.store.clone();
        let owned = secret.to_owned();
        let found = tokio::task::spawn_blocking(move || store.verify_token(&owned, now))
            .await?
            .map_err(ApiError::from)?;
        let mut cache = self.cache();
        match &found {
            Some(info) if self.ttl_ms > 0 => {
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    key,
                    Cached {
                        info: info.clone(),
                        verified_at_ms: now,
                    },
                );
            }
            _ => {
                cache.remove(&key);
            }
        }
        Ok(found)
    }

    /// Drops a token from the cache (after revoking it).
    pub(crate) fn forget(&self, id: i64) {
        self.cache().retain(|_, c| c.info.id != id);
    }
}

/// The token in `Authorization: Bearer <token>`, or the password of
/// `Authorization: Basic base64(<any user>:<token>)` for clients that only speak basic auth
/// (promtool, URLs like `http://bongsu:<token>@host:9700`), if any.
fn bearer(headers: &HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        std::borrow::Cow::Borrowed(token.trim())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (_, password) = text.split_once(':')?;
        std::borrow::Cow::Owned(password.to_owned())
    } else {
        return None;
    };
    (!token.is_empty()).then_some(token)
}

/// Middleware: lets the request through when its token has `scope`; the caller's
/// [`TokenInfo`] is put into the request's extensions.
pub(crate) async fn require(
    State((state, scope)): State<(AppState, Scope)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match state.auth().check(req.headers(), scope).await {
        Ok(info) => {
            req.extensions_mut().insert(info);
            Ok(next.run(req).await)
        }
        Err((failure, err)) => {
            state.count_auth_failure(failure);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            // "bongsu:s3cret" and "x:" in base64: the password is the token.
            ("Basic Ym9uZ3N1OnMzY3JldA==", Some("s3cret")),
            ("Basic eDo=", None),
            ("Token abc", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&h).as_deref(), expected, "{value:?}");
        }
    }
}
