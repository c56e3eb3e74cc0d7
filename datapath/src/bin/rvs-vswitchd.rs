//! `rvs-vswitchd`: see [`datapath::daemon`].
fn main() -> std::process::ExitCode {
    datapath::daemon::main()
}
