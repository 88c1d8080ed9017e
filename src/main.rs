//! `tenantctl`: CLI wiring only; the logic lives in the library.

mod cli;

/// mimalloc rather than glibc's malloc: the server's requests allocate and free many
/// small buffers across the runtime's threads, where glibc's arenas spent about a
/// seventh of the process's CPU under load (`docs/BENCHMARKS.md`, API section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
