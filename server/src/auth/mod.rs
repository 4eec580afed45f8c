//! Join tokens: who may join which room, with what role.
//!
//! With `ROOMCAST_AUTH_SECRET` (HS256) or `ROOMCAST_AUTH_PUBLIC_KEY` (a PEM file:
//! an Ed25519 key means EdDSA, an RSA key RS256) set, every WebSocket upgrade
//! needs a signed JWT whose [`Claims`] name the room (exactly or by a prefix
//! pattern), the user, the role and an expiry. Without either the server is open
//! (development) and says so loudly at start-up.
//!
//! - [`claims`]: the claims, roles and room patterns.
//! - [`Authenticator`]: verifies tokens; [`mint`] signs them (`roomcast token`).
//! - [`token_from_request`]: where a client puts its token (`?token=`, or the
//!   `Sec-WebSocket-Protocol` header for browsers).

pub mod claims;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

pub use claims::{doc_room_path, game_room_path, Claims, Role};

/// The `Sec-WebSocket-Protocol` a browser offers next to its token (and that the
/// server selects in its answer).
pub const WS_PROTOCOL: &str = "roomcast";
/// Prefix of the `Sec-WebSocket-Protocol` entry carrying the token.
pub const WS_TOKEN_PREFIX: &str = "roomcast.token.";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token came with the request (401).
    #[error("a join token is required: pass ?token=<jwt> or offer the WebSocket protocol roomcast.token.<jwt>")]
    Missing,
    /// The token does not verify, or has expired (401).
    #[error("invalid join token: {0}")]
    Invalid(String),
    /// The token is valid but not for this room or this kind of room (403).
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => 401,
            AuthError::Forbidden(_) => 403,
        }
    }

    /// A stable code for JSON bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Invalid(_) => "token_invalid",
            AuthError::Forbidden(_) => "token_forbidden",
        }
    }
}

/// Why the authentication settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// Both a secret and a public key were given.
    #[error("set ROOMCAST_AUTH_SECRET or ROOMCAST_AUTH_PUBLIC_KEY, not both")]
    Both,
    /// The secret is too short to be a secret.
    #[error("ROOMCAST_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    /// A key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is not an Ed25519 or RSA key in PEM.
    #[error("{path} is not an Ed25519 or RSA key in PEM form")]
    BadKey {
        /// The file.
        path: String,
    },
    /// Minting needs a secret or a signing key.
    #[error("nothing to sign with: set ROOMCAST_AUTH_SECRET or pass --signing-key")]
    NoSigningKey,
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// Shortest accepted HS256 secret.
pub const MIN_SECRET_BYTES: usize = 16;

/// Verifies join tokens with one key.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator the settings ask for; `None` when the server is open.
    pub fn from_settings(
        secret: Option<&str>,
        public_key: Option<&Path>,
    ) -> Result<Option<Self>, AuthSetupError> {
        let secret = secret.filter(|s| !s.is_empty());
        let (key, algorithm) = match (secret, public_key) {
            (Some(_), Some(_)) => return Err(AuthSetupError::Both),
            (None, None) => return Ok(None),
            (Some(secret), None) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(AuthSetupError::ShortSecret);
                }
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            (None, Some(path)) => {
                let pem = read_key(path)?;
                if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
                    (key, Algorithm::EdDSA)
                } else if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    (key, Algorithm::RS256)
                } else {
                    return Err(AuthSetupError::BadKey {
                        path: path.display().to_string(),
                    });
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        validation.validate_aud = false;
        Ok(Some(Self { key, validation }))
    }

    /// The claims of `token` if it verifies and has not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies `token` (if any) for the room at `path` of `kind` (`game`/`doc`).
    pub fn admit(&self, token: Option<&str>, kind: &str, path: &str) -> Result<Claims, AuthError> {
        let claims = self.verify(token.ok_or(AuthError::Missing)?)?;
        if !claims.admits(path) {
            return Err(AuthError::Forbidden(format!(
                "the token is for {:?}, not {path:?}",
                claims.room
            )));
        }
        if !claims.role.fits(kind) {
            return Err(AuthError::Forbidden(format!(
                "role {:?} does not apply to {kind} rooms",
                claims.role.as_str()
            )));
        }
        Ok(claims)
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, AuthSetupError> {
    std::fs::read(path).map_err(|source| AuthSetupError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Signs a token for `sub` with `role` in `room`, valid for `ttl` from now (see
/// [`sign`]).
pub fn mint(
    secret: Option<&str>,
    signing_key: Option<&Path>,
    sub: &str,
    room: &str,
    role: Role,
    ttl: Duration,
) -> Result<String, AuthSetupError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        sub: sub.to_owned(),
        room: room.to_owned(),
        role,
        exp: now.saturating_add(ttl.as_secs()),
        iat: Some(now),
    };
    sign(secret, signing_key, &claims)
}

/// Signs `claims` with `secret` (HS256) or the PEM private key at `signing_key`
/// (an Ed25519 key signs EdDSA, an RSA key RS256).
pub fn sign(
    secret: Option<&str>,
    signing_key: Option<&Path>,
    claims: &Claims,
) -> Result<String, AuthSetupError> {
    let (key, algorithm) = match (signing_key, secret.filter(|s| !s.is_empty())) {
        (Some(path), _) => {
            let pem = read_key(path)?;
            if let Ok(key) = EncodingKey::from_ed_pem(&pem) {
                (key, Algorithm::EdDSA)
            } else if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
                (key, Algorithm::RS256)
            } else {
                return Err(AuthSetupError::BadKey {
                    path: path.display().to_string(),
                });
            }
        }
        (None, Some(secret)) => (
            EncodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        ),
        (None, None) => return Err(AuthSetupError::NoSigningKey),
    };
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key)
        .map_err(|e| AuthSetupError::Sign(e.to_string()))
}

