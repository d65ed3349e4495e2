//! The `distinctly` binary: parses the command line and hands over to the
//! library. See `lib.rs` for the layout.

use anyhow::Context;
use clap::Parser;
use distinctly::bench::measure::CountingAlloc;
use distinctly::cli::{BenchArgs, Cli, Command, CountArgs, GenerateArgs, RunArgs, SummaryFormat};
use distinctly::config::CoreConfig;
use distinctly::metrics::{MetricsConfig, Mode};
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
        Command::Generate(args) => generate(args),
        Command::Run(args) => run(args),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("distinctly: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn count(args: CountArgs) -> anyhow::Result<()> {
    let mut cfg = CoreConfig::from_env()?;
    args.core.apply(&mut cfg);
    cfg.validate()?;
    serve_metrics(args.metrics_addr, Mode::Count)?;
    let summary = distinctly::count::count(&cfg, &args.files, std::io::stdout().lock())?;
    match args.summary {
        SummaryFormat::Text => eprint!("{}", summary.to_text()),
        SummaryFormat::Json => eprintln!("{}", summary.to_json()),
        SummaryFormat::None => {}
    }
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut core = CoreConfig::from_env()?;
    args.core.apply(&mut core);
    core.validate()?;
    let kafka = distinctly::kafka::config::KafkaConfig::from_env()?;
    serve_metrics(args.metrics_addr, Mode::Run)?;
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone())?;
    }
    let opts = distinctly::kafka::RunOptions {
        exit_when_idle: args.exit_when_idle,
    };
    let s = distinctly::kafka::run(&core, &kafka, opts, &shutdown)?;
    eprintln!(
        "distinctly: read {} messages ({:.1} MB) in {:.1} s; rejected {}; {} records and {} DLQ messages produced; windows {} emitted, {} corrections",
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
fn serve_metrics(flag: Option<String>, mode: Mode) -> anyhow::Result<()> {
    let mut cfg = MetricsConfig::from_env()?;
    if flag.is_some() {
        cfg.metrics_addr = flag;
    }
    if let Some(addr) = distinctly::metrics::install(&cfg, mode)? {
        if addr.port() == 0 {
            // Port 0: the system picked a free port (benchmarks); the
            // exporter does not say which.
            eprintln!(
                "distinctly: serving Prometheus metrics on {} (any free port)",
                addr.ip()
            );
        } else {
            eprintln!("distinctly: serving Prometheus metrics on http://{addr}/metrics");
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let report = distinctly::bench::run(&opts)?;
    print!("{}", distinctly::bench::report::markdown(&report));
    if let Some(dir) = &args.out {
        for path in distinctly::bench::write_outputs(&report, dir)? {
            eprintln!("distinctly: wrote {}", path.display());
        }
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let window = match args.window_seconds {
        Some(w) => w,
        None => CoreConfig::from_env()?.window_seconds,
    };
    let opts = args.options();
    let truth = if args.output == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let t = distinctly::generate::generate(&opts, window, &mut out)?;
        out.flush()?;
        t
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
        file.flush()?;
        t
    };
    if let Some(path) = &args.truth {
        std::fs::write(path, truth.to_json_lines(window))
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
