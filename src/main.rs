use std::process::ExitCode;

/// jemalloc hands freed memory back to the OS within seconds (its decay), where glibc's malloc
/// kept the high-water mark of every burst (a slow database write, a stall) as resident memory
/// for good: a monitor that runs for months must not grow with its worst minute.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, built in (jemalloc(3), "TUNING": the `malloc_conf` global, read at its
/// first allocation; tikv-jemalloc-sys names it with its `_rjem_` prefix). A NUL-terminated C
/// string; `_RJEM_MALLOC_CONF` in the environment is read after it, so an operator can still
/// override each option. What each saves and costs was measured with the load tool (README,
/// Benchmarks: "jemalloc's options, built in"):
/// - `narenas:1`: one arena instead of four per CPU. statusd's eight threads otherwise got an
///   arena each, each with its own partly used slabs and dirty pages, also for threads that
///   allocate next to nothing (SQLite's workers, the log writer, the config watcher).
/// - `dirty_decay_ms:1000`: freed pages go back to the OS after about a second instead of ten.
/// - `tcache_max:8192`: a thread caches freed objects of up to 8 KiB (among them the 8 KiB
///   object each HTTP probe allocates) instead of 32 KiB; the threads' caches held 1.7 MB at
///   1,000 probes a second. Caching only up to 4 KiB saved as much but cost 7 % more CPU at
///   25,000 probes a second, where each probe's 8 KiB object then took the arena's lock.
#[cfg(target_os = "linux")]
#[unsafe(no_mangle)]
pub static _rjem_malloc_conf: &[u8; 46] = b"narenas:1,dirty_decay_ms:1000,tcache_max:8192\0";

#[tokio::main]
async fn main() -> ExitCode {
    match statusd::run(std::env::args_os(), std::env::vars_os(), statusd::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
