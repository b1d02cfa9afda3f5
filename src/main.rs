fn main() {
    std::process::exit(sectigo::cli::main());
}
