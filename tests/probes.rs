//! Each probe against a real server of its protocol on loopback: success, every failure mode
//! it claims to detect, and timeout. None needs the internet.

#[path = "probes/mod.rs"]
mod probes;
