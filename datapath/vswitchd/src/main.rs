//! `rvs-vswitchd`: a thin main; the daemon is the `rvs_vswitchd` library.
fn main() -> std::process::ExitCode {
    rvs_vswitchd::main()
}
