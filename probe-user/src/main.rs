//! `pinwatch`: parse the command line, run, map the outcome to an exit code.

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;

use probe_user::{
    audit,
    cli::{Cli, Commands},
    daemon, doctor,
    error::Error,
    event_stream, exit, pins,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon's log is its output; the one-shot commands print reports and only warn.
    let default = match cli.command {
        Commands::Run(_) => log::LevelFilter::Info,
        _ => log::LevelFilter::Warn,
    };
    probe_user::logging::init(cli.log_level, default);
    match run(cli) {
        Ok(code) => exit::code(code),
        Err(e) => {
            eprintln!("pinwatch: {e}");
            exit::code(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Commands::Doctor(args) => {
            let opts = doctor::Options {
                btf_path: cli.btf,
                method: args.method,
                watch: args.watch,
                command: args.command,
            };
            let (report, code) = doctor::run(&opts)?;
            emit(&report, args.json, doctor::render::render)?;
            Ok(code)
        }
        Commands::Audit(args) => {
            let opts = audit::Options {
                btf_path: cli.btf,
                method: args.method,
                duration: args.duration,
                command: args.command,
                pid: args.pid,
                fail_on: args.fail_on,
                progress: !args.no_progress,
                json: args.json,
            };
            let (report, code) = audit::run(&opts)?;
            emit(&report, args.json, audit::render::render)?;
            Ok(code)
        }
        Commands::Run(args) => daemon::run(&daemon::Options {
            btf_path: cli.btf,
            method: args.method,
            listen: args.listen,
            findings_log: args.findings_log,
            bench_mode: args.bench_mode,
        }),
        Commands::Events(args) => event_stream::run(&event_stream::Options {
            btf_path: cli.btf,
            method: args.method,
            filter: event_stream::Filter {
                hazards: args.hazard,
                hooks: args.hook,
            },
            pid: args.pid,
            duration: args.duration,
            command: args.command,
        }),
        Commands::Pins(args) => {
            let (inventory, code) = pins::run()?;
            emit(&inventory, args.json, pins::render::render)?;
            Ok(code)
        }
        Commands::Metrics(args) => {
            print(&daemon::catalog::catalog(args.names))?;
            Ok(exit::OK)
        }
    }
}

/// Prints a report as one JSON object or as text.
fn emit<R: serde::Serialize>(
    report: &R,
    json: bool,
    render: fn(&R) -> String,
) -> Result<(), Error> {
    let text = if json {
        serde_json::to_string(report).expect("reports are plain data") + "\n"
    } else {
        render(report)
    };
    print(&text)
}

fn print(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(Error::Output)
}
