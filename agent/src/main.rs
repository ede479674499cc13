fn main() -> std::process::ExitCode {
    kubeboot_agent::cli::main()
}
