//! `supctl logs NAME... | --group G | --all [-f]`: several jobs' output in one stream,
//! each line behind a `name | ` label in a colour that depends only on the job's name,
//! the way `docker compose logs -f` shows services; standard error's lines are marked
//! `name | [stderr] `.
//!
//! It uses the protocol as it is: one `logs` request per job and stream. A follow holds
//! one of the daemon's in-flight slots per connection, so the streams are spread over
//! connections of at most [`PER_CONNECTION`] each, one reader thread per connection,
//! all feeding one printer.

use crate::client::{Client, ClientError};
use crate::Failure;
use protocol::{JobList, LogsParams, LogsResult, Request, Selection, Stream};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

/// Follows per connection: well under the daemon's 64 requests in flight per connection.
const PER_CONNECTION: usize = 48;

/// One job's stream.
#[derive(Clone)]
struct Source {
    name: String,
    stream: Stream,
}

/// What a connection's thread hands the printer.
enum Piece {
    /// The last lines of one source, in source order (sent once per source).
    Tail(usize, Vec<String>),
    /// A source whose output cannot be read; `loud` when the user asked for it.
    Unreadable(usize, String, bool),
    /// Followed output: a `log` notification's params (or a `lagged` one).
    Live(String, Value),
    /// The connection failed.
    Broken(ClientError),
}

