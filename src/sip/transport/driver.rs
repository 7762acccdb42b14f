//! tokio drivers for UDP and TCP (filled in next).
