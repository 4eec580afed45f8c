//! `cargo fuzz run doc_sync`: see `roomcast_server::fuzzing::doc_sync`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: roomcast_fuzz::init(), |data: &[u8]| {
    roomcast_fuzz::run(roomcast_server::fuzzing::doc_sync, data);
});
