//! The `rtmd` binary.

fn main() {
    eprintln!("rtmd: the service is not wired yet; only the store layer exists so far");
    std::process::exit(2);
}