/// Print the selected jobs' logs: the last `lines` of each, then, with `follow`, what
/// they write from now on, until interrupted or stdout closes.
pub fn many(
    socket: &Path,
    selection: Selection,
    stderr_only: bool,
    lines: usize,
    follow: bool,
    json_out: bool,
) -> Result<(), Failure> {
    let mut client = Client::connect(socket)?;
    let list: JobList = client.call(&Request::Status(selection.into()))?.decode()?;
    let names: Vec<String> = list.jobs.into_iter().map(|j| j.name).collect();
    let streams: &[Stream] = if stderr_only {
        &[Stream::Stderr]
    } else {
        &[Stream::Stdout, Stream::Stderr]
    };
    let sources: Vec<Source> = names
        .iter()
        .flat_map(|n| {
            streams.iter().map(|s| Source {
                name: n.clone(),
                stream: *s,
            })
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    // The threads block on their sockets; they end when the printer stops taking what
    // they send, or with the process.
    let mut spare = Some(client);
    for (k, chunk) in sources.chunks(PER_CONNECTION).enumerate() {
        let conn = match spare.take() {
            Some(c) => c,
            None => Client::connect(socket)?,
        };
        let (tx, chunk) = (tx.clone(), chunk.to_vec());
        let offset = k * PER_CONNECTION;
        std::thread::spawn(move || {
            read_sources(conn, offset, chunk, lines, follow, stderr_only, tx);
        });
    }
    drop(tx);
    print(&sources, rx, json_out)
}

/// One connection: a `logs` request per source, then every notification, to the printer.
fn read_sources(
    mut client: Client,
    offset: usize,
    sources: Vec<Source>,
    lines: usize,
    follow: bool,
    stderr_only: bool,
    tx: mpsc::Sender<Piece>,
) {
    let mut early = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let request = Request::Logs(LogsParams {
            name: s.name.clone(),
            stream: s.stream,
            lines: Some(lines),
            follow: Some(follow),
        });
        let answer = client.call_with(&request, |note| early.push(note));
        let piece = match answer {
            Ok(reply) => match reply.decode::<LogsResult>() {
                Ok(tail) => Piece::Tail(offset + i, tail.lines),
                Err(e) => Piece::Broken(e),
            },
            Err(ClientError::Rpc(e)) => Piece::Unreadable(
                offset + i,
                e.message,
                stderr_only || s.stream == Stream::Stdout,
            ),
            Err(e) => Piece::Broken(e),
        };
        if tx.send(piece).is_err() {
            return;
        }
    }
    for note in early {
        if tx.send(Piece::Live(note.method, note.params)).is_err() {
            return;
        }
    }
    if !follow {
        return;
    }
    loop {
        let piece = match client.next_notification() {
            Ok(Some(note)) => Piece::Live(note.method, note.params),
            Ok(None) => return,
            Err(e) => Piece::Broken(e),
        };
        if tx.send(piece).is_err() {
            return;
        }
    }
}

/// The printer: every source's tail in order once all have answered, then live output.
fn print(sources: &[Source], rx: mpsc::Receiver<Piece>, json_out: bool) -> Result<(), Failure> {
    let colour = crate::render::colour_enabled();
    let width = sources.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let prefix = |name: &str, stream: Stream| label(name, stream, width, colour);
    let mut tails: Vec<Option<Vec<String>>> = vec![None; sources.len()];
    let mut answered = 0;
    let mut held = Vec::new();
    let mut out = std::io::stdout().lock();
    for piece in rx {
        let mut text = String::new();
        match piece {
            Piece::Tail(i, lines) => {
                tails[i] = Some(lines);
                answered += 1;
            }
            Piece::Unreadable(i, message, loud) => {
                if loud {
                    eprintln!("supctl: {message}");
                }
                tails[i] = Some(Vec::new());
                answered += 1;
            }
            Piece::Broken(e) => return Err(Failure::Client(e)),
            Piece::Live(method, params) if answered < sources.len() => held.push((method, params)),
            Piece::Live(method, params) => text = live(&method, &params, json_out, &prefix),
        }
        if answered == sources.len() && !tails.is_empty() {
            for (s, lines) in sources.iter().zip(tails.drain(..)) {
                for l in lines.unwrap_or_default() {
                    text.push_str(&if json_out {
                        json!({ "name": s.name, "stream": s.stream, "data": format!("{l}\n") })
                            .to_string()
                    } else {
                        format!("{}{l}", prefix(&s.name, s.stream))
                    });
                    text.push('\n');
                }
            }
            for (method, params) in held.drain(..) {
                text.push_str(&live(&method, &params, json_out, &prefix));
            }
        }
        // A closed stdout (`supctl logs --all -f | head`) ends it quietly.
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// One `log` (or `lagged`) notification as printed.
fn live(
    method: &str,
    params: &Value,
    json_out: bool,
    prefix: &dyn Fn(&str, Stream) -> String,
) -> String {
    let name = params["name"].as_str().unwrap_or("?");
    let stream = if params["stream"] == "stderr" {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    if method == "lagged" {
        return if json_out {
            format!(
                "{}\n",
                json!({ "lagged": true, "name": name, "stream": stream, "missed": params["missed"] })
            )
        } else {
            format!(
                "{}[supctl: skipped output the terminal could not keep up with]\n",
                prefix(name, stream)
            )
        };
    }
    if json_out {
        return format!("{params}\n");
    }
    let data = params["data"].as_str().unwrap_or_default();
    let mut text = String::new();
    for line in data.split_inclusive('\n') {
        text.push_str(&prefix(name, stream));
        text.push_str(line);
        if !line.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// `web   | ` for standard output, `web   | [stderr] ` for standard error: the name padded
/// to `width`, coloured by job when `colour`.
fn label(name: &str, stream: Stream, width: usize, colour: bool) -> String {
    let mark = match stream {
        Stream::Stdout => "",
        Stream::Stderr if colour => "\x1b[31m[stderr]\x1b[0m ",
        Stream::Stderr => "[stderr] ",
    };
    if colour {
        format!("\x1b[{}m{name:<width$} |\x1b[0m {mark}", job_colour(name))
    } else {
        format!("{name:<width$} | {mark}")
    }
}

/// An ANSI colour that depends only on the job's name, so a job keeps its colour from
/// one run of supctl to the next (FNV-1a over the name; red is left for errors).
fn job_colour(name: &str) -> u8 {
    const PALETTE: [u8; 10] = [32, 33, 34, 35, 36, 92, 93, 94, 95, 96];
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    PALETTE[(h % PALETTE.len() as u32) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_keeps_its_colour() {
        assert_eq!(job_colour("web"), job_colour("web"));
        let colours: std::collections::HashSet<u8> = ["web", "db", "worker-1", "worker-2", "cron"]
            .iter()
            .map(|n| job_colour(n))
            .collect();
        assert!(
            colours.len() >= 3,
            "names spread over the palette: {colours:?}"
        );
    }

    #[test]
    fn live_lines_are_labelled_one_by_one() {
        let prefix = |n: &str, s: Stream| label(n, s, 5, false);
        let params = json!({ "name": "web", "stream": "stderr", "data": "a\nb\n" });
        assert_eq!(
            live("log", &params, false, &prefix),
            "web   | [stderr] a\nweb   | [stderr] b\n"
        );
        assert_eq!(live("log", &params, true, &prefix), format!("{params}\n"));
        let params = json!({ "name": "web", "stream": "stdout", "data": "c" });
        assert_eq!(live("log", &params, false, &prefix), "web   | c\n");
    }
}
