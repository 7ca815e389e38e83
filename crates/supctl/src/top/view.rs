//! What `supctl top` shows, as plain state: the table (fed by snapshots, events and usage
//! samples), the selection, the filter, the log pane, the help; turning a key into an
//! [`Action`]; and drawing it all into a ratatui frame. No I/O here, so every screen is
//! unit-tested on ratatui's `TestBackend`.

use crate::render::{bytes, short_duration};
use protocol::{Event, Health, HealthChange, Job, JobState, Stream};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Lines kept for the log pane.
const LOG_LINES: usize = 500;

/// What a key asks the event loop to do beyond changing the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing more.
    None,
    /// Leave `top`.
    Quit,
    /// `start` this job.
    Start(String),
    /// `terminate` this job (without waiting).
    Terminate(String),
    /// `restart` this job.
    Restart(String),
    /// Follow this job's log in the lower pane.
    FollowLog(String),
    /// Close the log pane.
    CloseLog,
}

/// One row: the job as last reported, and what `top` keeps beside it.
#[derive(Debug, Clone)]
struct JobRow {
    job: Job,
    /// `uptime_ms` at `seen`, so uptime keeps counting between samples.
    seen: Instant,
    /// When an event last changed the row (newer than a snapshot asked for before it).
    evented: Option<Instant>,
    /// When a `health` notification last changed the row, likewise.
    health_at: Option<Instant>,
    /// CPU percent over the last two usage samples of the same process.
    cpu_percent: Option<f64>,
    /// The previous usage sample: (pid, cpu_ms, when).
    last_sample: Option<(u32, u64, Instant)>,
}

/// The daemon's numbers for the header.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Its version.
    pub version: String,
    /// Its uptime at `seen`.
    pub uptime_ms: u64,
    /// When `uptime_ms` was read.
    pub seen: Instant,
}

/// The log pane.
#[derive(Debug, Clone)]
pub struct LogPane {
    /// Whose log.
    pub name: String,
    /// The last lines.
    pub lines: VecDeque<String>,
    /// Part of a stdout line still to be completed by the next chunk.
    partial: String,
    /// The same for stderr.
    err_partial: String,
}

/// What marks a stderr line in the log pane (stdout lines are shown as they are).
pub const STDERR_MARK: &str = "err│ ";

/// Everything `top` shows.
#[derive(Debug)]
pub struct View {
    rows: Vec<JobRow>,
    /// The selected job, by name (kept across refreshes and filtering).
    selected: Option<String>,
    /// The filter: names or groups containing it (case-insensitive).
    pub filter: String,
    /// The filter is being typed.
    pub editing_filter: bool,
    /// The help is shown.
    pub help: bool,
    /// The log pane, when open.
    pub log: Option<LogPane>,
    /// The daemon, once pinged.
    pub daemon: Option<Daemon>,
    /// A one-line message (the answer to the last action).
    pub message: Option<String>,
    /// Paint states in colour.
    pub colour: bool,
}

impl View {
    /// An empty view.
    pub fn new(colour: bool) -> View {
        View {
            rows: Vec::new(),
            selected: None,
            filter: String::new(),
            editing_filter: false,
            help: false,
            log: None,
            daemon: None,
            message: None,
            colour,
        }
    }

    /// The whole table, as answered at `asked` (the time the request was sent). A job an
    /// event changed after `asked` keeps the state the event gave it.
    pub fn table(&mut self, jobs: Vec<Job>, asked: Instant) {
        let now = Instant::now();
        let mut old: HashMap<String, JobRow> = self
            .rows
            .drain(..)
            .map(|r| (r.job.name.clone(), r))
            .collect();
        for mut job in jobs {
            let mut row = match old.remove(&job.name) {
                Some(prev) => {
                    let mut row = prev.clone();
                    if prev.evented.is_some_and(|t| t > asked) {
                        job.state = prev.job.state;
                        job.alive = prev.job.alive;
                        job.pid = prev.job.pid;
                        job.uptime_ms = prev.job.uptime_ms.map(|_| uptime(&prev, now));
                    }
                    if prev.health_at.is_some_and(|t| t > asked) {
                        job.health = prev.job.health;
                        job.health_output = prev.job.health_output.clone();
                    }
                    row.job = job;
                    row
                }
                None => JobRow {
                    job,
                    seen: now,
                    evented: None,
                    health_at: None,
                    cpu_percent: None,
                    last_sample: None,
                },
            };
            row.seen = now;
            sample_cpu(&mut row, now);
            self.rows.push(row);
        }
    }

