//! SIGTERM and SIGINT flip one atomic flag, SIGHUP another; the main loop polls them
//! between datagrams.

// The handler must be installed with `sigaction`, which is unsafe.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use nix::libc::c_int;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static SHUTDOWN_REQUESTED: AtomicBool = AtomicBool::new(false);
static RELOAD_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGHUP has arrived since the last call (which clears it).
pub(crate) fn take_reload_request() -> bool {
    RELOAD_REQUESTED.swap(false, Ordering::SeqCst)
}

/// Whether SIGTERM or SIGINT has arrived.
pub(crate) fn shutdown_requested() -> bool {
    SHUTDOWN_REQUESTED.load(Ordering::SeqCst)
}

extern "C" fn handle_signal(sig: c_int) {
    // Async-signal context: a single atomic store and nothing else.
    if sig == Signal::SIGHUP as c_int {
        RELOAD_REQUESTED.store(true, Ordering::SeqCst);
    } else {
        SHUTDOWN_REQUESTED.store(true, Ordering::SeqCst);
    }
}

/// Points SIGTERM (15), SIGINT (2) and SIGHUP (1) at the flag-setting handler.
///
/// `SA_RESTART` is left off so a blocking receive returns `EINTR` at once and the flag
/// is seen without waiting for the one-second receive timeout.
pub(crate) fn install_signal_handlers() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(handle_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: `handle_signal` only performs an atomic store, which is
        // async-signal-safe, and the previous handler is not needed (it is discarded).
        unsafe { sigaction(signal, &action) }?;
    }
    // A write past the file size limit (RLIMIT_FSIZE) must fail with EFBIG and be handled
    // like any failed floor write, not kill the server.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler code at all.
    unsafe { sigaction(Signal::SIGXFSZ, &ignore) }?;
    Ok(())
}
