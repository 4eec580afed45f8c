//! Build-time work of the server crate:
//!
//! - rebuild when a migration changes: `sqlx::migrate!` embeds
//!   `migrations/{postgres,sqlite}/` at compile time, and cargo does not know it
//!   reads them;
//! - build the browser demos (`clients/web`, served at `/` by `http::demos`) into
//!   `$OUT_DIR/web` and write `$OUT_DIR/web_assets.rs`, the table of files the
//!   binary embeds.
//!
//! The demos need Node 20+ and npm at build time: `npm ci` runs in
//! `clients/web` when `node_modules` is missing or older than
//! `package-lock.json`, then `node build.mjs $OUT_DIR/web` bundles them. When
//! Node is missing, too old, `npm ci` fails (offline), `clients/web` is absent
//! or `ROOMCAST_SKIP_WEB_BUILD=1`, the Rust build still succeeds: a
//! `cargo:warning` says why and `/` serves a page saying the demos were not
//! built. A failing bundle step (an error in the demos' source) fails the build.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;
use std::{env, fs};

/// Oldest Node major version the demos' build supports.
const MIN_NODE_MAJOR: u32 = 20;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    build_web(
        &manifest_dir.join("../clients/web"),
        &manifest_dir.join("../clients/ts/src"),
        &out_dir,
    );
}

/// Builds the demos into `out_dir/web` and writes `out_dir/web_assets.rs`.
fn build_web(web: &Path, ts_src: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=ROOMCAST_SKIP_WEB_BUILD");
    let site = out_dir.join("web");
    if site.exists() {
        fs::remove_dir_all(&site).expect("clear $OUT_DIR/web");
    }
    fs::create_dir_all(&site).expect("create $OUT_DIR/web");

    if !web.join("build.mjs").is_file() {
        // A packaged crate has no clients/web: nothing to watch either.
        return fallback(
            &site,
            out_dir,
            "clients/web is not part of this source tree",
        );
    }
    watch(web, ts_src);
    if env::var_os("ROOMCAST_SKIP_WEB_BUILD").is_some_and(|v| !v.is_empty() && v != "0") {
        return fallback(&site, out_dir, "ROOMCAST_SKIP_WEB_BUILD is set");
    }
    if let Err(why) = check_node() {
        return fallback(&site, out_dir, &why);
    }
    if needs_install(web) {
        let status = Command::new(npm())
            .args(["ci", "--no-audit", "--no-fund", "--include=dev"])
            .current_dir(web)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                return fallback(
                    &site,
                    out_dir,
                    &format!("`npm ci` in clients/web failed ({s})"),
                )
            }
            Err(e) => return fallback(&site, out_dir, &format!("could not run npm: {e}")),
        }
    }
    let output = Command::new("node")
        .arg("build.mjs")
        .arg(&site)
        .current_dir(web)
        .output()
        .expect("node ran a moment ago");
    if !output.status.success() {
        panic!(
            "building the browser demos failed (`node build.mjs` in clients/web; \
             ROOMCAST_SKIP_WEB_BUILD=1 skips it):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    write_table(&site, out_dir, true);
}

/// Tells cargo what the demos are built from (a directory is scanned whole).
fn watch(web: &Path, ts_src: &Path) {
    let mut paths = vec![
        web.join("src"),
        web.join("build.mjs"),
        web.join("package.json"),
        web.join("package-lock.json"),
        ts_src.to_path_buf(),
    ];
    paths.extend(static_files(web));
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The pages and stylesheets `build.mjs` copies as they are.
fn static_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("html" | "css")))
        .collect();
    files.sort();
    files
}

/// `npm` (`npm.cmd` on Windows, where it is a batch file).
fn npm() -> &'static str {
    if cfg!(windows) {
        "npm.cmd"
    } else {
        "npm"
    }
}

/// Ok when `node` (>= [`MIN_NODE_MAJOR`]) and `npm` answer.
fn check_node() -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is not available ({e})"))?;
    let text = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major = text
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_NODE_MAJOR => {}
        _ => return Err(format!("node {text} is older than {MIN_NODE_MAJOR}")),
    }
    match Command::new(npm()).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("npm does not work ({})", o.status)),
        Err(e) => Err(format!("npm is not available ({e})")),
    }
}

/// True when `node_modules` is missing or older than `package-lock.json`
/// (npm writes `node_modules/.package-lock.json` on every install).
fn needs_install(web: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    let locked = modified(&web.join("package-lock.json")).unwrap_or(SystemTime::UNIX_EPOCH);
    installed.is_none_or(|installed| installed < locked)
}

/// The demos cannot be built: warn, and serve a page that says so at `/`.
fn fallback(site: &Path, out_dir: &Path, why: &str) {
    println!("cargo:warning=roomcast: browser demos not built: {why}. `/` will say so. To include them, make Node {MIN_NODE_MAJOR}+ and npm available, then `touch clients/web/build.mjs` and build again.");
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>roomcast</title>\
         <link rel=\"icon\" href=\"data:,\"></head>\n<body>\n<h1>roomcast</h1>\n\
         <p>This server was built without its browser demos ({}). They are built with \
         Node {MIN_NODE_MAJOR}+ and npm when the server is compiled (<code>cargo build</code>).</p>\n\
         <p>The game and document rooms work as usual at <code>/game/{{game}}/{{room}}</code> \
         and <code>/doc/{{name}}</code>.</p>\n</body>\n</html>\n",
        escape_html(why)
    );
    fs::write(site.join("index.html"), page).expect("write the fallback index.html");
    write_table(site, out_dir, false);
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `Content-Type` of a built file, by extension (`None`: not served).
fn content_type(name: &str) -> Option<&'static str> {
    match name.rsplit_once('.')?.1 {
        "html" => Some("text/html; charset=utf-8"),
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        "svg" => Some("image/svg+xml"),
        "png" => Some("image/png"),
        "ico" => Some("image/x-icon"),
        "json" => Some("application/json"),
        "txt" => Some("text/plain; charset=utf-8"),
        _ => None,
    }
}

/// Writes `web_assets.rs`: `WEB_BUILT` and `WEB_ASSETS`, one entry per file of `site`.
fn write_table(site: &Path, out_dir: &Path, built: bool) {
    let mut names: Vec<String> = fs::read_dir(site)
        .expect("read $OUT_DIR/web")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut table = String::from("// Generated by server/build.rs: the browser demos' files.\n\n");
    let _ = writeln!(
        table,
        "/// True when the demos were built (false: `index.html` says why not).\n\
         pub(crate) const WEB_BUILT: bool = {built};\n"
    );
    table.push_str(
        "/// Every built file, by name.\npub(crate) const WEB_ASSETS: &[WebAsset] = &[\n",
    );
    for name in names {
        let Some(content_type) = content_type(&name) else {
            println!("cargo:warning=roomcast: not serving {name} (unknown content type)");
            continue;
        };
        let _ = writeln!(
            table,
            "    WebAsset {{ name: {name:?}, content_type: {content_type:?}, body: include_bytes!({:?}) }},",
            site.join(&name).display().to_string()
        );
    }
    table.push_str("];\n");
    fs::write(out_dir.join("web_assets.rs"), table).expect("write web_assets.rs");
}