    /// A state change as it happens.
    pub fn event(&mut self, e: &Event) {
        let now = Instant::now();
        let idx = match self.rows.iter().position(|r| r.job.name == e.name) {
            Some(i) => i,
            None => {
                // A job added since the last snapshot: shown now, filled by the next one.
                self.rows.push(JobRow {
                    job: job_from_event(e),
                    seen: now,
                    evented: None,
                    health_at: None,
                    cpu_percent: None,
                    last_sample: None,
                });
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[idx];
        let was_alive = row.job.alive;
        row.job.state = e.to;
        row.job.alive = e.to.is_alive();
        row.evented = Some(now);
        if e.to == JobState::Starting || (!was_alive && row.job.alive) {
            row.job.pid = e.pid;
            row.job.uptime_ms = Some(0);
            row.seen = now;
            row.cpu_percent = None;
            row.job.cpu_ms = None;
            row.job.memory_bytes = None;
        } else if !row.job.alive {
            row.job.pid = None;
            row.job.uptime_ms = None;
            row.cpu_percent = None;
            row.job.cpu_ms = None;
            row.job.memory_bytes = None;
        }
        if e.exitcode.is_some() {
            row.job.exitcode = e.exitcode;
        }
    }

    /// A change of a job's health as it happens (a job not seen yet waits for the next
    /// snapshot).
    pub fn health(&mut self, h: &HealthChange) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.job.name == h.name) {
            row.job.health = Some(h.health);
            row.job.health_output = h.output.clone();
            row.health_at = Some(Instant::now());
        }
    }

