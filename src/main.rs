use std::process::ExitCode;

/// jemalloc hands freed memory back to the OS within seconds (its decay), where glibc's malloc
/// kept the high-water mark of every burst (a slow database write, a stall) as resident memory
/// for good: a monitor that runs for months must not grow with its worst minute.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match statusd::run(std::env::args_os(), std::env::vars_os(), statusd::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
