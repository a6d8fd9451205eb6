//! The examples' command line: the same flags on every example, parsed by hand.
//!
//! ```text
//!   cargo run --example NAME -- [--fast] [--trace] [--timeline] [--table]
//!                               [--trace-json FILE] [--lints] [--ledger] [example options] [ARGS...]
//!   --fast            virtual clock: the same output, no waiting
//!   --trace           print the loop's event log on stderr as it happens
//!   --timeline        after the run, print an ASCII timeline of the tasks
//!   --table           after the run, print the task table (tokio-console style)
//!   --trace-json FILE after the run, write a Chrome trace-event JSON file (Perfetto)
//!   --lints           after the run, print the lints (slow steps, errors never retrieved, ...)
//!   --ledger          after the run, print the iteration ledger and the wheel view
//! ```
//!
//! Bad or missing arguments print the example's usage line on stderr and exit with status
//! 2 (as Python's `argparse` does). An example is a function `run(&Args, &Out)` plus
//! `fn main() { cli::main(&SPEC, run) }`, so tests and the `chapter5` runner can call the
//! same function with their own arguments and capture the output. [`Out`] is a cheap,
//! clonable handle that tasks and callbacks capture (they are `'static`, so they cannot
//! borrow a `&mut dyn Write`); `writeln!(out, ...)` works on it and prints at once, so a
//! person watching the real clock sees each line when it happens.

/// Where an example prints: stdout, or a buffer a test reads. Clone it into tasks.
#[derive(Clone)]
pub struct Out(Rc<RefCell<dyn Write>>);

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Out")
    }
}

/// The text a captured [`Out`] received.
#[derive(Clone, Debug, Default)]
pub struct Captured(Rc<RefCell<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

/// A `Write` into a shared buffer.
struct Buffer(Rc<RefCell<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Out {
    /// The process's stdout, flushed after every write.
    pub fn stdout() -> Out {
        Out(Rc::new(RefCell::new(io::stdout())))
    }

    /// A buffer; read it through the returned [`Captured`].
    pub fn capture() -> (Out, Captured) {
        let buf = Rc::new(RefCell::new(Vec::new()));
        (Out(Rc::new(RefCell::new(Buffer(buf.clone())))), Captured(buf))
    }

    /// The teaching material's banner: a rule, each line indented by four spaces, a rule.
    pub fn banner(&self, rule: &str, lines: &[&str]) {
        writeln!(self, "{rule}");
        for line in lines {
            writeln!(self, "    {line}");
        }
        writeln!(self, "{rule}");
    }

    /// What `write!`/`writeln!` call. Write errors (a closed pipe) are ignored: the
    /// program's behaviour must not depend on whether anyone reads its output.
    pub fn write_fmt(&self, args: fmt::Arguments<'_>) {
        if let Ok(mut w) = self.0.try_borrow_mut() {
            let _ = w.write_fmt(args);
            let _ = w.flush();
        }
    }
}

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::ops::Deref;
use std::path::PathBuf;
use std::rc::Rc;

use super::Inspector;
use crate::events::EventLoop;
use crate::trace::Printer;

/// What an example accepts besides the common flags.
#[derive(Debug)]
pub struct Spec {
    /// The program name, for the usage line.
    pub name: &'static str,
    /// The part of the usage line after the common flags, e.g. `ITEMS PREVIOUS_ORDERS`.
    pub usage: &'static str,
    /// Names of positional arguments (exactly this many are required).
    pub positional: &'static [&'static str],
    /// Options that take a value, e.g. `--seed`.
    pub options: &'static [&'static str],
}

impl Spec {
    /// The usage line.
    pub fn usage_line(&self) -> String {
        format!(
            "usage: {} [--fast] [--trace] [--timeline] [--table] [--trace-json FILE] [--lints] [--ledger]{}{}",
            self.name,
            if self.usage.is_empty() { "" } else { " " },
            self.usage
        )
    }
}

/// A usage error: what was wrong. Printed under the usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parsed arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// `--fast`: virtual clock.
    pub fast: bool,
    /// `--trace`: print the event log on stderr.
    pub trace: bool,
    /// `--timeline`: print the ASCII timeline after the run.
    pub timeline: bool,
    /// `--table`: print the task table after the run.
    pub table: bool,
    /// `--trace-json FILE`.
    pub trace_json: Option<PathBuf>,
    /// `--lints`: print the lints after the run.
    pub lints: bool,
    /// `--ledger`: print the iteration ledger and the wheel view after the run.
    pub ledger: bool,
    /// Example options with their values, in the order given.
    pub options: Vec<(String, String)>,
    /// Positional arguments.
    pub positional: Vec<String>,
}

