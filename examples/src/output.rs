//! Output that survives a closed pipe: the programs print with [`say!`](crate::say), which
//! ends the program quietly (status 0) when standard output's reader has gone, as in
//! `device … | head`, where `println!` would panic.

use std::fmt;
use std::io::Write as _;

/// Writes one line to standard output; exits the process with status 0 if the pipe is
/// closed, and logs any other write error.
pub fn line(args: fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        log::warn!("cannot write to standard output: {error}");
    }
}

/// `println!` that ends the program quietly when standard output is a closed pipe.
#[macro_export]
macro_rules! say {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
