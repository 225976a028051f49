//! `carillon-net`: the I/O edge. Binds the SIP listeners (UDP and TCP over
//! IPv4 and IPv6), frames stream traffic by Content-Length (RFC 3261
//! §18.3), answers CRLF keep-alives (RFC 5626 §4.4.1), and runs the single
//! signalling task that owns the sans-IO [`carillon_b2bua::Switch`]: it
//! feeds it datagrams, frames and timer expiries with the current time and
//! carries out what it asks (send, persist a binding, command the media
//! plane: briefly held, see [`held`]).

pub mod driver;
pub mod held;
pub mod transport;

pub use driver::{Control, Driver, DriverHandle, Sinks, TrunksReload};
pub use transport::{ListenSpec, Listeners};
