//! Wire types of the built-in games. Each game's input travels encoded inside
//! [`crate::Input::payload`] and each entity inside [`crate::EntityData::data`],
//! with the same codec as the envelope.

pub mod arena;
pub mod counter;
