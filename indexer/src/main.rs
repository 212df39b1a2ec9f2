use clap::Parser;
use corral_indexer::cli::{Args, Command};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    corral_collector::logging::init();
    let result = match &args.command {
        Command::Serve(serve) => corral_indexer::app::serve(serve),
        Command::Standalone(standalone) => corral_indexer::app::standalone(standalone),
        Command::Retention(retention) => corral_indexer::app::retention_pass(retention),
        Command::Verify(verify) => match corral_indexer::verify::run(verify) {
            Ok(report) => {
                for problem in &report.problems {
                    eprintln!("corral-indexer verify: {problem}");
                }
                if report.problems.is_empty() {
                    let audit = match (report.audit_checked, &verify.storage) {
                        (false, _) => {
                            "audit log: not checked (none in the store; give --data-dir and --indexer-id)"
                                .to_owned()
                        }
                        (true, None) => {
                            format!("audit log: {} entries, chain unbroken", report.audit_entries)
                        }
                        (true, Some(_)) => format!(
                            "{} audit log(s): {} entries, chains unbroken, {}{}",
                            report.audit_logs,
                            report.audit_entries,
                            if report.control_checked {
                                "each reaching the head its indexer published to the control topic"
                            } else {
                                "not checked against the control topic (give --brokers)"
                            },
                            match report.unanchored {
                                0 => String::new(),
                                n => format!(
                                    "; {n} retention entries after the last published heads not counted as evidence"
                                ),
                            }
                        ),
                    };
                    println!(
                        "verified {} sealed splits ({} files, {} records): every file matches its manifest and the manifest chain is unbroken; {audit}",
                        report.splits, report.files, report.docs
                    );
                    Ok(())
                } else {
                    eprintln!(
                        "corral-indexer verify: {} problem(s) in {}",
                        report.problems.len(),
                        match (&verify.storage, &verify.data_dir) {
                            (Some(storage), _) => storage.to_string(),
                            (None, Some(dir)) => dir.display().to_string(),
                            (None, None) => unreachable!("clap requires one"),
                        }
                    );
                    std::process::exit(1);
                }
            }
            Err(error) => Err(error),
        },
    };
    if let Err(error) = result {
        tracing::error!(error = %format!("{error:#}"), "corral-indexer stopped");
        eprintln!("corral-indexer: {error:#}");
        std::process::exit(1);
    }
}