    /// Output of one of the followed job's streams: whole lines are shown in the order
    /// they arrive, stderr's marked with [`STDERR_MARK`].
    pub fn stream_data(&mut self, stream: Stream, data: &str) {
        let Some(pane) = &mut self.log else { return };
        let partial = match stream {
            Stream::Stdout => &mut pane.partial,
            Stream::Stderr => &mut pane.err_partial,
        };
        partial.push_str(data);
        let mut whole = Vec::new();
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            whole.push(line.trim_end_matches(['\n', '\r']).to_owned());
        }
        for line in whole {
            pane.push_from(stream, line);
        }
    }

    /// The last lines of one stream, as its follow begins.
    pub fn stream_tail(&mut self, stream: Stream, lines: Vec<String>) {
        let Some(pane) = &mut self.log else { return };
        for line in lines {
            pane.push_from(stream, line);
        }
    }

    /// Open the log pane on `name` with these last lines.
    pub fn open_log(&mut self, name: &str, lines: Vec<String>) {
        let mut pane = LogPane {
            name: name.to_owned(),
            lines: VecDeque::new(),
            partial: String::new(),
            err_partial: String::new(),
        };
        for l in lines {
            pane.push(l);
        }
        self.log = Some(pane);
    }

    /// The rows the filter lets through, in table order.
    fn visible(&self) -> Vec<&JobRow> {
        let f = self.filter.to_lowercase();
        self.rows
            .iter()
            .filter(|r| {
                f.is_empty()
                    || r.job.name.to_lowercase().contains(&f)
                    || r.job.group.to_lowercase().contains(&f)
            })
            .collect()
    }

    /// The selected job's name, if it is visible (else the first visible one).
    pub fn selected(&self) -> Option<String> {
        let visible = self.visible();
        self.selected
            .as_ref()
            .and_then(|s| visible.iter().find(|r| &r.job.name == s))
            .or_else(|| visible.first())
            .map(|r| r.job.name.clone())
    }

    fn selected_index(&self) -> Option<usize> {
        let name = self.selected()?;
        self.visible().iter().position(|r| r.job.name == name)
    }

    fn move_selection(&mut self, by: isize) {
        let visible: Vec<String> = self.visible().iter().map(|r| r.job.name.clone()).collect();
        if visible.is_empty() {
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let last = visible.len() as isize - 1;
        let to = (at + by).clamp(0, last) as usize;
        self.selected = Some(visible[to].clone());
    }

    /// What a key does.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.help {
            self.help = false;
            return Action::None;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !ctrl => self.filter.push(c),
                _ => {}
            }
            return Action::None;
        }
        let selected = self.selected();
        let on_selected = |make: fn(String) -> Action| selected.clone().map_or(Action::None, make);
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                Action::None
            }
            KeyCode::Esc => Action::Quit,
            KeyCode::Up | KeyCode::Char('k') => {
                self.move_selection(-1);
                Action::None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.move_selection(1);
                Action::None
            }
            KeyCode::PageUp => {
                self.move_selection(-10);
                Action::None
            }
            KeyCode::PageDown => {
                self.move_selection(10);
                Action::None
            }
            KeyCode::Home | KeyCode::Char('g') => {
                self.move_selection(isize::MIN / 2);
                Action::None
            }
            KeyCode::End | KeyCode::Char('G') => {
                self.move_selection(isize::MAX / 2);
                Action::None
            }
            KeyCode::Char('s') => on_selected(Action::Start),
            KeyCode::Char('t') => on_selected(Action::Terminate),
            KeyCode::Char('r') => on_selected(Action::Restart),
            KeyCode::Char('l') => match (&self.log, selected) {
                (Some(pane), Some(sel)) if pane.name != sel => Action::FollowLog(sel),
                (Some(_), _) => Action::CloseLog,
                (None, Some(sel)) => Action::FollowLog(sel),
                (None, None) => Action::None,
            },
            KeyCode::Char('/') => {
                self.editing_filter = true;
                Action::None
            }
            KeyCode::Char('?') | KeyCode::Char('h') => {
                self.help = true;
                Action::None
            }
            _ => Action::None,
        }
    }

    /// Draw everything into `frame`.
    pub fn draw(&self, frame: &mut Frame<'_>) {
        let area = frame.area();
        if area.width < 20 || area.height < 5 {
            self.draw_tiny(frame, area);
            return;
        }
        let log_height = match &self.log {
            Some(_) if area.height >= 16 => area.height / 3,
            Some(_) => 3.min(area.height.saturating_sub(4)),
            None => 0,
        };
        let [header, table, log, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(2),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(self.header_line()), header);
        self.draw_table(frame, table);
        if let Some(pane) = &self.log {
            draw_log(frame, log, pane);
        }
        frame.render_widget(Paragraph::new(self.footer_line()), footer);
        if self.help {
            draw_help(frame, area);
        }
    }

    /// A terminal too small for the table: counts only, clipped to what fits.
    fn draw_tiny(&self, frame: &mut Frame<'_>, area: Rect) {
        let running = self
            .rows
            .iter()
            .filter(|r| r.job.state == JobState::Running)
            .count();
        let text = format!(
            "{} jobs, {running} running (enlarge to see them)",
            self.rows.len()
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
    }

    fn header_line(&self) -> Line<'static> {
        let mut spans = vec![Span::styled(
            "supervisord",
            Style::default().add_modifier(Modifier::BOLD),
        )];
        if let Some(d) = &self.daemon {
            let up = d.uptime_ms + millis(d.seen.elapsed());
            spans.push(Span::raw(format!(
                " {}  up {}",
                d.version,
                short_duration(Duration::from_millis(up))
            )));
        }
        spans.push(Span::raw(format!("  {} jobs:", self.rows.len())));
        for state in [
            JobState::Running,
            JobState::Starting,
            JobState::Stopping,
            JobState::Backoff,
            JobState::Exited,
            JobState::Stopped,
            JobState::Fatal,
        ] {
            let n = self.rows.iter().filter(|r| r.job.state == state).count();
            if n > 0 {
                spans.push(Span::raw(" "));
                spans.push(Span::styled(
                    format!("{n} {state}"),
                    self.state_style(state),
                ));
            }
        }
        Line::from(spans)
    }

    fn footer_line(&self) -> Line<'static> {
        if self.editing_filter {
            return Line::from(format!("/{}_  (Enter keep, Esc clear)", self.filter));
        }
        let mut text = String::new();
        if let Some(m) = &self.message {
            text.push_str(m);
            text.push_str("  ");
        }
        if !self.filter.is_empty() {
            text.push_str(&format!("[filter: {}]  ", self.filter));
        }
        text.push_str(
            "q quit  ↑↓ select  s start  t terminate  r restart  l log  / filter  ? help",
        );
        Line::from(Span::styled(
            text,
            Style::default().add_modifier(Modifier::DIM),
        ))
    }

    fn state_style(&self, state: JobState) -> Style {
        if !self.colour {
            return Style::default();
        }
        match state {
            JobState::Running => Style::default().fg(Color::Green),
            JobState::Starting | JobState::Stopping => Style::default().fg(Color::Yellow),
            JobState::Backoff | JobState::Fatal => Style::default().fg(Color::Red),
            JobState::Exited | JobState::Stopped => Style::default().add_modifier(Modifier::DIM),
            JobState::Waiting => Style::default().fg(Color::Cyan),
        }
    }

    fn health_style(&self, health: Option<Health>) -> Style {
        match health {
            Some(Health::Healthy) if self.colour => Style::default().fg(Color::Green),
            Some(Health::Unhealthy) if self.colour => Style::default().fg(Color::Red),
            _ => Style::default(),
        }
    }

    fn draw_table(&self, frame: &mut Frame<'_>, area: Rect) {
        let now = Instant::now();
        let longest = self.rows.iter().map(|r| r.job.name.chars().count()).max();
        let name_width = u16::try_from(longest.unwrap_or(4))
            .unwrap_or(u16::MAX)
            .clamp(4, 40);
        let columns = fit_columns(area.width, name_width);
        let header = Row::new(columns.iter().map(|c| Cell::from(c.title)))
            .style(Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED));
        let visible = self.visible();
        let rows = visible.iter().map(|r| {
            Row::new(columns.iter().map(|c| {
                let text = cell(c.id, r, now);
                if c.id == Col::State {
                    Cell::from(text).style(self.state_style(r.job.state))
                } else if c.id == Col::Health {
                    Cell::from(text).style(self.health_style(r.job.health))
                } else {
                    Cell::from(text)
                }
            }))
        });
        let widths: Vec<Constraint> = columns
            .iter()
            .map(|c| Constraint::Length(c.width))
            .collect();
        let table = Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol(">");
        let mut state = TableState::default().with_selected(self.selected_index());
        if visible.is_empty() {
            let text = if self.rows.is_empty() {
                "no jobs".to_owned()
            } else {
                format!("no job matches {:?}", self.filter)
            };
            let [_, below] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
            frame.render_widget(Paragraph::new(text), below);
        }
        frame.render_stateful_widget(table, area, &mut state);
    }
}

