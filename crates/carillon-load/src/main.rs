//! The `carillon-load` binary: parses the command line, raises the open
//! file limit (one RTP socket per call leg), runs the load and prints the
//! report. Exit code 0 when failures stay within `--max-failure-pct`.

use std::process::ExitCode;

use clap::Parser;

use carillon_load::config::{Args, Config, ReportFormat};

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("carillon-load: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("carillon-load: could not raise the open file limit: {e}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("carillon-load: {e}");
            return ExitCode::from(2);
        }
    };
    let format = cfg.report;
    match rt.block_on(carillon_load::run(cfg)) {
        Ok(report) => {
            match format {
                ReportFormat::Json => println!("{}", report.to_json()),
                ReportFormat::Text => print!("{}", report.to_text()),
            }
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("carillon-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