impl Args {
    /// Parse `argv` (without the program name) against `spec`.
    pub fn parse<I, S>(spec: &Spec, argv: I) -> Result<Args, UsageError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args = Args::default();
        let mut it = argv.into_iter().map(Into::into);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--fast" => args.fast = true,
                "--trace" => args.trace = true,
                "--timeline" => args.timeline = true,
                "--table" => args.table = true,
                "--lints" => args.lints = true,
                "--ledger" => args.ledger = true,
                "--trace-json" => {
                    let file = it.next().ok_or_else(|| UsageError("--trace-json needs a FILE".into()))?;
                    args.trace_json = Some(PathBuf::from(file));
                }
                o if o.starts_with("--") => {
                    let (name, inline) = match o.split_once('=') {
                        Some((n, v)) => (n, Some(v.to_string())),
                        None => (o, None),
                    };
                    if !spec.options.contains(&name) {
                        return Err(UsageError(format!("unknown option {name}")));
                    }
                    let value = match inline {
                        Some(v) => v,
                        None => it.next().ok_or_else(|| UsageError(format!("{name} needs a value")))?,
                    };
                    args.options.push((name.to_string(), value));
                }
                _ => args.positional.push(a),
            }
        }
        if args.positional.len() != spec.positional.len() {
            return Err(UsageError(if args.positional.len() < spec.positional.len() {
                format!("missing {}", spec.positional[args.positional.len()..].join(" "))
            } else {
                format!("unexpected argument {}", args.positional[spec.positional.len()])
            }));
        }
        Ok(args)
    }

    /// The value of an option (the last one given wins).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// An option parsed as a number; a usage error if it is not one.
    pub fn option_u64(&self, name: &str) -> Result<Option<u64>, UsageError> {
        self.option(name)
            .map(|v| v.parse().map_err(|_| UsageError(format!("{name} must be a whole number, not {v:?}"))))
            .transpose()
    }

    /// Positional argument `i` parsed as a number; a usage error if it is not one.
    pub fn positional_u64(&self, i: usize, what: &str) -> Result<u64, UsageError> {
        let v = &self.positional[i];
        v.parse().map_err(|_| UsageError(format!("{what} must be a whole number, not {v:?}")))
    }

    /// The same arguments with `--fast` set or cleared (the `chapter5` runner passes its
    /// own flags on to each scenario).
    pub fn with_fast(&self, fast: bool) -> Args {
        Args { fast, ..self.clone() }
    }
}

/// A loop built as the flags ask: virtual clock for `--fast`, a [`Printer`] for `--trace`,
/// an [`Inspector`] for `--timeline`/`--table`/`--trace-json`/`--lints`/`--ledger`. Derefs
/// to the loop.
#[derive(Debug)]
pub struct Session {
    lp: EventLoop,
    inspector: Option<Inspector>,
    args: Args,
}

impl Deref for Session {
    type Target = EventLoop;
    fn deref(&self) -> &EventLoop {
        &self.lp
    }
}

impl Session {
    /// Build the loop for `args`.
    pub fn new(args: &Args) -> Session {
        let lp = if args.fast { EventLoop::new_virtual() } else { EventLoop::new() };
        if args.trace {
            lp.add_trace_sink(Printer::default());
        }
        let wanted = args.timeline || args.table || args.trace_json.is_some() || args.lints || args.ledger;
        let inspector = wanted.then(|| Inspector::attach(&lp));
        if args.lints {
            lp.set_lost_waker_check(true);
        }
        Session { lp, inspector, args: args.clone() }
    }

    /// The inspector, if a flag asked for one.
    pub fn inspector(&self) -> Option<&Inspector> {
        self.inspector.as_ref()
    }

    /// After the run: print the timeline and the table to `out`, write the JSON file.
    pub fn finish(&self, out: &Out) -> io::Result<()> {
        let Some(ins) = &self.inspector else {
            return Ok(());
        };
        if self.args.timeline {
            writeln!(out);
            write!(out, "{}", ins.timeline(72));
        }
        if self.args.table {
            writeln!(out);
            write!(out, "{}", ins.table());
        }
        if self.args.ledger {
            writeln!(out);
            write!(out, "{}", ins.ledger());
            // The queue's own counters: for the heap backend, its lazily cancelled entries
            // and asyncio-rule compactions, which the event stream does not carry.
            let st = self.lp.timer_stats();
            writeln!(
                out,
                "timer queue counters: live={} cascades={} cascaded_entries={} compactions={} cancelled_in_heap={}",
                st.live, st.cascades, st.cascaded_entries, st.compactions, st.cancelled_in_heap
            );
        }
        if self.args.lints {
            writeln!(out);
            write!(out, "{}", super::lints::render_lints(&ins.lints(super::lints::SLOW_STEP)));
        }
        if let Some(path) = &self.args.trace_json {
            std::fs::write(path, ins.chrome_json())?;
            writeln!(out, "\ntrace written to {} (open it in ui.perfetto.dev)", path.display());
        }
        Ok(())
    }
}

