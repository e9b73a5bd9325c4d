//! `cloacinactl`: the API server (`serve`) and the client of its API.

/// mimalloc instead of the C library's allocator: a trigger pass allocates and frees many
/// small values (rows, arrays, JSON), and glibc's malloc took a third of the server's CPU
/// under a steady trigger load (docs/benchmarks.md, B11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cloacina_app::main()
}
