//! The dialer: persistent outbound dial jobs (callbacks, hand-off chains, informers,
//! status checks, surveys) that survive a restart.
