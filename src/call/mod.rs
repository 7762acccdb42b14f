//! Call control: the B2BUA that joins two SIP dialogs into one call, number routing,
//! the IVR, the operators' queue and the call journal.