fn draw_log(frame: &mut Frame<'_>, area: Rect, pane: &LogPane) {
    let block = Block::default().borders(Borders::TOP).title(format!(
        " log: {}, stdout and stderr (\"{}\" lines; l closes) ",
        pane.name,
        STDERR_MARK.trim_end()
    ));
    let inner = block.inner(area);
    let shown = pane
        .lines
        .iter()
        .skip(pane.lines.len().saturating_sub(usize::from(inner.height)))
        .map(|l| Line::from(l.clone()))
        .collect::<Vec<_>>();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "select a job (PgUp PgDn, g G: jump)"),
    ("s", "start the selected job"),
    ("t", "terminate it (its stop signal)"),
    ("r", "restart it"),
    ("l", "follow its stdout and stderr below (again: close)"),
    ("/", "filter by name or group (Esc clears)"),
    ("?", "this help (any key closes)"),
    ("q  Esc", "quit"),
];

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let width = 52.min(area.width);
    let height = (HELP.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(k, what)| Line::from(format!("{k:<10} {what}")))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" help ")),
        popup,
    );
}

impl LogPane {
    fn push_from(&mut self, stream: Stream, line: String) {
        match stream {
            Stream::Stdout => self.push(line),
            Stream::Stderr => self.push(format!("{STDERR_MARK}{line}")),
        }
    }

