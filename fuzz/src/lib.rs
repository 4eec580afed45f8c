//! What the fuzz targets share: running an entry point of
//! `roomcast_server::fuzzing` so that only an *uncaught* panic is a crash.
//!
//! libfuzzer-sys's panic hook aborts on every panic, even one the code under
//! test catches on purpose (the doc room runs yrs under `catch_unwind` and
//! rolls back). [`init`] replaces that hook: it prints the first panic of each
//! source location (with a backtrace, taken before unwinding), so guarded
//! panics are reported without flooding the log; [`run`] aborts, which
//! libFuzzer records as a crash, when a panic escapes the entry point.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

thread_local! {
    /// The latest panic's message and location.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Source locations of the panics printed so far.
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Installs the panic hook; call from `fuzz_target!(init: ...)`.
pub fn init() {
    panic::set_hook(Box::new(|info| {
        let text = info.to_string();
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let first = SEEN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashSet::new)
            .insert(location);
        if first {
            let trace = std::backtrace::Backtrace::force_capture();
            eprintln!("panic (a crash only if uncaught): {text}\n{trace}");
        }
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
    }));
}

/// Runs `entry` on `data`; aborts if it panics.
pub fn run(entry: fn(&[u8]), data: &[u8]) {
    if panic::catch_unwind(AssertUnwindSafe(|| entry(data))).is_err() {
        let last = LAST_PANIC.with(|last| last.borrow_mut().take());
        eprintln!(
            "uncaught panic: {}",
            last.as_deref().unwrap_or("(no message)")
        );
        std::process::abort();
    }
}
