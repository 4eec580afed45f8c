//! Replays the committed fuzz inputs (`fuzz/regressions/<target>/*`) through
//! the entry points their fuzz targets call (`roomcast_server::fuzzing`), so a
//! plain `cargo test` catches a regression without nightly or libFuzzer. See
//! `fuzz/README.md` for how to add a case.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use roomcast_server::fuzzing::TARGETS;

/// The inputs committed for `target`, sorted by name.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of `target`; fails naming each input that panicked.
fn replay(target: &str) {
    let (_, entry) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known fuzz target");
    let files = inputs(target);
    assert!(!files.is_empty(), "no regression inputs for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("readable regression input");
            catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs failed: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn protocol_decode_regressions() {
    replay("protocol_decode");
}

#[test]
fn game_input_regressions() {
    replay("game_input");
}

#[test]
fn doc_sync_regressions() {
    replay("doc_sync");
}

/// Replays the one input `ROOMCAST_FUZZ_INPUT` names through the target
/// `ROOMCAST_FUZZ_TARGET` (default `doc_sync`), for triage; with neither set
/// it does nothing. E.g. `ROOMCAST_FUZZ_TRACE=1 ROOMCAST_FUZZ_INPUT=path cargo
/// test -p roomcast-server --test fuzz_regressions one_input -- --nocapture`.
#[test]
fn one_input() {
    let Some(path) = std::env::var_os("ROOMCAST_FUZZ_INPUT") else {
        return;
    };
    let target = std::env::var("ROOMCAST_FUZZ_TARGET").unwrap_or_else(|_| "doc_sync".into());
    let (_, entry) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known fuzz target");
    entry(&std::fs::read(&path).expect("a readable input"));
}
