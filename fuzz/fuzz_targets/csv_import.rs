//! Contacts and debtors CSV files as the management companies send them.
#![no_main]

use dispatchline::store::import::{check_contacts, check_debtors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_contacts(data);
    let _ = check_debtors(data);
});