    fn push(&mut self, line: String) {
        if self.lines.len() == LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

/// The table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Name,
    Group,
    State,
    Health,
    Pid,
    Uptime,
    Restarts,
    Cpu,
    Mem,
}

struct Column {
    id: Col,
    title: &'static str,
    width: u16,
}

/// Every column, in screen order, with the order in which they are dropped when the
/// terminal is narrow (a lower `keep` stays longer).
const COLUMNS: [(Col, &str, u16, u8); 9] = [
    (Col::Name, "NAME", 4, 0),
    (Col::Group, "GROUP", 10, 6),
    (Col::State, "STATE", 8, 1),
    (Col::Health, "HEALTH", 9, 8),
    (Col::Pid, "PID", 7, 4),
    (Col::Uptime, "UPTIME", 7, 5),
    (Col::Restarts, "RESTARTS", 8, 7),
    (Col::Cpu, "CPU%", 6, 2),
    (Col::Mem, "MEM", 6, 3),
];

/// The columns that fit `width` (with the selection mark and a space between columns),
/// dropping the least useful first; the name column (`name_width` wide, narrowed to what
/// is left when even it does not fit) always stays.
fn fit_columns(width: u16, name_width: u16) -> Vec<Column> {
    let mut keep: Vec<(Col, &str, u16, u8)> = COLUMNS.to_vec();
    keep[0].2 = name_width;
    let need =
        |cols: &[(Col, &str, u16, u8)]| -> u16 { 1 + cols.iter().map(|c| c.2 + 1).sum::<u16>() };
    while need(&keep) > width && keep.len() > 1 {
        let drop = keep
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| c.3)
            .map_or(0, |(i, _)| i);
        keep.remove(drop);
    }
    if keep.len() == 1 {
        keep[0].2 = keep[0].2.min(width.saturating_sub(2)).max(1);
    }
    keep.into_iter()
        .map(|(id, title, width, _)| Column { id, title, width })
        .collect()
}

fn cell(col: Col, r: &JobRow, now: Instant) -> String {
    let j = &r.job;
    let dash = || "-".to_owned();
    match col {
        Col::Name => j.name.clone(),
        Col::Group => j.group.clone(),
        Col::State => j.state.to_string(),
        Col::Health => j.health.map_or_else(dash, |h| h.as_str().to_owned()),
        Col::Pid => j.pid.map_or_else(dash, |p| p.to_string()),
        Col::Uptime => j.uptime_ms.filter(|_| j.alive).map_or_else(dash, |_| {
            short_duration(Duration::from_millis(uptime(r, now)))
        }),
        Col::Restarts => j.restarts.to_string(),
        Col::Cpu => r.cpu_percent.map_or_else(dash, |p| format!("{p:.1}")),
        Col::Mem => j.memory_bytes.map_or_else(dash, bytes),
    }
}

