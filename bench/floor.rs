//! The floor: the same OS work the benchmark asks of a supervisor, with nothing around it.
//! Built by bench/run.py with plain `rustc -O` (not a workspace member, so CI never builds it).
//!
//!   floor spawn N        spawn N `/bin/true` with std::process, then reap them all;
//!                        prints the wall time in microseconds
//!   floor stamp FILE     write CLOCK_REALTIME in nanoseconds to FILE and exit at once
//!                        (the job of the exit-detection workload)

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("spawn") => {
            let n: usize = args
                .get(2)
                .and_then(|s| s.parse().ok())
                .expect("usage: floor spawn N");
            let t = Instant::now();
            let mut children = Vec::with_capacity(n);
            for _ in 0..n {
                children.push(
                    Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("spawn /bin/true"),
                );
            }
            for mut c in children {
                c.wait().expect("wait");
            }
            println!("{}", t.elapsed().as_micros());
        }
        Some("stamp") => {
            let path = args.get(2).expect("usage: floor stamp FILE");
            let ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos();
            let mut f = std::fs::File::create(path).expect("create stamp file");
            write!(f, "{ns}").expect("write stamp");
        }
        _ => {
            eprintln!("usage: floor spawn N | floor stamp FILE");
            std::process::exit(2);
        }
    }
}
