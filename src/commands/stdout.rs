//! Standard output as Unix tools treat it: when the reader has gone (`cnnc summary … | head -1`),
//! the program ends quietly with status 141, the status a shell reports for a process ended by
//! SIGPIPE; any other write error (a full disk) is reported and ends it with status 1. Every verb
//! prints through [`out!`] and [`outln!`], never `print!`, which panics on both. Standard error
//! goes through [`err!`] and [`errln!`] (a spec's diagnostics can be megabytes: `cnnc check spec
//! 2>&1 | head -1`): a closed pipe ends the program the same way, and other write errors there are
//! ignored, as there is nowhere left to report them.

use std::io::Write;

/// Status of a program whose output pipe was closed: 128 + SIGPIPE, as shells report it.
const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes formatted text to standard output, ending the program on a write error.
pub fn write(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        // Through write_err: eprintln! would panic when standard error fails too.
        write_err(format_args!("error: cannot write to standard output: {e}\n"));
        std::process::exit(1);
    }
}

/// Writes formatted text to standard error, ending the program quietly when the reader has gone.
pub fn write_err(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    if let Err(e) = err.write_fmt(args).and_then(|()| err.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
    }
}

/// `print!` that ends the program cleanly on a closed pipe or a write error.
macro_rules! out {
    ($($arg:tt)*) => { $crate::commands::stdout::write(format_args!($($arg)*)) };
}

/// `println!` that ends the program cleanly on a closed pipe or a write error.
macro_rules! outln {
    () => { $crate::commands::stdout::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::commands::stdout::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that ends the program quietly on a closed pipe.
macro_rules! err {
    ($($arg:tt)*) => { $crate::commands::stdout::write_err(format_args!($($arg)*)) };
}

/// `eprintln!` that ends the program quietly on a closed pipe.
macro_rules! errln {
    () => { $crate::commands::stdout::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::commands::stdout::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {err, errln, out, outln};