/// The row's uptime now: the reported one plus the time since it was reported.
fn uptime(r: &JobRow, now: Instant) -> u64 {
    r.job.uptime_ms.unwrap_or(0) + millis(now.saturating_duration_since(r.seen))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// CPU percent from this sample and the previous one of the same process.
fn sample_cpu(row: &mut JobRow, now: Instant) {
    let (Some(pid), Some(cpu)) = (row.job.pid, row.job.cpu_ms) else {
        row.cpu_percent = None;
        row.last_sample = None;
        return;
    };
    if let Some((last_pid, last_cpu, at)) = row.last_sample {
        let wall = now.saturating_duration_since(at).as_millis() as f64;
        if last_pid == pid && wall >= 100.0 {
            row.cpu_percent = Some(cpu.saturating_sub(last_cpu) as f64 * 100.0 / wall);
        } else if last_pid != pid {
            row.cpu_percent = None;
        }
        if wall < 100.0 && last_pid == pid {
            return;
        }
    }
    row.last_sample = Some((pid, cpu, now));
}

fn job_from_event(e: &Event) -> Job {
    Job {
        name: e.name.clone(),
        group: e.group.clone(),
        state: e.to,
        alive: e.to.is_alive(),
        pid: e.pid,
        exitcode: e.exitcode,
        signal: e.signal.clone(),
        success: None,
        daemon: false,
        restarts: 0,
        started_at: None,
        ended_at: None,
        uptime_ms: None,
        spawn_error: None,
        cause: e.cause,
        reason: e.reason.clone(),
        output_error: None,
        cpu_ms: None,
        memory_bytes: None,
        health: None,
        health_output: None,
        health_failures: None,
        next_run_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Cause;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn job(name: &str, group: &str, state: JobState) -> Job {
        let mut j = job_from_event(&Event {
            name: name.into(),
            group: group.into(),
            from: JobState::Stopped,
            to: state,
            pid: state.is_alive().then_some(4242),
            exitcode: None,
            signal: None,
            cause: None,
            reason: None,
            at: String::new(),
        });
        j.uptime_ms = state.is_alive().then_some(133_000);
        j
    }

    fn demo() -> View {
        let mut v = View::new(false);
        let mut web = job("web", "front", JobState::Running);
        web.memory_bytes = Some(3 << 20);
        web.cpu_ms = Some(1000);
        v.table(
            vec![
                web,
                job("api", "front", JobState::Running),
                job("worker", "back", JobState::Fatal),
                job("cron", "cron", JobState::Stopped),
            ],
            Instant::now(),
        );
        v.daemon = Some(Daemon {
            version: "0.1.0".into(),
            uptime_ms: 60_000,
            seen: Instant::now(),
        });
        v
    }

    /// The screen as text, one string per row, trailing spaces cut.
    fn screen(view: &View, width: u16, height: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        t.draw(|f| view.draw(f)).expect("draw");
        let buf = t.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buf.cell((x, y)).map_or(" ", |c| c.symbol()))
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn the_table_shows_every_column_and_the_header_counts() {
        let v = demo();
        let s = screen(&v, 100, 12);
        assert!(
            s[0].starts_with("supervisord 0.1.0  up 1m0s  4 jobs: 2 running 1 stopped 1 fatal"),
            "{s:#?}"
        );
        assert_eq!(
            words(&s[1]),
            ["NAME", "GROUP", "STATE", "HEALTH", "PID", "UPTIME", "RESTARTS", "CPU%", "MEM"]
        );
        assert_eq!(
            words(&s[2]),
            [">web", "front", "running", "-", "4242", "2m13s", "0", "-", "3.0M"]
        );
        assert_eq!(
            words(&s[4]),
            ["worker", "back", "fatal", "-", "-", "-", "0", "-", "-"]
        );
        assert!(s[11].starts_with("q quit"), "{s:#?}");
    }

    #[test]
    fn a_narrow_terminal_keeps_name_state_and_usage_and_a_tiny_one_says_so() {
        let v = demo();
        let s = screen(&v, 34, 8);
        assert_eq!(words(&s[1]), ["NAME", "STATE", "CPU%", "MEM"], "{s:#?}");
        assert_eq!(words(&s[2]), [">web", "running", "-", "3.0M"]);
        let s = screen(&v, 40, 8);
        assert_eq!(
            words(&s[1]),
            ["NAME", "STATE", "PID", "CPU%", "MEM"],
            "{s:#?}"
        );
        let s = screen(&v, 21, 8);
        assert_eq!(words(&s[1]), ["NAME", "STATE"], "{s:#?}");
        let s = screen(&v, 12, 8);
        assert!(s[0].starts_with("4 jobs, 2"), "{s:#?}");
        let s = screen(&v, 16, 3);
        assert!(s.join(" ").contains("4 jobs, 2"), "{s:#?}");
        // Nothing panics at any size, down to nothing.
        for (w, h) in [(1, 1), (0, 0), (19, 4), (20, 5), (200, 2), (2, 200)] {
            screen(&v, w, h);
        }
    }

    #[test]
    fn the_filter_keeps_names_and_groups_that_match() {
        let mut v = demo();
        assert_eq!(v.key(key('/')), Action::None);
        for c in "FRO".chars() {
            v.key(key(c));
        }
        let s = screen(&v, 80, 10);
        assert!(s[9].starts_with("/FRO_"), "{s:#?}");
        v.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        let s = screen(&v, 80, 10);
        let names: Vec<&str> = s[2..6]
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(names, [">web", "api"], "{s:#?}");
        assert!(s[9].contains("[filter: FRO]"));
        // Selection moves within what is shown, and acts on it.
        v.key(key('j'));
        v.key(key('j'));
        assert_eq!(v.key(key('t')), Action::Terminate("api".into()));
        // A filter nothing matches says so; Esc clears it (and does not quit).
        v.filter = "zzz".into();
        assert!(screen(&v, 80, 10)
            .join("\n")
            .contains("no job matches \"zzz\""));
        assert_eq!(
            v.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)),
            Action::None
        );
        assert!(v.filter.is_empty());
        assert_eq!(
            v.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)),
            Action::Quit
        );
    }

    #[test]
    fn help_opens_on_question_mark_and_any_key_closes_it() {
        let mut v = demo();
        v.key(key('?'));
        let s = screen(&v, 80, 16).join("\n");
        assert!(s.contains(" help "), "{s}");
        assert!(s.contains("terminate it"), "{s}");
        assert_eq!(
            v.key(key('t')),
            Action::None,
            "the key only closes the help"
        );
        assert!(!screen(&v, 80, 16).join("\n").contains("terminate it"));
    }

    #[test]
    fn keys_act_on_the_selected_job() {
        let mut v = demo();
        assert_eq!(v.key(key('s')), Action::Start("web".into()));
        v.key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
        assert_eq!(v.key(key('r')), Action::Restart("api".into()));
        v.key(key('G'));
        assert_eq!(v.key(key('t')), Action::Terminate("cron".into()));
        v.key(key('k'));
        assert_eq!(v.key(key('l')), Action::FollowLog("worker".into()));
        v.open_log("worker", vec!["one".into()]);
        assert_eq!(v.key(key('l')), Action::CloseLog);
        assert_eq!(v.key(key('q')), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        v.editing_filter = true;
        assert_eq!(
            v.key(ctrl_c),
            Action::Quit,
            "^C quits even while typing a filter"
        );
    }

    #[test]
    fn health_shows_from_the_table_and_changes_at_once() {
        let mut v = demo();
        let mut api = job("api", "front", JobState::Running);
        api.health = Some(Health::Healthy);
        let asked = Instant::now();
        v.table(vec![api.clone()], asked);
        assert_eq!(
            words(&screen(&v, 100, 8)[2])[..4],
            [">api", "front", "running", "healthy"]
        );
        std::thread::sleep(Duration::from_millis(2));
        v.health(&HealthChange {
            name: "api".into(),
            group: "front".into(),
            health: Health::Unhealthy,
            output: Some("HTTP 500 Internal Server Error".into()),
            at: String::new(),
        });
        assert_eq!(words(&screen(&v, 100, 8)[2])[3], "unhealthy");
        // A snapshot asked for before the change does not undo it; a later one is taken.
        v.table(vec![api.clone()], asked);
        assert_eq!(words(&screen(&v, 100, 8)[2])[3], "unhealthy");
        v.table(vec![api], Instant::now());
        assert_eq!(words(&screen(&v, 100, 8)[2])[3], "healthy");
    }

    #[test]
    fn events_change_a_row_at_once_and_an_older_snapshot_does_not_undo_them() {
        let mut v = demo();
        let asked = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        v.event(&Event {
            name: "web".into(),
            group: "front".into(),
            from: JobState::Running,
            to: JobState::Stopped,
            pid: Some(4242),
            exitcode: Some(-15),
            signal: Some("SIGTERM".into()),
            cause: Some(Cause::Stopped),
            reason: Some("stopped by request".into()),
            at: String::new(),
        });
        let s = screen(&v, 100, 8);
        assert_eq!(
            words(&s[2])[..5],
            [">web", "front", "stopped", "-", "-"],
            "{s:#?}"
        );
        // A table asked for before the event still says running: the event wins.
        v.table(vec![job("web", "front", JobState::Running)], asked);
        assert_eq!(words(&screen(&v, 100, 8)[2])[2], "stopped");
        // One asked for after it is taken whole.
        v.table(vec![job("web", "front", JobState::Running)], Instant::now());
        assert_eq!(words(&screen(&v, 100, 8)[2])[2], "running");
        // An event for a job not seen yet adds its row.
        v.event(&Event {
            name: "new".into(),
            group: "g".into(),
            from: JobState::Stopped,
            to: JobState::Starting,
            pid: Some(7),
            exitcode: None,
            signal: None,
            cause: None,
            reason: None,
            at: String::new(),
        });
        assert!(screen(&v, 100, 8)
            .iter()
            .any(|l| words(l)[..3] == ["new", "g", "starting"]));
    }

    #[test]
    fn cpu_percent_comes_from_two_samples_of_the_same_process() {
        let mut v = View::new(false);
        let mut a = job("a", "a", JobState::Running);
        a.cpu_ms = Some(1000);
        v.table(vec![a.clone()], Instant::now());
        let earlier = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .expect("instant");
        v.rows[0].last_sample = Some((4242, 500, earlier));
        v.table(vec![a.clone()], Instant::now());
        let pct = v.rows[0].cpu_percent.expect("percent");
        assert!((45.0..=50.5).contains(&pct), "{pct}");
        // Another process (a restart): no percent until it has two samples.
        a.pid = Some(9);
        v.table(vec![a], Instant::now());
        assert_eq!(v.rows[0].cpu_percent, None);
    }

    #[test]
    fn colours_follow_the_state_only_when_enabled() {
        let mut v = demo();
        let fg_of_state = |v: &View| {
            let mut t = Terminal::new(TestBackend::new(100, 8)).expect("terminal");
            t.draw(|f| v.draw(f)).expect("draw");
            let buf = t.backend().buffer().clone();
            let line: String = (0..100)
                .map(|x| buf.cell((x, 2)).map_or(" ", |c| c.symbol()))
                .collect();
            let x = u16::try_from(line.find("running").expect("state")).expect("x");
            buf.cell((x, 2)).map(|c| c.fg).expect("cell")
        };
        assert_eq!(fg_of_state(&v), Color::Reset);
        v.colour = true;
        assert_eq!(fg_of_state(&v), Color::Green);
    }

    #[test]
    fn the_log_pane_shows_the_last_lines_of_whole_output() {
        let mut v = demo();
        v.open_log("web", vec!["first".into()]);
        v.stream_data(Stream::Stdout, "second\nthi");
        v.stream_data(Stream::Stdout, "rd\n");
        let s = screen(&v, 80, 20);
        let text = s.join("\n");
        assert!(text.contains("log: web"), "{text}");
        let tail: Vec<&str> = s
            .iter()
            .map(String::as_str)
            .filter(|l| ["first", "second", "third"].contains(l))
            .collect();
        assert_eq!(tail, ["first", "second", "third"]);
    }

    #[test]
    fn the_log_pane_interleaves_stderr_marked_by_whole_lines() {
        let mut v = demo();
        v.open_log("web", Vec::new());
        v.stream_tail(Stream::Stdout, vec!["out 1".into()]);
        v.stream_tail(Stream::Stderr, vec!["err 1".into()]);
        v.stream_data(Stream::Stdout, "out ");
        v.stream_data(Stream::Stderr, "err 2\n");
        v.stream_data(Stream::Stdout, "2\n");
        let s = screen(&v, 80, 20);
        let tail: Vec<&str> = s
            .iter()
            .map(|l| l.trim_end())
            .filter(|l| l.starts_with("out") || l.starts_with(STDERR_MARK))
            .collect();
        assert_eq!(
            tail,
            ["out 1", "err│ err 1", "err│ err 2", "out 2"],
            "{s:#?}"
        );
    }
}
