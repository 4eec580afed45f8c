//! `cargo fuzz run protocol_decode`: see `roomcast_server::fuzzing::protocol_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: roomcast_fuzz::init(), |data: &[u8]| {
    roomcast_fuzz::run(roomcast_server::fuzzing::protocol_decode, data);
});
