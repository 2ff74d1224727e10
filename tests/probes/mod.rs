pub mod common;
mod dns;
mod icmp;
mod tcp;
mod tls;
