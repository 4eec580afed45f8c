//! `cargo fuzz run game_input`: see `roomcast_server::fuzzing::game_input`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: roomcast_fuzz::init(), |data: &[u8]| {
    roomcast_fuzz::run(roomcast_server::fuzzing::game_input, data);
});
