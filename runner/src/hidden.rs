//! The hidden subcommands both binaries (`kiln-runner` and `kiln`, for `kiln dev`) answer
//! to before parsing any flag: the agent shim, the fence's init, and a git step in an
//! agent's view. The runner starts them from its own executable.

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the hidden subcommand `args` (the whole argv) names, if it names one.
pub fn dispatch(args: &[OsString]) -> Option<ExitCode> {
    let subcommand = args.get(1)?;
    let rest = args[2..].to_vec();
    let main: fn(Vec<OsString>) -> ExitCode = match subcommand.to_str()? {
        crate::shim::SUBCOMMAND => crate::shim::main,
        crate::fence::init::SUBCOMMAND => crate::fence::init::main,
        crate::workspace::step::SUBCOMMAND => crate::workspace::step::main,
        _ => return None,
    };
    Some(main(rest))
}
