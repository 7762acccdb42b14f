//! SIP signalling: the wire format (RFC 3261 §7, §20, §25 with the RFC 4475 and 5118
//! hardening), transports (§18, RFC 3581), transactions (§17, RFC 6026) and dialogs
//! (§12). Knows nothing of calls, tenants or tickets.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod registrar;
pub mod transaction;
pub mod transport;
pub mod wire;
