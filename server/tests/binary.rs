//! The `roomcast` binary's start-up contract: a database that is down gives one
//! clear error line and a non-zero exit; `roomcast migrate` applies the schema and
//! exits 0; `roomcast token` mints a join token the server accepts.

use std::process::Command;

use roomcast_server::store::testing::TestDatabase;

#[test]
fn a_database_that_is_down_at_start_up_gives_one_error_line_and_a_failure_exit() {
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["--bind", "127.0.0.1:0", "--db-acquire-timeout", "500ms"])
        .args(["--database-url", "postgres://roomcast@127.0.0.1:1/roomcast"])
        .env("RUST_LOG", "off")
        .output()
        .expect("run roomcast");
    assert!(!out.status.success(), "must exit non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one error line, got:\n{stderr}");
    assert!(lines[0].starts_with("roomcast: "), "{}", lines[0]);
    assert!(
        lines[0].contains("127.0.0.1:1"),
        "the line says which database: {}",
        lines[0]
    );
}

#[test]
fn migrate_applies_the_schema_and_exits_zero() {
    let db = TestDatabase::sqlite().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .arg("--data-dir")
        .arg(&db.config().data_dir)
        .arg("migrate")
        .env("RUST_LOG", "off")
        .env_remove("ROOMCAST_DATABASE_URL")
        .output()
        .expect("run roomcast migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = db
        .config()
        .data_dir
        .join(roomcast_server::store::SQLITE_FILE_NAME);
    assert!(file.exists(), "the SQLite file is created");
    // A second run finds nothing to do and succeeds too.
    let again = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .arg("--data-dir")
        .arg(&db.config().data_dir)
        .arg("migrate")
        .env("RUST_LOG", "off")
        .output()
        .expect("run roomcast migrate again");
    assert!(again.status.success());
}

#[test]
fn the_token_subcommand_mints_a_token_the_server_verifies() {
    const SECRET: &str = "token-subcommand-secret-1234";
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["token", "--room", "game/arena/*", "--role", "spectator"])
        .args(["--sub", "ops", "--ttl", "90s"])
        .env("ROOMCAST_AUTH_SECRET", SECRET)
        .output()
        .expect("run roomcast token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let verifier = roomcast_server::auth::Authenticator::from_settings(Some(SECRET), None)
        .unwrap()
        .unwrap();
    let claims = verifier
        .admit(Some(token.trim()), "game", "game/arena/lobby")
        .expect("the server accepts it");
    assert_eq!(
        (claims.sub.as_str(), claims.role),
        ("ops", roomcast_server::auth::Role::Spectator)
    );
    // Nothing to sign with: one clear line and a failure exit.
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["token", "--room", "doc/x", "--role", "read"])
        .env_remove("ROOMCAST_AUTH_SECRET")
        .output()
        .expect("run roomcast token");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("roomcast: ") && stderr.contains("ROOMCAST_AUTH_SECRET"),
        "{stderr}"
    );
}

/// Starts the binary with `args` and `envs`, reads its JSON log until it
/// listens, stops it, and returns the log lines seen.
fn start_up_log(args: &[&str], envs: &[(&str, &str)]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomcast"));
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--persistence",
        "off",
    ])
    .args(args)
    .env("RUST_LOG", "info")
    .env_remove("ROOMCAST_AUTH_SECRET")
    .env_remove("ROOMCAST_AUTH_PUBLIC_KEY")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start roomcast");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let listening = line.contains("roomcast listening");
        lines.push(line);
        if listening || lines.len() > 200 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn an_open_server_says_so_at_start_up_and_a_keyed_one_does_not() {
    let open = start_up_log(&[], &[]);
    assert!(
        open.iter()
            .any(|l| l.contains("\"WARN\"") && l.contains("AUTHENTICATION IS OFF")),
        "{open:#?}"
    );
    let keyed = start_up_log(
        &[],
        &[("ROOMCAST_AUTH_SECRET", "a-secret-of-16-bytes-or-more")],
    );
    assert!(
        keyed.iter().any(|l| l.contains("roomcast listening")),
        "{keyed:#?}"
    );
    assert!(!keyed.iter().any(|l| l.contains("AUTHENTICATION IS OFF")));
    // A secret too short to be one is refused with one line.
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["--bind", "127.0.0.1:0", "--persistence", "off"])
        .env("ROOMCAST_AUTH_SECRET", "short")
        .env("RUST_LOG", "off")
        .output()
        .expect("run roomcast");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 16 bytes"), "{stderr}");
}
