//! What every WebSocket upgrade passes before it is accepted, in this order:
//! the Origin allow-list (403), the join token when authentication is on
//! (401/403), the connection limits in all (503) and per IP address (429; the
//! address as [`super::client_addr`] tells it), and
//! the room limit (503, for an upgrade that would create a room). Refusals are
//! JSON `{ "error": code, "message": … }` and counted in
//! `roomcast_refusals_total{reason}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::{http::header, HttpRequest, HttpResponse};

use super::AppState;
use crate::auth::{self, Claims};
use crate::room::RoomKey;

/// An accepted upgrade: who it is (with authentication on), the answer's
/// WebSocket protocol, and its place among the open connections.
#[derive(Debug)]
pub struct Admitted {
    /// The token's claims (`None` with authentication off).
    pub claims: Option<Claims>,
    /// The `Sec-WebSocket-Protocol` the answer must select, if the client sent
    /// its token that way.
    pub protocol: Option<String>,
    /// Held for as long as the connection is open.
    pub slot: ConnectionSlot,
}

/// A refused upgrade: status, stable code (also the metric's reason), and a
/// human reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: &'static str,
    /// Why, for people.
    pub message: String,
}

impl Refusal {
    /// The JSON response `{ "error": code, "message": … }`.
    pub fn into_response(self) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(self.status)
            .unwrap_or(actix_web::http::StatusCode::FORBIDDEN);
        HttpResponse::build(status)
            .json(serde_json::json!({ "error": self.code, "message": self.message }))
    }
}

/// Counts and builds a refusal.
fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    let message = message.into();
    crate::metrics::refused(code, &format!("upgrade refused with {status}: {message}"));
    Refusal {
        status,
        code,
        message,
    }
}

/// Checks an upgrade to the room `key` (token room path `path`).
pub fn admit(
    req: &HttpRequest,
    state: &AppState,
    key: &RoomKey,
    path: &str,
) -> Result<Admitted, Refusal> {
    check_origin(req, &state.config.allowed_origins).map_err(|why| refuse(403, "origin", why))?;
    let (token, protocol) = auth::token_from_request(req);
    let claims = match &state.authenticator {
        Some(authenticator) => Some(
            authenticator
                .admit(token.as_deref(), key.kind(), path)
                .map_err(|e| refuse(e.status(), e.code(), e.to_string()))?,
        ),
        None => None,
    };
    let ip = super::client_addr::client_ip(req, &state.config.trusted_proxies);
    let slot = state.connections.acquire(ip)?;
    if !state.registry.has_room_for(key, state.config.max_rooms) {
        return Err(refuse(
            503,
            "rooms",
            format!(
                "the server holds its limit of {} rooms; try again later",
                state.config.max_rooms
            ),
        ));
    }
    Ok(Admitted {
        claims,
        protocol,
        slot,
    })
}

/// Browsers send `Origin`; other clients usually do not and are allowed. With no
/// allow-list only the server's own origin (same host and port as `Host`) is.
fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| "the Origin header is not text".to_owned())?
        .trim_end_matches('/');
    let ok = if allowed.is_empty() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
    } else {
        allowed.iter().any(|a| {
            let a = a.trim().trim_end_matches('/');
            a == "*" || a.eq_ignore_ascii_case(origin)
        })
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "WebSocket upgrades from origin {origin:?} are not allowed (ROOMCAST_ALLOWED_ORIGINS)"
        ))
    }
}

/// Open connections in all and per IP address, against their limits.
#[derive(Debug)]
pub struct ConnectionSlots {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionSlots {
    /// Slots for at most `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            open: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a connection from `ip`, or refuses it.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut counts = self.lock();
        if counts.total >= self.max_total {
            return Err(refuse(
                503,
                "connections",
                format!(
                    "the server holds its limit of {} connections; try again later",
                    self.max_total
                ),
            ));
        }
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(refuse(
                429,
                "connections_per_ip",
                format!(
                    "{ip} holds its limit of {} connections; close some first",
                    self.max_per_ip
                ),
            ));
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

/// One open connection's place; freed when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    slots: Arc<ConnectionSlots>,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// The address the connection counts against.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn slots_are_limited_in_all_and_per_ip_and_freed_on_drop() {
        let slots = ConnectionSlots::new(3, 2);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let first = slots.acquire(a).unwrap();
        let _second = slots.acquire(a).unwrap();
        assert_eq!(slots.acquire(a).unwrap_err().status, 429);
        let _third = slots.acquire(b).unwrap();
        assert_eq!(slots.acquire(b).unwrap_err().status, 503);
        drop(first);
        assert_eq!(slots.open(), 2);
        let _again = slots.acquire(a).unwrap();
    }

    #[test]
    fn origins_same_origin_by_default_or_from_the_list() {
        let req = |origin: Option<&str>| {
            let mut r = TestRequest::default().insert_header((header::HOST, "rooms.example:8080"));
            if let Some(o) = origin {
                r = r.insert_header((header::ORIGIN, o));
            }
            r.to_http_request()
        };
        assert!(check_origin(&req(None), &[]).is_ok());
        assert!(check_origin(&req(Some("http://rooms.example:8080")), &[]).is_ok());
        assert!(check_origin(&req(Some("https://evil.example")), &[]).is_err());
        let list = vec!["https://app.example".to_owned()];
        assert!(check_origin(&req(Some("https://app.example/")), &list).is_ok());
        assert!(check_origin(&req(Some("http://rooms.example:8080")), &list).is_err());
        assert!(check_origin(&req(Some("https://any.example")), &["*".to_owned()]).is_ok());
    }
}
