//! `logq`: the engineer's and auditor's view of corral (DESIGN §5).

use clap::Parser;
use logq::cli::Args;

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => {
            // Help and version go to stdout with 0; bad flags are errors (2).
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    std::process::exit(logq::run::main(&args));
}
