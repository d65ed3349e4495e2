//! The `distinctly` binary: parses the command line and hands over to the
//! library. See `lib.rs` for the layout.

use anyhow::Context;
use clap::Parser;
use distinctly::bench::measure::CountingAlloc;
use distinctly::cli::{BenchArgs, Cli, Command, CountArgs, GenerateArgs, RunArgs, SummaryFormat};
use distinctly::config::CoreConfig;
use distinctly::count::End;
use distinctly::diag;
use distinctly::diag::{one_line, to_stderr};
use distinctly::metrics::{MetricsConfig, Mode};
use distinctly::stop::Stop;
use std::io::Write;
use std::process::ExitCode;

/// Counts this thread's allocated bytes so that `bench` measures heap bytes
/// rather than trusting each backend's own account; two thread-local
/// additions per allocation, nothing measurable for the other commands.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Count(args) => count(args),
        Command::Generate(args) => generate(args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench(args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        diag!("{}", one_line(e.as_ref()));
        ExitCode::FAILURE
    })
}

/// The environment, once; warns about `DISTINCTLY_*` variables that no
/// setting reads (typos).
fn environment() -> Vec<(String, String)> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    for (name, closest) in distinctly::config::unknown_variables(vars.iter().cloned()) {
        match closest {
            Some(known) => diag!("warning: {name} is not a setting (did you mean {known}?)"),
            None => diag!("warning: {name} is not a setting; it is ignored"),
        }
    }
    vars
}

fn count(args: CountArgs) -> anyhow::Result<ExitCode> {
    let vars = environment();
    let cfg = CoreConfig::load(vars.iter().cloned(), &args.core)?;
    if distinctly::count::stdout_was_closed() {
        anyhow::bail!(
            "stdout is closed: the records would go nowhere (redirect it to /dev/null to discard them)"
        );
    }
    let stop = Stop::on_signals()?;
    serve_metrics(vars, args.metrics_addr, Mode::Count)?;
    let outcome = distinctly::count::count(&cfg, &args.files, std::io::stdout().lock(), &stop)?;
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
    Ok(match signal {
        Some(s) => ExitCode::from(128 + s as u8),
        None => ExitCode::SUCCESS,
    })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let vars = environment();
    let core = CoreConfig::load(vars.iter().cloned(), &args.core)?;
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
    diag!(
        "read {} messages ({:.1} MB) in {:.1} s; rejected {}; {} records and {} DLQ messages produced; windows {} emitted, {} corrections",
        s.messages,
        s.bytes as f64 / 1e6,
        s.elapsed.as_secs_f64(),
        s.rejected.total() + s.windows.ts_out_of_range,
        s.records_produced,
        s.dlq_produced,
        s.windows.windows_emitted,
        s.windows.corrections_emitted,
    );
    Ok(())
}

/// Starts the Prometheus exporter if configured (flag over variable).
fn serve_metrics(
    vars: Vec<(String, String)>,
    flag: Option<String>,
    mode: Mode,
) -> anyhow::Result<()> {
    let cfg = MetricsConfig::load(vars, flag)?;
    if let Some(addr) = distinctly::metrics::install(&cfg, mode)? {
        if addr.port() == 0 {
            // Port 0: the system picked a free port (benchmarks); the
            // exporter does not say which.
            diag!(
                "serving Prometheus metrics on {} (any free port)",
                addr.ip()
            );
        } else {
            diag!("serving Prometheus metrics on http://{addr}/metrics");
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
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
    let window = match args.window_seconds {
        Some(w) => w,
        None => CoreConfig::load(std::env::vars(), &Default::default())?.window_seconds,
    };
    let opts = args.options();
    let truth = if args.output == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let t = distinctly::generate::generate(&opts, window, &mut out)
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
            let t = distinctly::generate::generate(&opts, window, &mut gz)?;
            gz.finish()?;
            t
        } else {
            distinctly::generate::generate(&opts, window, &mut file)?
        };
        file.flush()
            .with_context(|| format!("writing {}", args.output))?;
        t
    };
    if let Some(path) = &args.truth {
        std::fs::write(path, truth.to_json_lines(window))
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
