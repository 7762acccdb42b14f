//! What a panic does to the engine: it ends the process.
//!
//! A panic in any task or thread of the engine (the call core, a media shard,
//! the dialer, the writer, the console) would otherwise leave a zombie: the
//! process runs, `/healthz` may still answer, and SIP is silently dropped. With
//! [`install_fatal_panic_hook`] (the binary's `serve` and `demo` install it) a
//! panic logs one clear line and exits with status 70, so the service manager
//! restarts the engine and crash recovery runs. The one place the engine
//! deliberately survives a panic, the SIP parser's guard against a malformed
//! message, runs its work through [`contained`].

use std::cell::Cell;

/// The exit status after a panic (EX_SOFTWARE).
pub const PANIC_EXIT_STATUS: i32 = 70;

thread_local! {
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, catching a panic in it without ending the process.
pub fn contained<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    CONTAINED.with(|c| c.set(c.get().saturating_add(1)));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
    result
}

/// Makes every panic outside [`contained`] end the process after logging it.
pub fn install_fatal_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if CONTAINED.with(Cell::get) > 0 {
            return;
        }
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            "fatal: {info}; the engine exits (status {PANIC_EXIT_STATUS}) so that the service manager restarts it"
        );
        std::process::exit(PANIC_EXIT_STATUS);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_caught() {
        let r = contained(|| -> u32 { panic!("on purpose") });
        assert!(r.is_err());
        assert_eq!(contained(|| 7).ok(), Some(7));
        assert_eq!(CONTAINED.with(Cell::get), 0);
    }
}
