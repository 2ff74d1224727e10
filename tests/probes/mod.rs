pub mod common;
mod dns;
mod http;
mod icmp;
mod tcp;
mod tls;
