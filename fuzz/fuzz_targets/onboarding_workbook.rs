//! Onboarding questionnaires as companies send them: XLSX workbooks (zip and XML,
//! through calamine) and the same sheets as CSV files.
#![no_main]

use dispatchline::store::onboarding::{Workbook, check_workbook};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(book) = Workbook::from_xlsx(data) {
        let _ = check_workbook(&book);
    }
    for sheet in ["Дома", "Сотрудники", "Смены", "Ответственность"] {
        let mut book = Workbook::default();
        if book.add_csv(sheet, data).is_ok() {
            let _ = check_workbook(&book);
        }
    }
});
