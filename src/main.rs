use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match statusd::run(std::env::args_os(), std::env::vars_os(), statusd::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
