//! The operator dashboard at `/dashboard`: one HTML page, one JavaScript module
//! and one stylesheet, embedded in the binary (no build step, nothing fetched
//! from elsewhere). The page itself is public and holds no data: it asks the
//! operator for the admin token and reads everything from the token-guarded
//! admin API (`/api/v1`, see [`super::api`]).
//!
//! Every response carries a self-only `Content-Security-Policy`, `nosniff` and
//! `Cache-Control: no-cache` (a new binary serves its new page at once).

use actix_web::{web, HttpResponse, HttpResponseBuilder};

/// Only this origin may provide anything the page loads or connects to; no
/// inline script or style, and no framing (clickjacking).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// One embedded file of the dashboard.
struct Asset {
    /// Its name under `/dashboard/`.
    name: &'static str,
    /// The `Content-Type` it is served with.
    content_type: &'static str,
    /// Its content, compiled in.
    body: &'static str,
}

/// The page (served at `/dashboard` and `/dashboard/`).
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("dashboard/index.html"),
};

/// Every file served under `/dashboard/{file}`.
const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/dashboard.css"),
    },
];

/// Registers `/dashboard`, `/dashboard/` and `/dashboard/{file}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(index))
        .route("/dashboard/", web::get().to(index))
        .route("/dashboard/{file}", web::get().to(file));
}

/// A response builder with the headers every dashboard response carries.
fn secured(builder: HttpResponseBuilder) -> HttpResponseBuilder {
    super::embedded::with_headers(builder, CONTENT_SECURITY_POLICY)
}

fn serve(asset: &Asset) -> HttpResponse {
    secured(HttpResponse::Ok())
        .content_type(asset.content_type)
        .body(asset.body)
}

async fn index() -> HttpResponse {
    serve(&INDEX)
}

async fn file(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(asset) => serve(asset),
        None => secured(HttpResponse::NotFound())
            .content_type("text/plain; charset=utf-8")
            .body("no such dashboard file\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    async fn get(path: &str) -> actix_web::dev::ServiceResponse {
        let app = init_service(App::new().configure(routes)).await;
        call_service(&app, TestRequest::get().uri(path).to_request()).await
    }

    fn header_of(res: &actix_web::dev::ServiceResponse, name: header::HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[actix_web::test]
    async fn serves_each_file_with_its_type_and_the_security_headers() {
        for (path, content_type) in [
            ("/dashboard", "text/html; charset=utf-8"),
            ("/dashboard/", "text/html; charset=utf-8"),
            ("/dashboard/index.html", "text/html; charset=utf-8"),
            ("/dashboard/dashboard.js", "text/javascript; charset=utf-8"),
            ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
        ] {
            let res = get(path).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(
                header_of(&res, header::CONTENT_TYPE),
                content_type,
                "{path}"
            );
            assert_eq!(
                header_of(&res, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(header_of(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
        }
    }

    #[actix_web::test]
    async fn unknown_files_are_404() {
        for path in [
            "/dashboard/nope.js",
            "/dashboard/..%2Fapi.rs",
            "/dashboard/a/b",
        ] {
            assert_eq!(get(path).await.status(), 404, "{path}");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        for name in ["/dashboard/dashboard.js", "/dashboard/dashboard.css"] {
            assert!(INDEX.body.contains(name), "index.html loads {name}");
        }
        for asset in ASSETS {
            assert!(!asset.body.contains("http://") && !asset.body.contains("https://"));
        }
    }
}
