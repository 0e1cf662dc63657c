//! `portico`: Kubernetes Services in one binary.

mod cli;
mod dns_args;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli.run()));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and why (anyhow's `{:#}` joins the causes).
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
