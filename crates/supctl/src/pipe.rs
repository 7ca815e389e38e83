//! A reader that goes away early (`| head`) ends the output quietly, exit 0, the way
//! `cat` and `ripgrep` behave, instead of a "Broken pipe" panic from `println!`.

/// Whether an I/O error means the reader of our output has gone.
pub fn reader_gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Make a print that fails because stdout's reader has gone end the process with 0 and
/// no message; every other panic keeps the default report.
pub fn quiet_when_reader_goes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("os error 32") {
            std::process::exit(0);
        }
        default(info);
    }));
}
