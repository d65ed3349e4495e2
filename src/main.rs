//! The `distinctly` binary: parses the command line and hands over to the
//! library. See `lib.rs` for the layout.

use anyhow::Context;
use clap::Parser;
use distinctly::cli::{
    BenchArgs, Cli, Command, CountArgs, GenerateArgs, HealthcheckArgs, RunArgs, SummaryFormat,
};
use distinctly::count::End;
use distinctly::diag;
use distinctly::diag::{one_line, to_stderr};
use distinctly::internal_events::{
    HttpServing, InternalEvent, ServiceFailed, ServiceStopped, ServingQueries, UnknownVariable,
};
use distinctly::logging::LogConfig;
use distinctly::memory::alloc::CountingAlloc;
use distinctly::metrics::{MetricsConfig, Mode};
use distinctly::stop::Stop;
use std::io::Write;
use std::process::ExitCode;

/// Counts this thread's allocated bytes so that `bench` measures heap bytes
/// rather than trusting each backend's own account; two thread-local
/// additions per allocation, nothing measurable for the other commands.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Looks at stdout before the Rust runtime replaces a closed descriptor
/// with `/dev/null` (the only moment a closed stdout can be told apart):
/// the C runtime calls the functions of `.init_array` before `main`.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static NOTE_STDOUT: extern "C" fn() = distinctly::count::note_stdout_at_start;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let service = matches!(cli.command, Command::Run(_));
    let level = distinctly::logging::default_level(service);
    if let Err(e) = LogConfig::from_vars(vars.iter().cloned())
        .and_then(|cfg| distinctly::logging::init(&cfg, level))
    {
        diag!("{e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Count(args) => count(args, vars),
        Command::Generate(args) => generate(args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => return run(args, vars),
        Command::Bench(args) => bench(args).map(|()| ExitCode::SUCCESS),
        Command::Healthcheck(args) => return healthcheck(args, vars),
    };
    result.unwrap_or_else(|e| {
        diag!("{}", one_line(e.as_ref()));
        ExitCode::FAILURE
    })
}

/// Warns (in the log) about `DISTINCTLY_*` variables that no setting reads.
fn warn_unknown(vars: &[(String, String)]) {
    for (name, closest) in distinctly::cli::unknown_variables(vars.iter().cloned()) {
        UnknownVariable {
            name: &name,
            closest: closest.as_deref(),
        }
        .emit();
    }
}

fn count(args: CountArgs, vars: Vec<(String, String)>) -> anyhow::Result<ExitCode> {
    warn_unknown(&vars);
    let cfg = args.core.load(vars.iter().cloned())?;
    if distinctly::count::stdout_was_closed() {
        anyhow::bail!(
            "stdout is closed: the records would go nowhere (redirect it to /dev/null to discard them)"
        );
    }
    let stop = Stop::on_signals()?;
    let queries = match &args.serve {
        Some(addr) => {
            let queries = distinctly::slices::serve::register();
            let cfg = MetricsConfig::serve(vars.iter().cloned(), addr)?;
            let Some(addr) = distinctly::metrics::install(&cfg, Mode::Count)? else {
                anyhow::bail!("--serve: expected ip:port such as 127.0.0.1:9464, got nothing");
            };
            HttpServing { addr }.emit();
            queries
        }
        None => {
            serve_metrics(vars, args.metrics_addr, Mode::Count)?;
            None
        }
    };
    let outcome = distinctly::count::count(
        &cfg,
        &args.files,
        args.emit,
        std::io::stdout().lock(),
        &stop,
        queries,
    )?;
    if let End::OutputClosed = outcome.end {
        // `| head`: the reader has what it wanted; end quietly.
        return Ok(ExitCode::SUCCESS);
    }
    let error = match &outcome.end {
        End::Failed(e) => Some(one_line(e)),
        _ => None,
    };
    let signal = match outcome.end {
        End::Signal(s) => Some(s),
        _ => None,
    };
    let signal_name = signal.map(|s| signal_hook::low_level::signal_name(s).unwrap_or("signal"));
    match args.summary {
        SummaryFormat::Text => {
            let mut text = outcome.summary.to_text();
            if let Some(name) = signal_name {
                text += &format!("stopped by {name}: everything read before it is counted\n");
            }
            to_stderr(&text);
        }
        SummaryFormat::Json => {
            let mut json = outcome.summary.to_json();
            if let Some(name) = signal_name {
                json["stopped_by"] = name.into();
            }
            if let Some(e) = &error {
                json["error"] = e.as_str().into();
            }
            to_stderr(&format!("{json}\n"));
        }
        SummaryFormat::None => {}
    }
    if let Some(e) = error {
        diag!("{e}");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(serving) = outcome.serving {
        // Asked to serve: a signal after the input is the normal end.
        ServingQueries.emit();
        serving.until_stopped(&stop);
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match signal {
        Some(s) => ExitCode::from(128 + s as u8),
        None => ExitCode::SUCCESS,
    })
}

/// `run`: every outcome, errors included, is a log line (JSON with
/// `DISTINCTLY_LOG_FORMAT=json`), and a failure is exactly one.
fn run(args: RunArgs, vars: Vec<(String, String)>) -> ExitCode {
    match run_service(args, vars) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ServiceFailed { error: e.as_ref() }.emit();
            ExitCode::FAILURE
        }
    }
}