/// What an example's body returns: I/O errors writing the output, or a usage error found
/// while reading its options.
#[derive(Debug)]
pub enum RunError {
    /// Bad arguments: usage line, exit status 2.
    Usage(UsageError),
    /// Writing failed (or the loop failed: wrapped as an I/O error with its message).
    Io(io::Error),
}

impl From<UsageError> for RunError {
    fn from(e: UsageError) -> Self {
        RunError::Usage(e)
    }
}

impl From<io::Error> for RunError {
    fn from(e: io::Error) -> Self {
        RunError::Io(e)
    }
}

impl From<crate::LoopError> for RunError {
    fn from(e: crate::LoopError) -> Self {
        RunError::Io(io::Error::other(e.to_string()))
    }
}

/// An example's body.
pub type RunFn = fn(&Args, &Out) -> Result<(), RunError>;

/// Parse, run, and turn the outcome into an exit status: 0, 1 (an error), 2 (usage).
/// Usage errors go to `err` as the usage line plus what was wrong.
pub fn run_with(spec: &Spec, run: RunFn, argv: Vec<String>, out: &Out, err: &mut dyn Write) -> i32 {
    let result = Args::parse(spec, argv).map_err(RunError::Usage).and_then(|args| run(&args, out));
    match result {
        Ok(()) => 0,
        Err(RunError::Usage(e)) => {
            let _ = writeln!(err, "{}", spec.usage_line());
            let _ = writeln!(err, "error: {e}");
            2
        }
        Err(RunError::Io(e)) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

/// `fn main` of every example: [`run_with`] on the process's arguments, stdout and stderr.
pub fn main(spec: &Spec, run: RunFn) -> ! {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = run_with(spec, run, argv, &Out::stdout(), &mut io::stderr());
    std::process::exit(code)
}

/// Options of a program that builds its own loop (the network examples: a server and its
/// client are two processes on the real clock, so the [`Session`] flags do not apply).
/// `--name value` pairs and bare `--flag`s; anything else is a usage error, exit status 2.
#[derive(Debug)]
pub struct Options {
    usage: String,
    values: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Options {
    /// Parse this process's arguments: `with_value` options take a value, `flags` do not.
    /// On anything else, print `usage` and what was wrong, and exit with status 2.
    pub fn parse_or_exit(usage: &str, with_value: &[&str], flags: &[&str]) -> Options {
        match Options::parse(usage, with_value, flags, std::env::args().skip(1)) {
            Ok(o) => o,
            Err(e) => Options::exit_usage(usage, &e.0),
        }
    }

    /// The parser behind [`parse_or_exit`](Self::parse_or_exit), for tests.
    pub fn parse(
        usage: &str,
        with_value: &[&str],
        flags: &[&str],
        argv: impl IntoIterator<Item = String>,
    ) -> Result<Options, UsageError> {
        let mut o = Options { usage: usage.to_string(), values: Vec::new(), flags: Vec::new() };
        let mut it = argv.into_iter();
        while let Some(a) = it.next() {
            if with_value.contains(&a.as_str()) {
                let v = it.next().ok_or_else(|| UsageError(format!("{a} needs a value")))?;
                o.values.push((a, v));
            } else if flags.contains(&a.as_str()) {
                o.flags.push(a);
            } else {
                return Err(UsageError(format!("unknown argument {a}")));
            }
        }
        Ok(o)
    }

    fn exit_usage(usage: &str, what: &str) -> ! {
        eprintln!("usage: {usage}\nerror: {what}");
        std::process::exit(2)
    }

    /// Was `--flag` given?
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// The value of `name` parsed as `T` and accepted by `ok` (`default` when absent); on a
    /// bad value, the usage line and `name: must be <what>`, exit status 2.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T, what: &str, ok: impl Fn(&T) -> bool) -> T {
        match self.values.iter().rev().find(|(n, _)| n == name) {
            None => default,
            Some((_, v)) => match v.parse::<T>() {
                Ok(x) if ok(&x) => x,
                _ => Options::exit_usage(&self.usage, &format!("{name} must be {what}, not {v:?}")),
            },
        }
    }
}
