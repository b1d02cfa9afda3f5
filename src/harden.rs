//! Process hardening that every command applies before it reads a secret.

/// Marks the process not dumpable (prctl `PR_SET_DUMPABLE` 0): no core dump, and no ptrace or
/// `/proc/PID/mem` access by other processes of the same user, for a memory that holds client
/// secrets, tokens and private keys. The unit's `LimitCORE=0` does the same from outside; this
/// also covers a command run from a shell. Returns whether the process is now not dumpable.
pub fn no_core_dumps() -> bool {
    use rustix::process::{dumpable_behavior, set_dumpable_behavior, DumpableBehavior};
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        eprintln!("sectigo-connector: cannot turn core dumps off: {e}");
    }
    !core_dumps_on_now(dumpable_behavior().ok())
}

/// What the kernel says now (`None`: it could not be asked).
pub fn core_dumps_on() -> Option<bool> {
    rustix::process::dumpable_behavior()
        .ok()
        .map(|b| core_dumps_on_now(Some(b)))
}

fn core_dumps_on_now(b: Option<rustix::process::DumpableBehavior>) -> bool {
    !matches!(b, Some(rustix::process::DumpableBehavior::NotDumpable))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_is_not_dumpable_afterwards() {
        assert!(super::no_core_dumps());
        assert_eq!(super::core_dumps_on(), Some(false));
    }
}