/// Where a request carries its token: the `token` query parameter, else a
/// `Sec-WebSocket-Protocol` entry `roomcast.token.<jwt>`. Also returns the
/// protocol the server must select in its answer when the header was used.
pub fn token_from_request(req: &actix_web::HttpRequest) -> (Option<String>, Option<String>) {
    let from_query = actix_web::web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .filter(|t| !t.is_empty());
    if from_query.is_some() {
        return (from_query, None);
    }
    let offered: Vec<String> = req
        .headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let Some(entry) = offered.iter().find(|p| p.starts_with(WS_TOKEN_PREFIX)) else {
        return (None, None);
    };
    let token = entry[WS_TOKEN_PREFIX.len()..].to_owned();
    // A browser fails the connection unless the answer selects an offered entry.
    let selected = if offered.iter().any(|p| p == WS_PROTOCOL) {
        WS_PROTOCOL.to_owned()
    } else {
        entry.clone()
    };
    (Some(token), Some(selected))
}

/// The query parameters a token may come in.
#[derive(Debug, serde::Deserialize)]
pub struct TokenQuery {
    /// The join token.
    pub token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-test-secret";

    #[test]
    fn a_minted_token_verifies_and_admits_its_room_only() {
        let auth = Authenticator::from_settings(Some(SECRET), None)
            .unwrap()
            .unwrap();
        let token = mint(
            Some(SECRET),
            None,
            "alice",
            "game/arena/*",
            Role::Spectator,
            Duration::from_secs(60),
        )
        .unwrap();
        let claims = auth
            .admit(Some(&token), "game", "game/arena/lobby")
            .unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role),
            ("alice", Role::Spectator)
        );
        assert!(matches!(
            auth.admit(Some(&token), "game", "game/counter/x"),
            Err(AuthError::Forbidden(_))
        ));
        assert_eq!(
            auth.admit(None, "game", "game/arena/x"),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn expired_forged_and_wrong_kind_tokens_are_refused() {
        let auth = Authenticator::from_settings(Some(SECRET), None)
            .unwrap()
            .unwrap();
        let expired = sign(
            Some(SECRET),
            None,
            &Claims {
                sub: "a".into(),
                room: "*".into(),
                role: Role::Write,
                exp: 1_000_000,
                iat: None,
            },
        )
        .unwrap();
        assert!(matches!(auth.verify(&expired), Err(AuthError::Invalid(_))));
        let forged = mint(
            Some("another-secret-of-16+bytes"),
            None,
            "a",
            "*",
            Role::Write,
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(matches!(auth.verify(&forged), Err(AuthError::Invalid(_))));
        let writer = mint(
            Some(SECRET),
            None,
            "a",
            "*",
            Role::Write,
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(matches!(
            auth.admit(Some(&writer), "game", "game/arena/x"),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            Authenticator::from_settings(Some("short"), None),
            Err(AuthSetupError::ShortSecret)
        ));
    }
}