fn run_service(args: RunArgs, vars: Vec<(String, String)>) -> anyhow::Result<()> {
    warn_unknown(&vars);
    let core = args.core.load(vars.iter().cloned())?;
    let kafka = distinctly::kafka::config::KafkaConfig::from_vars(vars.clone())?;
    serve_metrics(vars, args.metrics_addr, Mode::Run)?;
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in distinctly::stop::SIGNALS {
        // A second signal exits at once; the first asks for a clean stop.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, shutdown.clone())?;
        signal_hook::flag::register(signal, shutdown.clone())?;
    }
    let opts = distinctly::kafka::RunOptions {
        exit_when_idle: args.exit_when_idle,
    };
    let s = distinctly::kafka::run(&core, &kafka, opts, &shutdown)?;
    ServiceStopped {
        messages: s.messages,
        bytes: s.bytes,
        seconds: s.elapsed.as_secs_f64(),
        rejected: s.rejected.total() + s.windows.ts_out_of_range,
        records_produced: s.records_produced,
        dlq_produced: s.dlq_produced,
        windows_emitted: s.windows.windows_emitted,
        corrections_emitted: s.windows.corrections_emitted,
    }
    .emit();
    Ok(())
}

/// Starts the metrics and health endpoints if configured (flag over
/// variable).
fn serve_metrics(
    vars: Vec<(String, String)>,
    flag: Option<String>,
    mode: Mode,
) -> anyhow::Result<()> {
    let cfg = MetricsConfig::load(vars, flag)?;
    if let Some(addr) = distinctly::metrics::install(&cfg, mode)? {
        HttpServing { addr }.emit();
    }
    Ok(())
}

/// `healthcheck`: asks a running instance's `/healthz` (or `/readyz`), for
/// container health checks in an image without curl.
fn healthcheck(args: HealthcheckArgs, vars: Vec<(String, String)>) -> ExitCode {
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let addr = match args.addr {
        Some(a) => Ok(a),
        None => MetricsConfig::load(vars, None).and_then(|c| c.probe_addr()),
    };
    let answer = addr
        .map_err(|e| e.to_string())
        .and_then(|addr| distinctly::health::probe(&addr, path));
    match answer {
        Ok(line) => {
            let _ = writeln!(std::io::stdout(), "{line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            diag!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    if args.groups {
        let rows = distinctly::bench::groups::run(&opts.counters, opts.seed)?;
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(distinctly::bench::groups::markdown(&rows).as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing the table");
    }
    let report = distinctly::bench::run(&opts)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(distinctly::bench::report::markdown(&report).as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the table")?;
    if let Some(dir) = &args.out {
        for path in distinctly::bench::write_outputs(&report, dir)? {
            diag!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let cfg = args.window_args().load(std::env::vars())?;
    let grids = distinctly::window::size::Grid::all(&cfg.sizes()?, &cfg.timezone)
        .map_err(anyhow::Error::msg)?;
    let opts = args.options();
    let truth = if args.output == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let t = distinctly::generate::generate(&opts, &grids, &mut out)
            .and_then(|t| out.flush().map(|()| t));
        match t {
            Ok(t) => t,
            // `generate | head`: the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing the events"),
        }
    } else {
        let file = std::fs::File::create(&args.output)
            .with_context(|| format!("creating {}", args.output))?;
        let mut file = std::io::BufWriter::new(file);
        let t = if args.output.ends_with(".gz") {
            let mut gz = flate2::write::GzEncoder::new(&mut file, flate2::Compression::best());
            let t = distinctly::generate::generate(&opts, &grids, &mut gz)?;
            gz.finish()?;
            t
        } else {
            distinctly::generate::generate(&opts, &grids, &mut file)?
        };
        file.flush()
            .with_context(|| format!("writing {}", args.output))?;
        t
    };
    if let Some(path) = &args.truth {
        std::fs::write(path, truth.to_json_lines()).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
