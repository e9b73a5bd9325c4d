//! `cloacinactl`: the API server (`serve`) and the client of its API.

fn main() -> std::process::ExitCode {
    cloacina_app::main()
}
