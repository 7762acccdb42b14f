//! Call control: the B2BUA that joins two SIP dialogs into one call, number routing,
//! the IVR, the operators' queue and the call journal.

pub mod b2bua;
pub mod control;
pub mod driver;
pub mod handle;
pub mod operators;
pub mod routing;
pub mod trunks;

pub use control::{Admission, CallControl, CallEvent, CallId, Disposition};
pub use handle::CallHandle;
pub use operators::{OperatorState, OperatorView};
