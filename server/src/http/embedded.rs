//! What every file embedded in the binary (the dashboard, the demos) is served
//! with: its own `Content-Security-Policy`, `nosniff`, no referrer, and
//! `Cache-Control: no-cache` (a new binary serves its new pages at once).

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponseBuilder;

/// `builder` with the headers of an embedded file under the policy `csp`.
pub fn with_headers(mut builder: HttpResponseBuilder, csp: &'static str) -> HttpResponseBuilder {
    builder
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    builder
}
