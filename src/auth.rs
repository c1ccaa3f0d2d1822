//! The two shared secrets of a deployment, and the guard that checks them.
//!
//! - The **cluster token** is shared by the roles. Every internal call carries it
//!   (header [`headers::CLUSTER_TOKEN`]): the notify, the hand-over callback and
//!   every cache-node endpoint but `/healthz`. Without it nobody outside the
//!   cluster can reroute the pool or plant an image in a cache.
//! - The **admin token** guards the administrative and destructive calls: clearing
//!   data or the cache, resizing, the automatic mode and the cache configuration.
//!   It is sent as `Authorization: Bearer <token>`. The cluster token is accepted
//!   there too, since the manager forwards clears to the front-end.
//!
//! A secret that is not configured leaves its calls open; the binaries only allow
//! that on loopback, or when told `--insecure-no-token` (see `run.rs`). Tokens
//! are compared in constant time and never printed.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use rand::RngCore;

use crate::api::ApiError;
use crate::limits::{TOKEN_BYTES_MAX, TOKEN_BYTES_MIN};
use crate::wire::headers;

/// Random bytes in a generated token (shown as twice as many hex digits).
const GENERATED_TOKEN_BYTES: usize = 24;

/// A secret. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// A token from configuration: 16 to 256 visible ASCII characters.
    pub fn new(text: &str) -> Result<Token, String> {
        if !(TOKEN_BYTES_MIN..=TOKEN_BYTES_MAX).contains(&text.len()) {
            return Err(format!(
                "a token must have {TOKEN_BYTES_MIN} to {TOKEN_BYTES_MAX} characters (this one has {})",
                text.len()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token may only hold visible ASCII characters".to_owned());
        }
        Ok(Token(text.into()))
    }

    /// A fresh random token.
    pub fn generate(rng: &mut impl RngCore) -> Token {
        let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
        rng.fill_bytes(&mut bytes);
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Token(text.into())
    }

    /// The token, to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on where
    /// the two first differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// Compares two byte strings, looking at every byte of the longer one.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        difference |= u64::from(x ^ y);
    }
    std::hint::black_box(difference) == 0
}

/// The secrets a role checks and sends.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    pub cluster: Option<Token>,
    pub admin: Option<Token>,
}

/// Who may make a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Members of the cluster only.
    Cluster,
    /// The administrator (or a member of the cluster).
    Admin,
}

impl Secrets {
    /// Whether the headers grant `access`; otherwise the refusal (401).
    pub fn check(&self, access: Access, headers: &HeaderMap) -> Result<(), ApiError> {
        let cluster_ok = |token: &Token| {
            headers
                .get(headers::CLUSTER_TOKEN)
                .is_some_and(|value| token.matches(value.as_bytes()))
        };
        match access {
            Access::Cluster => match &self.cluster {
                None => Ok(()),
                Some(token) if cluster_ok(token) => Ok(()),
                Some(_) => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this call is internal to the cluster: the cluster token is missing or wrong",
                )),
            },
            Access::Admin => match &self.admin {
                None => Ok(()),
                Some(admin) => {
                    let bearer = headers
                        .get(http::header::AUTHORIZATION)
                        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
                    if bearer.is_some_and(|presented| admin.matches(presented))
                        || self.cluster.as_ref().is_some_and(cluster_ok)
                    {
                        Ok(())
                    } else {
                        Err(ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "this call needs the admin token (Authorization: Bearer <token>)",
                        ))
                    }
                }
            },
        }
    }

    /// The header an internal call carries, if a cluster token is set.
    pub fn cluster_header(&self) -> Option<(http::HeaderName, http::HeaderValue)> {
        let token = self.cluster.as_ref()?;
        let value = http::HeaderValue::from_str(token.expose()).ok()?;
        Some((http::HeaderName::from_static(headers::CLUSTER_TOKEN), value))
    }
}

/// What a guarded group of routes requires.
#[derive(Clone, Debug)]
pub struct Gate {
    pub secrets: Secrets,
    pub access: Access,
}

/// Middleware: lets a request through if it carries what the gate requires.
pub async fn guard(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match gate.secrets.check(gate.access, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// [`guard`] as a plain function pointer, so that its layer has a type to name.
type GuardFn = fn(State<Gate>, Request, Next) -> BoxFuture<'static, Response>;

/// The layer that guards a route (or a group of routes) with `access`.
pub fn layer(
    secrets: &Secrets,
    access: Access,
) -> axum::middleware::FromFnLayer<GuardFn, Gate, (State<Gate>, Request)> {
    let guard_boxed: GuardFn = |state, request, next| Box::pin(guard(state, request, next));
    let gate = Gate {
        secrets: secrets.clone(),
        access,
    };
    axum::middleware::from_fn_with_state(gate, guard_boxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn token(text: &str) -> Token {
        Token::new(text).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn equal_only_when_every_byte_and_the_length_agree() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"abcde", b"abcdef"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn short_or_invisible_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("sixteen chars ok").is_err()); // spaces are not visible
        assert!(Token::new("0123456789abcdef").is_ok());
        assert!(Token::new(&"x".repeat(TOKEN_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn generated_tokens_differ_and_are_valid() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (a, b) = (Token::generate(&mut rng), Token::generate(&mut rng));
        assert_ne!(a, b);
        assert!(Token::new(a.expose()).is_ok());
        assert_eq!(format!("{a:?}"), "Token(hidden)");
    }

    #[test]
    fn cluster_calls_need_the_cluster_token() {
        let secrets = Secrets {
            cluster: Some(token("cluster-secret-0001")),
            admin: Some(token("admin-secret-00001")),
        };
        let check = |pairs: &[(&'static str, &str)]| {
            secrets
                .check(Access::Cluster, &headers(pairs))
                .map_err(|e| e.status)
        };
        assert_eq!(check(&[]), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            check(&[(headers::CLUSTER_TOKEN, "cluster-secret-0002")]),
            Err(StatusCode::UNAUTHORIZED)
        );
        // The admin token does not open internal calls.
        assert_eq!(
            check(&[("authorization", "Bearer admin-secret-00001")]),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            check(&[(headers::CLUSTER_TOKEN, "cluster-secret-0001")]),
            Ok(())
        );
    }

    #[test]
    fn admin_calls_take_the_admin_or_the_cluster_token() {
        let secrets = Secrets {
            cluster: Some(token("cluster-secret-0001")),
            admin: Some(token("admin-secret-00001")),
        };
        let check = |pairs: &[(&'static str, &str)]| {
            secrets
                .check(Access::Admin, &headers(pairs))
                .map_err(|e| e.status)
        };
        assert_eq!(check(&[]), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            check(&[("authorization", "Bearer admin-secret-00002")]),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            check(&[("authorization", "admin-secret-00001")]),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            check(&[("authorization", "Bearer admin-secret-00001")]),
            Ok(())
        );
        assert_eq!(
            check(&[(headers::CLUSTER_TOKEN, "cluster-secret-0001")]),
            Ok(())
        );
    }

    #[test]
    fn unset_secrets_leave_their_calls_open() {
        let open = Secrets::default();
        assert!(open.check(Access::Cluster, &HeaderMap::new()).is_ok());
        assert!(open.check(Access::Admin, &HeaderMap::new()).is_ok());
        // An admin token alone guards admin calls, not internal ones.
        let admin_only = Secrets {
            cluster: None,
            admin: Some(token("admin-secret-00001")),
        };
        assert!(admin_only.check(Access::Cluster, &HeaderMap::new()).is_ok());
        assert!(admin_only.check(Access::Admin, &HeaderMap::new()).is_err());
    }
}
