//! Call control: the calls of the engine and everything they need.
//!
//! - [`control`]: the sans-IO core that owns the calls, the SIP endpoint, the
//!   registrar, the trunks and the operators, and routes events to the flows;
//! - `leg`: one party of a call: a SIP dialog with its own media leg;
//! - [`forward`]: the B2BUA for `forward` numbers;
//! - [`inbound`]: residents calling tenant, citywide and legacy numbers (greeting,
//!   notices, IVR, the queue, the 5-minute rule) and staff calling the dispatch line;
//! - [`outbound`]: calls the engine places, each flow its own state machine
//!   (operator first, the informer, the follow-ups' robot), on one way of dialling
//!   through the trunks;
//! - [`jobs`]: the dialer's jobs held until they run: offered to operators by
//!   precedence and deadline, robot calls paced within the trunks' free channels;
//! - `pacing`: the token bucket robot calls start by;
//! - `claimer`: claiming due jobs from the store and briefing them for the core;
//! - [`callback`]: calling residents and staff back (operator first);
//! - [`handoff`]: the calls of tickets' hand-off chains, as the dialer orders them;
//! - [`announcements`]: what a caller hears, as prompt names;
//! - [`operators`], [`trunks`], [`routing`]: the operators' states, the providers,
//!   and which number does what;
//! - [`media_port`]: the core's view of the media engine;
//! - [`handle`] and [`driver`]: how the rest of the engine reaches the core, and the
//!   tokio task that runs it.

pub mod announcements;
pub mod callback;
mod claimer;
pub mod control;
pub mod disk;
pub mod driver;
pub mod floor;
pub mod floor_sync;
pub mod forward;
pub mod handle;
pub mod handoff;
pub mod inbound;
pub mod jobs;
pub(crate) mod leg;
pub mod media_port;
pub mod operators;
pub mod outbound;
pub(crate) mod pacing;
pub mod recovery;
pub mod room;
pub mod routing;
pub mod screening;
pub mod spooled;
pub mod toll;
pub mod trunks;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod jobs_tests;
#[cfg(test)]
mod test_harness;

pub use control::{Action, Admission, CallControl, CallEvent, CallId, CallerContext, Disposition};
pub use handle::CallHandle;
pub use operators::{OperatorState, OperatorView};
