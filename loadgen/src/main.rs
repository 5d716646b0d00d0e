//! sluice-loadgen: replay captures and synthesize exporters against a collector.
fn main() {
    eprintln!("sluice-loadgen: not built yet (see the speed issue)");
    std::process::exit(2);
}
